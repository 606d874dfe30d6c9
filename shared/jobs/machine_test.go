package jobs_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/jobs"
)

// x marks an event that does not apply to a state.
const x = ""

// nodeColumns is the column order of wantNode.
var nodeColumns = []jobs.NodeEvent{jobs.NodeClaim, jobs.NodeSend, jobs.NodeSucceed, jobs.NodeFail, jobs.NodeError, jobs.NodeSkip, jobs.NodeKill}

// wantNode is the node state machine, written out in full: a change to the machine must change
// this table.
var wantNode = map[jobs.NodeState][]jobs.NodeState{
	// columns: claim, send, succeed, fail, error, skip, kill
	jobs.NodeNew:      {jobs.NodeReady, x, x, x, jobs.NodeErrored, jobs.NodeSkipped, x},
	jobs.NodeReady:    {x, jobs.NodeRunning, x, x, jobs.NodeErrored, jobs.NodeSkipped, jobs.NodeSkipped},
	jobs.NodeRunning:  {x, x, jobs.NodeFinished, jobs.NodeFailed, jobs.NodeErrored, x, jobs.NodeStopped},
	jobs.NodeFinished: {x, x, x, x, x, x, x},
	jobs.NodeFailed:   {x, x, x, x, x, x, x},
	jobs.NodeErrored:  {x, x, x, x, x, x, x},
	jobs.NodeSkipped:  {x, x, x, x, x, x, x},
	jobs.NodeStopped:  {x, x, x, x, x, x, x},
}

// allStates lists every job state; TestEnumsComplete checks it against the declarations.
var allStates = []jobs.State{jobs.StateNew, jobs.StateReady, jobs.StateRunning, jobs.StateStopping, jobs.StateStopped, jobs.StateFinished, jobs.StateFailed}

// jobColumns is the column order of wantJob.
var jobColumns = []jobs.JobEvent{jobs.JobStart, jobs.JobRequestStop, jobs.JobComplete, jobs.JobAbort}

// wantJob is the job state machine, written out in full.
var wantJob = map[jobs.State][]jobs.State{
	// columns: start, request_stop, complete, abort
	jobs.StateNew:      {jobs.StateRunning, jobs.StateStopping, jobs.StateFinished, jobs.StateFailed},
	jobs.StateReady:    {jobs.StateRunning, jobs.StateStopping, jobs.StateFinished, jobs.StateFailed},
	jobs.StateRunning:  {x, jobs.StateStopping, jobs.StateFinished, jobs.StateFailed},
	jobs.StateStopping: {x, x, jobs.StateStopped, jobs.StateStopped},
	jobs.StateStopped:  {x, x, x, x},
	jobs.StateFinished: {x, x, x, x},
	jobs.StateFailed:   {x, x, x, x},
}

func TestTablesCoverEnums(t *testing.T) {
	if !sameSet(nodeColumns, jobs.AllNodeEvents) {
		t.Errorf("test columns %v, AllNodeEvents %v", nodeColumns, jobs.AllNodeEvents)
	}
	if !sameSet(jobColumns, jobs.AllJobEvents) {
		t.Errorf("test columns %v, AllJobEvents %v", jobColumns, jobs.AllJobEvents)
	}
	if len(wantNode) != len(jobs.AllNodeStates) {
		t.Errorf("wantNode has %d rows, AllNodeStates %d states", len(wantNode), len(jobs.AllNodeStates))
	}
	if len(wantJob) != len(allStates) {
		t.Errorf("wantJob has %d rows, allStates %d states", len(wantJob), len(allStates))
	}
}

func sameSet[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for _, v := range a {
		if !slices.Contains(b, v) {
			return false
		}
	}
	return true
}

func wantNodeNext(t *testing.T, from jobs.NodeState, ev jobs.NodeEvent) jobs.NodeState {
	t.Helper()
	row, ok := wantNode[from]
	if !ok {
		t.Fatalf("wantNode has no row for %q", from)
	}
	i := slices.Index(nodeColumns, ev)
	if i < 0 {
		t.Fatalf("wantNode has no column for %q", ev)
	}
	return row[i]
}

