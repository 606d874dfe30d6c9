package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrSchemaTooNew is returned by Open for a database written by a newer build of Baton.
var ErrSchemaTooNew = errors.New("database schema is newer than this build supports")

// migrations[i] moves the schema from version i to i+1; the schema version is kept in
// PRAGMA user_version. Append new migrations; never edit a released one.
var migrations = [][]string{
	{
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
	},
}

// schemaVersion is the schema version this build writes.
var schemaVersion = len(migrations)

// migrate brings the database up to schemaVersion in one transaction, refusing a newer one.
func (s *Store) migrate(ctx context.Context) error {
	var from int
	err := s.write(ctx, func(tx *sql.Tx) error {
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
			for _, stmt := range migrations[i] {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
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
