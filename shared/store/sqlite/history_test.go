package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

// TestNodeRunPagesDoNotGrowWithHistory counts the pages a node-run's writes put in the WAL
// (a batch's claim, its records running, then finished, each one commit) in a store that has
// kept no other job and in one that has kept several. An index whose entries for the whole
// history sit on the node-run's path makes the second count larger: with job_nodes_name and
// job_nodes_transaction (schema version 8) a node-run wrote 0.60 pages with no history and
// 0.88 after 8 jobs of 500 nodes, against 0.44 and 0.46 without them. Page counts are
// deterministic for the same writes on the same data.
func TestNodeRunPagesDoNotGrowWithHistory(t *testing.T) {
	const size, batch = 500, 100
	perNodeRun := func(t *testing.T, history int) float64 {
		s, path := openTemp(t)
		ctx := t.Context()
		nodes := make([]jobs.Node, size)
		for i := range nodes {
			nodes[i] = jobs.Node{Name: fmt.Sprintf("node%04d.example.com", i), State: jobs.NodeNew}
		}
		// The history: jobs whose records ended, as a store keeps them (written ended at
		// creation, with transaction ids that name their job, as dispatch makes them).
		for k := range history {
			ended := make([]jobs.Node, size)
			for i, n := range nodes {
				n.State, n.Result = jobs.NodeFinished, json.RawMessage(`{"ok":true}`)
				n.TransactionID = jobs.TransactionID(int64(k+1), fmt.Sprintf("%08x-5b4a-4938-8271-605f4e3d2c1b", i*2654435761%(1<<32)))
				ended[i] = n
			}
			j, err := s.CreateJob(ctx, testJob(), ended, nil)
			if err != nil {
				t.Fatal(err)
			}
			if j.ID != int64(k+1) {
				t.Fatalf("job id %d, want %d", j.ID, k+1)
			}
		}
		j, err := s.CreateJob(ctx, testJob(), nodes, nil)
		if err != nil {
			t.Fatal(err)
		}
		frames := 0
		for range 3 {
			frames += walFramesOf(t, path, func() { runBatch(t, s, j.ID, batch) })
		}
		return float64(frames) / float64(3*batch)
	}
	fresh, kept := perNodeRun(t, 0), perNodeRun(t, 8)
	t.Logf("WAL pages per node-run: %.2f with no history, %.2f after 8 jobs of %d nodes", fresh, kept, size)
	if kept > fresh*1.1+0.02 {
		t.Fatalf("a node-run writes %.2f pages after 8 jobs of history against %.2f with none: an index on its path grows with the history", kept, fresh)
	}
}

// runBatch claims limit queued records of job jobID (with transaction ids as dispatch makes
// them), records them running, then finished with events: three writes, each one commit.
func runBatch(t *testing.T, s *Store, jobID int64, limit int) {
	t.Helper()
	ctx := t.Context()
	seq := 0
	claimed, err := s.ClaimJobNodes(ctx, jobID, store.Claim{Limit: limit, Apply: func(n jobs.Node) (jobs.Node, []jobs.Event) {
		seq++
		n.State = jobs.NodeReady
		n.TransactionID = jobs.TransactionID(jobID, fmt.Sprintf("%08x-5b4a-4938-8271-605f4e3d2c1b", seq*2654435761%(1<<32)))
		n.DueAt = &t0
		return n, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(claimed) != limit {
		t.Fatalf("claimed %d records, want %d", len(claimed), limit)
	}
	for _, step := range []struct {
		state jobs.NodeState
		event string
	}{{jobs.NodeRunning, jobs.EventNodeRunning}, {jobs.NodeFinished, jobs.EventNodeFinished}} {
		ups := make([]store.NodeUpdate, len(claimed))
		for i, n := range claimed {
			n.State = step.state
			if step.state == jobs.NodeFinished {
				n.Result, n.DueAt = json.RawMessage(`{"ok":true}`), nil
			}
			ups[i] = store.NodeUpdate{Node: n, Events: []jobs.Event{{Type: step.event, Timestamp: t0, Node: n.Name}}}
		}
		out, errs := s.UpdateJobNodes(ctx, ups)
		for i, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
			claimed[i] = out[i]
		}
	}
}

// walFramesOf empties the WAL (a truncating checkpoint: the store must be idle), runs fn and
// returns the number of frames — pages written — fn's commits left in the WAL. fn must write
// fewer pages than the writer's automatic checkpoint waits for (1,000).
func walFramesOf(t *testing.T, path string, fn func()) int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("raw open: %v", err)
	}
	defer db.Close()
	checkpoint := func(mode string) int {
		var busy, log, done int
		if err := db.QueryRowContext(t.Context(), `PRAGMA wal_checkpoint(`+mode+`)`).Scan(&busy, &log, &done); err != nil {
			t.Fatalf("checkpoint %s: %v", mode, err)
		}
		if busy != 0 {
			t.Fatalf("checkpoint %s: busy", mode)
		}
		return log
	}
	checkpoint("TRUNCATE")
	fn()
	frames := checkpoint("PASSIVE")
	if frames >= 1000 {
		t.Fatalf("%d frames: the writer may have checkpointed meanwhile", frames)
	}
	return frames
}
