package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

// frozenSchema returns the frozen schema SQL of version v (testdata/schema_v<v>.sql), without
// its comment header.
func frozenSchema(t *testing.T, v int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", fmt.Sprintf("schema_v%d.sql", v)))
	if err != nil {
		t.Fatalf("read v%d schema: %v", v, err)
	}
	var lines []string
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if len(lines) == 0 && strings.HasPrefix(l, "--") {
			continue
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "")
}

// latestVersion is the schema version the migration tests expect Open to leave.
const latestVersion = 9

func TestReleasedSchemaUnchanged(t *testing.T) {
	// Each released version's file is the whole schema of that version: every migration up to it.
	for v := 1; v <= latestVersion-1; v++ {
		t.Run(fmt.Sprintf("version %d", v), func(t *testing.T) {
			var stmts []string
			for _, m := range migrations[:v] {
				stmts = append(stmts, m.stmts...)
			}
			got := strings.Join(stmts, ";\n\n") + ";\n"
			if got != frozenSchema(t, v) {
				t.Fatalf("migrations[:%d] differ from testdata/schema_v%d.sql: released migrations must not change; append a new one", v, v)
			}
		})
	}
}

// createVersion writes a version v database at path from the frozen schema of v and runs
// inserts on it.
func createVersion(t *testing.T, v int, path string, inserts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("raw open: %v", err)
	}
	defer db.Close()
	stmts := append([]string{frozenSchema(t, v), fmt.Sprintf(`PRAGMA user_version = %d`, v)}, inserts...)
	for _, stmt := range stmts {
		if _, err := db.ExecContext(t.Context(), stmt); err != nil {
			t.Fatalf("build v%d file: %s: %v", v, stmt, err)
		}
	}
}

// openMigrated opens the version from file at path, which Open migrates, closes it when the
// test ends and checks that it is at the latest version.
func openMigrated(t *testing.T, path string, from int) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatalf("open v%d file: %v", from, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	var version int
	rawQuery(t, path, `PRAGMA user_version`, &version)
	if version != latestVersion || schemaVersion != latestVersion {
		t.Fatalf("user_version = %d after migration, want %d (schemaVersion %d)", version, latestVersion, schemaVersion)
	}
	return s
}

// createV1 writes a version 1 database at path and runs inserts on it.
func createV1(t *testing.T, path string, inserts ...string) {
	t.Helper()
	createVersion(t, 1, path, inserts...)
}

// v1Job returns an INSERT of a version 1 job row.
func v1Job(id int, typ, state, options, status, updated string, lastEvent int) string {
	return fmt.Sprintf(`INSERT INTO jobs (id, type, state, environment, description, owner_id, owner_login, options,
		payload, concurrency, timeout, node_count, created_at, updated_at, status, stop, version, last_event_id)
		VALUES (%d, '%s', '%s', 'production', 'job %d', '42', 'admin', CAST('%s' AS BLOB), X'00FF', 2, 60, 2,
		'2024-03-01T12:00:0%d.000000000Z', '%s', '%s', '', 3, %d)`,
		id, typ, state, id, options, id, updated, status, lastEvent)
}

