package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/store/storetest"
)

// openTemp opens a store on a fresh file in t's temporary directory and closes it at cleanup.
func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "baton.db")
	s, err := Open(path)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s, path
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openTemp(t)
		return s
	})
}

var t0 = time.Date(2024, time.March, 1, 12, 0, 0, 0, time.UTC)

// fixedNow is the clock passed to UseNonce in these tests.
var fixedNow = time.Date(2031, time.May, 4, 8, 0, 0, 0, time.UTC)

func testJob() jobs.Job {
	return jobs.Job{
		Type: jobs.TypeTask, State: jobs.StateRunning, Environment: "production",
		Owner: jobs.Owner{ID: "42", Login: "admin"}, Options: json.RawMessage(`{"task":"facts"}`),
		CreatedAt: t0, UpdatedAt: t0, Status: []jobs.StatusEntry{{State: jobs.StateNew, EnterTime: t0}},
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "baton.db")
	s, err := Open(path)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	j, err := s.CreateJob(ctx, testJob(), []jobs.Node{{Name: "a", State: jobs.NodeNew}},
		[]jobs.Event{{Type: jobs.EventNodeRunning, Timestamp: t0, Node: "a"}})
	if err != nil {
		t.Fatalf("create job: %v", err)
	}
	if _, err := s.CreateNode(ctx, inventory.Node{Name: "a", CredentialHash: "h", CreatedAt: t0}); err != nil {
		t.Fatalf("create node: %v", err)
	}
	if err := s.PutToken(ctx, store.Token{Hash: "tok", Login: "admin", CreatedAt: t0}); err != nil {
		t.Fatalf("put token: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	s, err = Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	got, err := s.GetJob(ctx, j.ID)
	if err != nil {
		t.Fatalf("get job after reopen: %v", err)
	}
	if got.Owner != j.Owner || !got.CreatedAt.Equal(j.CreatedAt) || got.Version != 1 {
		t.Fatalf("job after reopen = %+v, want %+v", got, j)
	}
	if _, err := s.GetJobNode(ctx, j.ID, "a"); err != nil {
		t.Fatalf("get job node after reopen: %v", err)
	}
	if _, err := s.GetNode(ctx, "a"); err != nil {
		t.Fatalf("get node after reopen: %v", err)
	}
	if _, err := s.GetToken(ctx, "tok"); err != nil {
		t.Fatalf("get token after reopen: %v", err)
	}
	// Counters carry on where they stopped.
	next, err := s.CreateJob(ctx, testJob(), nil, nil)
	if err != nil {
		t.Fatalf("create job after reopen: %v", err)
	}
	if next.ID != j.ID+1 {
		t.Fatalf("next job id = %d, want %d", next.ID, j.ID+1)
	}
	n, err := s.GetJobNode(ctx, j.ID, "a")
	if err != nil {
		t.Fatalf("get job node: %v", err)
	}
	n, err = s.UpdateJobNode(ctx, n, jobs.Event{Type: jobs.EventNodeFinished, Timestamp: t0, Node: "a"})
	if err != nil {
		t.Fatalf("append event after reopen: %v", err)
	}
	if n.LatestEventID != 2 {
		t.Fatalf("event id after reopen = %d, want 2", n.LatestEventID)
	}
}

// rawQuery runs a one-value query on path through a separate connection.
func rawQuery(t *testing.T, path, query string, dest any) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("raw open: %v", err)
	}
	defer db.Close()
	if err := db.QueryRowContext(t.Context(), query).Scan(dest); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func TestFileIsWAL(t *testing.T) {
	_, path := openTemp(t)
	var mode string
	rawQuery(t, path, `PRAGMA journal_mode`, &mode)
	if mode != "wal" {
		t.Fatalf("journal mode = %q, want wal", mode)
	}
	var version int
	rawQuery(t, path, `PRAGMA user_version`, &version)
	if version != schemaVersion {
		t.Fatalf("user_version = %d, want %d", version, schemaVersion)
	}
}

func TestConnectionSettings(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "baton.db"), WithBusyTimeout(1500*time.Millisecond))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	// The writer's pragmas are read through the committer, which holds its connection.
	writer := func(ctx context.Context, q string) (got int, err error) {
		err = s.write(ctx, func(ctx context.Context, tx dbtx) error { return tx.QueryRowContext(ctx, q).Scan(&got) })
		return got, err
	}
	reader := func(ctx context.Context, q string) (got int, err error) {
		err = s.r.QueryRowContext(ctx, q).Scan(&got)
		return got, err
	}
	tests := []struct {
		pool   string
		query  func(context.Context, string) (int, error)
		pragma string
		want   int
	}{
		{"writer", writer, "busy_timeout", 1500},
		{"writer", writer, "foreign_keys", 1},
		{"writer", writer, "query_only", 0},
		{"writer", writer, "temp_store", 2}, // MEMORY: savepoints journal in memory
		{"reader", reader, "busy_timeout", 1500},
		{"reader", reader, "foreign_keys", 1},
		{"reader", reader, "query_only", 1},
	}
	for _, tt := range tests {
		t.Run(tt.pool+" "+tt.pragma, func(t *testing.T) {
			got, err := tt.query(t.Context(), "PRAGMA "+tt.pragma)
			if err != nil {
				t.Fatalf("read %s: %v", tt.pragma, err)
			}
			if got != tt.want {
				t.Fatalf("%s = %d, want %d", tt.pragma, got, tt.want)
			}
		})
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "future.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("raw open: %v", err)
	}
	newer := schemaVersion + 1
	if _, err := db.ExecContext(t.Context(), fmt.Sprintf(`PRAGMA user_version = %d`, newer)); err != nil {
		t.Fatalf("set user_version: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("raw close: %v", err)
	}

	s, err := Open(path)
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a database with a newer schema")
	}
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("error = %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{path, fmt.Sprintf("schema version %d", newer), fmt.Sprintf("up to %d", schemaVersion)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	var version int
	rawQuery(t, path, `PRAGMA user_version`, &version)
	if version != newer {
		t.Fatalf("user_version = %d after refused open, want %d unchanged", version, newer)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		opts []Option
	}{
		{"empty path", "", nil},
		{"memory", ":memory:", nil},
		{"uri", "file:" + filepath.Join(dir, "x.db"), nil},
		{"query in name", filepath.Join(dir, "x.db?mode=ro"), nil},
		{"missing directory", filepath.Join(dir, "no", "such", "dir", "x.db"), nil},
		{"not a database", garbage, nil},
		{"negative busy timeout", filepath.Join(dir, "y.db"), []Option{WithBusyTimeout(-time.Second)}},
		{"no read connections", filepath.Join(dir, "z.db"), []Option{WithReadConns(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(tt.path, tt.opts...)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded, want an error", tt.path)
			}
		})
	}
}

