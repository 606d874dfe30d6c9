-- Schema version 8 as released, frozen: TestReleasedSchemaUnchanged checks migrations[:8]
-- against it.
CREATE TABLE jobs (
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
		);

CREATE INDEX jobs_state_created ON jobs (state, created_at, id);

CREATE INDEX jobs_created ON jobs (created_at, id);

CREATE TABLE job_nodes (
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
		);

CREATE INDEX job_nodes_name ON job_nodes (name, state);

CREATE INDEX job_nodes_transaction ON job_nodes (transaction_id) WHERE transaction_id <> '';

CREATE TABLE events (
			job_id    INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
			id        INTEGER NOT NULL,
			type      TEXT    NOT NULL,
			timestamp TEXT    NOT NULL,
			node      TEXT    NOT NULL,
			detail    BLOB,
			message   TEXT    NOT NULL,
			PRIMARY KEY (job_id, id)
		) WITHOUT ROWID;

CREATE TABLE nodes (
			name            TEXT    PRIMARY KEY,
			credential_hash TEXT    NOT NULL,
			facts           BLOB,
			connected       INTEGER NOT NULL,
			broker          TEXT    NOT NULL,
			connection      TEXT    NOT NULL,
			connected_at    TEXT,
			created_at      TEXT    NOT NULL,
			version         INTEGER NOT NULL
		);

CREATE TABLE tokens (
			hash       TEXT    PRIMARY KEY,
			login      TEXT    NOT NULL,
			label      TEXT    NOT NULL,
			created_at TEXT    NOT NULL,
			expires_at TEXT,
			revoked    INTEGER NOT NULL
		);

ALTER TABLE jobs ADD COLUMN task TEXT NOT NULL DEFAULT '';

ALTER TABLE jobs ADD COLUMN task_fold TEXT NOT NULL DEFAULT '';

ALTER TABLE jobs ADD COLUMN finished_at TEXT;

ALTER TABLE jobs ADD COLUMN idempotency_key TEXT NOT NULL DEFAULT '';

ALTER TABLE jobs ADD COLUMN max_errors INTEGER NOT NULL DEFAULT -1;

CREATE UNIQUE INDEX jobs_idempotency ON jobs (owner_login, idempotency_key) WHERE idempotency_key <> '';

CREATE INDEX jobs_finished ON jobs (finished_at, id);

CREATE INDEX job_nodes_active ON job_nodes (job_id) WHERE state IN ('ready', 'running');

CREATE TABLE node_groups (
				name        TEXT    PRIMARY KEY,
				description TEXT    NOT NULL,
				nodes       TEXT    NOT NULL,
				query       TEXT    NOT NULL,
				created_at  TEXT    NOT NULL,
				version     INTEGER NOT NULL
			);

CREATE TABLE roles (
				name        TEXT    PRIMARY KEY,
				description TEXT    NOT NULL,
				permissions TEXT    NOT NULL,
				created_at  TEXT    NOT NULL,
				version     INTEGER NOT NULL
			);

CREATE TABLE users (
				login      TEXT    PRIMARY KEY,
				roles      TEXT    NOT NULL,
				created_at TEXT    NOT NULL,
				version    INTEGER NOT NULL
			);

CREATE INDEX tokens_login_created ON tokens (login, created_at, hash);

CREATE INDEX tokens_created ON tokens (created_at, hash);

CREATE TABLE nonces (
				nonce   TEXT PRIMARY KEY,
				expires TEXT NOT NULL
			) WITHOUT ROWID;

CREATE INDEX nonces_expires ON nonces (expires);

CREATE TABLE job_usage (
				job_id        INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
				invocations   INTEGER NOT NULL,
				messages_in   INTEGER NOT NULL,
				messages_out  INTEGER NOT NULL,
				message_units INTEGER NOT NULL,
				read_units    REAL    NOT NULL,
				write_units   REAL    NOT NULL,
				s3_writes     INTEGER NOT NULL,
				s3_reads      INTEGER NOT NULL
			);

ALTER TABLE job_nodes ADD COLUMN due_at TEXT;

CREATE INDEX job_nodes_due ON job_nodes (due_at) WHERE due_at IS NOT NULL;

CREATE INDEX job_nodes_queued ON job_nodes (job_id, seq) WHERE state = 'new';

DROP INDEX job_nodes_active;

CREATE INDEX job_nodes_active_seq ON job_nodes (job_id, seq) WHERE state IN ('ready', 'running');

CREATE TABLE job_node_counts (
				job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
				state  TEXT    NOT NULL,
				n      INTEGER NOT NULL,
				PRIMARY KEY (job_id, state)
			) WITHOUT ROWID;

INSERT INTO job_node_counts (job_id, state, n)
				SELECT job_id, state, COUNT(*) FROM job_nodes GROUP BY job_id, state;

CREATE TRIGGER job_nodes_count_update AFTER UPDATE OF state ON job_nodes
				WHEN old.state <> new.state BEGIN
				UPDATE job_node_counts SET n = n - 1 WHERE job_id = old.job_id AND state = old.state;
				INSERT INTO job_node_counts (job_id, state, n) VALUES (new.job_id, new.state, 1)
					ON CONFLICT (job_id, state) DO UPDATE SET n = n + 1;
			END;

CREATE TRIGGER job_nodes_count_delete AFTER DELETE ON job_nodes BEGIN
				UPDATE job_node_counts SET n = n - 1 WHERE job_id = old.job_id AND state = old.state;
			END;

ALTER TABLE nodes ADD COLUMN facts_sha256 TEXT NOT NULL DEFAULT '';

CREATE INDEX nodes_connected ON nodes (name) WHERE connected <> 0;

CREATE TABLE job_event_ids (
				job_id INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
				last   INTEGER NOT NULL
			);

INSERT INTO job_event_ids (job_id, last) SELECT id, last_event_id FROM jobs;

ALTER TABLE jobs DROP COLUMN last_event_id;

CREATE TABLE fact_paths (
				path TEXT PRIMARY KEY
			) WITHOUT ROWID;

CREATE TABLE node_facts (
				path  TEXT NOT NULL REFERENCES fact_paths (path) ON DELETE CASCADE,
				name  TEXT NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
				value TEXT NOT NULL,
				PRIMARY KEY (path, name)
			) WITHOUT ROWID;

CREATE INDEX node_facts_name ON node_facts (name);

CREATE TABLE leases (
			name  TEXT PRIMARY KEY,
			owner TEXT NOT NULL,
			until TEXT NOT NULL
		) WITHOUT ROWID;

CREATE TABLE job_output (
			job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
			node   TEXT    NOT NULL,
			seq    INTEGER NOT NULL,
			stream TEXT    NOT NULL,
			data   TEXT    NOT NULL,
			PRIMARY KEY (job_id, node, seq)
		) WITHOUT ROWID;