func TestMigrateFromV1(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "v1.db")
	const updated = "2024-03-01T12:10:00.000000000Z"
	createV1(t, path,
		v1Job(1, "task", "running", `{"task":"Package::Install","params":{"name":"vim"}}`,
			`[{"state":"ready","enter_time":"2024-03-01T12:00:01Z","exit_time":"2024-03-01T12:00:02Z"},`+
				`{"state":"running","enter_time":"2024-03-01T12:00:02Z","exit_time":null}]`, updated, 2),
		v1Job(2, "deploy", "finished", `{"environment":"production"}`,
			`[{"state":"running","enter_time":"2024-03-01T12:00:02Z","exit_time":"2024-03-01T12:05:00.5Z"},`+
				`{"state":"finished","enter_time":"2024-03-01T12:05:00.5Z","exit_time":"2024-03-01T12:05:00.5Z"}]`, updated, 0),
		v1Job(3, "task", "failed", `not json`, `[]`, updated, 0),
		v1Job(4, "task", "stopped", `{"task":5}`, `[{"state":"stopped","enter_time":"2024-03-01T12:07:00Z","exit_time":null}]`, updated, 0),
		`INSERT INTO job_nodes (job_id, seq, name, state, transaction_id, ready_at, started_at, finished_at, result,
			message, latest_event_id, version) VALUES
			(1, 0, 'a', 'running', 'txn-a', '2024-03-01T12:00:02.000000000Z', '2024-03-01T12:00:03.000000000Z', NULL, NULL, 'sent', 1, 3),
			(1, 1, 'b', 'new', '', NULL, NULL, NULL, NULL, '', 0, 1),
			(2, 0, 'a', 'running', 'txn-stale', NULL, NULL, NULL, NULL, '', 0, 2)`,
		`INSERT INTO events (job_id, id, type, timestamp, node, detail, message) VALUES
			(1, 1, 'node_running', '2024-03-01T12:00:03.000000000Z', 'a', CAST('{"x":1}' AS BLOB), 'running'),
			(1, 2, 'node_running', '2024-03-01T12:00:04.000000000Z', 'a', NULL, 'still running')`,
		`INSERT INTO nodes (name, credential_hash, facts, connected, broker, connection, connected_at, created_at, version)
			VALUES ('a', 'hash-a', CAST('{}' AS BLOB), 1, 'pcp://b/server', 'c1', NULL, '2024-01-01T00:00:00.000000000Z', 4)`,
		`INSERT INTO tokens (hash, login, label, created_at, expires_at, revoked)
			VALUES ('tok', 'admin', 'ci', '2024-01-01T00:00:00.000000000Z', NULL, 0)`,
	)

	s := openMigrated(t, path, 1)

	tm := func(s string) *time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatalf("parse %s: %v", s, err)
		}
		return &v
	}
	tests := []struct {
		id       int64
		task     string
		finished *time.Time
	}{
		{1, "Package::Install", nil},
		{2, "", tm("2024-03-01T12:05:00.5Z")}, // a deploy has no task
		{3, "", tm(updated)},                  // no terminal status entry: the update time
		{4, "", tm("2024-03-01T12:07:00Z")},   // "task" is not a string
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("job %d", tt.id), func(t *testing.T) {
			j, err := s.GetJob(ctx, tt.id)
			if err != nil {
				t.Fatalf("get job: %v", err)
			}
			if j.Task != tt.task || j.IdempotencyKey != "" || j.MaxErrors != -1 {
				t.Fatalf("task=%q key=%q max_errors=%d, want task=%q key=\"\" max_errors=-1", j.Task, j.IdempotencyKey, j.MaxErrors, tt.task)
			}
			if (j.FinishedAt == nil) != (tt.finished == nil) || (j.FinishedAt != nil && !j.FinishedAt.Equal(*tt.finished)) {
				t.Fatalf("finished_at = %v, want %v", j.FinishedAt, tt.finished)
			}
			// Version 1 data is kept as it was.
			if j.Version != 3 || j.Owner.Login != "admin" || j.Description != fmt.Sprintf("job %d", tt.id) ||
				string(j.Payload) != "\x00\xff" || j.Concurrency != 2 || j.Timeout != 60 || j.NodeCount != 2 {
				t.Fatalf("job after migration = %+v", j)
			}
		})
	}

	// The filters work on migrated data.
	got, total, err := s.ListJobs(ctx, store.JobQuery{Task: "package::"})
	if err != nil || total != 1 || len(got) != 1 || got[0].ID != 1 {
		t.Fatalf("task filter after migration: %d jobs (total %d), err %v; want job 1", len(got), total, err)
	}
	got, total, err = s.ListJobs(ctx, store.JobQuery{MaxFinish: tm("2024-03-01T12:07:00Z")})
	if err != nil || total != 2 || len(got) != 2 || got[0].ID != 2 || got[1].ID != 4 {
		t.Fatalf("finish filter after migration: %v (total %d), err %v; want jobs 2 and 4", got, total, err)
	}

	// Nodes, events, inventory and tokens are kept; counters carry on.
	n, err := s.FindJobNodeByTransaction(ctx, "txn-a")
	if err != nil || n.JobID != 1 || n.Name != "a" || n.Version != 3 || n.StartedAt == nil {
		t.Fatalf("find txn-a after migration: %+v, %v", n, err)
	}
	if active, err := s.CountActiveNodes(ctx); err != nil || active != 1 {
		t.Fatalf("active nodes after migration = %d, %v; want 1 (job 2 is finished)", active, err)
	}
	evs, err := s.ListEvents(ctx, 1, 0, 0)
	if err != nil || len(evs) != 2 || string(evs[0].Detail) != `{"x":1}` {
		t.Fatalf("events after migration: %+v, %v", evs, err)
	}
	n, err = s.UpdateJobNode(ctx, n, jobs.Event{Type: jobs.EventNodeFinished, Timestamp: t0, Node: "a"})
	if err != nil || n.LatestEventID != 3 {
		t.Fatalf("append event after migration: latest %d, %v; want 3", n.LatestEventID, err)
	}
	if node, err := s.GetNode(ctx, "a"); err != nil || node.Version != 4 || !node.Connected {
		t.Fatalf("inventory node after migration: %+v, %v", node, err)
	}
	if tok, err := s.GetToken(ctx, "tok"); err != nil || tok.Label != "ci" {
		t.Fatalf("token after migration: %+v, %v", tok, err)
	}
	j := testJob()
	j.IdempotencyKey = "k"
	created, err := s.CreateJob(ctx, j, nil, nil)
	if err != nil || created.ID != 5 {
		t.Fatalf("create job after migration: id %d, %v; want 5", created.ID, err)
	}
	if _, err := s.CreateJob(ctx, j, nil, nil); !errors.Is(err, store.ErrExists) {
		t.Fatalf("create duplicate key after migration: %v, want ErrExists", err)
	}
	if _, err := s.CreateGroup(ctx, inventory.Group{Name: "g", Nodes: []string{"a"}, CreatedAt: t0}); err != nil {
		t.Fatalf("create group after migration: %v", err)
	}
}

func TestFailedMigrationChangesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	// A finished job without a terminal status entry and with an unreadable update time
	// cannot be backfilled.
	createV1(t, path, v1Job(1, "task", "finished", `{"task":"x"}`, `[]`, "garbage", 0))
	s, err := Open(path)
	if err == nil {
		s.Close()
		t.Fatal("Open migrated a file whose backfill must fail")
	}
	if !strings.Contains(err.Error(), "version 2") {
		t.Errorf("error %q does not name the failed migration", err)
	}
	var version, columns int
	rawQuery(t, path, `PRAGMA user_version`, &version)
	rawQuery(t, path, `SELECT COUNT(*) FROM pragma_table_info('jobs') WHERE name = 'task'`, &columns)
	if version != 1 || columns != 0 {
		t.Fatalf("after the failed migration: user_version %d, task column count %d; want 1 and 0", version, columns)
	}
}

func TestActiveIndexMatchesNodeStates(t *testing.T) {
	var quoted []string
	for _, st := range jobs.AllNodeStates {
		if st.Active() {
			quoted = append(quoted, "'"+string(st)+"'")
		}
	}
	cond := "state IN (" + strings.Join(quoted, ", ") + ")"
	if !strings.Contains(activeSQL, "c."+cond) {
		t.Errorf("activeSQL %q does not select %s", activeSQL, cond)
	}
	for _, st := range []jobs.NodeState{jobs.NodeReady, jobs.NodeRunning} {
		if q, _ := inStateSQL(st); !strings.Contains(q, cond) {
			t.Errorf("the query of %s records %q does not repeat the index condition %s", st, q, cond)
		}
	}
	var index string
	for _, stmt := range migrations[5].stmts {
		if strings.Contains(stmt, "CREATE INDEX job_nodes_active_seq") {
			index = stmt
		}
	}
	if !strings.HasSuffix(index, "WHERE "+cond) {
		t.Errorf("index %q is not on %s", index, cond)
	}
	if q, _ := jobNodesByNameQuery("a", []jobs.NodeState{jobs.NodeRunning}); !strings.Contains(q, "n."+cond) {
		t.Errorf("the query of a node's running records %q does not repeat the index condition %s", q, cond)
	}
	if byName := migrations[8].stmts[1]; !strings.HasSuffix(byName, "WHERE "+cond) {
		t.Errorf("index %q is not on %s", byName, cond)
	}
}