func TestSubSecondTimesRoundTrip(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	j := testJob()
	j.CreatedAt = time.Date(2024, 3, 1, 12, 0, 0, 123456789, time.FixedZone("X", -7*3600))
	j.UpdatedAt = j.CreatedAt.Add(time.Nanosecond)
	created, err := s.CreateJob(ctx, j, nil, nil)
	if err != nil {
		t.Fatalf("create job: %v", err)
	}
	got, err := s.GetJob(ctx, created.ID)
	if err != nil {
		t.Fatalf("get job: %v", err)
	}
	if !got.CreatedAt.Equal(j.CreatedAt) || !got.UpdatedAt.Equal(j.UpdatedAt) {
		t.Fatalf("times = %v, %v; want %v, %v", got.CreatedAt, got.UpdatedAt, j.CreatedAt, j.UpdatedAt)
	}
}

func TestOrderingByTimeIsChronological(t *testing.T) {
	// Text timestamps must sort chronologically, including whole seconds against fractions.
	s, _ := openTemp(t)
	ctx := t.Context()
	offsets := []time.Duration{time.Second + 500*time.Millisecond, time.Second, 900 * time.Millisecond, 2 * time.Second}
	for _, d := range offsets {
		j := testJob()
		j.CreatedAt = t0.Add(d)
		if _, err := s.CreateJob(ctx, j, nil, nil); err != nil {
			t.Fatalf("create job: %v", err)
		}
	}
	got, _, err := s.ListJobs(ctx, store.JobQuery{OrderBy: "timestamp"})
	if err != nil {
		t.Fatalf("list jobs: %v", err)
	}
	want := []int64{3, 2, 1, 4}
	for i, j := range got {
		if j.ID != want[i] {
			t.Fatalf("order = %v, want ids %v", got, want)
		}
	}
}

