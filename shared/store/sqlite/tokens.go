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
	defer s.authChanged()
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

// tokenGrantsSQL reads a token with the permissions of its user's roles in one statement: one
// row per role the user names, in the user's order (a role that does not exist gives NULL
// permissions), or one row with NULL permissions when the user has no record or no roles.
const tokenGrantsSQL = `SELECT t.hash, t.login, t.label, t.created_at, t.expires_at, t.revoked, r.permissions
	FROM tokens t
	LEFT JOIN users u ON u.login = t.login
	LEFT JOIN json_each(u.roles) j
	LEFT JOIN roles r ON r.name = j.value
	WHERE t.hash = ?
	ORDER BY j.key`

// TokenGrants returns the token whose hash is hash and the permissions its user's roles
// grant — what GetToken, GetUser and a GetRole per role return, read in one statement (a
// request's authentication is on the path of every API call). A user without a record, and
// roles that do not exist, grant nothing; store.ErrNotFound when there is no such token.
func (s *Store) TokenGrants(ctx context.Context, hash string) (store.Token, []store.Permission, error) {
	var (
		t     store.Token
		perms []store.Permission
		found bool
	)
	err := func() error {
		rows, err := s.rq.QueryContext(ctx, tokenGrantsSQL, hash)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var p sql.NullString
			tok, err := scanToken(scanFunc(func(dest ...any) error { return rows.Scan(append(dest, &p)...) }))
			if err != nil {
				return err
			}
			t, found = tok, true
			if !p.Valid {
				continue
			}
			more, err := decodeList[store.Permission](p.String)
			if err != nil {
				return fmt.Errorf("decode permissions: %w", err)
			}
			perms = append(perms, more...)
		}
		return rows.Err()
	}()
	if err != nil {
		return store.Token{}, nil, fmt.Errorf("token grants: %w", err)
	}
	if !found {
		return store.Token{}, nil, fmt.Errorf("token grants: %w", store.ErrNotFound)
	}
	return t, perms, nil
}
