package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/baton-run/baton/shared/jobs"
)

// ErrSchemaTooNew is returned by Open for a database written by a newer build of Baton.
var ErrSchemaTooNew = errors.New("database schema is newer than this build supports")

// migration moves the schema up one version: it runs stmts, then backfill (if set), all in
// the transaction that migrates the file.
type migration struct {
	stmts    []string
	backfill func(ctx context.Context, tx dbtx) error
}

// migrations[i] moves the schema from version i to i+1; the schema version is kept in
// PRAGMA user_version. Append new migrations; never edit a released one.
var migrations = []migration{
	{stmts: []string{
		`CREATE TABLE jobs (
			id            INTEGER PRIMARY KEY AUTOINCREMENT,
			type          TEXT    NOT NULL,
			state         TEXT    NOT NULL,
			environment   TEXT    NOT NULL,
			description   TEXT    NOT NULL,
			owner_id      TEXT    NOT NULL,
			owner_login   TEXT    NOT NULL,
			options       BLOB,
			payload       BLOB,
			concurrency   INTEGER NOT NULL,
			timeout       INTEGER NOT NULL,
			node_count    INTEGER NOT NULL,
			created_at    TEXT    NOT NULL,
			updated_at    TEXT    NOT NULL,
			status        TEXT    NOT NULL,
			stop          TEXT    NOT NULL,
			version       INTEGER NOT NULL,
			last_event_id INTEGER NOT NULL
		)`,
		`CREATE INDEX jobs_state_created ON jobs (state, created_at, id)`,
		`CREATE INDEX jobs_created ON jobs (created_at, id)`,
		`CREATE TABLE job_nodes (
			job_id          INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
			seq             INTEGER NOT NULL,
			name            TEXT    NOT NULL,
			state           TEXT    NOT NULL,
			transaction_id  TEXT    NOT NULL,
			ready_at        TEXT,
			started_at      TEXT,
			finished_at     TEXT,
			result          BLOB,
			message         TEXT    NOT NULL,
			latest_event_id INTEGER NOT NULL,
			version         INTEGER NOT NULL,
			PRIMARY KEY (job_id, name),
			UNIQUE (job_id, seq)
		)`,
		`CREATE INDEX job_nodes_name ON job_nodes (name, state)`,
		`CREATE INDEX job_nodes_transaction ON job_nodes (transaction_id) WHERE transaction_id <> ''`,
		`CREATE TABLE events (
			job_id    INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
			id        INTEGER NOT NULL,
			type      TEXT    NOT NULL,
			timestamp TEXT    NOT NULL,
			node      TEXT    NOT NULL,
			detail    BLOB,
			message   TEXT    NOT NULL,
			PRIMARY KEY (job_id, id)
		) WITHOUT ROWID`,
		`CREATE TABLE nodes (
			name            TEXT    PRIMARY KEY,
			credential_hash TEXT    NOT NULL,
			facts           BLOB,
			connected       INTEGER NOT NULL,
			broker          TEXT    NOT NULL,
			connection      TEXT    NOT NULL,
			connected_at    TEXT,
			created_at      TEXT    NOT NULL,
			version         INTEGER NOT NULL
		)`,
		`CREATE TABLE tokens (
			hash       TEXT    PRIMARY KEY,
			login      TEXT    NOT NULL,
			label      TEXT    NOT NULL,
			created_at TEXT    NOT NULL,
			expires_at TEXT,
			revoked    INTEGER NOT NULL
		)`,
	}},
	{
		// Version 2: job task, finish time, idempotency key and error budget; node groups;
		// the index behind CountActiveNodes.
		stmts: []string{
			`ALTER TABLE jobs ADD COLUMN task TEXT NOT NULL DEFAULT ''`,
			// task_fold is strings.ToLower(task), for the case-insensitive task filter.
			`ALTER TABLE jobs ADD COLUMN task_fold TEXT NOT NULL DEFAULT ''`,
			`ALTER TABLE jobs ADD COLUMN finished_at TEXT`,
			`ALTER TABLE jobs ADD COLUMN idempotency_key TEXT NOT NULL DEFAULT ''`,
			// Jobs written before version 2 had no error budget.
			`ALTER TABLE jobs ADD COLUMN max_errors INTEGER NOT NULL DEFAULT -1`,
			`CREATE UNIQUE INDEX jobs_idempotency ON jobs (owner_login, idempotency_key) WHERE idempotency_key <> ''`,
			`CREATE INDEX jobs_finished ON jobs (finished_at, id)`,
			`CREATE INDEX job_nodes_active ON job_nodes (job_id) WHERE state IN ('ready', 'running')`,
			`CREATE TABLE node_groups (
				name        TEXT    PRIMARY KEY,
				description TEXT    NOT NULL,
				nodes       TEXT    NOT NULL,
				query       TEXT    NOT NULL,
				created_at  TEXT    NOT NULL,
				version     INTEGER NOT NULL
			)`,
		},
		backfill: backfillJobsV2,
	},
	{
		// Version 3: roles and users (RBAC); the indexes behind ListTokens.
		stmts: []string{
			`CREATE TABLE roles (
				name        TEXT    PRIMARY KEY,
				description TEXT    NOT NULL,
				permissions TEXT    NOT NULL,
				created_at  TEXT    NOT NULL,
				version     INTEGER NOT NULL
			)`,
			`CREATE TABLE users (
				login      TEXT    PRIMARY KEY,
				roles      TEXT    NOT NULL,
				created_at TEXT    NOT NULL,
				version    INTEGER NOT NULL
			)`,
			`CREATE INDEX tokens_login_created ON tokens (login, created_at, hash)`,
			`CREATE INDEX tokens_created ON tokens (created_at, hash)`,
		},
	},
	{
		// Version 4: used connect nonces (replay protection), kept until they expire.
		stmts: []string{
			`CREATE TABLE nonces (
				nonce   TEXT PRIMARY KEY,
				expires TEXT NOT NULL
			) WITHOUT ROWID`,
			`CREATE INDEX nonces_expires ON nonces (expires)`,
		},
	},
	{
		// Version 5: what each job caused in a metered deployment (store.Usage); a job has a
		// row once usage was first added to it.
		stmts: []string{
			`CREATE TABLE job_usage (
				job_id        INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
				invocations   INTEGER NOT NULL,
				messages_in   INTEGER NOT NULL,
				messages_out  INTEGER NOT NULL,
				message_units INTEGER NOT NULL,
				read_units    REAL    NOT NULL,
				write_units   REAL    NOT NULL,
				s3_writes     INTEGER NOT NULL,
				s3_reads      INTEGER NOT NULL
			)`,
		},
	},
	{
		// Version 6: work per node-run independent of the job's size. Per-job counts of node
		// records by state, kept by triggers on every update and delete of a record (the
		// store counts the records it inserts itself, once per job);
		// partial indexes of each job's queued and active records in creation order
		// (ClaimJobNodes, ListJobNodesInState) and one of the records the sweep must look at
		// (due_at, ListDueJobNodes). The facts of nodes get a hash
		// (an unchanged report writes nothing) and an index of the fact paths that queries
		// use (fact_paths lists them; node_facts holds each node's scalar at each). A job's
		// last event id moves to a small table of its own.
		stmts: []string{
			`ALTER TABLE job_nodes ADD COLUMN due_at TEXT`,
			`CREATE INDEX job_nodes_due ON job_nodes (due_at) WHERE due_at IS NOT NULL`,
			`CREATE INDEX job_nodes_queued ON job_nodes (job_id, seq) WHERE state = 'new'`,
			`DROP INDEX job_nodes_active`,
			`CREATE INDEX job_nodes_active_seq ON job_nodes (job_id, seq) WHERE state IN ('ready', 'running')`,
			`CREATE TABLE job_node_counts (
				job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
				state  TEXT    NOT NULL,
				n      INTEGER NOT NULL,
				PRIMARY KEY (job_id, state)
			) WITHOUT ROWID`,
			`INSERT INTO job_node_counts (job_id, state, n)
				SELECT job_id, state, COUNT(*) FROM job_nodes GROUP BY job_id, state`,
			`CREATE TRIGGER job_nodes_count_update AFTER UPDATE OF state ON job_nodes
				WHEN old.state <> new.state BEGIN
				UPDATE job_node_counts SET n = n - 1 WHERE job_id = old.job_id AND state = old.state;
				INSERT INTO job_node_counts (job_id, state, n) VALUES (new.job_id, new.state, 1)
					ON CONFLICT (job_id, state) DO UPDATE SET n = n + 1;
			END`,
			`CREATE TRIGGER job_nodes_count_delete AFTER DELETE ON job_nodes BEGIN
				UPDATE job_node_counts SET n = n - 1 WHERE job_id = old.job_id AND state = old.state;
			END`,
			`ALTER TABLE nodes ADD COLUMN facts_sha256 TEXT NOT NULL DEFAULT ''`,
			`CREATE INDEX nodes_connected ON nodes (name) WHERE connected <> 0`,
			// Each job's last event id, in a row of its own: appending an event rewrites this
			// small row rather than the job's (with its options and payload).
			`CREATE TABLE job_event_ids (
				job_id INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
				last   INTEGER NOT NULL
			)`,
			`INSERT INTO job_event_ids (job_id, last) SELECT id, last_event_id FROM jobs`,
			`ALTER TABLE jobs DROP COLUMN last_event_id`,
			`CREATE TABLE fact_paths (
				path TEXT PRIMARY KEY
			) WITHOUT ROWID`,
			`CREATE TABLE node_facts (
				path  TEXT NOT NULL REFERENCES fact_paths (path) ON DELETE CASCADE,
				name  TEXT NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
				value TEXT NOT NULL,
				PRIMARY KEY (path, name)
			) WITHOUT ROWID`,
			`CREATE INDEX node_facts_name ON node_facts (name)`,
		},
		backfill: backfillFactsV6,
	},
	// Version 7: named leases (TryLease, ReleaseLease), which guard work that one process at
	// a time should do, such as a job's dispatch.
	{stmts: []string{
		`CREATE TABLE leases (
			name  TEXT PRIMARY KEY,
			owner TEXT NOT NULL,
			until TEXT NOT NULL
		) WITHOUT ROWID`,
	}},
	// Version 8: live task output (PutOutput, ListOutput), one row per chunk; a node's
	// output is one range of the key.
	{stmts: []string{
		`CREATE TABLE job_output (
			job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
			node   TEXT    NOT NULL,
			seq    INTEGER NOT NULL,
			stream TEXT    NOT NULL,
			data   TEXT    NOT NULL,
			PRIMARY KEY (job_id, node, seq)
		) WITHOUT ROWID`,
	}},
	// Version 9: no index of job records whose size grows with the store's history on the
	// node-run path. job_nodes_name held every record ever written, keyed by node name, and
	// job_nodes_transaction every transaction id: each claim and result moved an entry to a
	// page of its own in a B-tree that grows with every job (thousands of pages dirtied per
	// group commit at 10,000 nodes). A node's active records (ready or running: what a
	// connecting node is sent) keep an index of their own, entered at the claim and left at
	// the end; transaction ids get one only when they do not name their record's job
	// (jobs.TransactionID ids name it, and are found among their job's records).
	{stmts: []string{
		`DROP INDEX job_nodes_name`,
		`CREATE INDEX job_nodes_active_name ON job_nodes (name) WHERE state IN ('ready', 'running')`,
		`DROP INDEX job_nodes_transaction`,
		`CREATE INDEX job_nodes_foreign_transaction ON job_nodes (transaction_id)
			WHERE transaction_id <> '' AND substr(transaction_id, 1, length(job_id) + 1) <> job_id || '_'`,
	}},
}