// createV2 writes a version 2 database at path and runs inserts on it.
func createV2(t *testing.T, path string, inserts ...string) {
	t.Helper()
	createVersion(t, 2, path, inserts...)
}

func TestMigrateFromV2(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "v2.db")
	createV2(t, path,
		`INSERT INTO jobs (id, type, state, environment, description, owner_id, owner_login, options, payload,
			concurrency, timeout, node_count, created_at, updated_at, status, stop, version, last_event_id,
			task, task_fold, finished_at, idempotency_key, max_errors)
			VALUES (7, 'task', 'finished', 'production', 'job 7', '42', 'alice', CAST('{"task":"Facts"}' AS BLOB), NULL,
			0, 0, 0, '2024-03-01T12:00:00.000000000Z', '2024-03-01T12:01:00.000000000Z', '[]', '', 4, 0,
			'Facts', 'facts', '2024-03-01T12:01:00.000000000Z', 'k7', 3)`,
		`INSERT INTO node_groups (name, description, nodes, query, created_at, version)
			VALUES ('web', 'web servers', '["a","b"]', '', '2024-01-01T00:00:00.000000000Z', 2)`,
		`INSERT INTO tokens (hash, login, label, created_at, expires_at, revoked) VALUES
			('t1', 'alice', 'first', '2024-01-01T00:00:00.000000000Z', NULL, 0),
			('t2', 'bob', 'ci', '2024-01-02T00:00:00.000000000Z', '2024-02-02T00:00:00.000000000Z', 0),
			('t3', 'alice', 'laptop', '2024-01-03T00:00:00.500000000Z', NULL, 1)`,
	)

	s := openMigrated(t, path, 2)

	// Version 2 data is kept as it was.
	j, err := s.GetJob(ctx, 7)
	if err != nil || j.Version != 4 || j.Task != "Facts" || j.IdempotencyKey != "k7" || j.MaxErrors != 3 || j.FinishedAt == nil {
		t.Fatalf("job after migration: %+v, %v", j, err)
	}
	if g, err := s.GetGroup(ctx, "web"); err != nil || g.Version != 2 || len(g.Nodes) != 2 {
		t.Fatalf("group after migration: %+v, %v", g, err)
	}

	// Existing tokens are listed, newest first, and can be revoked.
	tests := []struct {
		login string
		want  []string
	}{
		{"", []string{"t3", "t2", "t1"}},
		{"alice", []string{"t3", "t1"}},
		{"bob", []string{"t2"}},
		{"carol", nil},
	}
	for _, tt := range tests {
		t.Run("tokens of "+tt.login, func(t *testing.T) {
			got, err := s.ListTokens(ctx, tt.login)
			if err != nil {
				t.Fatalf("list tokens: %v", err)
			}
			var hashes []string
			for _, tk := range got {
				hashes = append(hashes, tk.Hash)
			}
			if strings.Join(hashes, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("tokens = %v, want %v", hashes, tt.want)
			}
		})
	}
	if err := s.RevokeToken(ctx, "t1"); err != nil {
		t.Fatalf("revoke migrated token: %v", err)
	}
	if tk, err := s.GetToken(ctx, "t1"); err != nil || !tk.Revoked || tk.Label != "first" {
		t.Fatalf("token after revoke: %+v, %v", tk, err)
	}

	// The new tables work.
	r, err := s.PutRole(ctx, store.Role{Name: "operators", Permissions: []store.Permission{{Action: "jobs:view", Instance: "*"}}, CreatedAt: t0})
	if err != nil || r.Version != 1 {
		t.Fatalf("put role after migration: %+v, %v", r, err)
	}
	u, err := s.PutUser(ctx, store.User{Login: "alice", Roles: []string{"operators"}, CreatedAt: t0})
	if err != nil || u.Version != 1 {
		t.Fatalf("put user after migration: %+v, %v", u, err)
	}
	if users, err := s.ListUsers(ctx); err != nil || len(users) != 1 || users[0].Roles[0] != "operators" {
		t.Fatalf("list users after migration: %+v, %v", users, err)
	}
}

