package dynamo

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/baton-run/baton/shared/store"
)

func roleItem(r store.Role) (item, error) {
	w := newWriter(key(pkRoles, r.Name))
	w.s(attrName, r.Name)
	w.s(attrDesc, r.Description)
	if len(r.Permissions) > 0 {
		perms, err := json.Marshal(r.Permissions)
		if err != nil {
			return nil, fmt.Errorf("encode permissions: %w", err)
		}
		w.json(attrPerms, perms)
	}
	w.time(attrCreated, r.CreatedAt)
	w.n(attrVersion, r.Version)
	if w.err != nil {
		return nil, w.err
	}
	if err := checkSize("role "+r.Name, w.it); err != nil {
		return nil, err
	}
	return w.it, nil
}

func decodeRole(it item) (store.Role, error) {
	r := reader{it: it}
	role := store.Role{
		Name:        r.s(attrName),
		Description: r.s(attrDesc),
		CreatedAt:   r.time(attrCreated),
		Version:     r.n(attrVersion),
	}
	if raw := r.json(attrPerms); r.err == nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, &role.Permissions); err != nil {
			r.fail("attribute %s: %w", attrPerms, err)
		}
		if len(role.Permissions) == 0 {
			role.Permissions = nil
		}
	}
	if r.err != nil {
		return store.Role{}, fmt.Errorf("decode role %s: %w", str(it[SortKey]), r.err)
	}
	return role, nil
}

func userItem(u store.User) (item, error) {
	w := newWriter(key(pkUsers, u.Login))
	w.s(attrLogin, u.Login)
	w.strs(attrRoles, u.Roles)
	w.time(attrCreated, u.CreatedAt)
	w.n(attrVersion, u.Version)
	if w.err != nil {
		return nil, w.err
	}
	if err := checkSize("user "+u.Login, w.it); err != nil {
		return nil, err
	}
	return w.it, nil
}

func decodeUser(it item) (store.User, error) {
	r := reader{it: it}
	u := store.User{
		Login:     r.s(attrLogin),
		Roles:     r.strs(attrRoles),
		CreatedAt: r.time(attrCreated),
		Version:   r.n(attrVersion),
	}
	if r.err != nil {
		return store.User{}, fmt.Errorf("decode user %s: %w", str(it[SortKey]), r.err)
	}
	return u, nil
}

// putVersioned writes the record named name in partition pk by the PutRole rules: version 0
// creates it at version 1 (a PutItem that the key must not exist: store.ErrExists), another
// replaces it at version+1 (a PutItem on the version read: store.ErrConflict, or
// store.ErrNotFound when there is none). build returns the item at a given version.
func (s *Store) putVersioned(ctx context.Context, pk, name string, version int64, build func(version int64) (item, error)) error {
	if version == 0 {
		return s.create(ctx, name, func() (item, error) { return build(1) })
	}
	return s.replace(ctx, key(pk, name), version, func() (item, error) { return build(version + 1) })
}

// PutRole implements store.Store.
func (s *Store) PutRole(ctx context.Context, r store.Role) (store.Role, error) {
	err := s.putVersioned(ctx, pkRoles, r.Name, r.Version, func(v int64) (item, error) {
		next := r
		next.Version = v
		return roleItem(next)
	})
	if err != nil {
		return store.Role{}, fmt.Errorf("put role %s at version %d: %w", r.Name, r.Version, err)
	}
	r.Version++
	return r, nil
}

// GetRole implements store.Store; an unknown name is store.ErrNotFound.
func (s *Store) GetRole(ctx context.Context, name string) (store.Role, error) {
	it, err := s.getNamed(ctx, pkRoles, name, name)
	if err != nil {
		return store.Role{}, fmt.Errorf("get role %s: %w", name, err)
	}
	return decodeRole(it)
}

// ListRoles implements store.Store: one query on the ROLES partition, by name.
func (s *Store) ListRoles(ctx context.Context) ([]store.Role, error) {
	items, err := s.queryPartition(ctx, pkRoles)
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	var out []store.Role
	for _, it := range items {
		r, err := decodeRole(it)
		if err != nil {
			return nil, fmt.Errorf("list roles: %w", err)
		}
		out = append(out, r)
	}
	return out, nil
}

// DeleteRole implements store.Store; an unknown name is store.ErrNotFound.
func (s *Store) DeleteRole(ctx context.Context, name string) error {
	if err := s.deleteNamed(ctx, pkRoles, name); err != nil {
		return fmt.Errorf("delete role %s: %w", name, err)
	}
	return nil
}

// PutUser implements store.Store.
func (s *Store) PutUser(ctx context.Context, u store.User) (store.User, error) {
	err := s.putVersioned(ctx, pkUsers, u.Login, u.Version, func(v int64) (item, error) {
		next := u
		next.Version = v
		return userItem(next)
	})
	if err != nil {
		return store.User{}, fmt.Errorf("put user %s at version %d: %w", u.Login, u.Version, err)
	}
	u.Version++
	return u, nil
}

// GetUser implements store.Store; an unknown login is store.ErrNotFound.
func (s *Store) GetUser(ctx context.Context, login string) (store.User, error) {
	it, err := s.getNamed(ctx, pkUsers, login, login)
	if err != nil {
		return store.User{}, fmt.Errorf("get user %s: %w", login, err)
	}
	return decodeUser(it)
}

// ListUsers implements store.Store: one query on the USERS partition, by login.
func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	items, err := s.queryPartition(ctx, pkUsers)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	var out []store.User
	for _, it := range items {
		u, err := decodeUser(it)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	return out, nil
}
