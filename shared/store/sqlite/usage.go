package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	"github.com/baton-run/baton/shared/store"
)

// Queries of AddJobUsage and JobUsage. A job has a job_usage row once usage was first added
// to it; addUsageSQL creates the row or adds to it in one statement.
const (
	addUsageSQL = `INSERT INTO job_usage (job_id, invocations, messages_in, messages_out, message_units,
			read_units, write_units, s3_writes, s3_reads)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (job_id) DO UPDATE SET
			invocations   = invocations   + excluded.invocations,
			messages_in   = messages_in   + excluded.messages_in,
			messages_out  = messages_out  + excluded.messages_out,
			message_units = message_units + excluded.message_units,
			read_units    = read_units    + excluded.read_units,
			write_units   = write_units   + excluded.write_units,
			s3_writes     = s3_writes     + excluded.s3_writes,
			s3_reads      = s3_reads      + excluded.s3_reads`
	jobUsageSQL = `SELECT COALESCE(u.invocations, 0), COALESCE(u.messages_in, 0), COALESCE(u.messages_out, 0),
			COALESCE(u.message_units, 0), COALESCE(u.read_units, 0.0), COALESCE(u.write_units, 0.0),
			COALESCE(u.s3_writes, 0), COALESCE(u.s3_reads, 0)
		FROM jobs j LEFT JOIN job_usage u ON u.job_id = j.id WHERE j.id = ?`
)

// errNonFiniteUsage refuses capacity units that are NaN or infinite.
var errNonFiniteUsage = errors.New("usage capacity units must be finite")

// AddJobUsage implements store.Store: in one write transaction it checks that the job exists
// (else store.ErrNotFound) and adds u to its job_usage row, creating the row on the first
// add. The job row is not touched, so its Version does not change. Writes go through the
// single write connection, so concurrent adds are serialized and all count.
func (s *Store) AddJobUsage(ctx context.Context, jobID int64, u store.Usage) error {
	if math.IsNaN(u.ReadUnits) || math.IsInf(u.ReadUnits, 0) || math.IsNaN(u.WriteUnits) || math.IsInf(u.WriteUnits, 0) {
		return fmt.Errorf("add usage of job %d: %w", jobID, errNonFiniteUsage)
	}
	err := s.write(ctx, func(ctx context.Context, tx dbtx) error {
		ok, err := exists(ctx, tx, `SELECT 1 FROM jobs WHERE id = ?`, jobID)
		if err != nil {
			return fmt.Errorf("read job: %w", err)
		}
		if !ok {
			return store.ErrNotFound
		}
		_, err = tx.ExecContext(ctx, addUsageSQL, jobID, u.Invocations, u.MessagesIn, u.MessagesOut,
			u.MessageUnits, u.ReadUnits, u.WriteUnits, u.S3Writes, u.S3Reads)
		return err
	})
	if err != nil {
		return fmt.Errorf("add usage of job %d: %w", jobID, err)
	}
	return nil
}

// JobUsage implements store.Store: one read of the job joined with its job_usage row (zeros
// when it has none); store.ErrNotFound when the job does not exist.
func (s *Store) JobUsage(ctx context.Context, jobID int64) (store.Usage, error) {
	var u store.Usage
	err := s.read(ctx, func(tx dbtx) error {
		return tx.QueryRowContext(ctx, jobUsageSQL, jobID).Scan(&u.Invocations, &u.MessagesIn, &u.MessagesOut,
			&u.MessageUnits, &u.ReadUnits, &u.WriteUnits, &u.S3Writes, &u.S3Reads)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return store.Usage{}, fmt.Errorf("job usage %d: %w", jobID, store.ErrNotFound)
	}
	if err != nil {
		return store.Usage{}, fmt.Errorf("job usage %d: %w", jobID, err)
	}
	return u, nil
}
