package dynamo_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store/dynamo"
)

// TestCreationEventsPacked: a job with counter shards writes its creation's events in packs
// (a few write units for hundreds of node_running events, where each took one), and
// ListEvents reads them as before: from any start, inside a pack or not, with any limit, a
// follower polling from its last id + 1 gets every event once, in order, the later events
// (items of their own) after them.
func TestCreationEventsPacked(t *testing.T) {
	e := newEnv(t)
	m := newMeter()
	s := e.store(t, dynamo.WithMeter(m))
	ctx := t.Context()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	const n = 600 // counter shards: 3 sequencers
	recs := nodes(n, jobs.NodeRunning)
	var evs []jobs.Event
	for i := range recs {
		recs[i].TransactionID = fmt.Sprintf("t-%d", i)
		recs[i].StartedAt = &now
		evs = append(evs, jobs.Event{Type: jobs.EventNodeRunning, Timestamp: now, Node: recs[i].Name,
			Message: "Started task package::install on " + recs[i].Name, Detail: []byte(`{"noop":false}`)})
	}
	before := m.wcu["BatchWriteItem"]
	j, err := s.CreateJob(ctx, newJob(), recs, evs)
	if err != nil {
		t.Fatal(err)
	}
	var evWCU float64
	for k, u := range m.parts {
		if k.index == "" && strings.Contains(k.pk, "#E") {
			evWCU += u.wcu
		}
	}
	t.Logf("creation: %.0f write units in all, %.0f for %d events", m.wcu["BatchWriteItem"]-before, evWCU, n)
	if evWCU > n/8 {
		t.Fatalf("the creation's %d events took %.0f write units, want at most %d (packs)", n, evWCU, n/8)
	}
	all, err := s.ListEvents(ctx, j.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n {
		t.Fatalf("listed %d events, want %d", len(all), n)
	}
	seen := map[string]bool{}
	for i, ev := range all {
		if i > 0 && ev.ID <= all[i-1].ID {
			t.Fatalf("event %d has id %d after %d", i, ev.ID, all[i-1].ID)
		}
		if ev.Type != jobs.EventNodeRunning || !ev.Timestamp.Equal(now) || string(ev.Detail) != `{"noop":false}` ||
			ev.Message != "Started task package::install on "+ev.Node || ev.JobID != j.ID || seen[ev.Node] {
			t.Fatalf("event %d: %+v", i, ev)
		}
		seen[ev.Node] = true
	}
	// From a start inside a pack.
	mid := all[n/2]
	from, err := s.ListEvents(ctx, j.ID, mid.ID, 5)
	if err != nil || len(from) != 5 || from[0].ID != mid.ID || from[4].ID != all[n/2+4].ID {
		t.Fatalf("from %d, limit 5: %v (%v)", mid.ID, from, err)
	}
	// Later events: items of their own, listed after the packs.
	end := recs[0]
	got, err := s.GetJobNode(ctx, j.ID, end.Name)
	if err != nil {
		t.Fatal(err)
	}
	got.State, got.FinishedAt = jobs.NodeFinished, &now
	if _, err := s.UpdateJobNode(ctx, got, jobs.Event{Type: jobs.EventNodeFinished, Timestamp: now, Node: got.Name}); err != nil {
		t.Fatal(err)
	}
	// A follower with a small limit gets every event once, in order.
	var followed []jobs.Event
	for start, polls := int64(0), 0; polls < 1000; polls++ {
		page, err := s.ListEvents(ctx, j.ID, start, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		followed = append(followed, page...)
		start = page[len(page)-1].ID + 1
	}
	if len(followed) != n+1 || followed[n].Type != jobs.EventNodeFinished || followed[n].Node != end.Name {
		t.Fatalf("the follower got %d events (the last %+v), want %d ending with %s's node_finished", len(followed), followed[len(followed)-1], n+1, end.Name)
	}
	for i := 1; i < len(followed); i++ {
		if followed[i].ID <= followed[i-1].ID {
			t.Fatalf("the follower got id %d after %d", followed[i].ID, followed[i-1].ID)
		}
	}
}
