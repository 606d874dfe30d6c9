package store

import (
	"context"
	"errors"
	"time"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/jobs"
)

// Sentinel errors every backend returns (wrapped) so that callers can use errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("version conflict")
	ErrExists   = errors.New("already exists")
	// ErrLimit is returned (wrapped) when a request would exceed a limit of the backend that
	// keeps one call's work bounded (such as the number of nodes FactValues reads); the
	// error says which limit.
	ErrLimit = errors.New("over a store limit")
)

// JobQuery selects and orders jobs for listing. The filters combine with AND, and the total
// ListJobs returns counts the jobs matching all of them.
type JobQuery struct {
	Limit   int    // 0: no limit
	Offset  int    // 0-based
	OrderBy string // "" or "timestamp" (created), "owner", "environment", "name" (id), "state"
	Desc    bool
	Type    jobs.Type // "" for all
	// Task, when set, keeps the jobs whose Task contains it ignoring case: those for which
	// strings.Contains(strings.ToLower(j.Task), strings.ToLower(Task)) holds.
	Task string
	// MinFinish and MaxFinish, when set, are inclusive bounds on FinishedAt; a job without
	// FinishedAt never matches when either is set.
	MinFinish, MaxFinish *time.Time
}

// Token is an API token, stored by the hex SHA-256 of its secret.
type Token struct {
	Hash      string
	Login     string
	Label     string
	CreatedAt time.Time
	ExpiresAt *time.Time // nil: does not expire
	Revoked   bool
}

// Permission grants one action (RBAC, modelled on PE's {object_type, action, instance}).
// Action is one of the auth package's actions ("jobs:view", "tasks:run", ...); Instance narrows
// it (a task name, or "*"); Scope narrows the nodes it applies to ("*", "group:<name>" or
// "query:<scope query>").
type Permission struct {
	Action   string `json:"action"`
	Instance string `json:"instance,omitempty"`
	Scope    string `json:"scope,omitempty"`
}

// Role is a named set of permissions.
type Role struct {
	Name        string
	Description string
	Permissions []Permission
	CreatedAt   time.Time
	Version     int64
}

// User is an API user: a login and the roles it holds.
type User struct {
	Login     string
	Roles     []string
	CreatedAt time.Time
	Version   int64
}

// Usage is what a job caused in a metered deployment (AWS): Lambda invocations, WebSocket
// messages (and their 32 KB billing units), DynamoDB capacity units and S3 requests.
type Usage struct {
	Invocations  int64   `json:"lambda_invocations"`
	MessagesIn   int64   `json:"websocket_messages_in"`
	MessagesOut  int64   `json:"websocket_messages_out"`
	MessageUnits int64   `json:"websocket_billing_units"`
	ReadUnits    float64 `json:"dynamodb_read_units"`
	WriteUnits   float64 `json:"dynamodb_write_units"`
	S3Writes     int64   `json:"s3_put_requests"`
	S3Reads      int64   `json:"s3_get_requests"`
}

// NodeUpdate is one record for UpdateJobNodes: the record at the Version read, and the events
// to append with it.
type NodeUpdate struct {
	Node   jobs.Node
	Events []jobs.Event
}

// Claim says what ClaimJobNodes may take and what it makes of each record it takes.
type Claim struct {
	// Limit caps the records taken by one call; it must be positive.
	Limit int
	// GlobalCap caps the active records (ready or running) of all unfinished jobs together,
	// PE's task_concurrency; 0 or less: no cap.
	GlobalCap int
	// Apply returns the claimed record, in an active state, from the queued one (whose JobID
	// is set, also when the job is being created), and the events to append with it. It must
	// not change the record's job or name. It may be called more than once for a record (a
	// store may run a claim again): only what the committed claim returns counts.
	Apply func(jobs.Node) (jobs.Node, []jobs.Event)
	// Attempts bounds the rounds of a claim whose records another claim of the job took
	// first (stores whose claims take turns, DynamoDB); 0 or less: the store's own bound. A
	// refill after a result makes one: the claim that has the turn takes the free slots, and
	// no result waits on a queue of claims for a hot item.
	Attempts int
}

