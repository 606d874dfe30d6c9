package auth

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/baton-run/baton/shared/store"
)

// ErrForbidden is returned when a principal may not do what it asks.
var ErrForbidden = errors.New("not permitted")

// ErrInvalid is wrapped by errors in what a caller asked for (bad lifetime, label, name).
var ErrInvalid = errors.New("invalid request")

// TokenID is the public name of a token: the first 12 hex digits of its hash.
func TokenID(hash string) string {
	if len(hash) < 12 {
		return hash
	}
	return hash[:12]
}

// TokenInfo describes a token without its secret.
type TokenInfo struct {
	ID        string     `json:"id"`
	Login     string     `json:"login"`
	Label     string     `json:"label"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
	Revoked   bool       `json:"revoked"`
}

var loginRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,127}$`) }) // compiled when first used: agent processes (and task supervisors) start faster

// IssueTokenFor issues a token through the API: for the caller, or for another login when
// the caller may manage tokens. lifetime 0 means the default (1h); it may not exceed the
// configured maximum. Labels are at most 200 characters without commas (as in PE).
//
// A token never outlives the token that issued it: the new token expires no later than the
// caller's (the default lifetime is shortened to fit, a longer lifetime asked for is refused
// with ErrInvalid). So a stolen token cannot be turned into a longer-lived one; revoking a
// token does not revoke the tokens it issued, which expire with it at the latest.
func (s *Service) IssueTokenFor(ctx context.Context, caller Principal, login, label string, lifetime time.Duration) (string, TokenInfo, error) {
	if login == "" {
		login = caller.Login
	}
	if login != caller.Login && !caller.Can(ActionTokensManage) {
		return "", TokenInfo{}, fmt.Errorf("%w: issuing tokens for %s needs %s", ErrForbidden, login, ActionTokensManage)
	}
	if !loginRE().MatchString(login) {
		return "", TokenInfo{}, fmt.Errorf("%w: login %q", ErrInvalid, login)
	}
	if len(label) > 200 || strings.Contains(label, ",") {
		return "", TokenInfo{}, fmt.Errorf("%w: a label has at most 200 characters and no commas", ErrInvalid)
	}
	asked := lifetime != 0
	if !asked {
		lifetime = DefaultTokenLifetime
	}
	if lifetime < 0 || lifetime > s.maxLifetime {
		return "", TokenInfo{}, fmt.Errorf("%w: lifetime must be between 1s and %s", ErrInvalid, s.maxLifetime)
	}
	now := s.now().UTC()
	exp := now.Add(lifetime)
	if caller.ExpiresAt != nil {
		left := caller.ExpiresAt.Sub(now)
		switch {
		case left <= 0:
			return "", TokenInfo{}, fmt.Errorf("%w: the token making the request has expired", ErrUnauthenticated)
		case lifetime > left && asked:
			return "", TokenInfo{}, fmt.Errorf("%w: lifetime %s is longer than the %s left on the token making the request: a token cannot outlive the token that issues it",
				ErrInvalid, lifetime, left.Truncate(time.Second))
		case lifetime > left:
			exp = caller.ExpiresAt.UTC()
		}
	}
	secret, err := s.issue(ctx, login, label, now, &exp)
	if err != nil {
		return "", TokenInfo{}, err
	}
	t, err := s.store.GetToken(ctx, Hash(secret))
	if err != nil {
		return "", TokenInfo{}, fmt.Errorf("read back token: %w", err)
	}
	return secret, info(t), nil
}

func info(t store.Token) TokenInfo {
	return TokenInfo{ID: TokenID(t.Hash), Login: t.Login, Label: t.Label, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Revoked: t.Revoked}
}

// ListTokens lists the caller's tokens, or everyone's for a caller who manages tokens.
func (s *Service) ListTokens(ctx context.Context, caller Principal) ([]TokenInfo, error) {
	login := caller.Login
	if caller.Can(ActionTokensManage) {
		login = ""
	}
	ts, err := s.store.ListTokens(ctx, login)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out := make([]TokenInfo, 0, len(ts))
	for _, t := range ts {
		out = append(out, info(t))
	}
	return out, nil
}

