package jobs

import (
	"fmt"
	"time"
)

// NodeEvent is something that happens to a node in a job.
type NodeEvent string

const (
	NodeClaim   NodeEvent = "claim"   // takes a concurrency slot
	NodeSend    NodeEvent = "send"    // request delivered to the agent
	NodeSucceed NodeEvent = "succeed" // the action succeeded
	NodeFail    NodeEvent = "fail"    // the action failed or timed out
	NodeError   NodeEvent = "error"   // the action could not be run
	NodeSkip    NodeEvent = "skip"    // never to be started
	NodeKill    NodeEvent = "kill"    // forced stop of a running action
)

// AllNodeEvents lists every node event.
var AllNodeEvents = []NodeEvent{NodeClaim, NodeSend, NodeSucceed, NodeFail, NodeError, NodeSkip, NodeKill}

// ErrInvalidTransition is returned when an event does not apply to a state.
type ErrInvalidTransition struct {
	From  string
	Event string
}

func (e *ErrInvalidTransition) Error() string {
	return fmt.Sprintf("invalid transition: %s in state %s", e.Event, e.From)
}

var nodeTable = map[NodeState]map[NodeEvent]NodeState{
	NodeNew: {
		NodeClaim: NodeReady,
		NodeSkip:  NodeSkipped,
		NodeError: NodeErrored,
	},
	NodeReady: {
		NodeSend:  NodeRunning,
		NodeError: NodeErrored,
		NodeSkip:  NodeSkipped,
		NodeKill:  NodeSkipped,
	},
	NodeRunning: {
		NodeSucceed: NodeFinished,
		NodeFail:    NodeFailed,
		NodeError:   NodeErrored,
		NodeKill:    NodeStopped,
	},
}

// NextNodeState returns the state a node in state from moves to on ev.
func NextNodeState(from NodeState, ev NodeEvent) (NodeState, error) {
	if to, ok := nodeTable[from][ev]; ok {
		return to, nil
	}
	return from, &ErrInvalidTransition{From: string(from), Event: string(ev)}
}

// ApplyNode moves n by ev at now: it sets the state and the timestamps that go with it.
func ApplyNode(n Node, ev NodeEvent, now time.Time) (Node, error) {
	to, err := NextNodeState(n.State, ev)
	if err != nil {
		return n, err
	}
	t := now.UTC()
	switch to {
	case NodeReady:
		n.ReadyAt = &t
	case NodeRunning:
		n.StartedAt = &t
	}
	if to.Terminal() {
		n.FinishedAt = &t
	}
	n.State = to
	return n, nil
}

// JobEvent is something that happens to a job.
type JobEvent string

const (
	JobStart       JobEvent = "start"        // the first node is dispatched
	JobRequestStop JobEvent = "request_stop" // an operator asks to stop
	JobComplete    JobEvent = "complete"     // every node is terminal
	JobAbort       JobEvent = "abort"        // the job ends without completing (error budget, fault)
)

// AllJobEvents lists every job event.
var AllJobEvents = []JobEvent{JobStart, JobRequestStop, JobComplete, JobAbort}

var jobTable = map[State]map[JobEvent]State{
	StateNew:      {JobStart: StateRunning, JobRequestStop: StateStopping, JobComplete: StateFinished, JobAbort: StateFailed},
	StateReady:    {JobStart: StateRunning, JobRequestStop: StateStopping, JobComplete: StateFinished, JobAbort: StateFailed},
	StateRunning:  {JobRequestStop: StateStopping, JobComplete: StateFinished, JobAbort: StateFailed},
	StateStopping: {JobComplete: StateStopped, JobAbort: StateStopped},
}

// NextJobState returns the state a job in state from moves to on ev.
func NextJobState(from State, ev JobEvent) (State, error) {
	if to, ok := jobTable[from][ev]; ok {
		return to, nil
	}
	return from, &ErrInvalidTransition{From: string(from), Event: string(ev)}
}

// ApplyJob moves j by ev at now, closing the current status entry and opening the next.
func ApplyJob(j Job, ev JobEvent, now time.Time) (Job, error) {
	to, err := NextJobState(j.State, ev)
	if err != nil {
		return j, err
	}
	return enter(j, to, now), nil
}

// NewJob returns j in state ready with its status history started at now.
func NewJob(j Job, now time.Time) Job {
	t := now.UTC()
	j.State = StateReady
	j.Status = []StatusEntry{{State: StateReady, EnterTime: t}}
	j.CreatedAt, j.UpdatedAt = t, t
	return j
}

func enter(j Job, to State, now time.Time) Job {
	t := now.UTC()
	status := make([]StatusEntry, len(j.Status), len(j.Status)+1)
	copy(status, j.Status)
	if n := len(status); n > 0 && status[n-1].ExitTime == nil {
		status[n-1].ExitTime = &t
	}
	entry := StatusEntry{State: to, EnterTime: t}
	if to.Terminal() {
		entry.ExitTime = &t
	}
	j.Status = append(status, entry)
	j.State = to
	j.UpdatedAt = t
	if to.Terminal() {
		j.FinishedAt = &t
	}
	return j
}

// StateCounts is how many of a job's node records are in each state; absent states are 0.
type StateCounts map[NodeState]int

// Total is the number of records counted.
func (c StateCounts) Total() int {
	t := 0
	for _, n := range c {
		t += n
	}
	return t
}

// Active is the number of records holding a concurrency slot (ready or running).
func (c StateCounts) Active() int { return c[NodeReady] + c[NodeRunning] }

// Unfinished is the number of records not yet in a terminal state.
func (c StateCounts) Unfinished() int { return c[NodeNew] + c.Active() }

// Failures is the number of records that failed or errored (what max_errors counts).
func (c StateCounts) Failures() int { return c[NodeFailed] + c[NodeErrored] }

// Counts tallies nodes by state.
func Counts(nodes []Node) StateCounts {
	c := StateCounts{}
	for _, n := range nodes {
		c[n.State]++
	}
	return c
}

// AllTerminal reports whether every node is done.
func AllTerminal(nodes []Node) bool {
	for _, n := range nodes {
		if !n.State.Terminal() {
			return false
		}
	}
	return true
}

// NodeEventType returns the job event type announcing that a node entered s ("" for none).
func NodeEventType(s NodeState) string {
	switch s {
	case NodeRunning:
		return EventNodeRunning
	case NodeFinished:
		return EventNodeFinished
	case NodeFailed:
		return EventNodeFailed
	case NodeErrored:
		return EventNodeErrored
	case NodeSkipped:
		return EventNodeSkipped
	case NodeStopped:
		return EventNodeStopped
	}
	return ""
}
