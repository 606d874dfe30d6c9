package jobs_test

import (
	"log/slog"
	"maps"
	"testing"

	"github.com/baton-run/baton/shared/jobs"
)

func TestNodeStatePredicates(t *testing.T) {
	tests := []struct {
		state            jobs.NodeState
		terminal, active bool
		eventType        string
	}{
		{jobs.NodeNew, false, false, ""},
		{jobs.NodeReady, false, true, ""},
		{jobs.NodeRunning, false, true, jobs.EventNodeRunning},
		{jobs.NodeFinished, true, false, jobs.EventNodeFinished},
		{jobs.NodeFailed, true, false, jobs.EventNodeFailed},
		{jobs.NodeErrored, true, false, jobs.EventNodeErrored},
		{jobs.NodeSkipped, true, false, jobs.EventNodeSkipped},
		{jobs.NodeStopped, true, false, jobs.EventNodeStopped},
		{"bogus", false, false, ""},
	}
	covered := map[jobs.NodeState]bool{}
	for _, tt := range tests {
		covered[tt.state] = true
		t.Run(string(tt.state), func(t *testing.T) {
			if got := tt.state.Terminal(); got != tt.terminal {
				t.Errorf("Terminal() = %v, want %v", got, tt.terminal)
			}
			if got := tt.state.Active(); got != tt.active {
				t.Errorf("Active() = %v, want %v", got, tt.active)
			}
			if got := jobs.NodeEventType(tt.state); got != tt.eventType {
				t.Errorf("NodeEventType = %q, want %q", got, tt.eventType)
			}
		})
	}
	for _, s := range jobs.AllNodeStates {
		if !covered[s] {
			t.Errorf("node state %q has no row", s)
		}
	}
}

func TestStateTerminal(t *testing.T) {
	want := map[jobs.State]bool{
		jobs.StateNew: false, jobs.StateReady: false, jobs.StateRunning: false, jobs.StateStopping: false,
		jobs.StateStopped: true, jobs.StateFinished: true, jobs.StateFailed: true,
		"bogus": false,
	}
	for _, s := range allStates {
		if _, ok := want[s]; !ok {
			t.Errorf("job state %q has no row", s)
		}
	}
	for s, terminal := range want {
		if got := s.Terminal(); got != terminal {
			t.Errorf("%q.Terminal() = %v, want %v", s, got, terminal)
		}
	}
	// A terminal job state accepts no event; a non-terminal one accepts at least one.
	for _, s := range allStates {
		accepts := false
		for _, ev := range jobs.AllJobEvents {
			if _, err := jobs.NextJobState(s, ev); err == nil {
				accepts = true
			}
		}
		if accepts == s.Terminal() {
			t.Errorf("%q: Terminal() = %v but accepts events = %v", s, s.Terminal(), accepts)
		}
	}
	for _, s := range jobs.AllNodeStates {
		accepts := false
		for _, ev := range jobs.AllNodeEvents {
			if _, err := jobs.NextNodeState(s, ev); err == nil {
				accepts = true
			}
		}
		if accepts == s.Terminal() {
			t.Errorf("node %q: Terminal() = %v but accepts events = %v", s, s.Terminal(), accepts)
		}
	}
}

func TestCountsAndAllTerminal(t *testing.T) {
	nodes := func(states ...jobs.NodeState) []jobs.Node {
		out := make([]jobs.Node, len(states))
		for i, s := range states {
			out[i] = jobs.Node{Name: string(rune('a' + i)), State: s}
		}
		return out
	}
	tests := []struct {
		name        string
		nodes       []jobs.Node
		counts      map[jobs.NodeState]int
		allTerminal bool
	}{
		{"none", nil, map[jobs.NodeState]int{}, true},
		{"one new", nodes(jobs.NodeNew), map[jobs.NodeState]int{jobs.NodeNew: 1}, false},
		{"mixed", nodes(jobs.NodeNew, jobs.NodeRunning, jobs.NodeRunning, jobs.NodeFinished, jobs.NodeFailed, jobs.NodeFinished),
			map[jobs.NodeState]int{jobs.NodeNew: 1, jobs.NodeRunning: 2, jobs.NodeFinished: 2, jobs.NodeFailed: 1}, false},
		{"one ready among done", nodes(jobs.NodeFinished, jobs.NodeReady, jobs.NodeSkipped),
			map[jobs.NodeState]int{jobs.NodeFinished: 1, jobs.NodeReady: 1, jobs.NodeSkipped: 1}, false},
		{"all terminal", nodes(jobs.NodeFinished, jobs.NodeFailed, jobs.NodeErrored, jobs.NodeSkipped, jobs.NodeStopped, jobs.NodeErrored),
			map[jobs.NodeState]int{jobs.NodeFinished: 1, jobs.NodeFailed: 1, jobs.NodeErrored: 2, jobs.NodeSkipped: 1, jobs.NodeStopped: 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := jobs.Counts(tt.nodes); !maps.Equal(got, tt.counts) {
				t.Errorf("Counts = %v, want %v", got, tt.counts)
			}
			if got := jobs.AllTerminal(tt.nodes); got != tt.allTerminal {
				t.Errorf("AllTerminal = %v, want %v", got, tt.allTerminal)
			}
		})
	}
}

func TestJobNameAndLogValues(t *testing.T) {
	j := jobs.Job{ID: 1234567890123, State: jobs.StateRunning}
	if got := j.Name(); got != "1234567890123" {
		t.Errorf("Name() = %q", got)
	}
	attrs := func(v slog.Value) map[string]string {
		m := map[string]string{}
		for _, a := range v.Group() {
			m[a.Key] = a.Value.String()
		}
		return m
	}
	if got, want := attrs(j.LogValue()), map[string]string{"job_id": "1234567890123", "state": "running"}; !maps.Equal(got, want) {
		t.Errorf("Job.LogValue = %v, want %v", got, want)
	}
	n := jobs.Node{JobID: 5, Name: "node1", State: jobs.NodeFailed}
	if got, want := attrs(n.LogValue()), map[string]string{"job_id": "5", "node": "node1", "state": "failed"}; !maps.Equal(got, want) {
		t.Errorf("Node.LogValue = %v, want %v", got, want)
	}
}