// Recounter is implemented by stores whose job counts are kept by separate writes that a
// crash can leave behind (the DynamoDB store): RecountJob recounts job jobID's node records,
// repairs its counts when they disagree and reports whether it did. Its cost follows the
// job's size: a sweep calls it for a job whose counts look stale (a count below zero; a job
// not finished with no active and no queued record) and whose records have not changed for
// a while (a recount racing a write in progress would count it twice), never a result.
type Recounter interface {
	RecountJob(ctx context.Context, jobID int64) (bool, error)
}

// Store is the persistence contract. All methods are safe for concurrent use.
type Store interface {
	Output // live task output (output.go)

	// CreateJob writes a job, its nodes and its first events atomically. It assigns the job an
	// id greater than every id assigned before, sets Version 1 on the job and every node, sets
	// each node's JobID, assigns event ids from 1 (a node named by an event gets the id of the
	// last such event as its LatestEventID), and returns the job as stored. When
	// j.IdempotencyKey is not empty and another job with the same Owner.Login has that key
	// (compared exactly), it fails with ErrExists and writes nothing.
	CreateJob(ctx context.Context, j jobs.Job, nodes []jobs.Node, events []jobs.Event) (jobs.Job, error)
	// CreateJobClaiming is CreateJob and then ClaimJobNodes(c) on the new job, in one
	// transaction where the backend can (the records it claims are never stored queued); it
	// returns the job and the records it claimed (their events numbered after events).
	CreateJobClaiming(ctx context.Context, j jobs.Job, nodes []jobs.Node, events []jobs.Event, c Claim) (jobs.Job, []jobs.Node, error)
	// GetJob returns ErrNotFound for an unknown id.
	GetJob(ctx context.Context, id int64) (jobs.Job, error)
	// GetJobByIdempotencyKey returns the job of owner login whose IdempotencyKey is key, or
	// ErrNotFound; the empty key matches no job.
	GetJobByIdempotencyKey(ctx context.Context, login, key string) (jobs.Job, error)
	// ListJobs returns a page of jobs and the total number matching q.
	ListJobs(ctx context.Context, q JobQuery) ([]jobs.Job, int, error)
	// ListUnfinishedJobs returns every job whose state is not terminal, oldest first.
	ListUnfinishedJobs(ctx context.Context) ([]jobs.Job, error)
	// UpdateJob replaces the job if j.Version is the stored version (else ErrConflict) and
	// appends events in the same transaction. It returns the job with its new Version. Giving
	// the job the IdempotencyKey of another job of the same owner fails with ErrExists.
	UpdateJob(ctx context.Context, j jobs.Job, events ...jobs.Event) (jobs.Job, error)

	// GetJobNode returns ErrNotFound for an unknown job or node.
	GetJobNode(ctx context.Context, jobID int64, name string) (jobs.Node, error)
	// ListJobNodes returns a job's nodes in the order they were created.
	ListJobNodes(ctx context.Context, jobID int64) ([]jobs.Node, error)
	// ListJobNodesByName returns the records of node name in unfinished jobs whose state is
	// one of states, oldest job first.
	ListJobNodesByName(ctx context.Context, name string, states ...jobs.NodeState) ([]jobs.Node, error)
	// FindJobNodeByTransaction returns the node record that sent transaction txn, or ErrNotFound.
	FindJobNodeByTransaction(ctx context.Context, txn string) (jobs.Node, error)
	// UpdateJobNode replaces the node record if n.Version is the stored version (else
	// ErrConflict) and appends events in the same transaction; when events are given the
	// returned node's LatestEventID is the id of the last one.
	UpdateJobNode(ctx context.Context, n jobs.Node, events ...jobs.Event) (jobs.Node, error)
	// UpdateJobNodeAndJob writes node record n (as UpdateJobNode, with nodeEvents) and job j
	// (as UpdateJob, with jobEvents) in one transaction where the backend can: both or
	// neither (ErrConflict when either Version is stale). Where it cannot, the record is
	// written first and an error writing the job leaves the record written.
	UpdateJobNodeAndJob(ctx context.Context, n jobs.Node, nodeEvents []jobs.Event, j jobs.Job, jobEvents []jobs.Event) (jobs.Node, jobs.Job, error)
	// UpdateJobNodes applies each update as UpdateJobNode would. The updates are independent:
	// one that fails (a stale Version: ErrConflict) fails alone, and errs[i] says so; out[i]
	// is the stored record when errs[i] is nil. len(out) == len(errs) == len(ups).
	UpdateJobNodes(ctx context.Context, ups []NodeUpdate) (out []jobs.Node, errs []error)
	// CountActiveNodes returns the number of node records whose state is active (ready or
	// running, see jobs.NodeState.Active) in jobs whose state is not terminal: the actions
	// running server-wide. Its cost does not grow with the number of jobs stored.
	CountActiveNodes(ctx context.Context) (int, error)
	// JobCounts returns how many of job jobID's node records are in each state (states with
	// none may be absent). Every write of a record keeps it exact; its cost does not grow
	// with the job. An unknown job is ErrNotFound.
	JobCounts(ctx context.Context, jobID int64) (jobs.StateCounts, error)
	// ListJobNodesInState returns up to limit (> 0) of job jobID's records whose state is
	// state, in the order they were created. Its cost follows limit, not the job's size.
	ListJobNodesInState(ctx context.Context, jobID int64, state jobs.NodeState, limit int) ([]jobs.Node, error)
	// ClaimJobNodes takes up to c.Limit of job jobID's new records, in the order they were
	// created, and writes c.Apply of each (Version incremented, with its events, so that
	// LatestEventID is the id of its last one when it has some). It takes no more
	// than the job's free slots — its Concurrency minus its active records, or every record
	// when Concurrency is 0 — and, when c.GlobalCap > 0, no more than c.GlobalCap minus the
	// active records of all unfinished jobs. A terminal job, or one with a stop request
	// (Stop != ""), gets none. Concurrent claims never take the same record and the caps hold
	// across them. It returns what it took; an unknown job is ErrNotFound. Its cost follows
	// c.Limit, not the job's size.
	ClaimJobNodes(ctx context.Context, jobID int64, c Claim) ([]jobs.Node, error)
	// ListDueJobNodes returns up to limit (> 0) records, of any job, whose DueAt is at or
	// before now, earliest DueAt first. Its cost follows what it returns.
	ListDueJobNodes(ctx context.Context, now time.Time, limit int) ([]jobs.Node, error)

	// ListEvents returns up to limit (0: all) events of a job with id >= start, by id. An
	// unknown job returns ErrNotFound. Appending events never changes a job's Version.
	ListEvents(ctx context.Context, jobID int64, start int64, limit int) ([]jobs.Event, error)

	// CreateNode enrols a node; ErrExists if the name is taken.
	CreateNode(ctx context.Context, n inventory.Node) (inventory.Node, error)
	// CreateNodes enrols nodes (each at Version 1) all together or none of them: ErrExists
	// when any name is taken or given twice, and then nothing is written.
	CreateNodes(ctx context.Context, nodes []inventory.Node) error
	GetNode(ctx context.Context, name string) (inventory.Node, error)
	// ListNodes returns every enrolled node by name.
	ListNodes(ctx context.Context) ([]inventory.Node, error)
	// UpdateNode replaces the node if n.Version is the stored version (else ErrConflict).
	UpdateNode(ctx context.Context, n inventory.Node) (inventory.Node, error)
	DeleteNode(ctx context.Context, name string) error
	// EnrolledNodes returns which of names are enrolled (the set of those that are). Its cost
	// follows len(names), not the inventory's size.
	EnrolledNodes(ctx context.Context, names []string) (map[string]bool, error)
	// NodeNames returns the name of every enrolled node, ordered bytewise.
	NodeNames(ctx context.Context) ([]string, error)
	// SetNodeFacts replaces node name's facts (a JSON object); writing the facts it already
	// has changes nothing. A change increments the node's Version. Unknown name: ErrNotFound.
	SetNodeFacts(ctx context.Context, name string, facts []byte) error
	// FactValues returns, for every enrolled node whose facts hold a scalar (string, number
	// or boolean; not null) at path — keys of nested objects, see inventory.FactAt — that
	// value, with numbers as json.Number. The store may index the paths asked for, so that
	// repeated calls do not decode every node's facts.
	FactValues(ctx context.Context, path []string) (map[string]any, error)
	// MarkNodeConnected records that node name's agent is connected over connection conn
	// through broker since at, and increments the Version. A connection made before the one
	// recorded (at earlier than its connected-at: a late $connect on AWS, where connects are
	// handled concurrently) changes nothing and is not an error. Unknown name: ErrNotFound.
	MarkNodeConnected(ctx context.Context, name, broker, conn string, at time.Time) error
	// MarkNodeDisconnected records node name offline when conn is its current connection, or
	// whatever its connection when conn is "" (then incrementing the Version); a connection a
	// newer one replaced changes nothing. Unknown name: ErrNotFound.
	MarkNodeDisconnected(ctx context.Context, name, conn string) error
	// MarkAllNodesDisconnected records every node offline (a control plane that restarted
	// holds no connection).
	MarkAllNodesDisconnected(ctx context.Context) error

	// CreateGroup stores a node group at Version 1; ErrExists if the name is taken. The store
	// does not check that exactly one of Nodes and Query is set.
	CreateGroup(ctx context.Context, g inventory.Group) (inventory.Group, error)
	// GetGroup returns ErrNotFound for an unknown name.
	GetGroup(ctx context.Context, name string) (inventory.Group, error)
	// ListGroups returns every group by name.
	ListGroups(ctx context.Context) ([]inventory.Group, error)
	// UpdateGroup replaces the group if g.Version is the stored version (else ErrConflict;
	// ErrNotFound for an unknown name) and returns it with its new Version.
	UpdateGroup(ctx context.Context, g inventory.Group) (inventory.Group, error)
	// DeleteGroup returns ErrNotFound for an unknown name.
	DeleteGroup(ctx context.Context, name string) error

	// AddJobUsage adds u to job jobID's usage counters (atomically: concurrent adds all count).
	// An unknown job is ErrNotFound.
	AddJobUsage(ctx context.Context, jobID int64, u Usage) error
	// JobUsage returns a job's usage counters (zero when nothing was added). An unknown job is
	// ErrNotFound.
	JobUsage(ctx context.Context, jobID int64) (Usage, error)

	// TryLease takes or renews the lease called name for owner until until, and reports
	// whether owner holds it now: it does when the lease is absent, expired at now (its
	// until at or before now) or already held by owner (then until replaces the old end, even
	// an earlier one). A lease held by another owner and not expired is left as it is
	// (false, nil). now is the caller's clock: the store never reads the wall clock for this.
	TryLease(ctx context.Context, name, owner string, now, until time.Time) (bool, error)
	// ReleaseLease gives up lease name when owner holds it; otherwise (another owner, or no
	// lease) it changes nothing and returns nil.
	ReleaseLease(ctx context.Context, name, owner string) error

	// UseNonce records that nonce was used (connect replay protection); ErrExists when it was
	// already recorded and has not expired at now. The record may be forgotten after expires
	// (TTL). now is the caller's clock: the store never reads the wall clock for this.
	UseNonce(ctx context.Context, nonce string, now, expires time.Time) error

	// PutToken stores a token; ErrExists if its hash is already stored.
	PutToken(ctx context.Context, t Token) error
	// GetToken returns ErrNotFound for an unknown hash.
	GetToken(ctx context.Context, hash string) (Token, error)
	// ListTokens returns the tokens of login ("" for every login), newest first.
	ListTokens(ctx context.Context, login string) ([]Token, error)
	// RevokeToken marks a token revoked; ErrNotFound for an unknown hash. Revoking twice is fine.
	RevokeToken(ctx context.Context, hash string) error

	// PutRole with Version 0 creates a role (ErrExists when the name is taken); with the stored
	// Version it replaces it (a stale Version: ErrConflict; an unknown name: ErrNotFound). It
	// returns the role with its new Version.
	PutRole(ctx context.Context, r Role) (Role, error)
	GetRole(ctx context.Context, name string) (Role, error)
	// ListRoles returns every role by name.
	ListRoles(ctx context.Context) ([]Role, error)
	DeleteRole(ctx context.Context, name string) error

	// PutUser creates or replaces a user, with the same Version rules as PutRole.
	// DeleteUser is not needed: revoke its tokens and take its roles away.
	PutUser(ctx context.Context, u User) (User, error)
	GetUser(ctx context.Context, login string) (User, error)
	// ListUsers returns every user by login.
	ListUsers(ctx context.Context) ([]User, error)
}