// backfillFactsV6 records the hash of every node's facts.
func backfillFactsV6(ctx context.Context, tx dbtx) error {
	rows, err := tx.QueryContext(ctx, `SELECT name, facts FROM nodes`)
	if err != nil {
		return fmt.Errorf("read nodes: %w", err)
	}
	type fill struct{ name, sum string }
	var fills []fill
	for rows.Next() {
		var (
			name  string
			facts []byte
		)
		if err := rows.Scan(&name, &facts); err != nil {
			rows.Close()
			return fmt.Errorf("read nodes: %w", err)
		}
		fills = append(fills, fill{name, factsHash(facts)})
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return fmt.Errorf("read nodes: %w", err)
	}
	rows.Close()
	for _, f := range fills {
		if _, err := tx.ExecContext(ctx, `UPDATE nodes SET facts_sha256 = ? WHERE name = ?`, f.sum, f.name); err != nil {
			return fmt.Errorf("fill node %s: %w", f.name, err)
		}
	}
	return nil
}

// backfillJobsV2 fills the version 2 job columns of jobs written before them: task from the
// "task" member of a task job's options, and finished_at, for a job in a terminal state, from
// when its status history entered that state (else its update time).
func backfillJobsV2(ctx context.Context, tx dbtx) error {
	type fill struct {
		id         int64
		task       string
		finishedAt any // NULL or a stored time
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, type, state, options, status, updated_at FROM jobs`)
	if err != nil {
		return fmt.Errorf("read jobs: %w", err)
	}
	var fills []fill
	for rows.Next() {
		var (
			id              int64
			typ, state      string
			options         []byte
			status, updated string
		)
		if err := rows.Scan(&id, &typ, &state, &options, &status, &updated); err != nil {
			rows.Close()
			return fmt.Errorf("read jobs: %w", err)
		}
		f := fill{id: id}
		if jobs.Type(typ) == jobs.TypeTask && len(options) > 0 {
			var opts struct {
				Task string `json:"task"`
			}
			// Options that are not an object with a string "task" leave the task empty.
			if json.Unmarshal(options, &opts) == nil {
				f.task = opts.Task
			}
		}
		if st := jobs.State(state); st.Terminal() {
			var (
				dec     decoder
				enc     encoder
				history []jobs.StatusEntry
			)
			finished := dec.time(updated)
			if json.Unmarshal([]byte(status), &history) == nil {
				for _, e := range slices.Backward(history) {
					if e.State == st {
						finished = e.EnterTime
						break
					}
				}
			}
			if dec.err != nil {
				rows.Close()
				return fmt.Errorf("job %d: %w", id, dec.err)
			}
			f.finishedAt = enc.time(finished)
			if enc.err != nil {
				rows.Close()
				return fmt.Errorf("job %d: %w", id, enc.err)
			}
		}
		fills = append(fills, f)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return fmt.Errorf("read jobs: %w", err)
	}
	rows.Close()
	stmt, err := tx.PrepareContext(ctx, `UPDATE jobs SET task = ?, task_fold = ?, finished_at = ? WHERE id = ?`)
	if err != nil {
		return fmt.Errorf("fill jobs: %w", err)
	}
	defer stmt.Close()
	for _, f := range fills {
		if _, err := stmt.ExecContext(ctx, f.task, strings.ToLower(f.task), f.finishedAt, f.id); err != nil {
			return fmt.Errorf("fill job %d: %w", f.id, err)
		}
	}
	return nil
}

// schemaVersion is the schema version this build writes.
var schemaVersion = len(migrations)

// migrate brings the database up to schemaVersion in one transaction, refusing a newer one.
func (s *Store) migrate(ctx context.Context) error {
	var from int
	err := s.write(ctx, func(ctx context.Context, tx dbtx) error {
		var v int
		if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if v > schemaVersion {
			return fmt.Errorf("schema version %d, this build supports up to %d: %w", v, schemaVersion, ErrSchemaTooNew)
		}
		from = v
		if v == schemaVersion {
			return nil
		}
		for i := v; i < schemaVersion; i++ {
			m := migrations[i]
			for _, stmt := range m.stmts {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("migrate schema to version %d: %w", i+1, err)
				}
			}
			if m.backfill != nil {
				if err := m.backfill(ctx, tx); err != nil {
					return fmt.Errorf("migrate schema to version %d: %w", i+1, err)
				}
			}
		}
		// PRAGMA takes no bound parameters; schemaVersion is an int we own.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion)); err != nil {
			return fmt.Errorf("set schema version: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if from != schemaVersion {
		s.log.Info("migrated store schema", "path", s.path, "from", from, "to", schemaVersion)
	}
	return nil
}