func TestRejectsBadInput(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	far := testJob()
	far.CreatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := s.CreateJob(ctx, far, nil, nil); err == nil {
		t.Fatal("CreateJob accepted a time past year 9999")
	}
	if _, err := s.CreateJob(ctx, testJob(), []jobs.Node{{Name: "a"}, {Name: "a"}}, nil); !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateJob with a duplicate node: error = %v, want ErrExists", err)
	}
	if _, total, err := s.ListJobs(ctx, store.JobQuery{}); err != nil || total != 0 {
		t.Fatalf("after failed creates: total = %d, err = %v; want 0 jobs", total, err)
	}
	if _, _, err := s.ListJobs(ctx, store.JobQuery{OrderBy: "colour"}); err == nil {
		t.Fatal("ListJobs accepted an unknown OrderBy")
	}
	if _, _, err := s.ListJobs(ctx, store.JobQuery{Limit: -1}); err == nil {
		t.Fatal("ListJobs accepted a negative limit")
	}
	if err := s.DeleteNode(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteNode of unknown node: error = %v, want ErrNotFound", err)
	}
	if _, err := s.UpdateJobNode(ctx, jobs.Node{JobID: 7, Name: "a", Version: 1}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateJobNode of unknown job: error = %v, want ErrNotFound", err)
	}
	if _, err := s.FindJobNodeByTransaction(ctx, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("FindJobNodeByTransaction(\"\"): error = %v, want ErrNotFound", err)
	}
	if err := s.UseNonce(ctx, "", fixedNow, fixedNow.Add(time.Hour)); err == nil || errors.Is(err, store.ErrExists) {
		t.Fatalf("UseNonce(\"\"): error = %v, want a refusal", err)
	}
	if err := s.UseNonce(ctx, "n", fixedNow, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)); err == nil {
		t.Fatal("UseNonce accepted an expiry past year 9999")
	}
	j, err := s.CreateJob(ctx, testJob(), nil, nil)
	if err != nil {
		t.Fatalf("create job: %v", err)
	}
	for _, u := range []store.Usage{{ReadUnits: math.NaN()}, {WriteUnits: math.Inf(-1)}} {
		if err := s.AddJobUsage(ctx, j.ID, u); err == nil {
			t.Fatalf("AddJobUsage accepted %+v", u)
		}
	}
	if u, err := s.JobUsage(ctx, j.ID); err != nil || u != (store.Usage{}) {
		t.Fatalf("usage after refused adds: %+v, %v; want zeros", u, err)
	}
}