func TestFailedMigrationToV3ChangesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v2.db")
	// A table in the way of the version 3 schema makes the migration fail part way.
	createV2(t, path, `CREATE TABLE users (login TEXT)`)
	s, err := Open(path)
	if err == nil {
		s.Close()
		t.Fatal("Open migrated a file whose migration must fail")
	}
	if !strings.Contains(err.Error(), "version 3") {
		t.Errorf("error %q does not name the failed migration", err)
	}
	var version, roles, indexes int
	rawQuery(t, path, `PRAGMA user_version`, &version)
	rawQuery(t, path, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'roles'`, &roles)
	rawQuery(t, path, `SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'tokens\_%' ESCAPE '\'`, &indexes)
	if version != 2 || roles != 0 || indexes != 0 {
		t.Fatalf("after the failed migration: user_version %d, roles tables %d, token indexes %d; want 2, 0, 0", version, roles, indexes)
	}
}

func TestMigrateFromV3(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "v3.db")
	createVersion(t, 3, path,
		`INSERT INTO jobs (id, type, state, environment, description, owner_id, owner_login, options, payload,
			concurrency, timeout, node_count, created_at, updated_at, status, stop, version, last_event_id,
			task, task_fold, finished_at, idempotency_key, max_errors)
			VALUES (9, 'task', 'running', 'production', 'job 9', '42', 'alice', CAST('{"task":"Facts"}' AS BLOB), NULL,
			0, 0, 0, '2024-03-01T12:00:00.000000000Z', '2024-03-01T12:01:00.000000000Z', '[]', '', 2, 0,
			'Facts', 'facts', NULL, '', -1)`,
		`INSERT INTO tokens (hash, login, label, created_at, expires_at, revoked)
			VALUES ('t1', 'alice', 'first', '2024-01-01T00:00:00.000000000Z', NULL, 0)`,
		`INSERT INTO roles (name, description, permissions, created_at, version)
			VALUES ('operators', 'ops', '[{"action":"jobs:view","instance":"*"}]', '2024-01-01T00:00:00.000000000Z', 3)`,
		`INSERT INTO users (login, roles, created_at, version)
			VALUES ('alice', '["operators"]', '2024-01-01T00:00:00.000000000Z', 2)`,
	)

	s := openMigrated(t, path, 3)

	// Version 3 data is kept as it was.
	if j, err := s.GetJob(ctx, 9); err != nil || j.Version != 2 || j.Task != "Facts" || j.Owner.Login != "alice" {
		t.Fatalf("job after migration: %+v, %v", j, err)
	}
	if tk, err := s.GetToken(ctx, "t1"); err != nil || tk.Login != "alice" || tk.Label != "first" {
		t.Fatalf("token after migration: %+v, %v", tk, err)
	}
	if r, err := s.GetRole(ctx, "operators"); err != nil || r.Version != 3 || len(r.Permissions) != 1 {
		t.Fatalf("role after migration: %+v, %v", r, err)
	}
	if u, err := s.GetUser(ctx, "alice"); err != nil || u.Version != 2 || len(u.Roles) != 1 {
		t.Fatalf("user after migration: %+v, %v", u, err)
	}

	// The new table works.
	exp := fixedNow.Add(time.Hour)
	if err := s.UseNonce(ctx, "n1", fixedNow, exp); err != nil {
		t.Fatalf("use nonce after migration: %v", err)
	}
	if err := s.UseNonce(ctx, "n1", fixedNow, exp); !errors.Is(err, store.ErrExists) {
		t.Fatalf("reuse nonce after migration: error = %v, want ErrExists", err)
	}
}

