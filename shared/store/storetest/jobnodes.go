package storetest

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

// createJob creates job fixture i with nodes names in state, failing t on error.
func createJob(t *testing.T, s store.Store, i int, state jobs.State, names ...string) jobs.Job {
	t.Helper()
	j := newJob(i, len(names))
	j.State = state
	created, err := s.CreateJob(t.Context(), j, newNodes(names...), nil)
	must(t, "create job", err)
	return created
}

// getJobNode reads a node, failing t on error.
func getJobNode(t *testing.T, s store.Store, jobID int64, name string) jobs.Node {
	t.Helper()
	n, err := s.GetJobNode(t.Context(), jobID, name)
	must(t, "get job node", err)
	return n
}

// setNodeState moves a node to state, failing t on error.
func setNodeState(t *testing.T, s store.Store, jobID int64, name string, state jobs.NodeState) {
	t.Helper()
	n := getJobNode(t, s, jobID, name)
	n.State = state
	_, err := s.UpdateJobNode(t.Context(), n)
	must(t, "update job node", err)
}

func runJobNodes(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("GetUnknownIsNotFound", func(t *testing.T) {
		s := newStore(t)
		_, err := s.GetJobNode(t.Context(), 1, "a")
		mustErrIs(t, "get node of unknown job", err, store.ErrNotFound)
		j := createJob(t, s, 1, jobs.StateNew, "a")
		_, err = s.GetJobNode(t.Context(), j.ID, "b")
		mustErrIs(t, "get unknown node of known job", err, store.ErrNotFound)
		_, err = s.GetJobNode(t.Context(), j.ID+1, "a")
		mustErrIs(t, "get known name in unknown job", err, store.ErrNotFound)
	})

	t.Run("ListInCreationOrder", func(t *testing.T) {
		s := newStore(t)
		names := []string{"m.example.com", "c.example.com", "z.example.com", "a.example.com"}
		j := createJob(t, s, 1, jobs.StateNew, names...)
		other := createJob(t, s, 2, jobs.StateNew, "b.example.com")
		// Updating a node must not move it.
		setNodeState(t, s, j.ID, "c.example.com", jobs.NodeReady)
		got, err := s.ListJobNodes(t.Context(), j.ID)
		must(t, "list job nodes", err)
		if len(got) != len(names) {
			t.Fatalf("got %d nodes, want %d", len(got), len(names))
		}
		for i, n := range got {
			if n.Name != names[i] || n.JobID != j.ID {
				t.Fatalf("node %d = %s of job %d, want %s of job %d", i, n.Name, n.JobID, names[i], j.ID)
			}
		}
		got, err = s.ListJobNodes(t.Context(), other.ID)
		must(t, "list other job's nodes", err)
		if len(got) != 1 || got[0].Name != "b.example.com" {
			t.Fatalf("other job's nodes = %+v, want only b.example.com", got)
		}
	})

	t.Run("UpdateRoundTripsEveryField", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateRunning, "a", "b")
		n := getJobNode(t, s, j.ID, "a")
		steps := []func(n *jobs.Node){
			func(n *jobs.Node) { n.State = jobs.NodeReady; n.ReadyAt = ptr(at(10)) },
			func(n *jobs.Node) {
				n.State = jobs.NodeRunning
				n.StartedAt = ptr(at(11))
				n.TransactionID = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
				n.Message = "request sent"
				n.LatestEventID = 7 // kept as given when no events are appended
			},
			func(n *jobs.Node) {
				n.State = jobs.NodeFinished
				n.FinishedAt = ptr(at(15))
				n.Result = json.RawMessage(`{"_output":"done\n","status":"installed","list":[1,"two",null]}`)
				n.Message = "finished"
			},
			func(n *jobs.Node) { n.ReadyAt, n.StartedAt, n.FinishedAt, n.Result, n.Message = nil, nil, nil, nil, "" },
		}
		for i, step := range steps {
			step(&n)
			updated, err := s.UpdateJobNode(t.Context(), n)
			must(t, fmt.Sprintf("update step %d", i), err)
			if updated.Version != n.Version+1 {
				t.Fatalf("step %d: version = %d, want %d", i, updated.Version, n.Version+1)
			}
			want := n
			want.Version++
			equalNode(t, fmt.Sprintf("step %d returned node", i), updated, want)
			equalNode(t, fmt.Sprintf("step %d stored node", i), getJobNode(t, s, j.ID, "a"), want)
			n = updated
		}
		b := getJobNode(t, s, j.ID, "b")
		if b.Version != 1 || b.State != jobs.NodeNew {
			t.Fatalf("untouched node b = %+v, want version 1 and state new", b)
		}
		job, err := s.GetJob(t.Context(), j.ID)
		must(t, "get job", err)
		if job.Version != j.Version {
			t.Fatalf("job version = %d after node updates, want %d", job.Version, j.Version)
		}
	})

	t.Run("UpdateStaleVersionConflictsAndChangesNothing", func(t *testing.T) {
		s := newStore(t)
		j, err := s.CreateJob(t.Context(), newJob(1, 1), newNodes("a"), []jobs.Event{newEvent(jobs.EventNodeRunning, "a", 1)})
		must(t, "create job", err)
		n := getJobNode(t, s, j.ID, "a")
		n.State = jobs.NodeReady
		current, err := s.UpdateJobNode(t.Context(), n)
		must(t, "update node", err)
		for _, stale := range []int64{n.Version, current.Version + 1, 0} {
			t.Run(fmt.Sprintf("version %d", stale), func(t *testing.T) {
				bad := current
				bad.Version = stale
				bad.State = jobs.NodeFailed
				bad.Message = "must not be stored"
				_, err := s.UpdateJobNode(t.Context(), bad, newEvent(jobs.EventNodeFailed, "a", 5))
				mustErrIs(t, "stale update", err, store.ErrConflict)
				equalNode(t, "node after failed update", getJobNode(t, s, j.ID, "a"), current)
				evs, err := s.ListEvents(t.Context(), j.ID, 0, 0)
				must(t, "list events", err)
				equalIDs(t, "events after failed update", eventIDs(evs), seq(1, 1))
			})
		}
		// The next successful append still gets the next id.
		updated, err := s.UpdateJobNode(t.Context(), current, newEvent(jobs.EventNodeFinished, "a", 6))
		must(t, "update node", err)
		if updated.LatestEventID != 2 {
			t.Fatalf("latest event id = %d, want 2", updated.LatestEventID)
		}
	})

	t.Run("ListByName", func(t *testing.T) {
		s := newStore(t)
		j1 := createJob(t, s, 1, jobs.StateRunning, "web", "db")
		j2 := createJob(t, s, 2, jobs.StateRunning, "db", "web")
		j3 := createJob(t, s, 3, jobs.StateFinished, "web")
		j4 := createJob(t, s, 4, jobs.StateNew, "web", "db")
		j5 := createJob(t, s, 5, jobs.StateStopping, "web")
		j6 := createJob(t, s, 6, jobs.StateFailed, "web")
		setNodeState(t, s, j1.ID, "web", jobs.NodeRunning)
		setNodeState(t, s, j3.ID, "web", jobs.NodeRunning) // terminal job: never listed
		setNodeState(t, s, j4.ID, "web", jobs.NodeReady)
		setNodeState(t, s, j4.ID, "db", jobs.NodeReady)
		setNodeState(t, s, j5.ID, "web", jobs.NodeFinished)
		setNodeState(t, s, j6.ID, "web", jobs.NodeNew) // terminal job: never listed

		type ref struct {
			job  int64
			name string
		}
		tests := []struct {
			name   string
			node   string
			states []jobs.NodeState
			want   []ref
		}{
			{"running", "web", []jobs.NodeState{jobs.NodeRunning}, []ref{{j1.ID, "web"}}},
			{"new or ready", "web", []jobs.NodeState{jobs.NodeNew, jobs.NodeReady}, []ref{{j2.ID, "web"}, {j4.ID, "web"}}},
			{"active", "web", []jobs.NodeState{jobs.NodeReady, jobs.NodeRunning}, []ref{{j1.ID, "web"}, {j4.ID, "web"}}},
			{"every state", "web", jobs.AllNodeStates, []ref{{j1.ID, "web"}, {j2.ID, "web"}, {j4.ID, "web"}, {j5.ID, "web"}}},
			{"other name", "db", []jobs.NodeState{jobs.NodeNew}, []ref{{j1.ID, "db"}, {j2.ID, "db"}}},
			{"no match", "web", []jobs.NodeState{jobs.NodeErrored}, nil},
			{"unknown name", "nope", jobs.AllNodeStates, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.ListJobNodesByName(t.Context(), tt.node, tt.states...)
				must(t, "list by name", err)
				if len(got) != len(tt.want) {
					t.Fatalf("got %d records %+v, want %+v", len(got), got, tt.want)
				}
				for i, n := range got {
					if n.JobID != tt.want[i].job || n.Name != tt.want[i].name {
						t.Fatalf("record %d = job %d node %s, want %+v (all: %+v)", i, n.JobID, n.Name, tt.want[i], got)
					}
					equalNode(t, "listed record", n, getJobNode(t, s, n.JobID, n.Name))
				}
			})
		}
	})

	t.Run("CountActiveNodes", func(t *testing.T) {
		s := newStore(t)
		count := func(what string, want int) {
			t.Helper()
			got, err := s.CountActiveNodes(t.Context())
			must(t, "count active nodes", err)
			if got != want {
				t.Fatalf("%s: active nodes = %d, want %d", what, got, want)
			}
		}
		count("empty store", 0)
		j1 := createJob(t, s, 1, jobs.StateRunning, "a", "b", "c")
		j2 := createJob(t, s, 2, jobs.StateRunning, "a", "d")
		count("new nodes only", 0)

		steps := []struct {
			what  string
			job   int64
			node  string
			state jobs.NodeState
			want  int
		}{
			{"j1/a ready", j1.ID, "a", jobs.NodeReady, 1},
			{"j1/b ready", j1.ID, "b", jobs.NodeReady, 2},
			{"j2/a ready (same name, other job)", j2.ID, "a", jobs.NodeReady, 3},
			{"j1/a running", j1.ID, "a", jobs.NodeRunning, 3},
			{"j1/a finished", j1.ID, "a", jobs.NodeFinished, 2},
			{"j1/b errored", j1.ID, "b", jobs.NodeErrored, 1},
			{"j1/c skipped", j1.ID, "c", jobs.NodeSkipped, 1},
			{"j2/d running", j2.ID, "d", jobs.NodeRunning, 2},
			{"j2/a failed", j2.ID, "a", jobs.NodeFailed, 1},
			{"j2/a back to new (retry)", j2.ID, "a", jobs.NodeNew, 1},
			{"j2/a ready again", j2.ID, "a", jobs.NodeReady, 2},
		}
		for _, st := range steps {
			setNodeState(t, s, st.job, st.node, st.state)
			count(st.what, st.want)
		}

		// A job created with active nodes counts at once; one created terminal never does.
		j3, err := s.CreateJob(t.Context(), newJob(3, 2), []jobs.Node{
			{Name: "e", State: jobs.NodeRunning}, {Name: "f", State: jobs.NodeReady},
		}, nil)
		must(t, "create job with active nodes", err)
		count("job created with two active nodes", 4)
		j4 := newJob(4, 1)
		j4.State = jobs.StateStopped
		_, err = s.CreateJob(t.Context(), j4, []jobs.Node{{Name: "g", State: jobs.NodeRunning}}, nil)
		must(t, "create terminal job", err)
		count("terminal job's running record", 4)

		// Stopping is not terminal: its active nodes still run.
		j3.State = jobs.StateStopping
		j3, err = s.UpdateJob(t.Context(), j3)
		must(t, "stop job 3", err)
		count("job 3 stopping", 4)
		// Once a job is terminal none of its records count, whatever their state.
		j2, err = s.GetJob(t.Context(), j2.ID)
		must(t, "get job 2", err)
		j2.State, j2.FinishedAt = jobs.StateFailed, ptr(at(50))
		_, err = s.UpdateJob(t.Context(), j2)
		must(t, "fail job 2", err)
		count("job 2 failed", 2)
		j3.State, j3.FinishedAt = jobs.StateStopped, ptr(at(60))
		_, err = s.UpdateJob(t.Context(), j3)
		must(t, "stop job 3", err)
		count("job 3 stopped", 0)
		setNodeState(t, s, j1.ID, "a", jobs.NodeRunning) // j1 is still running
		count("j1/a running again", 1)
	})

	t.Run("FindByTransaction", func(t *testing.T) {
		s := newStore(t)
		_, err := s.FindJobNodeByTransaction(t.Context(), "txn-1")
		mustErrIs(t, "find on empty store", err, store.ErrNotFound)
		j1 := createJob(t, s, 1, jobs.StateRunning, "a", "b")
		j2 := createJob(t, s, 2, jobs.StateRunning, "a")
		for _, tc := range []struct {
			job  int64
			name string
			txn  string
		}{{j1.ID, "a", "txn-1a"}, {j1.ID, "b", "txn-1b"}, {j2.ID, "a", "txn-2a"}} {
			n := getJobNode(t, s, tc.job, tc.name)
			n.State, n.TransactionID = jobs.NodeRunning, tc.txn
			_, err := s.UpdateJobNode(t.Context(), n)
			must(t, "set transaction", err)
		}
		tests := []struct {
			txn  string
			job  int64
			name string
		}{{"txn-1a", j1.ID, "a"}, {"txn-1b", j1.ID, "b"}, {"txn-2a", j2.ID, "a"}}
		for _, tt := range tests {
			t.Run(tt.txn, func(t *testing.T) {
				got, err := s.FindJobNodeByTransaction(t.Context(), tt.txn)
				must(t, "find", err)
				equalNode(t, "found node", got, getJobNode(t, s, tt.job, tt.name))
			})
		}
		_, err = s.FindJobNodeByTransaction(t.Context(), "txn-unknown")
		mustErrIs(t, "find unknown transaction", err, store.ErrNotFound)

		// A node's new transaction replaces its old one.
		n := getJobNode(t, s, j1.ID, "a")
		n.TransactionID = "txn-1a-retry"
		_, err = s.UpdateJobNode(t.Context(), n)
		must(t, "replace transaction", err)
		_, err = s.FindJobNodeByTransaction(t.Context(), "txn-1a")
		mustErrIs(t, "find replaced transaction", err, store.ErrNotFound)
		got, err := s.FindJobNodeByTransaction(t.Context(), "txn-1a-retry")
		must(t, "find new transaction", err)
		if got.JobID != j1.ID || got.Name != "a" {
			t.Fatalf("found job %d node %s, want job %d node a", got.JobID, got.Name, j1.ID)
		}
	})
}