func wantJobNext(t *testing.T, from jobs.State, ev jobs.JobEvent) jobs.State {
	t.Helper()
	row, ok := wantJob[from]
	if !ok {
		t.Fatalf("wantJob has no row for %q", from)
	}
	i := slices.Index(jobColumns, ev)
	if i < 0 {
		t.Fatalf("wantJob has no column for %q", ev)
	}
	return row[i]
}

// checkInvalid asserts err is an *ErrInvalidTransition naming from and ev.
func checkInvalid(t *testing.T, err error, from, ev string) {
	t.Helper()
	var inv *jobs.ErrInvalidTransition
	if !errors.As(err, &inv) {
		t.Fatalf("err = %v, want *ErrInvalidTransition", err)
	}
	if inv.From != from || inv.Event != ev {
		t.Errorf("ErrInvalidTransition{From: %q, Event: %q}, want {%q, %q}", inv.From, inv.Event, from, ev)
	}
	if msg := err.Error(); !strings.Contains(msg, from) || !strings.Contains(msg, ev) {
		t.Errorf("error %q does not name state and event", msg)
	}
}

func TestNextNodeState(t *testing.T) {
	for _, from := range jobs.AllNodeStates {
		for _, ev := range jobs.AllNodeEvents {
			t.Run(string(from)+"/"+string(ev), func(t *testing.T) {
				want := wantNodeNext(t, from, ev)
				got, err := jobs.NextNodeState(from, ev)
				if want == x {
					checkInvalid(t, err, string(from), string(ev))
					if got != from {
						t.Errorf("invalid transition returned %q, want the unchanged %q", got, from)
					}
					return
				}
				if err != nil || got != want {
					t.Errorf("NextNodeState = %q, %v; want %q", got, err, want)
				}
			})
		}
	}
	if _, err := jobs.NextNodeState("bogus", jobs.NodeClaim); err == nil {
		t.Error("unknown state accepted")
	}
	if _, err := jobs.NextNodeState(jobs.NodeNew, "bogus"); err == nil {
		t.Error("unknown event accepted")
	}
}

func tp(t time.Time) *time.Time { return &t }

var (
	t0  = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	t1  = t0.Add(time.Second)
	t2  = t0.Add(2 * time.Second)
	now = time.Date(2024, 5, 1, 15, 30, 0, 123456789, time.FixedZone("UTC+5", 5*3600))
)

// nodeIn builds a node in state s with the timestamps a node in that state has.
func nodeIn(s jobs.NodeState) jobs.Node {
	n := jobs.Node{JobID: 7, Name: "node1.example.com", State: s, TransactionID: "txn-1",
		Result: []byte(`{"x":1}`), Message: "earlier", LatestEventID: 3, Version: 4}
	switch s {
	case jobs.NodeNew:
	case jobs.NodeReady:
		n.ReadyAt = tp(t0)
	case jobs.NodeRunning:
		n.ReadyAt, n.StartedAt = tp(t0), tp(t1)
	default:
		n.ReadyAt, n.StartedAt, n.FinishedAt = tp(t0), tp(t1), tp(t2)
	}
	return n
}

func cloneNode(n jobs.Node) jobs.Node {
	c := n
	for _, p := range []**time.Time{&c.ReadyAt, &c.StartedAt, &c.FinishedAt} {
		if *p != nil {
			*p = tp(**p)
		}
	}
	c.Result = slices.Clone(n.Result)
	return c
}

// checkTime asserts got is set to want's instant, in UTC.
func checkTime(t *testing.T, field string, got *time.Time, want time.Time) {
	t.Helper()
	if got == nil {
		t.Errorf("%s = nil, want %v", field, want)
		return
	}
	if !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("%s = %v, want %v in UTC", field, *got, want.UTC())
	}
}

// checkKept asserts got is the same (possibly nil) time as was.
func checkKept(t *testing.T, field string, got, was *time.Time) {
	t.Helper()
	if (got == nil) != (was == nil) || (got != nil && !got.Equal(*was)) {
		t.Errorf("%s = %v, want unchanged %v", field, got, was)
	}
}