func TestQueriesUseIndexes(t *testing.T) {
	s, _ := openTemp(t)
	pendingQ, pendingArgs := jobNodesByNameQuery("n", []jobs.NodeState{jobs.NodeReady, jobs.NodeRunning})
	runningQ, runningArgs := jobNodesByNameQuery("n", []jobs.NodeState{jobs.NodeRunning})
	finishedQ, finishedArgs := jobNodesByNameQuery("n", []jobs.NodeState{jobs.NodeFinished})
	anyQ, anyArgs := jobNodesByNameQuery("n", nil)
	tests := []struct {
		name  string
		query string
		args  []any
		index string
	}{
		{"by transaction", findByTransactionSQL, []any{"t", int64(0)}, "job_nodes_foreign_transaction"},
		{"by transaction in its job", findByTransactionSQL, []any{"7_t", int64(7)}, "(job_id=?)"},
		{"pending work by name", pendingQ, pendingArgs, "job_nodes_active_name"},
		{"running records by name", runningQ, runningArgs, "job_nodes_active_name"},
		{"finished records by name: unfinished jobs first", finishedQ, finishedArgs, "jobs_state_created"},
		{"any record by name: unfinished jobs first", anyQ, anyArgs, "jobs_state_created"},
		{"by idempotency key", jobByIdempotencySQL, []any{"admin", "k"}, "jobs_idempotency"},
		{"active nodes of unfinished jobs", activeSQL, unfinishedStates, "jobs_state_created"},
		{"queued nodes of a job", mustInState(jobs.NodeNew), []any{int64(1), 10}, "job_nodes_queued"},
		{"running nodes of a job", mustInState(jobs.NodeRunning), []any{int64(1), "running", 10}, "job_nodes_active_seq"},
		{"due nodes", `SELECT job_id FROM job_nodes WHERE due_at IS NOT NULL AND due_at <= ? ORDER BY due_at LIMIT ?`, []any{"2024", 10}, "job_nodes_due"},
		{"unfinished jobs", `SELECT id FROM jobs WHERE state IN (` + placeholders(len(unfinishedStates)) + `) ORDER BY created_at, id`, unfinishedStates, "jobs_state_created"},
		{"connected nodes", `UPDATE nodes SET connected = 0 WHERE connected <> 0`, nil, "nodes_connected"},
		{"a fact path", `SELECT name, value FROM node_facts WHERE path = ?`, []any{`["os"]`}, "PRIMARY KEY"},
		{"all tokens", listTokensSQL, nil, "tokens_created"},
		{"tokens of a login", listLoginTokensSQL, []any{"alice"}, "tokens_login_created"},
		{"finish range", `SELECT id FROM jobs WHERE finished_at >= ? AND finished_at <= ?`, []any{"2024", "2025"}, "jobs_finished"},
		{"expired nonces", deleteExpiredNoncesSQL, []any{"2024"}, "nonces_expires"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := s.r.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+tt.query, tt.args...)
			if err != nil {
				t.Fatalf("explain: %v", err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatalf("scan plan: %v", err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatalf("plan rows: %v", err)
			}
			if !strings.Contains(strings.Join(plan, "\n"), tt.index) {
				t.Fatalf("plan %q does not use index %s", plan, tt.index)
			}
			if testing.Verbose() {
				t.Logf("plan %q", plan)
			}
		})
	}
}

func mustInState(st jobs.NodeState) string {
	q, _ := inStateSQL(st)
	return q
}