func TestFailedMigrationToV4ChangesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v3.db")
	// A table in the way of the version 4 schema makes the migration fail.
	createVersion(t, 3, path, `CREATE TABLE nonces (x TEXT)`)
	s, err := Open(path)
	if err == nil {
		s.Close()
		t.Fatal("Open migrated a file whose migration must fail")
	}
	if !strings.Contains(err.Error(), "version 4") {
		t.Errorf("error %q does not name the failed migration", err)
	}
	var version, columns, indexes int
	rawQuery(t, path, `PRAGMA user_version`, &version)
	rawQuery(t, path, `SELECT COUNT(*) FROM pragma_table_info('nonces') WHERE name = 'nonce'`, &columns)
	rawQuery(t, path, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'nonces_expires'`, &indexes)
	if version != 3 || columns != 0 || indexes != 0 {
		t.Fatalf("after the failed migration: user_version %d, nonce columns %d, nonce indexes %d; want 3, 0, 0", version, columns, indexes)
	}
}

func TestMigrateFromV4(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "v4.db")
	createVersion(t, 4, path,
		`INSERT INTO jobs (id, type, state, environment, description, owner_id, owner_login, options, payload,
			concurrency, timeout, node_count, created_at, updated_at, status, stop, version, last_event_id,
			task, task_fold, finished_at, idempotency_key, max_errors)
			VALUES (11, 'task', 'running', 'production', 'job 11', '42', 'alice', CAST('{"task":"Facts"}' AS BLOB), NULL,
			0, 0, 0, '2024-03-01T12:00:00.000000000Z', '2024-03-01T12:01:00.000000000Z', '[]', '', 3, 0,
			'Facts', 'facts', NULL, '', -1)`,
		`INSERT INTO nonces (nonce, expires) VALUES ('n1', '9999-01-01T00:00:00.000000000Z')`,
	)

	s := openMigrated(t, path, 4)

	// Version 4 data is kept as it was.
	if j, err := s.GetJob(ctx, 11); err != nil || j.Version != 3 || j.Task != "Facts" {
		t.Fatalf("job after migration: %+v, %v", j, err)
	}
	if err := s.UseNonce(ctx, "n1", fixedNow, fixedNow.Add(time.Hour)); !errors.Is(err, store.ErrExists) {
		t.Fatalf("reuse migrated nonce: error = %v, want ErrExists", err)
	}

	// A job written before version 5 has no usage yet, and usage can be added to it.
	if u, err := s.JobUsage(ctx, 11); err != nil || u != (store.Usage{}) {
		t.Fatalf("usage of a migrated job: %+v, %v; want zeros", u, err)
	}
	add := store.Usage{Invocations: 2, MessagesIn: 3, MessagesOut: 4, MessageUnits: 5, ReadUnits: 1.5, WriteUnits: 2.5, S3Writes: 6, S3Reads: 7}
	for range 2 {
		if err := s.AddJobUsage(ctx, 11, add); err != nil {
			t.Fatalf("add usage after migration: %v", err)
		}
	}
	want := store.Usage{Invocations: 4, MessagesIn: 6, MessagesOut: 8, MessageUnits: 10, ReadUnits: 3, WriteUnits: 5, S3Writes: 12, S3Reads: 14}
	if u, err := s.JobUsage(ctx, 11); err != nil || u != want {
		t.Fatalf("usage after two adds: %+v, %v; want %+v", u, err, want)
	}
	if j, err := s.GetJob(ctx, 11); err != nil || j.Version != 3 {
		t.Fatalf("job after adding usage: version %d, %v; want 3", j.Version, err)
	}
}

func TestFailedMigrationToV5ChangesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v4.db")
	// A table in the way of the version 5 schema makes the migration fail.
	createVersion(t, 4, path, `CREATE TABLE job_usage (x TEXT)`)
	s, err := Open(path)
	if err == nil {
		s.Close()
		t.Fatal("Open migrated a file whose migration must fail")
	}
	if !strings.Contains(err.Error(), "version 5") {
		t.Errorf("error %q does not name the failed migration", err)
	}
	var version, columns int
	rawQuery(t, path, `PRAGMA user_version`, &version)
	rawQuery(t, path, `SELECT COUNT(*) FROM pragma_table_info('job_usage') WHERE name = 'job_id'`, &columns)
	if version != 4 || columns != 0 {
		t.Fatalf("after the failed migration: user_version %d, job_usage job_id columns %d; want 4 and 0", version, columns)
	}
}

func TestMigrateFromV5(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "v5.db")
	node := func(seq int, name, state string) string {
		return fmt.Sprintf(`INSERT INTO job_nodes (job_id, seq, name, state, transaction_id, message, latest_event_id, version)
			VALUES (21, %d, '%s', '%s', '', '', 0, 1)`, seq, name, state)
	}
	createVersion(t, 5, path,
		`INSERT INTO jobs (id, type, state, environment, description, owner_id, owner_login, options, payload,
			concurrency, timeout, node_count, created_at, updated_at, status, stop, version, last_event_id,
			task, task_fold, finished_at, idempotency_key, max_errors)
			VALUES (21, 'task', 'running', 'production', 'job 21', '42', 'alice', NULL, NULL,
			0, 0, 4, '2024-03-01T12:00:00.000000000Z', '2024-03-01T12:01:00.000000000Z', '[]', '', 3, 7,
			'Facts', 'facts', NULL, '', 0)`,
		node(0, "a", "finished"), node(1, "b", "running"), node(2, "c", "new"), node(3, "d", "new"),
		`INSERT INTO nodes (name, credential_hash, facts, connected, broker, connection, created_at, version)
			VALUES ('a', '', CAST('{"os":{"family":"Debian"}}' AS BLOB), 1, 'pcp://x/server', 'c1', '2024-03-01T12:00:00.000000000Z', 1)`,
	)
	s := openMigrated(t, path, 5)
	// The counts are backfilled from the records, and the triggers keep them from then on.
	counts, err := s.JobCounts(ctx, 21)
	if err != nil {
		t.Fatal(err)
	}
	want := jobs.StateCounts{jobs.NodeFinished: 1, jobs.NodeRunning: 1, jobs.NodeNew: 2}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("counts after migration = %v, want %v", counts, want)
	}
	claimed, err := s.ClaimJobNodes(ctx, 21, store.Claim{Limit: 1, Apply: func(n jobs.Node) (jobs.Node, []jobs.Event) {
		n.State, n.TransactionID = jobs.NodeReady, "t-c"
		return n, nil
	}})
	if err != nil || len(claimed) != 1 || claimed[0].Name != "c" {
		t.Fatalf("claim after migration: %+v, %v; want c", claimed, err)
	}
	if counts, err = s.JobCounts(ctx, 21); err != nil || counts.Active() != 2 || counts[jobs.NodeNew] != 1 {
		t.Fatalf("counts after a claim = %v, %v", counts, err)
	}
	// Event ids go on from the job's last one before the migration.
	n, err := s.UpdateJobNode(ctx, claimed[0], jobs.Event{Type: jobs.EventNodeRunning, Timestamp: t0, Node: "c"})
	if err != nil || n.LatestEventID != 8 {
		t.Fatalf("event appended after migration: id %d, %v; want 8", n.LatestEventID, err)
	}
	// The facts of a migrated node are hashed: writing them again changes nothing.
	inv, err := s.GetNode(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetNodeFacts(ctx, "a", inv.Facts); err != nil {
		t.Fatal(err)
	}
	if again, err := s.GetNode(ctx, "a"); err != nil || again.Version != inv.Version {
		t.Fatalf("node after writing the same facts: version %d, %v; want %d", again.Version, err, inv.Version)
	}
	vals, err := s.FactValues(ctx, []string{"os", "family"})
	if err != nil || fmt.Sprint(vals) != "map[a:Debian]" {
		t.Fatalf("fact values after migration: %v, %v", vals, err)
	}
	if err := s.MarkAllNodesDisconnected(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := s.GetNode(ctx, "a"); err != nil || n.Connected {
		t.Fatalf("node after MarkAllNodesDisconnected: %+v, %v", n, err)
	}
}

func TestMigrateFromV8(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "v8.db")
	job := func(id int, state string) string {
		return fmt.Sprintf(`INSERT INTO jobs (id, type, state, environment, description, owner_id, owner_login, options,
			payload, concurrency, timeout, node_count, created_at, updated_at, status, stop, version, task, task_fold,
			finished_at, idempotency_key, max_errors)
			VALUES (%d, 'task', '%s', 'production', 'job', '42', 'alice', NULL, NULL, 0, 0, 3,
			'2024-03-01T12:00:0%d.000000000Z', '2024-03-01T12:01:00.000000000Z', '[]', '', 3, 'Facts', 'facts', NULL, '', 0)`,
			id, state, id)
	}
	node := func(jobID, seq int, name, state, txn string) string {
		return fmt.Sprintf(`INSERT INTO job_nodes (job_id, seq, name, state, transaction_id, message, latest_event_id, version)
			VALUES (%d, %d, '%s', '%s', '%s', '', 0, 1)`, jobID, seq, name, state, txn)
	}
	createVersion(t, 8, path,
		job(3, "running"), job(4, "finished"), job(5, "running"),
		node(3, 0, "a", "running", "3_abc"), // an id that names its job
		node(3, 1, "b", "ready", "txn-b"),   // an id made before ids named their job
		node(3, 2, "c", "finished", "9_x"),  // an id naming another job
		node(4, 0, "a", "running", "4_old"), // a stale record of a finished job
		node(5, 0, "a", "ready", "5_def"),
		node(5, 1, "c", "new", ""),
	)
	s := openMigrated(t, path, 8)
	var old int
	rawQuery(t, path, `SELECT COUNT(*) FROM sqlite_schema WHERE name IN ('job_nodes_name', 'job_nodes_transaction')`, &old)
	if old != 0 {
		t.Fatalf("after migration: %d of the old indexes left; want none", old)
	}
	for _, tt := range []struct{ txn, want string }{
		{"3_abc", "3/a"}, {"txn-b", "3/b"}, {"9_x", "3/c"}, {"4_old", "4/a"}, {"5_def", "5/a"},
		{"3_zzz", "none"}, {"txn-z", "none"}, {"", "none"},
	} {
		got := "none"
		n, err := s.FindJobNodeByTransaction(ctx, tt.txn)
		if err == nil {
			got = fmt.Sprintf("%d/%s", n.JobID, n.Name)
		} else if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("find %q: %v", tt.txn, err)
		}
		if got != tt.want {
			t.Errorf("FindJobNodeByTransaction(%q) = %s, want %s", tt.txn, got, tt.want)
		}
	}
	for _, tt := range []struct {
		name   string
		states []jobs.NodeState
		want   string
	}{
		{"a", []jobs.NodeState{jobs.NodeReady, jobs.NodeRunning}, "3/a 5/a"},
		{"a", []jobs.NodeState{jobs.NodeRunning}, "3/a"},
		{"a", nil, "3/a 5/a"},
		{"c", nil, "3/c 5/c"},
		{"c", []jobs.NodeState{jobs.NodeFinished, jobs.NodeNew}, "3/c 5/c"},
		{"c", []jobs.NodeState{jobs.NodeReady, jobs.NodeRunning}, ""},
		{"z", nil, ""},
	} {
		got, err := s.ListJobNodesByName(ctx, tt.name, tt.states...)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, n := range got {
			ids = append(ids, fmt.Sprintf("%d/%s", n.JobID, n.Name))
		}
		if strings.Join(ids, " ") != tt.want {
			t.Errorf("ListJobNodesByName(%s, %v) = %v, want %s", tt.name, tt.states, ids, tt.want)
		}
	}
}