func TestApplyNode(t *testing.T) {
	for _, from := range jobs.AllNodeStates {
		for _, ev := range jobs.AllNodeEvents {
			t.Run(string(from)+"/"+string(ev), func(t *testing.T) {
				in := nodeIn(from)
				before := cloneNode(in)
				out, err := jobs.ApplyNode(in, ev, now)
				if !reflect.DeepEqual(in, before) {
					t.Fatalf("ApplyNode changed its input:\n%+v\n%+v", in, before)
				}
				want := wantNodeNext(t, from, ev)
				if want == x {
					checkInvalid(t, err, string(from), string(ev))
					if !reflect.DeepEqual(out, before) {
						t.Errorf("invalid transition returned %+v, want the input unchanged", out)
					}
					return
				}
				if err != nil {
					t.Fatalf("ApplyNode: %v", err)
				}
				if out.State != want {
					t.Errorf("state = %q, want %q", out.State, want)
				}
				if want == jobs.NodeReady {
					checkTime(t, "ReadyAt", out.ReadyAt, now)
				} else {
					checkKept(t, "ReadyAt", out.ReadyAt, before.ReadyAt)
				}
				if want == jobs.NodeRunning {
					checkTime(t, "StartedAt", out.StartedAt, now)
				} else {
					checkKept(t, "StartedAt", out.StartedAt, before.StartedAt)
				}
				if want.Terminal() {
					checkTime(t, "FinishedAt", out.FinishedAt, now)
				} else {
					checkKept(t, "FinishedAt", out.FinishedAt, before.FinishedAt)
				}
				// Everything else is carried over untouched.
				rest, wantRest := out, before
				rest.State, rest.ReadyAt, rest.StartedAt, rest.FinishedAt = "", nil, nil, nil
				wantRest.State, wantRest.ReadyAt, wantRest.StartedAt, wantRest.FinishedAt = "", nil, nil, nil
				if !reflect.DeepEqual(rest, wantRest) {
					t.Errorf("other fields changed: %+v, want %+v", rest, wantRest)
				}
			})
		}
	}
}

func TestApplyNodeLifecycle(t *testing.T) {
	n := jobs.Node{JobID: 1, Name: "n1", State: jobs.NodeNew}
	steps := []struct {
		ev   jobs.NodeEvent
		at   time.Time
		want jobs.NodeState
	}{
		{jobs.NodeClaim, t0, jobs.NodeReady},
		{jobs.NodeSend, t1, jobs.NodeRunning},
		{jobs.NodeSucceed, t2, jobs.NodeFinished},
	}
	for _, s := range steps {
		var err error
		if n, err = jobs.ApplyNode(n, s.ev, s.at); err != nil || n.State != s.want {
			t.Fatalf("%s: %q, %v; want %q", s.ev, n.State, err, s.want)
		}
	}
	checkTime(t, "ReadyAt", n.ReadyAt, t0)
	checkTime(t, "StartedAt", n.StartedAt, t1)
	checkTime(t, "FinishedAt", n.FinishedAt, t2)
	if _, err := jobs.ApplyNode(n, jobs.NodeFail, t2); err == nil {
		t.Error("a finished node accepted another outcome")
	}
}

func TestNextJobState(t *testing.T) {
	for _, from := range allStates {
		for _, ev := range jobs.AllJobEvents {
			t.Run(string(from)+"/"+string(ev), func(t *testing.T) {
				want := wantJobNext(t, from, ev)
				got, err := jobs.NextJobState(from, ev)
				if want == x {
					checkInvalid(t, err, string(from), string(ev))
					if got != from {
						t.Errorf("invalid transition returned %q, want the unchanged %q", got, from)
					}
					return
				}
				if err != nil || got != want {
					t.Errorf("NextJobState = %q, %v; want %q", got, err, want)
				}
			})
		}
	}
}

// jobIn builds a job in state s whose status history ends with an open entry for s. The Status
// slice has spare capacity, so that an implementation appending in place would be caught.
func jobIn(s jobs.State) jobs.Job {
	status := make([]jobs.StatusEntry, 0, 8)
	if s == jobs.StateReady {
		status = append(status, jobs.StatusEntry{State: s, EnterTime: t0})
	} else {
		status = append(status,
			jobs.StatusEntry{State: jobs.StateReady, EnterTime: t0, ExitTime: tp(t1)},
			jobs.StatusEntry{State: s, EnterTime: t1})
		if s.Terminal() {
			status[1].ExitTime = tp(t1)
		}
	}
	return jobs.Job{ID: 42, Type: jobs.TypeTask, State: s, Environment: "production", Description: "d",
		Owner: jobs.Owner{ID: "u1", Login: "admin"}, Options: []byte(`{"task":"echo"}`), Payload: []byte("sealed"),
		Concurrency: 2, Timeout: 60, NodeCount: 3, CreatedAt: t0, UpdatedAt: t1, Status: status, Version: 9}
}

