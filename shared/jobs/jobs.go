package jobs

import (
	"encoding/json"
	"log/slog"
	"strconv"
	"time"
)

// Type is what a job does.
type Type string

const (
	TypeTask   Type = "task"
	TypeDeploy Type = "deploy"
)

// State is a job state (reference §2.1).
type State string

const (
	StateNew      State = "new"
	StateReady    State = "ready"
	StateRunning  State = "running"
	StateStopping State = "stopping"
	StateStopped  State = "stopped"
	StateFinished State = "finished"
	StateFailed   State = "failed"
)

// Terminal reports whether no further transition leaves s.
func (s State) Terminal() bool {
	return s == StateStopped || s == StateFinished || s == StateFailed
}

// NodeState is the state of one node in a job (reference §2.2).
type NodeState string

const (
	NodeNew      NodeState = "new"      // queued, waiting for a concurrency slot
	NodeReady    NodeState = "ready"    // holds a slot, waiting for its agent to be connected
	NodeRunning  NodeState = "running"  // request delivered to the agent
	NodeFinished NodeState = "finished" // the action succeeded
	NodeFailed   NodeState = "failed"   // the action ran and failed (or timed out)
	NodeErrored  NodeState = "errored"  // the action could not be run
	NodeSkipped  NodeState = "skipped"  // never started (job stopped, error budget spent)
	NodeStopped  NodeState = "stopped"  // killed by a forced stop
)

// AllNodeStates lists every node state, in lifecycle order.
var AllNodeStates = []NodeState{NodeNew, NodeReady, NodeRunning, NodeFinished, NodeFailed, NodeErrored, NodeSkipped, NodeStopped}

// Terminal reports whether the node is done.
func (s NodeState) Terminal() bool {
	switch s {
	case NodeFinished, NodeFailed, NodeErrored, NodeSkipped, NodeStopped:
		return true
	}
	return false
}

// Active reports whether the node holds a concurrency slot.
func (s NodeState) Active() bool { return s == NodeReady || s == NodeRunning }

// Owner is who created a job.
type Owner struct {
	ID    string `json:"id"`
	Login string `json:"login"`
}

// StatusEntry records one visited job state.
type StatusEntry struct {
	State     State      `json:"state"`
	EnterTime time.Time  `json:"enter_time"`
	ExitTime  *time.Time `json:"exit_time"`
}

// Job is one job. Options is the API-facing, redacted copy of the request; Payload is the
// orchestrator's sealed dispatch input (it may hold sensitive values and is never shown).
type Job struct {
	ID          int64
	Type        Type
	State       State
	Environment string
	Description string
	// Task is the task a task job runs ("" for a deploy).
	Task        string
	Owner       Owner
	Options     json.RawMessage
	Payload     []byte
	Concurrency int // 0: unlimited
	Timeout     int // seconds per node; 0: none
	NodeCount   int
	CreatedAt   time.Time
	UpdatedAt   time.Time
	FinishedAt  *time.Time // when the job reached a terminal state
	Status      []StatusEntry
	// IdempotencyKey, when set, is unique among jobs: a command repeated with the same key
	// returns the job it created the first time. It is scoped by the caller (owner login).
	IdempotencyKey string
	// MaxErrors is the error limit: once this many nodes have failed or errored, no new node
	// starts (the rest end skipped) and the job fails. 0: no limit. (The API's max_errors N —
	// SSM's "N errors are allowed" — is stored as N+1.)
	MaxErrors int
	// Stop records why no new node starts: "" (they do), StopGraceful or StopForce (an
	// operator's stop request) or StopErrorLimit (MaxErrors reached).
	Stop string
	// Version is the optimistic-concurrency version, managed by the store.
	Version int64
}

// Values of Job.Stop.
const (
	StopGraceful   = "graceful"
	StopForce      = "force"
	StopErrorLimit = "error_limit"
)

// Name is the job id as PE renders it.
func (j Job) Name() string { return strconv.FormatInt(j.ID, 10) }

// LogValue keeps job log keys consistent.
func (j Job) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("job_id", j.ID), slog.String("state", string(j.State)))
}

// Node is one node's record within a job.
type Node struct {
	JobID int64
	Name  string
	State NodeState
	// TransactionID is the PXP transaction id of the request sent to this node.
	TransactionID string
	ReadyAt       *time.Time // took a slot
	StartedAt     *time.Time // request delivered
	FinishedAt    *time.Time
	Result        json.RawMessage
	Message       string // message of the latest event about this node
	LatestEventID int64
	// DueAt is when the orchestrator must look at this record again if nothing else happens
	// to it first: a ready node's connect deadline, a running node's timeout. nil: never. The
	// store indexes it (ListDueJobNodes) and keeps it as given.
	DueAt   *time.Time
	Version int64
}

// LogValue keeps node log keys consistent.
func (n Node) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("job_id", n.JobID), slog.String("node", n.Name), slog.String("state", string(n.State)))
}

// Event types (reference §2.3).
const (
	EventNodeRunning  = "node_running"
	EventNodeFinished = "node_finished"
	EventNodeFailed   = "node_failed"
	EventNodeErrored  = "node_errored"
	EventNodeSkipped  = "node_skipped"
	EventNodeStopped  = "node_stopped" // Baton: a forced stop killed the node's action
	EventJobStopping  = "job_stopping"
	EventJobFinished  = "job_finished"
	EventJobAborted   = "job_aborted"
)

// Event is one job event. ID is assigned by the store, increasing per job from 1.
type Event struct {
	JobID     int64
	ID        int64
	Type      string
	Timestamp time.Time
	Node      string
	Detail    json.RawMessage
	Message   string
}