// RevokeToken revokes the token with public id id: the caller's own, or any for a caller
// who manages tokens. It takes effect on the next request made with it.
func (s *Service) RevokeToken(ctx context.Context, caller Principal, id string) error {
	defer s.tokens.clear()
	login := caller.Login
	if caller.Can(ActionTokensManage) {
		login = ""
	}
	ts, err := s.store.ListTokens(ctx, login)
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	for _, t := range ts {
		if len(id) >= 12 && strings.HasPrefix(t.Hash, id) {
			return s.store.RevokeToken(ctx, t.Hash)
		}
	}
	return fmt.Errorf("revoke token %s: %w", id, store.ErrNotFound)
}

// RevokeTokenHash revokes the token whose hash is hash (for the server's own admin token;
// callers of the API go through RevokeToken).
func (s *Service) RevokeTokenHash(ctx context.Context, hash string) error {
	defer s.tokens.clear()
	if err := s.store.RevokeToken(ctx, hash); err != nil {
		return fmt.Errorf("revoke token %s: %w", TokenID(hash), err)
	}
	return nil
}

var roleNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$`) }) // compiled when first used: agent processes (and task supervisors) start faster

// CreateRole creates a role (caller must manage tokens: roles decide who may do what).
func (s *Service) CreateRole(ctx context.Context, caller Principal, r store.Role) (store.Role, error) {
	if !caller.Can(ActionTokensManage) {
		return r, fmt.Errorf("%w: managing roles needs %s", ErrForbidden, ActionTokensManage)
	}
	if !roleNameRE().MatchString(r.Name) {
		return r, fmt.Errorf("%w: role name %q", ErrInvalid, r.Name)
	}
	if len(r.Permissions) == 0 {
		return r, fmt.Errorf("%w: a role needs at least one permission", ErrInvalid)
	}
	for i, p := range r.Permissions {
		if p.Instance == "" {
			r.Permissions[i].Instance = "*"
		}
		if p.Scope == "" {
			r.Permissions[i].Scope = "*"
		}
		if err := ValidatePermission(r.Permissions[i]); err != nil {
			return r, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	r.Version, r.CreatedAt = 0, s.now().UTC()
	defer s.tokens.clear()
	return s.store.PutRole(ctx, r)
}

// Roles lists the roles.
func (s *Service) Roles(ctx context.Context) ([]store.Role, error) { return s.store.ListRoles(ctx) }

// DeleteRole removes a role.
func (s *Service) DeleteRole(ctx context.Context, caller Principal, name string) error {
	if !caller.Can(ActionTokensManage) {
		return fmt.Errorf("%w: managing roles needs %s", ErrForbidden, ActionTokensManage)
	}
	if name == AdminRole {
		return fmt.Errorf("%w: the admin role cannot be deleted", ErrInvalid)
	}
	defer s.tokens.clear()
	return s.store.DeleteRole(ctx, name)
}

// SetUserRoles gives login exactly roles (creating the user if needed).
func (s *Service) SetUserRoles(ctx context.Context, caller Principal, login string, roles []string) (store.User, error) {
	if !caller.Can(ActionTokensManage) {
		return store.User{}, fmt.Errorf("%w: managing users needs %s", ErrForbidden, ActionTokensManage)
	}
	if !loginRE().MatchString(login) {
		return store.User{}, fmt.Errorf("%w: login %q", ErrInvalid, login)
	}
	for _, r := range roles {
		if _, err := s.store.GetRole(ctx, r); err != nil {
			return store.User{}, fmt.Errorf("%w: role %s: %v", ErrInvalid, r, err)
		}
	}
	u, err := s.store.GetUser(ctx, login)
	switch {
	case errors.Is(err, store.ErrNotFound):
		u = store.User{Login: login, CreatedAt: s.now().UTC()}
	case err != nil:
		return u, err
	}
	u.Roles = slices.Clone(roles)
	defer s.tokens.clear()
	return s.store.PutUser(ctx, u)
}

// Users lists the users.
func (s *Service) Users(ctx context.Context) ([]store.User, error) { return s.store.ListUsers(ctx) }
