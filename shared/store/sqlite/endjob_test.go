package sqlite

import (
	"errors"
	"reflect"
	"testing"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

// TestEndJobNodeAndJob checks the one-write end of a one-node job: end gets the job as
// stored, its error (or a changed version) leaves the node and the job as they were, and
// otherwise the node, the job and both events are written together.
func TestEndJobNodeAndJob(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t)
	j, err := s.CreateJob(ctx, testJob(), []jobs.Node{{Name: "a", State: jobs.NodeRunning}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.GetJobNode(ctx, j.ID, "a")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := s.GetJob(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	unchanged := func(step string) {
		t.Helper()
		gotJob, err := s.GetJob(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		gotNode, err := s.GetJobNode(ctx, j.ID, "a")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gotJob, stored) || !reflect.DeepEqual(gotNode, n) {
			t.Fatalf("%s: the job or its node changed:\n%+v\n%+v", step, gotJob, gotNode)
		}
	}
	end := n
	end.State = jobs.NodeFinished
	nodeEv := []jobs.Event{{Type: jobs.EventNodeFinished, Timestamp: t0, Node: "a", Message: "done"}}

	refused := errors.New("refused")
	_, _, err = s.EndJobNodeAndJob(ctx, end, nodeEv, func(got jobs.Job) (jobs.Job, []jobs.Event, error) {
		if !reflect.DeepEqual(got, stored) {
			t.Errorf("end got %+v, the store holds %+v", got, stored)
		}
		return got, nil, refused
	})
	if !errors.Is(err, refused) {
		t.Fatalf("end's error: got %v", err)
	}
	unchanged("after end refused")

	_, _, err = s.EndJobNodeAndJob(ctx, end, nodeEv, func(got jobs.Job) (jobs.Job, []jobs.Event, error) {
		got.Version++
		return got, nil, nil
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a changed version: got %v, want ErrConflict", err)
	}
	unchanged("after a changed version")

	stale := end
	stale.Version++
	_, _, err = s.EndJobNodeAndJob(ctx, stale, nodeEv, func(got jobs.Job) (jobs.Job, []jobs.Event, error) {
		got.State = jobs.StateFinished
		return got, nil, nil
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a stale node: got %v, want ErrConflict", err)
	}
	unchanged("after a stale node")

	if _, _, err := s.EndJobNodeAndJob(ctx, jobs.Node{JobID: j.ID + 100, Name: "a"}, nil, func(got jobs.Job) (jobs.Job, []jobs.Event, error) {
		return got, nil, nil
	}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unknown job: got %v, want ErrNotFound", err)
	}

	gotNode, gotJob, err := s.EndJobNodeAndJob(ctx, end, nodeEv, func(got jobs.Job) (jobs.Job, []jobs.Event, error) {
		got.State = jobs.StateFinished
		return got, []jobs.Event{{Type: jobs.EventJobFinished, Timestamp: t0, Message: "job done"}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	afterJob, err := s.GetJob(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	afterNode, err := s.GetJobNode(ctx, j.ID, "a")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotJob, afterJob) || afterJob.State != jobs.StateFinished || afterJob.Version != stored.Version+1 {
		t.Errorf("job returned %+v, stored %+v", gotJob, afterJob)
	}
	if !reflect.DeepEqual(gotNode, afterNode) || afterNode.State != jobs.NodeFinished {
		t.Errorf("node returned %+v, stored %+v", gotNode, afterNode)
	}
	evs, err := s.ListEvents(ctx, j.ID, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Type != jobs.EventNodeFinished || evs[1].Type != jobs.EventJobFinished {
		t.Errorf("events %+v", evs)
	}
	counts, err := s.JobCounts(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(counts, jobs.StateCounts{jobs.NodeFinished: 1}) {
		t.Errorf("counts %v", counts)
	}
}
