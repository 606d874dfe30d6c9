// Package auth checks who is calling: API tokens (X-Authentication) and node credentials (the
// secret an agent presents when it connects). Secrets are random, shown once, and stored only as
// SHA-256 hashes, so a leaked database does not let anyone impersonate a user or a node.
// Who may do what is RBAC in PE's model (rbac.go): users hold roles, roles hold permissions,
// and a token carries its user's permissions at the time of each request (read again unless
// nothing changed tokens, roles or users since, and at least every 10 s: tokencache.go).
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/store"
)

// Errors returned by authentication.
var (
	ErrUnauthenticated = errors.New("not authenticated")
	ErrInvalidName     = errors.New("invalid node name")
)

// Store is what auth needs from persistence.
type Store interface {
	PutToken(ctx context.Context, t store.Token) error
	GetToken(ctx context.Context, hash string) (store.Token, error)
	ListTokens(ctx context.Context, login string) ([]store.Token, error)
	RevokeToken(ctx context.Context, hash string) error
	PutRole(ctx context.Context, r store.Role) (store.Role, error)
	GetRole(ctx context.Context, name string) (store.Role, error)
	ListRoles(ctx context.Context) ([]store.Role, error)
	DeleteRole(ctx context.Context, name string) error
	PutUser(ctx context.Context, u store.User) (store.User, error)
	GetUser(ctx context.Context, login string) (store.User, error)
	ListUsers(ctx context.Context) ([]store.User, error)
	CreateNode(ctx context.Context, n inventory.Node) (inventory.Node, error)
	CreateNodes(ctx context.Context, nodes []inventory.Node) error
	EnrolledNodes(ctx context.Context, names []string) (map[string]bool, error)
	GetNode(ctx context.Context, name string) (inventory.Node, error)
	UpdateNode(ctx context.Context, n inventory.Node) (inventory.Node, error)
	UseNonce(ctx context.Context, nonce string, now, expires time.Time) error
}

// Principal is an authenticated API caller and what it may do.
type Principal struct {
	Login       string
	Permissions []store.Permission
	// TokenID names the token used (a prefix of its hash), for audit logs.
	TokenID string
	// ExpiresAt is when the token used expires (nil: never). Tokens it issues expire no later.
	ExpiresAt *time.Time
}

// NewSecret returns 32 random bytes, base64url-encoded.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails: since Go 1.24 crypto/rand.Read crashes the program rather than return an error
	return base64.RawURLEncoding.EncodeToString(b)
}

// Hash returns the hex SHA-256 of a secret.
func Hash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// Service authenticates tokens and nodes against a Store.
type Service struct {
	store       Store
	now         func() time.Time
	maxLifetime time.Duration
	tokens      tokenCache // see AuthenticateToken
}

// New returns a Service; now is the clock.
func New(st Store, now func() time.Time) *Service {
	return &Service{store: st, now: now, maxLifetime: DefaultMaxLifetime}
}

// SetMaxLifetime sets the longest lifetime a token may be issued with through the API.
func (s *Service) SetMaxLifetime(d time.Duration) { s.maxLifetime = d }

// IssueToken creates a token for login. ttl 0 means it does not expire (only for tokens
// made on the server's own machine: the API bounds lifetimes, see IssueTokenFor).
func (s *Service) IssueToken(ctx context.Context, login, label string, ttl time.Duration) (string, error) {
	now := s.now().UTC()
	var exp *time.Time
	if ttl > 0 {
		e := now.Add(ttl)
		exp = &e
	}
	return s.issue(ctx, login, label, now, exp)
}

// issue stores a new token for login made at now, expiring at exp (nil: never).
func (s *Service) issue(ctx context.Context, login, label string, now time.Time, exp *time.Time) (string, error) {
	secret := NewSecret()
	t := store.Token{Hash: Hash(secret), Login: login, Label: label, CreatedAt: now, ExpiresAt: exp}
	if err := s.store.PutToken(ctx, t); err != nil {
		return "", fmt.Errorf("store token: %w", err)
	}
	return secret, nil
}

