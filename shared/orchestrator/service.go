package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/baton-run/baton/shared/catalog"
	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/protocol"
	"github.com/baton-run/baton/shared/store"
)

// ErrNotConnected is wrapped by a Sender when the node has no live connection.
var ErrNotConnected = errors.New("node not connected")

// Sender delivers a message to a node's agent.
type Sender interface {
	Send(ctx context.Context, node string, e protocol.Envelope) error
}

// Presence is implemented by senders that know whether a node's agent is connected to them.
type Presence interface {
	Connected(node string) bool
}

// snapshot is a Presence read once, for one job's creation.
type snapshot map[string]bool

func (p snapshot) Connected(node string) bool { return p[node] }

// Catalog loads task metadata and file lists for an environment.
type Catalog interface {
	Task(ctx context.Context, env, name string) (catalog.Task, error)
}

// FileURLs makes the short-lived URL an agent downloads one task file from.
type FileURLs interface {
	FileURI(ctx context.Context, env, module, filename, sha256 string) (protocol.FileURI, error)
}

// ResultUploads makes presigned upload URLs for results too large for one agent message.
type ResultUploads interface {
	ResultUploadURL(ctx context.Context, txn string) (url, key string, err error)
}

// Sealer encrypts job payloads at rest.
type Sealer interface {
	Seal(plain []byte) ([]byte, error)
	Open(sealed []byte) ([]byte, error)
}

// Config tunes the orchestrator. Zero values take the defaults.
type Config struct {
	// ConnectTimeout is how long a node holding a slot waits for its agent (PE pcp_timeout).
	ConnectTimeout time.Duration
	// TimeoutGrace is how long past a job's per-node timeout the server waits for the agent's
	// own timeout report before it ends the node failed.
	TimeoutGrace time.Duration
	// Broker is the PCP URI recorded in the inventory for connections to this server.
	Broker string
	// TaskConcurrency caps running actions (nodes holding a slot) across all jobs, as PE's
	// task_concurrency does; default 250, negative for no cap.
	TaskConcurrency int
	// SendWorkers bounds the requests sent in parallel by one dispatch; default 64.
	SendWorkers int
	// ClaimBatch is how many queued nodes one claim takes when a job starts (and when the
	// sweep finds free slots); default 256. A result refills at most RefillBatch; default 8.
	ClaimBatch, RefillBatch int
	// ConnectRetry is how often a node holding a slot is offered again to its agent while
	// the agent is not connected, until ConnectTimeout; default 2s.
	ConnectRetry time.Duration
	// StatusInterval is how long a running node may stay silent before the sweep asks its
	// agent for the transaction's status (PXP's status query), and how often it asks again
	// while the answer is "running"; default 30s, negative: never ask.
	StatusInterval time.Duration
	// StatusScan replaces the per-node status schedule (a due time on every running record,
	// two index writes per node-run on DynamoDB) by a scan: each sweep pages through the
	// running nodes of the unfinished jobs that started at least StatusInterval ago and asks
	// about those whose time running crossed StatusInterval × 1, 2, 4, 8, … since the sweep
	// before (SweepPeriod ago). A short task costs nothing; a long one is asked about a few
	// times (about log₂ of its run time in intervals), each query costing two messages (AWS).
	StatusScan  bool
	SweepPeriod time.Duration
	// NoResultAck sends requests that say no acknowledgement will come
	// (protocol.NonBlockingRequest.NoAck) and acknowledges only outcomes already recorded (a
	// repeat): a message less per node-run where messages are paid for (AWS). An outcome
	// lost on the way is then found by the status queries (StatusInterval), or sent again
	// by the agent when API Gateway answers it with an error frame.
	NoResultAck bool
	// Metered says that the deployment meters what each job causes (AWS: Lambda invocations,
	// messages, capacity units), so that JobUsage reads the job's usage from the store. Off
	// (baton serve), nothing is metered and JobUsage answers zero without a read: a read less
	// on every GET of a job.
	Metered bool
	// UsageCarry, when positive, lets a result's invocation leave the usage it caused after
	// its counter update (which carries the usage before it: see the dynamo store) for the
	// next result of the same job in this process to carry, instead of a write of its own:
	// a write unit less per node-run. What is left over is written when this process ends
	// the job, and otherwise UsageCarry after it was left (see carry.go).
	UsageCarry time.Duration
}