func runEvents(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("UpdateJobNodeAppendsEvents", func(t *testing.T) {
		s := newStore(t)
		j, err := s.CreateJob(t.Context(), newJob(1, 2), newNodes("a", "b"), []jobs.Event{newEvent(jobs.EventNodeRunning, "a", 1)})
		must(t, "create job", err)

		n := getJobNode(t, s, j.ID, "a")
		evs := []jobs.Event{newEvent(jobs.EventNodeRunning, "a", 2), newEvent(jobs.EventNodeFinished, "a", 3)}
		updated, err := s.UpdateJobNode(t.Context(), n, evs...)
		must(t, "update with events", err)
		if updated.LatestEventID != 3 || updated.Version != n.Version+1 {
			t.Fatalf("updated node latest=%d version=%d, want latest=3 version=%d", updated.LatestEventID, updated.Version, n.Version+1)
		}
		equalNode(t, "stored node", getJobNode(t, s, j.ID, "a"), updated)

		b := getJobNode(t, s, j.ID, "b")
		updatedB, err := s.UpdateJobNode(t.Context(), b, newEvent(jobs.EventNodeSkipped, "b", 4))
		must(t, "update b with event", err)
		if updatedB.LatestEventID != 4 {
			t.Fatalf("b latest event id = %d, want 4", updatedB.LatestEventID)
		}

		// Without events, LatestEventID is kept as given.
		plain, err := s.UpdateJobNode(t.Context(), updated)
		must(t, "update without events", err)
		if plain.LatestEventID != 3 {
			t.Fatalf("latest event id after plain update = %d, want 3", plain.LatestEventID)
		}

		got, err := s.ListEvents(t.Context(), j.ID, 0, 0)
		must(t, "list events", err)
		want := []jobs.Event{newEvent(jobs.EventNodeRunning, "a", 1), evs[0], evs[1], newEvent(jobs.EventNodeSkipped, "b", 4)}
		for i := range want {
			want[i].JobID, want[i].ID = j.ID, int64(i+1)
		}
		equalEvents(t, "events", got, want)

		job, err := s.GetJob(t.Context(), j.ID)
		must(t, "get job", err)
		if job.Version != j.Version {
			t.Fatalf("job version = %d after appending events, want %d", job.Version, j.Version)
		}
	})

	t.Run("IDsCountPerJob", func(t *testing.T) {
		s := newStore(t)
		j1, err := s.CreateJob(t.Context(), newJob(1, 1), newNodes("a"), []jobs.Event{newEvent(jobs.EventNodeRunning, "a", 1)})
		must(t, "create job 1", err)
		j2 := createJob(t, s, 2, jobs.StateRunning, "a")
		for round := 1; round <= 3; round++ {
			for _, j := range []jobs.Job{j2, j1} {
				n := getJobNode(t, s, j.ID, "a")
				_, err := s.UpdateJobNode(t.Context(), n, newEvent(jobs.EventNodeRunning, "a", round))
				must(t, "append", err)
			}
		}
		j1, err = s.UpdateJob(t.Context(), j1, newEvent(jobs.EventJobFinished, "", 9))
		must(t, "update job 1", err)
		for _, tc := range []struct {
			job  jobs.Job
			want []int64
		}{{j1, seq(1, 5)}, {j2, seq(1, 3)}} {
			evs, err := s.ListEvents(t.Context(), tc.job.ID, 0, 0)
			must(t, "list events", err)
			equalIDs(t, fmt.Sprintf("job %d events", tc.job.ID), eventIDs(evs), tc.want)
			for _, e := range evs {
				if e.JobID != tc.job.ID {
					t.Fatalf("event %d of job %d has JobID %d", e.ID, tc.job.ID, e.JobID)
				}
			}
		}
	})

	t.Run("ListStartAndLimit", func(t *testing.T) {
		s := newStore(t)
		evs := make([]jobs.Event, 5)
		for i := range evs {
			evs[i] = newEvent(jobs.EventNodeRunning, "a", i)
		}
		j, err := s.CreateJob(t.Context(), newJob(1, 1), newNodes("a"), evs)
		must(t, "create job", err)
		tests := []struct {
			name  string
			start int64
			limit int
			want  []int64
		}{
			{"all", 0, 0, seq(1, 5)},
			{"from 1", 1, 0, seq(1, 5)},
			{"from 3", 3, 0, seq(3, 5)},
			{"from last", 5, 0, seq(5, 5)},
			{"past end", 6, 0, nil},
			{"limit", 0, 2, seq(1, 2)},
			{"start and limit", 2, 2, seq(2, 3)},
			{"limit beyond end", 4, 10, seq(4, 5)},
			{"negative start", -3, 0, seq(1, 5)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.ListEvents(t.Context(), j.ID, tt.start, tt.limit)
				must(t, "list events", err)
				equalIDs(t, "events", eventIDs(got), tt.want)
			})
		}
		_, err = s.ListEvents(t.Context(), j.ID+1, 0, 0)
		mustErrIs(t, "list events of unknown job", err, store.ErrNotFound)
	})
}