// AuthenticateToken returns the principal a token stands for, or ErrUnauthenticated. With a
// store that keeps an auth generation (the sqlite store), what it reads about a token is
// kept and used again while the generation stays the same, for up to TokenCacheTTL: the
// revocation and expiry checks still run on every call.
func (s *Service) AuthenticateToken(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, fmt.Errorf("%w: no token", ErrUnauthenticated)
	}
	var (
		t     store.Token
		perms []store.Permission
		err   error
	)
	now := s.now()
	hash := Hash(token)
	gs, oneRead := s.store.(grantsStore)
	var (
		gen       string
		cacheable bool
		cached    bool
	)
	if g, ok := s.store.(generationStore); ok && oneRead {
		// The generation is read before the token: a change committed after this read
		// changes it, so an entry read now is never used after that change.
		gen, cacheable = g.AuthGeneration()
	}
	if cacheable {
		var e tokenEntry
		if e, cached = s.tokens.get(hash, gen, now); cached {
			t, perms = e.token, e.perms
		}
	}
	if !cached {
		if oneRead {
			t, perms, err = gs.TokenGrants(ctx, hash)
		} else {
			t, err = s.store.GetToken(ctx, hash)
		}
		if errors.Is(err, store.ErrNotFound) {
			return Principal{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
		}
		if err != nil {
			return Principal{}, fmt.Errorf("look up token: %w", err)
		}
		if cacheable {
			s.tokens.put(hash, tokenEntry{token: t, perms: perms, gen: gen, read: now})
		}
	}
	if t.Revoked {
		return Principal{}, fmt.Errorf("%w: token revoked", ErrUnauthenticated)
	}
	if t.ExpiresAt != nil && !now.Before(*t.ExpiresAt) {
		return Principal{}, fmt.Errorf("%w: token expired", ErrUnauthenticated)
	}
	if !oneRead {
		if perms, err = s.permissions(ctx, t.Login); err != nil {
			return Principal{}, err
		}
	}
	return Principal{Login: t.Login, Permissions: perms, TokenID: TokenID(t.Hash), ExpiresAt: t.ExpiresAt}, nil
}

// grantsStore is a Store that reads a token with the permissions of its user's roles in one
// operation (the sqlite store: one statement instead of a token, a user and a role read on
// every API request). Its answer must be what GetToken and permissions would give.
type grantsStore interface {
	TokenGrants(ctx context.Context, hash string) (store.Token, []store.Permission, error)
}

var nodeNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._\-]{0,251}[A-Za-z0-9])?$`) }) // compiled when first used: agent processes (and task supervisors) start faster

// ValidNodeName reports whether name can be a node name (a certname: letters, digits, '.', '-', '_').
func ValidNodeName(name string) bool { return nodeNameRE().MatchString(name) }

// EnrollNode creates node name with a fresh credential and returns the secret (shown once).
func (s *Service) EnrollNode(ctx context.Context, name string) (string, error) {
	if !ValidNodeName(name) {
		return "", fmt.Errorf("%w: %q (use letters, digits, '.', '-' and '_')", ErrInvalidName, name)
	}
	secret := NewSecret()
	n := inventory.Node{Name: name, CredentialHash: Hash(secret), Facts: []byte("{}"), CreatedAt: s.now().UTC()}
	if err := s.createOrReenrol(ctx, n); err != nil {
		return "", err
	}
	return secret, nil
}

// RevokeNode takes node name's credential away: from now on it cannot connect. (Closing its
// live connection is the caller's part.) The node stays in the inventory and in past jobs.
func (s *Service) RevokeNode(ctx context.Context, name string) error {
	for attempt := 0; ; attempt++ {
		n, err := s.store.GetNode(ctx, name)
		if err != nil {
			return fmt.Errorf("revoke node %s: %w", name, err)
		}
		n.CredentialHash = ""
		_, err = s.store.UpdateNode(ctx, n)
		if errors.Is(err, store.ErrConflict) && attempt < 10 {
			continue
		}
		if err != nil {
			return fmt.Errorf("revoke node %s: %w", name, err)
		}
		return nil
	}
}

// AuthenticateNode checks a node's secret in constant time.
func (s *Service) AuthenticateNode(ctx context.Context, name, secret string) error {
	if name == "" || secret == "" {
		return fmt.Errorf("%w: node name and secret are required", ErrUnauthenticated)
	}
	n, err := s.store.GetNode(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: unknown node", ErrUnauthenticated)
	}
	if err != nil {
		return fmt.Errorf("look up node %s: %w", name, err)
	}
	if n.CredentialHash == "" {
		return fmt.Errorf("%w: node %s is revoked", ErrUnauthenticated, name)
	}
	if strings.Contains(n.CredentialHash, ":") {
		return fmt.Errorf("%w: node %s authenticates with an enrolment token or its key, not a secret", ErrUnauthenticated, name)
	}
	want, err := hex.DecodeString(n.CredentialHash)
	if err != nil {
		return fmt.Errorf("node %s: bad stored credential hash", name)
	}
	got := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return fmt.Errorf("%w: wrong secret", ErrUnauthenticated)
	}
	return nil
}