func cloneJob(j jobs.Job) jobs.Job {
	c := j
	c.Options = slices.Clone(j.Options)
	c.Payload = slices.Clone(j.Payload)
	c.Status = make([]jobs.StatusEntry, len(j.Status))
	for i, e := range j.Status {
		if e.ExitTime != nil {
			e.ExitTime = tp(*e.ExitTime)
		}
		c.Status[i] = e
	}
	return c
}

func TestApplyJob(t *testing.T) {
	for _, from := range allStates {
		for _, ev := range jobs.AllJobEvents {
			t.Run(string(from)+"/"+string(ev), func(t *testing.T) {
				in := jobIn(from)
				before := cloneJob(in)
				out, err := jobs.ApplyJob(in, ev, now)
				if !reflect.DeepEqual(in, before) {
					t.Fatalf("ApplyJob changed its input:\n%+v\n%+v", in, before)
				}
				want := wantJobNext(t, from, ev)
				if want == x {
					checkInvalid(t, err, string(from), string(ev))
					if !reflect.DeepEqual(out, before) {
						t.Errorf("invalid transition returned %+v, want the input unchanged", out)
					}
					return
				}
				if err != nil {
					t.Fatalf("ApplyJob: %v", err)
				}
				if out.State != want {
					t.Errorf("state = %q, want %q", out.State, want)
				}
				if !out.UpdatedAt.Equal(now) || out.UpdatedAt.Location() != time.UTC {
					t.Errorf("UpdatedAt = %v, want %v in UTC", out.UpdatedAt, now)
				}
				if len(out.Status) != len(in.Status)+1 {
					t.Fatalf("status has %d entries, want %d", len(out.Status), len(in.Status)+1)
				}
				// Earlier entries are kept; the previously open one is closed at now.
				for i, e := range before.Status {
					got := out.Status[i]
					if got.State != e.State || !got.EnterTime.Equal(e.EnterTime) {
						t.Errorf("status[%d] = %+v, want %+v", i, got, e)
					}
					if i == len(before.Status)-1 && e.ExitTime == nil {
						checkTime(t, "previous ExitTime", got.ExitTime, now)
					} else {
						checkKept(t, "earlier ExitTime", got.ExitTime, e.ExitTime)
					}
				}
				last := out.Status[len(out.Status)-1]
				if last.State != want {
					t.Errorf("new entry state = %q, want %q", last.State, want)
				}
				if !last.EnterTime.Equal(now) || last.EnterTime.Location() != time.UTC {
					t.Errorf("new entry EnterTime = %v, want %v in UTC", last.EnterTime, now)
				}
				if want.Terminal() {
					checkTime(t, "terminal ExitTime", last.ExitTime, last.EnterTime)
				} else if last.ExitTime != nil {
					t.Errorf("open entry has ExitTime %v", *last.ExitTime)
				}

				// No aliasing: the result's history is not the input's backing array.
				out.Status[0].State = "scribbled"
				in.Status = append(in.Status, jobs.StatusEntry{State: "appended"})
				if before.Status[0].State != in.Status[0].State {
					t.Error("writing the result's Status changed the input's")
				}
				if out.Status[len(before.Status)].State != want {
					t.Error("appending to the input's Status overwrote the result's")
				}

				// A terminal state records FinishedAt; others leave it alone.
				if want.Terminal() {
					checkTime(t, "FinishedAt", out.FinishedAt, now)
				} else if out.FinishedAt != nil {
					t.Errorf("non-terminal state set FinishedAt %v", *out.FinishedAt)
				}

				// Everything but state, history, UpdatedAt and FinishedAt is carried over.
				rest, wantRest := out, before
				rest.State, rest.Status, rest.UpdatedAt, rest.FinishedAt = "", nil, time.Time{}, nil
				wantRest.State, wantRest.Status, wantRest.UpdatedAt = "", nil, time.Time{}
				if !reflect.DeepEqual(rest, wantRest) {
					t.Errorf("other fields changed: %+v, want %+v", rest, wantRest)
				}
			})
		}
	}
}