func BenchmarkUpdateJobNode(b *testing.B) {
	s, _ := openTemp(b)
	ctx := context.Background()
	j, err := s.CreateJob(ctx, testJob(), []jobs.Node{{Name: "a", State: jobs.NodeNew}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	n, err := s.GetJobNode(ctx, j.ID, "a")
	if err != nil {
		b.Fatal(err)
	}
	ev := jobs.Event{Type: jobs.EventNodeRunning, Timestamp: t0, Node: "a", Detail: json.RawMessage(`{"x":1}`)}
	for b.Loop() {
		n.Message = "running"
		if n, err = s.UpdateJobNode(ctx, n, ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCreateJob(b *testing.B) {
	for _, size := range []int{100, 10000} {
		b.Run(fmt.Sprintf("%d nodes", size), func(b *testing.B) {
			s, _ := openTemp(b)
			ctx := context.Background()
			nodes := make([]jobs.Node, size)
			for i := range nodes {
				nodes[i] = jobs.Node{Name: fmt.Sprintf("node%05d.example.com", i), State: jobs.NodeNew}
			}
			for b.Loop() {
				if _, err := s.CreateJob(ctx, testJob(), nodes, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestUseNonceDeletesExpiredRecords(t *testing.T) {
	s, path := openTemp(t)
	ctx := t.Context()
	now := time.Date(2031, time.May, 4, 8, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	for _, n := range []string{"old1", "old2", "old3"} {
		if err := s.UseNonce(ctx, n, now, past); err != nil {
			t.Fatalf("use %s: %v", n, err)
		}
	}
	if err := s.UseNonce(ctx, "live", now, future); err != nil {
		t.Fatalf("use live: %v", err)
	}
	// Each use deletes the records expired by then: only the live one is left.
	var rows int
	rawQuery(t, path, `SELECT COUNT(*) FROM nonces`, &rows)
	if rows != 1 {
		t.Fatalf("%d nonce records after expiry, want 1 (the live one)", rows)
	}
	var nonce string
	rawQuery(t, path, `SELECT nonce FROM nonces`, &nonce)
	if nonce != "live" {
		t.Fatalf("kept nonce %q, want %q", nonce, "live")
	}
}

// TestWritesCommitInGroups checks group commit: writes queued while a transaction commits
// go into the next one together, each learns its own outcome, and one that fails (here a
// stale version, and a panic) is undone alone.
func TestWritesCommitInGroups(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	const n = 100
	var list []jobs.Node
	for i := range n {
		list = append(list, jobs.Node{Name: fmt.Sprintf("n%03d", i), State: jobs.NodeNew})
	}
	j, err := s.CreateJob(ctx, testJob(), list, nil)
	if err != nil {
		t.Fatal(err)
	}
	release := holdCommitter(t, s)
	before := s.Stats()
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			node := jobs.Node{JobID: j.ID, Name: list[i].Name, State: jobs.NodeReady, Version: 1}
			if i == 7 {
				node.Version = 5 // stale
			}
			_, errs[i] = s.UpdateJobNode(ctx, node, jobs.Event{Type: jobs.EventNodeRunning, Timestamp: t0, Node: node.Name})
		})
	}
	wg.Go(func() {
		errs[n] = s.write(ctx, func(context.Context, dbtx) error { panic("boom") })
	})
	waitQueued(t, s, n+1)
	release()
	wg.Wait()
	for i, err := range errs {
		switch {
		case i == 7:
			if !errors.Is(err, store.ErrConflict) {
				t.Errorf("stale update: %v, want ErrConflict", err)
			}
		case i == n:
			if err == nil || !strings.Contains(err.Error(), "panicked") {
				t.Errorf("panicking write: %v, want an error saying so", err)
			}
		case err != nil:
			t.Errorf("update %d: %v", i, err)
		}
	}
	after := s.Stats()
	if commits, writes := after.Commits-before.Commits, after.Writes-before.Writes; commits != 2 || writes != n {
		t.Fatalf("%d commits for %d writes, want 2 (the blocker's, then one for the %d queued) for %d", commits, writes, n-1, n)
	}
	if reruns := after.Reruns - before.Reruns; reruns != 1 {
		t.Fatalf("%d groups run again, want 1: for the panic (what a panicking write changed is not known)", reruns)
	}
	counts, err := s.JobCounts(ctx, j.ID)
	if err != nil || counts[jobs.NodeReady] != n-1 || counts[jobs.NodeNew] != 1 {
		t.Fatalf("counts %v, %v: want %d ready and the stale one new", counts, err, n-1)
	}
	evs, err := s.ListEvents(ctx, j.ID, 1, 0)
	if err != nil || len(evs) != n-1 {
		t.Fatalf("%d events, %v; want %d (none from the refused update)", len(evs), err, n-1)
	}

	// A stale version alone fails having changed nothing: the group needs no second run.
	release = holdCommitter(t, s)
	before = s.Stats()
	for i := range 10 {
		wg.Go(func() {
			node := jobs.Node{JobID: j.ID, Name: list[10+i].Name, State: jobs.NodeRunning, Version: 2}
			if i == 3 {
				node.Version = 1 // stale
			}
			_, errs[i] = s.UpdateJobNode(ctx, node, jobs.Event{Type: jobs.EventNodeRunning, Timestamp: t0, Node: node.Name})
		})
	}
	waitQueued(t, s, 10)
	release()
	wg.Wait()
	for i, err := range errs[:10] {
		if (i == 3) != errors.Is(err, store.ErrConflict) {
			t.Errorf("update %d: %v", i, err)
		}
	}
	if reruns := s.Stats().Reruns - before.Reruns; reruns != 0 {
		t.Fatalf("%d groups run again: a stale version changed nothing, so nothing needed undoing", reruns)
	}
}

// holdCommitter blocks the committer with a write of its own until release is called, so
// that writes queued meanwhile run as one group.
func holdCommitter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	hold, busy := make(chan struct{}), make(chan struct{})
	blocker := make(chan error, 1)
	go func() {
		blocker <- s.write(t.Context(), func(context.Context, dbtx) error {
			close(busy)
			<-hold
			return nil
		})
	}()
	<-busy
	return func() {
		close(hold)
		if err := <-blocker; err != nil {
			t.Fatal(err)
		}
	}
}

// waitQueued waits until n writes are queued for the committer.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.ops) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", len(s.ops), n)
		}
		runtime.Gosched()
	}
}

// TestFailureAfterAChangeIsUndoneAlone checks the group's careful run: operations run
// without savepoints, and one that fails after changing something — as a whole operation,
// or as one item of an operation (inSavepoint) — makes the store roll the group back and
// run it again with a savepoint per operation and item. Only the failed part is undone;
// the rest commits, and each operation's outputs are those of the run that committed. A
// failure that changed nothing (a statement refused on a constraint) needs no second run.
func TestFailureAfterAChangeIsUndoneAlone(t *testing.T) {
	insert := func(ctx context.Context, tx dbtx, nonce string) error {
		_, err := tx.ExecContext(ctx, insertNonceSQL, nonce, "2031-05-04T08:00:00Z")
		return err
	}
	boom := errors.New("boom")
	tests := []struct {
		name       string
		ops        []func(ctx context.Context, tx dbtx) error
		wantErrs   []bool
		wantNonces []string
		reruns     int64
		runs       []int // times each operation ran: up to the failure, twice when run again
	}{{
		name: "an operation fails after an insert",
		ops: []func(ctx context.Context, tx dbtx) error{
			func(ctx context.Context, tx dbtx) error { return insert(ctx, tx, "a") },
			func(ctx context.Context, tx dbtx) error {
				if err := insert(ctx, tx, "b"); err != nil {
					return err
				}
				return boom
			},
			func(ctx context.Context, tx dbtx) error { return insert(ctx, tx, "c") },
		},
		wantErrs:   []bool{false, true, false},
		wantNonces: []string{"a", "c"},
		reruns:     1,
		runs:       []int{2, 2, 1},
	}, {
		name: "an item fails after an insert, its operation goes on",
		ops: []func(ctx context.Context, tx dbtx) error{
			func(ctx context.Context, tx dbtx) error {
				if err := insert(ctx, tx, "a"); err != nil {
					return err
				}
				failed := inSavepoint(ctx, tx, func() error {
					if err := insert(ctx, tx, "b"); err != nil {
						return err
					}
					return boom
				})
				if !errors.Is(failed, boom) {
					return fmt.Errorf("item: %v, want boom", failed)
				}
				return inSavepoint(ctx, tx, func() error { return insert(ctx, tx, "c") })
			},
			func(ctx context.Context, tx dbtx) error { return insert(ctx, tx, "d") },
		},
		wantErrs:   []bool{false, false},
		wantNonces: []string{"a", "c", "d"},
		reruns:     1,
		runs:       []int{2, 1},
	}, {
		name: "an item panics after an insert",
		ops: []func(ctx context.Context, tx dbtx) error{
			func(ctx context.Context, tx dbtx) error {
				if err := insert(ctx, tx, "a"); err != nil {
					return err
				}
				return inSavepoint(ctx, tx, func() error {
					if err := insert(ctx, tx, "x"); err != nil {
						return err
					}
					panic("boom")
				})
			},
			func(ctx context.Context, tx dbtx) error { return insert(ctx, tx, "b") },
		},
		wantErrs:   []bool{true, false},
		wantNonces: []string{"b"},
		reruns:     1,
		runs:       []int{2, 1},
	}, {
		name: "SQLite fails a statement for another reason than a constraint",
		ops: []func(ctx context.Context, tx dbtx) error{
			func(ctx context.Context, tx dbtx) error { return insert(ctx, tx, "a") },
			func(ctx context.Context, tx dbtx) error {
				_, err := tx.ExecContext(ctx, `DELETE FROM no_such_table`)
				return err
			},
			func(ctx context.Context, tx dbtx) error { return insert(ctx, tx, "b") },
		},
		wantErrs:   []bool{false, true, false},
		wantNonces: []string{"a", "b"},
		reruns:     1, // it may have rolled back the transaction: the group runs again
		runs:       []int{2, 2, 1},
	}, {
		name: "a refused insert changes nothing",
		ops: []func(ctx context.Context, tx dbtx) error{
			func(ctx context.Context, tx dbtx) error { return insert(ctx, tx, "a") },
			func(ctx context.Context, tx dbtx) error { return insert(ctx, tx, "a") }, // the primary key is taken
			func(ctx context.Context, tx dbtx) error {
				return inSavepoint(ctx, tx, func() error { return insert(ctx, tx, "a") })
			},
			func(ctx context.Context, tx dbtx) error { return insert(ctx, tx, "b") },
		},
		wantErrs:   []bool{false, true, true, false},
		wantNonces: []string{"a", "b"},
		reruns:     0,
		runs:       []int{1, 1, 1, 1},
	}, {
		name: "a failure after a read changes nothing",
		ops: []func(ctx context.Context, tx dbtx) error{
			func(ctx context.Context, tx dbtx) error { return insert(ctx, tx, "a") },
			func(ctx context.Context, tx dbtx) error {
				var n int
				if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM nonces`).Scan(&n); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `DELETE FROM nonces WHERE nonce = 'none'`); err != nil {
					return err
				}
				return boom
			},
		},
		wantErrs:   []bool{false, true},
		wantNonces: []string{"a"},
		reruns:     0,
		runs:       []int{1, 1},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openTemp(t)
			ctx := t.Context()
			release := holdCommitter(t, s)
			before := s.Stats()
			errs := make([]error, len(tc.ops))
			runs := make([]int, len(tc.ops))
			var wg sync.WaitGroup
			for i, op := range tc.ops {
				wg.Go(func() {
					errs[i] = s.write(ctx, func(ctx context.Context, tx dbtx) error {
						runs[i]++
						return op(ctx, tx)
					})
				})
				waitQueued(t, s, i+1) // queued in order
			}
			release()
			wg.Wait()
			for i, err := range errs {
				if (err != nil) != tc.wantErrs[i] {
					t.Errorf("write %d: %v, want an error: %v", i, err, tc.wantErrs[i])
				}
				if _, undo := err.(errUndo); undo {
					t.Errorf("write %d: the careful run's error is the operation's own, got %T", i, err)
				}
			}
			var got []string
			rows, err := s.r.QueryContext(ctx, `SELECT nonce FROM nonces ORDER BY nonce`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var n string
				if err := rows.Scan(&n); err != nil {
					t.Fatal(err)
				}
				got = append(got, n)
			}
			rows.Close()
			if strings.Join(got, ",") != strings.Join(tc.wantNonces, ",") {
				t.Errorf("nonces %v, want %v", got, tc.wantNonces)
			}
			after := s.Stats()
			if reruns := after.Reruns - before.Reruns; reruns != tc.reruns {
				t.Errorf("%d groups run again, want %d", reruns, tc.reruns)
			}
			if commits := after.Commits - before.Commits; commits != 2 {
				t.Errorf("%d commits, want 2: the blocker's and the group's", commits)
			}
			if fmt.Sprint(runs) != fmt.Sprint(tc.runs) {
				t.Errorf("writes ran %v times, want %v", runs, tc.runs)
			}
		})
	}
}

// TestNoConflictResolutionThatKeepsChanges guards what runGroup relies on: a statement
// refused on a constraint changed nothing (SQLite's default resolution, ABORT, backs it out).
// FAIL or ROLLBACK resolution, in a statement or a column's constraint, and RAISE in a
// trigger would keep rows already changed or end the transaction.
func TestNoConflictResolutionThatKeepsChanges(t *testing.T) {
	var texts []string
	for _, m := range migrations {
		texts = append(texts, m.stmts...)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, string(b))
	}
	space := regexp.MustCompile(`\s+`)
	for _, text := range texts {
		norm := strings.ToUpper(space.ReplaceAllString(text, " "))
		for _, bad := range []string{"OR FAIL", "OR ROLLBACK", "ON CONFLICT FAIL", "ON CONFLICT ROLLBACK", "RAISE("} {
			if strings.Contains(norm, bad) {
				t.Errorf("%q in the store's SQL: a statement refused on a constraint would keep changes (see txn.noteExec)", bad)
			}
		}
	}
}

func TestStatementKinds(t *testing.T) {
	for _, tc := range []struct {
		query          string
		changes, reads bool
	}{
		{"SELECT 1", false, true},
		{"\n\t  select name FROM nodes", false, true},
		{"(SELECT 1)", false, true},
		{"INSERT INTO nonces VALUES (?, ?)", true, false},
		{"  update job_nodes SET x = 1", true, false},
		{"DELETE FROM nonces", true, false},
		{"REPLACE INTO t VALUES (1)", true, false},
		{"WITH x AS (SELECT 1) UPDATE t SET a = 1", true, false},
		{"INSERT INTO t VALUES (1) RETURNING id", true, false},
		{"PRAGMA user_version = 3", false, false},
		{"SAVEPOINT op", false, false},
		{"CREATE TABLE t (a)", false, false},
		{"SELECTED", false, false},
		{"", false, false},
	} {
		if got := changesRows(tc.query); got != tc.changes {
			t.Errorf("changesRows(%q) = %v, want %v", tc.query, got, tc.changes)
		}
		if got := readsOnly(tc.query); got != tc.reads {
			t.Errorf("readsOnly(%q) = %v, want %v", tc.query, got, tc.reads)
		}
	}
}

// TestCancelledWriteIsNotRun checks that a write whose context ended while queued fails
// without running.
func TestCancelledWriteIsNotRun(t *testing.T) {
	s, _ := openTemp(t)
	release, busy := make(chan struct{}), make(chan struct{})
	go func() {
		_ = s.write(t.Context(), func(context.Context, dbtx) error {
			close(busy)
			<-release
			return nil
		})
	}()
	<-busy
	ctx, cancel := context.WithCancel(t.Context())
	ran := false
	done := make(chan error, 1)
	go func() {
		done <- s.write(ctx, func(context.Context, dbtx) error { ran = true; return nil })
	}()
	for len(s.ops) < 1 {
		runtime.Gosched()
	}
	cancel()
	close(release)
	if err := <-done; !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("cancelled write: %v, ran %v; want context.Canceled, not run", err, ran)
	}
}

// BenchmarkNodeRuns is a fan-out's store work: a job of 500 nodes claimed in batches of 100,
// then each node marked running and finished, with an event each, by 50 concurrent writers
// whose writes the store groups into shared commits. It reports CPU-bound time per node-run.
func BenchmarkNodeRuns(b *testing.B) {
	s, _ := openTemp(b)
	ctx := context.Background()
	const size, writers = 500, 50
	nodes := make([]jobs.Node, size)
	for i := range nodes {
		nodes[i] = jobs.Node{Name: fmt.Sprintf("node%04d.example.com", i), State: jobs.NodeNew}
	}
	claim := store.Claim{Limit: 100, Apply: func(n jobs.Node) (jobs.Node, []jobs.Event) {
		n.State = jobs.NodeReady
		return n, nil
	}}
	detail := json.RawMessage(`{"transaction_id":"0f8e7d6c-5b4a-4938-8271-605f4e3d2c1b"}`)
	cpu0 := processCPU(b)
	for b.Loop() {
		j, err := s.CreateJob(ctx, testJob(), nodes, nil)
		if err != nil {
			b.Fatal(err)
		}
		var claimed []jobs.Node
		for len(claimed) < size {
			got, err := s.ClaimJobNodes(ctx, j.ID, claim)
			if err != nil {
				b.Fatal(err)
			}
			claimed = append(claimed, got...)
		}
		work := make(chan jobs.Node, size)
		for _, n := range claimed {
			work <- n
		}
		close(work)
		var wg sync.WaitGroup
		for range writers {
			wg.Go(func() {
				for n := range work {
					n.State = jobs.NodeRunning
					n, err := s.UpdateJobNode(ctx, n, jobs.Event{Type: jobs.EventNodeRunning, Timestamp: t0, Node: n.Name, Detail: detail})
					if err != nil {
						b.Error(err)
						return
					}
					n.State = jobs.NodeFinished
					n.Result = json.RawMessage(`{"ok":true}`)
					if _, err := s.UpdateJobNode(ctx, n, jobs.Event{Type: jobs.EventNodeFinished, Timestamp: t0, Node: n.Name, Detail: detail}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/node-run")
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N*size), "cpu-ns/node-run")
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
