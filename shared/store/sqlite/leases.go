package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Statements of the leases. Stored times are fixed-width text, so comparing them as text
// compares instants.
const (
	// tryLeaseSQL inserts the lease, or takes it over when it has expired (until at or before
	// now) or is the owner's already; otherwise it changes no row.
	tryLeaseSQL = `INSERT INTO leases (name, owner, until) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
		WHERE leases.owner = excluded.owner OR leases.until <= ?`
	releaseLeaseSQL = `DELETE FROM leases WHERE name = ? AND owner = ?`
)

// errEmptyLease refuses a lease without a name or an owner.
var errEmptyLease = errors.New("a lease needs a name and an owner")

// TryLease implements store.Store: one upsert through the committer, which changes a row
// only when the lease is free, expired at now or held by owner.
func (s *Store) TryLease(ctx context.Context, name, owner string, now, until time.Time) (bool, error) {
	if name == "" || owner == "" {
		return false, fmt.Errorf("try lease %q: %w", name, errEmptyLease)
	}
	var enc encoder
	u, at := enc.time(until), enc.time(now)
	if enc.err != nil {
		return false, fmt.Errorf("try lease %s: %w", name, enc.err)
	}
	held := false
	err := s.write(ctx, func(ctx context.Context, tx dbtx) error {
		res, err := tx.ExecContext(ctx, tryLeaseSQL, name, owner, u, at)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		held = n > 0
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("try lease %s: %w", name, err)
	}
	return held, nil
}

// ReleaseLease implements store.Store: one delete of the lease when owner holds it.
func (s *Store) ReleaseLease(ctx context.Context, name, owner string) error {
	err := s.write(ctx, func(ctx context.Context, tx dbtx) error {
		_, err := tx.ExecContext(ctx, releaseLeaseSQL, name, owner)
		return err
	})
	if err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}
