package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/store/sqlite"
)

func newService(t *testing.T, now *time.Time) (*Service, *sqlite.Store) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "auth.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New(st, func() time.Time { return *now }), st
}

func TestTokens(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	s, st := newService(t, &now)
	ctx := t.Context()
	forever, err := s.IssueToken(ctx, "admin", "cli", 0)
	if err != nil {
		t.Fatal(err)
	}
	hour, err := s.IssueToken(ctx, "ops", "short", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := s.AuthenticateToken(ctx, forever); err != nil || p.Login != "admin" {
		t.Fatalf("forever token: %+v %v", p, err)
	}
	if p, err := s.AuthenticateToken(ctx, hour); err != nil || p.Login != "ops" {
		t.Fatalf("hour token: %+v %v", p, err)
	}
	// Only the hash is stored.
	if _, err := st.GetToken(ctx, forever); !errors.Is(err, store.ErrNotFound) {
		t.Error("the token itself is a store key")
	}
	if tok, err := st.GetToken(ctx, Hash(forever)); err != nil || tok.Login != "admin" {
		t.Errorf("stored by hash: %+v %v", tok, err)
	}
	now = now.Add(time.Hour)
	for name, tok := range map[string]string{"expired": hour, "unknown": "nope", "empty": "", "prefix": forever[:10]} {
		if _, err := s.AuthenticateToken(ctx, tok); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s token: %v", name, err)
		}
	}
	if _, err := s.AuthenticateToken(ctx, forever); err != nil {
		t.Errorf("non-expiring token after an hour: %v", err)
	}
}

func TestNodeCredentials(t *testing.T) {
	now := time.Now()
	s, st := newService(t, &now)
	ctx := t.Context()
	secret, err := s.EnrollNode(ctx, "web1.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AuthenticateNode(ctx, "web1.example.com", secret); err != nil {
		t.Fatalf("right secret: %v", err)
	}
	n, _ := st.GetNode(ctx, "web1.example.com")
	if n.CredentialHash != Hash(secret) || strings.Contains(string(n.Facts), secret) {
		t.Error("the node record holds more than the secret's hash")
	}
	other, _ := s.EnrollNode(ctx, "web2")
	for _, c := range []struct{ name, secret string }{{"web1.example.com", "wrong"}, {"web1.example.com", other}, {"web2", secret}, {"ghost", secret}, {"", secret}, {"web2", ""}} {
		if err := s.AuthenticateNode(ctx, c.name, c.secret); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s with %q: %v", c.name, c.secret, err)
		}
	}
	if _, err := s.EnrollNode(ctx, "web1.example.com"); !errors.Is(err, store.ErrExists) {
		t.Errorf("enrolling twice: %v", err)
	}
	for _, bad := range []string{"", "-x", "a b", "../etc", "x/y", strings.Repeat("a", 300), "a;rm"} {
		if _, err := s.EnrollNode(ctx, bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("EnrollNode(%q) = %v", bad, err)
		}
	}
}

func TestCredentialFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "web1.cred")
	c := Credential{Name: "web1", Secret: "s3cret", Server: "ws://127.0.0.1:8143/pcp"}
	if err := WriteCredential(path, c); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	got, err := ReadCredential(path)
	if err != nil || got != c {
		t.Fatalf("ReadCredential = %+v, %v", got, err)
	}
	os.Chmod(path, 0o644)
	if _, err := ReadCredential(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable credential: %v", err)
	}
	os.WriteFile(path, []byte(`{"name":"x"}`), 0o600)
	if _, err := ReadCredential(path); err == nil {
		t.Error("credential without a secret accepted")
	}
}