func (c Config) withDefaults() Config {
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 30 * time.Second
	}
	if c.TimeoutGrace <= 0 {
		c.TimeoutGrace = 30 * time.Second
	}
	if c.TaskConcurrency == 0 {
		c.TaskConcurrency = 250
	}
	if c.Broker == "" {
		c.Broker = "pcp://localhost/server"
	}
	if c.SendWorkers <= 0 {
		c.SendWorkers = 64
	}
	if c.ClaimBatch <= 0 {
		c.ClaimBatch = 256
	}
	if c.RefillBatch <= 0 {
		c.RefillBatch = 8
	}
	if c.ConnectRetry <= 0 {
		c.ConnectRetry = 2 * time.Second
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = 30 * time.Second
	}
	if c.SweepPeriod <= 0 {
		c.SweepPeriod = time.Minute
	}
	return c
}

// Service is the orchestrator.
type Service struct {
	store   store.Store
	catalog Catalog
	urls    FileURLs
	sender  Sender
	sealer  Sealer
	now     func() time.Time
	log     *slog.Logger
	cfg     Config
	kick    func(jobID int64)
	uploads ResultUploads

	// specs caches what never changes about a job once created (its kind, options and
	// opened payload), so that the per-node path does not open and decode it every time.
	specs *specCache
	// presence tells whether a node's agent is connected here (baton serve's gateway); nil
	// when the sender cannot tell (AWS).
	presence Presence
	// started holds the records this process recorded running (see startedSet).
	started startedSet
	// handoff passes the nodes claimed when a job was created to its dispatch (job id →
	// []jobs.Node).
	handoff sync.Map
	// remote, when set, takes a new job and its claimed nodes to a dispatcher elsewhere
	// (WithHandoff) instead of kick or handoff.
	remote *remoteHandoff
	// queries, when set, resolves scope queries instead of the inventory (WithQueryResolver).
	queries QueryResolver

	finished waiters[int64, endedJob] // waiters of WaitJob
	refills  refills                  // the refills results ask for, coalesced per job (refill.go)
	carried  carried                  // usage left for the next result to carry (carry.go)
	output   outputState              // live task output (output.go)
	// recounts is the sweep's watch of unfinished jobs' counts (recount.go).
	recounts recountWatch
}

// Option configures a Service.
type Option func(*Service)

// WithClock sets the clock (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// WithConfig sets the configuration.
func WithConfig(c Config) Option { return func(s *Service) { s.cfg = c } }

// WithKick sets how a newly created job gets dispatched. The default dispatches it in the
// submitting call; `baton serve` runs it on a background goroutine, and on AWS it invokes the
// dispatch function asynchronously.
func WithKick(kick func(jobID int64)) Option { return func(s *Service) { s.kick = kick } }

// Handoff takes a job just created here, with the nodes claimed in the creating write, to a
// dispatcher elsewhere, which sends them with SendClaimed (AWS: messages to the dispatch
// queue). An error leaves the nodes to the sweep's status checks, which send what never went
// out.
type Handoff func(ctx context.Context, job jobs.Job, claimed []jobs.Node) error

// ConnectedLookup tells which of names have an agent connected now (a snapshot).
type ConnectedLookup func(ctx context.Context, names []string) (map[string]bool, error)

type remoteHandoff struct {
	handoff   Handoff
	connected ConnectedLookup
}

// WithHandoff makes job creation claim every node the job's limits allow in the creating
// write — running when connected says its agent is connected, waiting for its agent
// otherwise — and pass them to h instead of dispatching here. It is for deployments where
// no process holds the agents' connections (AWS): one write per node takes it from nothing to
// running.
func WithHandoff(h Handoff, connected ConnectedLookup) Option {
	return func(s *Service) { s.remote = &remoteHandoff{handoff: h, connected: connected} }
}

// WithResultUploads makes task requests carry an upload URL for large results (AWS, where
// one message is at most 128 KB).
func WithResultUploads(u ResultUploads) Option { return func(s *Service) { s.uploads = u } }

// New returns a Service.
func New(st store.Store, cat Catalog, urls FileURLs, sender Sender, sealer Sealer, opts ...Option) *Service {
	s := &Service{store: st, catalog: cat, urls: urls, sender: sender, sealer: sealer, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "orchestrator")
	s.cfg = s.cfg.withDefaults()
	s.specs = newSpecCache(1024)
	s.presence, _ = sender.(Presence)
	return s
}

func (s *Service) clock() time.Time { return s.now().UTC() }

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal %T: %v", v, err)) // only called on values built here
	}
	return b
}