func TestApplyJobEdgeHistories(t *testing.T) {
	t.Run("empty history", func(t *testing.T) {
		out, err := jobs.ApplyJob(jobs.Job{State: jobs.StateRunning}, jobs.JobComplete, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Status) != 1 || out.Status[0].State != jobs.StateFinished {
			t.Fatalf("status = %+v", out.Status)
		}
		checkTime(t, "ExitTime", out.Status[0].ExitTime, now)
	})
	t.Run("already closed last entry is left alone", func(t *testing.T) {
		in := jobs.Job{State: jobs.StateRunning, Status: []jobs.StatusEntry{{State: jobs.StateRunning, EnterTime: t0, ExitTime: tp(t1)}}}
		out, err := jobs.ApplyJob(in, jobs.JobRequestStop, now)
		if err != nil {
			t.Fatal(err)
		}
		checkKept(t, "closed ExitTime", out.Status[0].ExitTime, tp(t1))
		if len(out.Status) != 2 || out.Status[1].State != jobs.StateStopping || out.Status[1].ExitTime != nil {
			t.Errorf("status = %+v", out.Status)
		}
	})
}

func TestJobLifecycle(t *testing.T) {
	j := jobs.NewJob(jobs.Job{ID: 1, Type: jobs.TypeDeploy}, t0)
	var err error
	for i, ev := range []jobs.JobEvent{jobs.JobStart, jobs.JobRequestStop, jobs.JobComplete} {
		if j, err = jobs.ApplyJob(j, ev, t0.Add(time.Duration(i+1)*time.Minute)); err != nil {
			t.Fatalf("%s: %v", ev, err)
		}
	}
	if j.State != jobs.StateStopped {
		t.Fatalf("state = %q, want stopped", j.State)
	}
	want := []struct {
		state       jobs.State
		enter, exit time.Duration
	}{
		{jobs.StateReady, 0, time.Minute},
		{jobs.StateRunning, time.Minute, 2 * time.Minute},
		{jobs.StateStopping, 2 * time.Minute, 3 * time.Minute},
		{jobs.StateStopped, 3 * time.Minute, 3 * time.Minute},
	}
	if len(j.Status) != len(want) {
		t.Fatalf("status = %+v", j.Status)
	}
	for i, w := range want {
		e := j.Status[i]
		if e.State != w.state || !e.EnterTime.Equal(t0.Add(w.enter)) || e.ExitTime == nil || !e.ExitTime.Equal(t0.Add(w.exit)) {
			t.Errorf("status[%d] = %+v (exit %v), want %v entered +%v left +%v", i, e, e.ExitTime, w.state, w.enter, w.exit)
		}
	}
	if !j.CreatedAt.Equal(t0) || !j.UpdatedAt.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("CreatedAt %v UpdatedAt %v", j.CreatedAt, j.UpdatedAt)
	}
}

func TestNewJob(t *testing.T) {
	in := jobIn(jobs.StateRunning) // whatever state and history it had is replaced
	before := cloneJob(in)
	out := jobs.NewJob(in, now)
	if !reflect.DeepEqual(in, before) {
		t.Fatal("NewJob changed its input")
	}
	if out.State != jobs.StateReady {
		t.Errorf("state = %q, want ready", out.State)
	}
	if len(out.Status) != 1 || out.Status[0].State != jobs.StateReady || out.Status[0].ExitTime != nil {
		t.Fatalf("status = %+v, want one open ready entry", out.Status)
	}
	for name, got := range map[string]time.Time{"EnterTime": out.Status[0].EnterTime, "CreatedAt": out.CreatedAt, "UpdatedAt": out.UpdatedAt} {
		checkTime(t, name, &got, now)
	}
	rest, wantRest := out, before
	rest.State, rest.Status, rest.CreatedAt, rest.UpdatedAt = "", nil, time.Time{}, time.Time{}
	wantRest.State, wantRest.Status, wantRest.CreatedAt, wantRest.UpdatedAt = "", nil, time.Time{}, time.Time{}
	if !reflect.DeepEqual(rest, wantRest) {
		t.Errorf("other fields changed: %+v, want %+v", rest, wantRest)
	}
	out.Status[0].State = "scribbled"
	if in.Status[0].State != before.Status[0].State {
		t.Error("NewJob's Status aliases the input's")
	}
}
