package storetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

func runJobs(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("CreateAssignsIncreasingIDsAndVersion1", func(t *testing.T) {
		s := newStore(t)
		for want := int64(1); want <= 3; want++ {
			in := newJob(int(want), 0)
			in.ID = 99 // ignored: the store assigns ids
			in.Version = 42
			got, err := s.CreateJob(t.Context(), in, nil, nil)
			must(t, "create job", err)
			if got.ID != want || got.Version != 1 {
				t.Fatalf("created job id=%d version=%d, want id=%d version=1", got.ID, got.Version, want)
			}
			in.ID, in.Version = want, 1
			equalJob(t, "returned job", got, in)
		}
	})

	t.Run("CreateRoundTripsEveryField", func(t *testing.T) {
		s := newStore(t)
		in := newJob(1, 2)
		in.Type = jobs.TypeDeploy
		in.State = jobs.StateRunning
		in.Description = "déploiement \"quoted\" ✓"
		in.Concurrency = 0
		in.Timeout = 0
		in.UpdatedAt = at(90)
		in.Status = []jobs.StatusEntry{
			{State: jobs.StateNew, EnterTime: at(1), ExitTime: ptr(at(2))},
			{State: jobs.StateReady, EnterTime: at(2), ExitTime: ptr(at(3))},
			{State: jobs.StateRunning, EnterTime: at(3), ExitTime: nil},
		}
		in.Stop = "graceful"
		in.Task = "Service::Restart"
		in.FinishedAt = ptr(at(95))
		in.IdempotencyKey = "3f1c2a9e-request-1"
		in.MaxErrors = 3
		in.Options = json.RawMessage(`{"environment":"production","scope":{"nodes":["a","b"]},"params":{"n":1.5,"s":"x","l":[1,2],"o":{"k":null}}}`)
		in.Payload = []byte("sealed\x00payload\xff")
		nodes := []jobs.Node{
			{Name: "b.example.com", State: jobs.NodeNew, Version: 7, JobID: 55},
			{
				Name:          "a.example.com",
				State:         jobs.NodeRunning,
				TransactionID: "txn-create-a",
				ReadyAt:       ptr(at(4)),
				StartedAt:     ptr(at(5)),
				FinishedAt:    nil,
				Result:        json.RawMessage(`{"_output":"ok","exit_code":0}`),
				Message:       "started",
				LatestEventID: 1,
			},
		}
		events := []jobs.Event{
			newEvent(jobs.EventNodeRunning, "a.example.com", 5),
			{Type: jobs.EventJobStopping, Timestamp: at(6), Message: "stop requested"},
		}
		got, err := s.CreateJob(t.Context(), in, nodes, events)
		must(t, "create job", err)
		want := in
		want.ID, want.Version = got.ID, 1
		equalJob(t, "returned job", got, want)

		stored, err := s.GetJob(t.Context(), got.ID)
		must(t, "get job", err)
		equalJob(t, "stored job", stored, want)

		wantNodes := make([]jobs.Node, len(nodes))
		for i, n := range nodes {
			n.JobID, n.Version = got.ID, 1
			wantNodes[i] = n
		}
		gotNodes, err := s.ListJobNodes(t.Context(), got.ID)
		must(t, "list job nodes", err)
		equalNodes(t, "stored nodes", gotNodes, wantNodes)
		for _, w := range wantNodes {
			n, err := s.GetJobNode(t.Context(), got.ID, w.Name)
			must(t, "get job node", err)
			equalNode(t, "stored node "+w.Name, n, w)
		}

		wantEvents := make([]jobs.Event, len(events))
		for i, e := range events {
			e.JobID, e.ID = got.ID, int64(i+1)
			wantEvents[i] = e
		}
		gotEvents, err := s.ListEvents(t.Context(), got.ID, 0, 0)
		must(t, "list events", err)
		equalEvents(t, "stored events", gotEvents, wantEvents)
	})

	t.Run("CreateSetsLatestEventIDOfNodesNamedByInitialEvents", func(t *testing.T) {
		s := newStore(t)
		nodes := []jobs.Node{{Name: "a", State: jobs.NodeErrored}, {Name: "b", State: jobs.NodeNew}, {Name: "c", State: jobs.NodeErrored}}
		events := []jobs.Event{newEvent(jobs.EventNodeErrored, "c", 1), newEvent(jobs.EventNodeErrored, "a", 2), newEvent(jobs.EventNodeErrored, "c", 3)}
		j, err := s.CreateJob(t.Context(), newJob(1, 0), nodes, events)
		must(t, "create job", err)
		want := map[string]int64{"a": 2, "b": 0, "c": 3}
		for name, id := range want {
			n, err := s.GetJobNode(t.Context(), j.ID, name)
			must(t, "get job node", err)
			if n.LatestEventID != id {
				t.Errorf("node %s LatestEventID = %d, want %d", name, n.LatestEventID, id)
			}
		}
		if nodes[0].LatestEventID != 0 {
			t.Error("CreateJob changed the caller's nodes")
		}
	})

	t.Run("CreateWithoutNodesOrEvents", func(t *testing.T) {
		s := newStore(t)
		j, err := s.CreateJob(t.Context(), newJob(1, 0), nil, nil)
		must(t, "create job", err)
		nodes, err := s.ListJobNodes(t.Context(), j.ID)
		must(t, "list job nodes", err)
		evs, err := s.ListEvents(t.Context(), j.ID, 0, 0)
		must(t, "list events", err)
		if len(nodes) != 0 || len(evs) != 0 {
			t.Fatalf("got %d nodes and %d events, want none", len(nodes), len(evs))
		}
	})

	t.Run("GetUnknownIsNotFound", func(t *testing.T) {
		s := newStore(t)
		_, err := s.GetJob(t.Context(), 1)
		mustErrIs(t, "get job on empty store", err, store.ErrNotFound)
		j, err := s.CreateJob(t.Context(), newJob(1, 0), nil, nil)
		must(t, "create job", err)
		_, err = s.GetJob(t.Context(), j.ID+1)
		mustErrIs(t, "get unknown job", err, store.ErrNotFound)
	})

	t.Run("UpdateReplacesAndIncrementsVersion", func(t *testing.T) {
		s := newStore(t)
		j, err := s.CreateJob(t.Context(), newJob(1, 1), newNodes("a"), []jobs.Event{newEvent(jobs.EventNodeRunning, "a", 1)})
		must(t, "create job", err)
		j.State = jobs.StateStopping
		j.Stop = "force"
		j.UpdatedAt = at(60)
		j.Status[0].ExitTime = ptr(at(59))
		j.Status = append(j.Status, jobs.StatusEntry{State: jobs.StateStopping, EnterTime: at(59)})
		j.Description = "changed"
		j.Options = json.RawMessage(`{"changed":true}`)
		j.Task = "package::status"
		j.FinishedAt = ptr(at(61))
		j.IdempotencyKey = "added-later"
		j.MaxErrors = 0
		updated, err := s.UpdateJob(t.Context(), j, newEvent(jobs.EventJobStopping, "", 59))
		must(t, "update job", err)
		if updated.Version != j.Version+1 {
			t.Fatalf("updated version = %d, want %d", updated.Version, j.Version+1)
		}
		want := j
		want.Version = j.Version + 1
		equalJob(t, "returned job", updated, want)
		stored, err := s.GetJob(t.Context(), j.ID)
		must(t, "get job", err)
		equalJob(t, "stored job", stored, want)
		evs, err := s.ListEvents(t.Context(), j.ID, 0, 0)
		must(t, "list events", err)
		equalIDs(t, "events after update", eventIDs(evs), seq(1, 2))
		if evs[1].Type != jobs.EventJobStopping || evs[1].JobID != j.ID {
			t.Fatalf("appended event = %+v, want a %s event of job %d", evs[1], jobs.EventJobStopping, j.ID)
		}

		// Optional fields can be cleared again.
		cleared := updated
		cleared.FinishedAt, cleared.IdempotencyKey, cleared.Task = nil, "", ""
		again, err := s.UpdateJob(t.Context(), cleared)
		must(t, "update job again", err)
		if again.Version != updated.Version+1 {
			t.Fatalf("second update version = %d, want %d", again.Version, updated.Version+1)
		}
		stored, err = s.GetJob(t.Context(), j.ID)
		must(t, "get job", err)
		equalJob(t, "stored job after clearing", stored, again)
		_, err = s.GetJobByIdempotencyKey(t.Context(), j.Owner.Login, "added-later")
		mustErrIs(t, "get by cleared idempotency key", err, store.ErrNotFound)
	})

	t.Run("UpdateStaleVersionConflictsAndChangesNothing", func(t *testing.T) {
		s := newStore(t)
		j, err := s.CreateJob(t.Context(), newJob(1, 1), newNodes("a"), []jobs.Event{newEvent(jobs.EventNodeRunning, "a", 1)})
		must(t, "create job", err)
		current := j
		current.State = jobs.StateRunning
		current, err = s.UpdateJob(t.Context(), current)
		must(t, "update job", err)

		for _, stale := range []int64{j.Version, current.Version + 1, 0} {
			t.Run(fmt.Sprintf("version %d", stale), func(t *testing.T) {
				bad := current
				bad.Version = stale
				bad.State = jobs.StateFailed
				bad.Description = "must not be stored"
				_, err := s.UpdateJob(t.Context(), bad, newEvent(jobs.EventJobAborted, "", 9))
				mustErrIs(t, "stale update", err, store.ErrConflict)
				stored, err := s.GetJob(t.Context(), j.ID)
				must(t, "get job", err)
				equalJob(t, "job after failed update", stored, current)
				evs, err := s.ListEvents(t.Context(), j.ID, 0, 0)
				must(t, "list events", err)
				equalIDs(t, "events after failed update", eventIDs(evs), seq(1, 1))
			})
		}
	})

	t.Run("ListPaging", func(t *testing.T) {
		s := newStore(t)
		for i := 1; i <= 5; i++ {
			_, err := s.CreateJob(t.Context(), newJob(i, 0), nil, nil)
			must(t, "create job", err)
		}
		tests := []struct {
			name          string
			limit, offset int
			want          []int64
		}{
			{"all", 0, 0, seq(1, 5)},
			{"first page", 2, 0, seq(1, 2)},
			{"second page", 2, 2, seq(3, 4)},
			{"last partial page", 2, 4, seq(5, 5)},
			{"offset without limit", 0, 3, seq(4, 5)},
			{"limit above total", 10, 0, seq(1, 5)},
			{"offset past end", 2, 5, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, total, err := s.ListJobs(t.Context(), store.JobQuery{Limit: tt.limit, Offset: tt.offset})
				must(t, "list jobs", err)
				if total != 5 {
					t.Fatalf("total = %d, want 5", total)
				}
				equalIDs(t, "page", jobIDs(got), tt.want)
			})
		}
		got, _, err := s.ListJobs(t.Context(), store.JobQuery{Limit: 1, Offset: 2})
		must(t, "list jobs", err)
		want, err := s.GetJob(t.Context(), 3)
		must(t, "get job", err)
		if len(got) != 1 {
			t.Fatalf("got %d jobs, want 1", len(got))
		}
		equalJob(t, "listed job", got[0], want)
	})

	t.Run("ListOrderBy", func(t *testing.T) {
		s := newStore(t)
		// Each key orders the four jobs (ids 1..4) differently. States are chosen so that
		// their lexical and lifecycle orders agree, and owner ids sort like owner logins.
		fixtures := []struct {
			created int
			owner   string
			env     string
			state   jobs.State
		}{
			{created: 30, owner: "carol", env: "alpha", state: jobs.StateReady},
			{created: 10, owner: "dave", env: "delta", state: jobs.StateNew},
			{created: 40, owner: "alice", env: "charlie", state: jobs.StateStopping},
			{created: 20, owner: "bob", env: "bravo", state: jobs.StateRunning},
		}
		for i, f := range fixtures {
			j := newJob(i+1, 0)
			j.CreatedAt, j.UpdatedAt = at(f.created), at(f.created)
			j.Owner = jobs.Owner{ID: "id-" + f.owner, Login: f.owner}
			j.Environment = f.env
			j.State = f.state
			_, err := s.CreateJob(t.Context(), j, nil, nil)
			must(t, "create job", err)
		}
		tests := []struct {
			orderBy string
			asc     []int64
		}{
			{"", []int64{2, 4, 1, 3}},
			{"timestamp", []int64{2, 4, 1, 3}},
			{"owner", []int64{3, 4, 1, 2}},
			{"environment", []int64{1, 4, 3, 2}},
			{"name", []int64{1, 2, 3, 4}},
			{"state", []int64{2, 1, 4, 3}},
		}
		for _, tt := range tests {
			for _, desc := range []bool{false, true} {
				t.Run(fmt.Sprintf("%q desc=%v", tt.orderBy, desc), func(t *testing.T) {
					want := tt.asc
					if desc {
						want = reversed(tt.asc)
					}
					got, total, err := s.ListJobs(t.Context(), store.JobQuery{OrderBy: tt.orderBy, Desc: desc})
					must(t, "list jobs", err)
					if total != 4 {
						t.Fatalf("total = %d, want 4", total)
					}
					equalIDs(t, "order", jobIDs(got), want)
					page, _, err := s.ListJobs(t.Context(), store.JobQuery{OrderBy: tt.orderBy, Desc: desc, Limit: 2, Offset: 1})
					must(t, "list page", err)
					equalIDs(t, "ordered page", jobIDs(page), want[1:3])
				})
			}
		}
	})

	t.Run("ListTypeFilter", func(t *testing.T) {
		s := newStore(t)
		types := []jobs.Type{jobs.TypeTask, jobs.TypeDeploy, jobs.TypeTask, jobs.TypeDeploy, jobs.TypeTask}
		for i, typ := range types {
			j := newJob(i+1, 0)
			j.Type = typ
			_, err := s.CreateJob(t.Context(), j, nil, nil)
			must(t, "create job", err)
		}
		tests := []struct {
			name      string
			q         store.JobQuery
			want      []int64
			wantTotal int
		}{
			{"all", store.JobQuery{}, seq(1, 5), 5},
			{"task", store.JobQuery{Type: jobs.TypeTask}, []int64{1, 3, 5}, 3},
			{"deploy", store.JobQuery{Type: jobs.TypeDeploy}, []int64{2, 4}, 2},
			{"deploy paged", store.JobQuery{Type: jobs.TypeDeploy, Limit: 1, Offset: 1}, []int64{4}, 2},
			{"task desc", store.JobQuery{Type: jobs.TypeTask, OrderBy: "name", Desc: true}, []int64{5, 3, 1}, 3},
			{"unknown type", store.JobQuery{Type: "other"}, nil, 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, total, err := s.ListJobs(t.Context(), tt.q)
				must(t, "list jobs", err)
				if total != tt.wantTotal {
					t.Fatalf("total = %d, want %d", total, tt.wantTotal)
				}
				equalIDs(t, "jobs", jobIDs(got), tt.want)
				for _, j := range got {
					if tt.q.Type != "" && j.Type != tt.q.Type {
						t.Fatalf("job %d has type %q, want %q", j.ID, j.Type, tt.q.Type)
					}
				}
			})
		}
	})

	t.Run("ListFilters", func(t *testing.T) {
		s := newStore(t)
		fixtures := []struct {
			typ      jobs.Type
			task     string
			finished *time.Time
		}{
			{jobs.TypeTask, "package::install", ptr(at(100))},     // 1
			{jobs.TypeTask, "Package::Status", ptr(at(200))},      // 2
			{jobs.TypeTask, "service::restart", nil},              // 3
			{jobs.TypeDeploy, "", ptr(at(150))},                   // 4
			{jobs.TypeTask, "facts", ptr(at(300))},                // 5
			{jobs.TypeTask, "PACKAGE", ptr(at(200).In(time.UTC))}, // 6
			{jobs.TypeTask, "Ünïcode::Tâche", ptr(at(250))},       // 7
		}
		for i, f := range fixtures {
			j := newJob(i+1, 0)
			j.Type, j.Task, j.FinishedAt = f.typ, f.task, f.finished
			if f.finished != nil {
				j.State = jobs.StateFinished
			}
			_, err := s.CreateJob(t.Context(), j, nil, nil)
			must(t, "create job", err)
		}
		other := time.FixedZone("UTC-5", -5*60*60)
		tests := []struct {
			name      string
			q         store.JobQuery
			want      []int64
			wantTotal int
		}{
			{"task substring any case", store.JobQuery{Task: "package"}, []int64{1, 2, 6}, 3},
			{"task upper query", store.JobQuery{Task: "PACKAGE::"}, []int64{1, 2}, 2},
			{"task inner substring", store.JobQuery{Task: "age::st"}, []int64{2}, 1},
			{"task non-ASCII case", store.JobQuery{Task: "üNÏCODE::tÂ"}, []int64{7}, 1},
			{"task wildcard characters are literal", store.JobQuery{Task: "%"}, nil, 0},
			{"task underscore is literal", store.JobQuery{Task: "_"}, nil, 0},
			{"task no match", store.JobQuery{Task: "nope"}, nil, 0},
			{"min finish", store.JobQuery{MinFinish: ptr(at(150))}, []int64{2, 4, 5, 6, 7}, 5},
			{"max finish", store.JobQuery{MaxFinish: ptr(at(150))}, []int64{1, 4}, 2},
			{"finish range inclusive", store.JobQuery{MinFinish: ptr(at(150)), MaxFinish: ptr(at(200))}, []int64{2, 4, 6}, 3},
			{"finish single instant", store.JobQuery{MinFinish: ptr(at(200)), MaxFinish: ptr(at(200))}, []int64{2, 6}, 2},
			{"finish bound in another zone", store.JobQuery{MinFinish: ptr(at(200).In(other)), MaxFinish: ptr(at(200).In(other))}, []int64{2, 6}, 2},
			{"finish just after", store.JobQuery{MinFinish: ptr(at(200).Add(time.Second)), MaxFinish: ptr(at(250))}, []int64{7}, 1},
			{"finish empty range", store.JobQuery{MinFinish: ptr(at(201)), MaxFinish: ptr(at(199))}, nil, 0},
			{"finish far past and future", store.JobQuery{MinFinish: ptr(time.Date(-50, 1, 1, 0, 0, 0, 0, time.UTC)), MaxFinish: ptr(time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC))}, []int64{1, 2, 4, 5, 6, 7}, 6},
			{"max finish before storable times", store.JobQuery{MaxFinish: ptr(time.Date(-50, 1, 1, 0, 0, 0, 0, time.UTC))}, nil, 0},
			{"min finish after storable times", store.JobQuery{MinFinish: ptr(time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC))}, nil, 0},
			{"task and finish", store.JobQuery{Task: "package", MinFinish: ptr(at(150))}, []int64{2, 6}, 2},
			{"type and finish", store.JobQuery{Type: jobs.TypeTask, MaxFinish: ptr(at(300))}, []int64{1, 2, 5, 6, 7}, 5},
			{"type deploy and task", store.JobQuery{Type: jobs.TypeDeploy, Task: "package"}, nil, 0},
			{"filtered page", store.JobQuery{MinFinish: ptr(at(100)), OrderBy: "name", Limit: 2, Offset: 1}, []int64{2, 4}, 6},
			{"filtered page desc", store.JobQuery{Task: "a", OrderBy: "name", Desc: true, Limit: 2, Offset: 2}, []int64{3, 2}, 5},
			{"filtered page past end", store.JobQuery{Task: "package", Limit: 2, Offset: 3}, nil, 3},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, total, err := s.ListJobs(t.Context(), tt.q)
				must(t, "list jobs", err)
				if total != tt.wantTotal {
					t.Fatalf("total = %d, want %d", total, tt.wantTotal)
				}
				equalIDs(t, "jobs", jobIDs(got), tt.want)
			})
		}

		// Finishing a job through UpdateJob makes it match the finish bounds.
		j3, err := s.GetJob(t.Context(), 3)
		must(t, "get job", err)
		j3.State, j3.FinishedAt = jobs.StateFailed, ptr(at(175))
		_, err = s.UpdateJob(t.Context(), j3)
		must(t, "finish job", err)
		got, total, err := s.ListJobs(t.Context(), store.JobQuery{MinFinish: ptr(at(150)), MaxFinish: ptr(at(200)), Limit: 1})
		must(t, "list jobs", err)
		if total != 4 {
			t.Fatalf("total after finishing job 3 = %d, want 4", total)
		}
		equalIDs(t, "first page after finishing job 3", jobIDs(got), []int64{2})
		got, _, err = s.ListJobs(t.Context(), store.JobQuery{MinFinish: ptr(at(175)), MaxFinish: ptr(at(175))})
		must(t, "list jobs", err)
		equalIDs(t, "jobs finished at 175", jobIDs(got), []int64{3})
		stored, err := s.GetJob(t.Context(), 3)
		must(t, "get job", err)
		equalJob(t, "listed job", got[0], stored)
	})

	t.Run("ListUnfinishedOldestFirst", func(t *testing.T) {
		s := newStore(t)
		got, err := s.ListUnfinishedJobs(t.Context())
		must(t, "list unfinished on empty store", err)
		if len(got) != 0 {
			t.Fatalf("empty store has %d unfinished jobs", len(got))
		}
		states := []jobs.State{
			jobs.StateRunning, jobs.StateFinished, jobs.StateNew, jobs.StateFailed,
			jobs.StateStopping, jobs.StateStopped, jobs.StateReady,
		}
		var want []int64
		for i, st := range states {
			j := newJob(i+1, 0)
			j.State = st
			created, err := s.CreateJob(t.Context(), j, nil, nil)
			must(t, "create job", err)
			if !st.Terminal() {
				want = append(want, created.ID)
			}
		}
		got, err = s.ListUnfinishedJobs(t.Context())
		must(t, "list unfinished", err)
		equalIDs(t, "unfinished jobs", jobIDs(got), want)
		first, err := s.GetJob(t.Context(), want[0])
		must(t, "get job", err)
		equalJob(t, "listed job", got[0], first)

		// Finishing a job removes it from the list.
		first.State = jobs.StateFinished
		_, err = s.UpdateJob(t.Context(), first)
		must(t, "finish job", err)
		got, err = s.ListUnfinishedJobs(t.Context())
		must(t, "list unfinished", err)
		equalIDs(t, "unfinished jobs after finishing one", jobIDs(got), want[1:])
	})
}

func reversed[T any](s []T) []T {
	out := make([]T, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}
