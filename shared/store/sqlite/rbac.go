package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/baton-run/baton/shared/store"
)

const (
	roleColumns = `name, description, permissions, created_at, version`
	userColumns = `login, roles, created_at, version`
)

// jsonList encodes a slice as a JSON array, nil as [].
func jsonList[T any](v []T) (string, error) {
	if v == nil {
		v = []T{}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// decodeList decodes a JSON array written by jsonList; empty becomes nil.
func decodeList[T any](s string) ([]T, error) {
	var v []T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, err
	}
	if len(v) == 0 {
		return nil, nil
	}
	return v, nil
}

// putVersioned creates the row named key in table when version is 0 (store.ErrExists when it
// is taken), else replaces it if it is at version (store.ErrConflict; store.ErrNotFound when
// there is none). cols are the table's columns after the key column and before version;
// vals their values.
func (s *Store) putVersioned(ctx context.Context, table, keyCol, key string, version int64, cols []string, vals []any) error {
	return s.write(ctx, func(ctx context.Context, tx dbtx) error {
		if version == 0 {
			q := `INSERT INTO ` + table + ` (` + keyCol
			for _, c := range cols {
				q += `, ` + c
			}
			q += `, version) VALUES (?, ` + placeholders(len(vals)) + `, 1)`
			_, err := tx.ExecContext(ctx, q, append([]any{key}, vals...)...)
			if isUnique(err) {
				return store.ErrExists
			}
			return err
		}
		q := `UPDATE ` + table + ` SET `
		for _, c := range cols {
			q += c + ` = ?, `
		}
		q += `version = version + 1 WHERE ` + keyCol + ` = ? AND version = ?`
		res, err := tx.ExecContext(ctx, q, append(vals, key, version)...)
		if err != nil {
			return err
		}
		n, err := affected(res)
		if err != nil {
			return err
		}
		if n == 0 {
			return versionMiss(ctx, tx, `SELECT 1 FROM `+table+` WHERE `+keyCol+` = ?`, key)
		}
		return nil
	})
}

func scanRole(sc scanner) (store.Role, error) {
	var (
		r                      store.Role
		permissions, createdAt string
	)
	if err := sc.Scan(&r.Name, &r.Description, &permissions, &createdAt, &r.Version); err != nil {
		return store.Role{}, err
	}
	perms, err := decodeList[store.Permission](permissions)
	if err != nil {
		return store.Role{}, fmt.Errorf("role %s: decode permissions: %w", r.Name, err)
	}
	r.Permissions = perms
	var dec decoder
	r.CreatedAt = dec.time(createdAt)
	if dec.err != nil {
		return store.Role{}, fmt.Errorf("role %s: %w", r.Name, dec.err)
	}
	return r, nil
}

// PutRole implements store.Store.
func (s *Store) PutRole(ctx context.Context, r store.Role) (store.Role, error) {
	perms, err := jsonList(r.Permissions)
	if err != nil {
		return store.Role{}, fmt.Errorf("put role %s: encode permissions: %w", r.Name, err)
	}
	var enc encoder
	vals := []any{r.Description, perms, enc.time(r.CreatedAt)}
	if enc.err != nil {
		return store.Role{}, fmt.Errorf("put role %s: %w", r.Name, enc.err)
	}
	defer s.authChanged()
	err = s.putVersioned(ctx, "roles", "name", r.Name, r.Version,
		[]string{"description", "permissions", "created_at"}, vals)
	if err != nil {
		return store.Role{}, fmt.Errorf("put role %s at version %d: %w", r.Name, r.Version, err)
	}
	r.Version++
	return r, nil
}

// GetRole implements store.Store; an unknown name is ErrNotFound.
func (s *Store) GetRole(ctx context.Context, name string) (store.Role, error) {
	r, err := scanRole(s.rq.QueryRowContext(ctx, `SELECT `+roleColumns+` FROM roles WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Role{}, fmt.Errorf("get role %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.Role{}, fmt.Errorf("get role %s: %w", name, err)
	}
	return r, nil
}

// ListRoles implements store.Store; names are ordered bytewise.
func (s *Store) ListRoles(ctx context.Context) ([]store.Role, error) {
	out, err := listRows(ctx, s.rq, `SELECT `+roleColumns+` FROM roles ORDER BY name`, scanRole)
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	return out, nil
}

// DeleteRole implements store.Store; an unknown name is ErrNotFound.
func (s *Store) DeleteRole(ctx context.Context, name string) error {
	defer s.authChanged()
	err := s.write(ctx, func(ctx context.Context, tx dbtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM roles WHERE name = ?`, name)
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
		return fmt.Errorf("delete role %s: %w", name, err)
	}
	return nil
}

func scanUser(sc scanner) (store.User, error) {
	var (
		u                store.User
		roles, createdAt string
	)
	if err := sc.Scan(&u.Login, &roles, &createdAt, &u.Version); err != nil {
		return store.User{}, err
	}
	names, err := decodeList[string](roles)
	if err != nil {
		return store.User{}, fmt.Errorf("user %s: decode roles: %w", u.Login, err)
	}
	u.Roles = names
	var dec decoder
	u.CreatedAt = dec.time(createdAt)
	if dec.err != nil {
		return store.User{}, fmt.Errorf("user %s: %w", u.Login, dec.err)
	}
	return u, nil
}

// PutUser implements store.Store.
func (s *Store) PutUser(ctx context.Context, u store.User) (store.User, error) {
	roles, err := jsonList(u.Roles)
	if err != nil {
		return store.User{}, fmt.Errorf("put user %s: encode roles: %w", u.Login, err)
	}
	var enc encoder
	vals := []any{roles, enc.time(u.CreatedAt)}
	if enc.err != nil {
		return store.User{}, fmt.Errorf("put user %s: %w", u.Login, enc.err)
	}
	defer s.authChanged()
	err = s.putVersioned(ctx, "users", "login", u.Login, u.Version, []string{"roles", "created_at"}, vals)
	if err != nil {
		return store.User{}, fmt.Errorf("put user %s at version %d: %w", u.Login, u.Version, err)
	}
	u.Version++
	return u, nil
}

// GetUser implements store.Store; an unknown login is ErrNotFound.
func (s *Store) GetUser(ctx context.Context, login string) (store.User, error) {
	u, err := scanUser(s.rq.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE login = ?`, login))
	if errors.Is(err, sql.ErrNoRows) {
		return store.User{}, fmt.Errorf("get user %s: %w", login, store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("get user %s: %w", login, err)
	}
	return u, nil
}

// ListUsers implements store.Store; logins are ordered bytewise.
func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	out, err := listRows(ctx, s.rq, `SELECT `+userColumns+` FROM users ORDER BY login`, scanUser)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}
