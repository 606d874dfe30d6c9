package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/baton-run/baton/shared/store"
)

// Queries of UseNonce. Stored times are fixed-width text, so comparing them as text compares
// instants; deleteExpiredNoncesSQL is served by the index nonces_expires.
const (
	deleteExpiredNoncesSQL = `DELETE FROM nonces WHERE expires < ?`
	insertNonceSQL         = `INSERT INTO nonces (nonce, expires) VALUES (?, ?)`
)

// errEmptyNonce refuses an empty nonce, which no agent sends.
var errEmptyNonce = errors.New("empty nonce")

// UseNonce implements store.Store. In one write transaction it deletes every record that has
// expired (so the table holds only live nonces, and an expired record of nonce is replaced),
// then inserts nonce: a live record of it fails the insert with store.ErrExists. "Expired"
// is judged by now, the caller's clock. Writes go through the single write connection, so
// concurrent calls are serialized.
func (s *Store) UseNonce(ctx context.Context, nonce string, now, expires time.Time) error {
	if nonce == "" {
		return fmt.Errorf("use nonce: %w", errEmptyNonce)
	}
	var enc encoder
	exp, at := enc.time(expires), enc.time(now)
	if enc.err != nil {
		return fmt.Errorf("use nonce: %w", enc.err)
	}
	err := s.write(ctx, func(ctx context.Context, tx dbtx) error {
		if _, err := tx.ExecContext(ctx, deleteExpiredNoncesSQL, at); err != nil {
			return fmt.Errorf("delete expired nonces: %w", err)
		}
		_, err := tx.ExecContext(ctx, insertNonceSQL, nonce, exp)
		if isUnique(err) {
			return store.ErrExists
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("use nonce: %w", err)
	}
	return nil
}
