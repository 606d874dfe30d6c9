package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/baton-run/baton/shared/store"
)

const tokenColumns = `hash, login, label, created_at, expires_at, revoked`

// Queries of ListTokens: newest first, ties by hash (descending), served by the indexes
// tokens_login_created and tokens_created.
const (
	listTokensSQL        = `SELECT ` + tokenColumns + ` FROM tokens ORDER BY created_at DESC, hash DESC`
	listLoginTokensSQL   = `SELECT ` + tokenColumns + ` FROM tokens WHERE login = ? ORDER BY created_at DESC, hash DESC`
	revokeTokenSQL       = `UPDATE tokens SET revoked = 1 WHERE hash = ?`
	insertTokenSQL       = `INSERT INTO tokens (` + tokenColumns + `) VALUES (?, ?, ?, ?, ?, ?)`
	selectTokenByHashSQL = `SELECT ` + tokenColumns + ` FROM tokens WHERE hash = ?`
)

func scanToken(sc scanner) (store.Token, error) {
	var (
		t         store.Token
		createdAt string
		expiresAt sql.NullString
	)
	if err := sc.Scan(&t.Hash, &t.Login, &t.Label, &createdAt, &expiresAt, &t.Revoked); err != nil {
		return store.Token{}, err
	}
	var dec decoder
	t.CreatedAt, t.ExpiresAt = dec.time(createdAt), dec.timePtr(expiresAt)
	if dec.err != nil {
		return store.Token{}, fmt.Errorf("token of %s: %w", t.Login, dec.err)
	}
	return t, nil
}

// PutToken implements store.Store.
func (s *Store) PutToken(ctx context.Context, t store.Token) error {
	var enc encoder
	vals := []any{t.Hash, t.Login, t.Label, enc.time(t.CreatedAt), enc.timePtr(t.ExpiresAt), t.Revoked}
	if enc.err != nil {
		return fmt.Errorf("put token for %s: %w", t.Login, enc.err)
	}
	err := s.write(ctx, func(ctx context.Context, tx dbtx) error {
		_, err := tx.ExecContext(ctx, insertTokenSQL, vals...)
		if isUnique(err) {
			return store.ErrExists
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("put token for %s: %w", t.Login, err)
	}
	return nil
}

// GetToken implements store.Store.
func (s *Store) GetToken(ctx context.Context, hash string) (store.Token, error) {
	t, err := scanToken(s.rq.QueryRowContext(ctx, selectTokenByHashSQL, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Token{}, fmt.Errorf("get token: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("get token: %w", err)
	}
	return t, nil
}

// ListTokens implements store.Store: newest first, equal creation times by hash descending.
func (s *Store) ListTokens(ctx context.Context, login string) ([]store.Token, error) {
	query, args := listTokensSQL, []any(nil)
	if login != "" {
		query, args = listLoginTokensSQL, []any{login}
	}
	out, err := listRows(ctx, s.rq, query, scanToken, args...)
	if err != nil {
		return nil, fmt.Errorf("list tokens of %q: %w", login, err)
	}
	return out, nil
}

// RevokeToken implements store.Store.
func (s *Store) RevokeToken(ctx context.Context, hash string) error {
	err := s.write(ctx, func(ctx context.Context, tx dbtx) error {
		res, err := tx.ExecContext(ctx, revokeTokenSQL, hash)
		if err != nil {
			return err
		}
		n, err := affected(res)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}
