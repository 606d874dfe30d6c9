package auth

import (
	"errors"
	"testing"
	"time"
)

// TestIssuedTokensDoNotOutliveTheirParent: a token cannot mint a token that lasts longer than
// itself, for its own user or, with tokens:manage, for another.
func TestIssuedTokensDoNotOutliveTheirParent(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	s, _ := newService(t, &now)
	ctx := t.Context()
	if err := s.EnsureAdmin(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	parent := func(login string, ttl time.Duration) Principal {
		t.Helper()
		tok, err := s.IssueToken(ctx, login, "parent", ttl)
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.AuthenticateToken(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name     string
		parent   time.Duration // 0: never expires
		login    string
		lifetime time.Duration // 0: the default
		want     time.Duration // the child's lifetime
		wantErr  error
	}{
		{"a stolen short token cannot make a year-long one", 2 * time.Hour, "", 365 * 24 * time.Hour, 0, ErrInvalid},
		{"a lifetime just over what is left", 2 * time.Hour, "", 2*time.Hour + time.Second, 0, ErrInvalid},
		{"exactly what is left", 2 * time.Hour, "", 2 * time.Hour, 2 * time.Hour, nil},
		{"the default fits", 2 * time.Hour, "", 0, DefaultTokenLifetime, nil},
		{"the default is cut to what is left", 10 * time.Minute, "", 0, 10 * time.Minute, nil},
		{"a token for another user is bounded too", 2 * time.Hour, "alice", 8 * time.Hour, 0, ErrInvalid},
		{"a token that never expires may issue up to the maximum", 0, "", DefaultMaxLifetime, DefaultMaxLifetime, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := parent("admin", tc.parent)
			_, info, err := s.IssueTokenFor(ctx, p, tc.login, "child", tc.lifetime)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info.ExpiresAt == nil || info.ExpiresAt.Sub(now) != tc.want {
				t.Errorf("child expires %v, want in %s", info.ExpiresAt, tc.want)
			}
			if p.ExpiresAt != nil && info.ExpiresAt.After(*p.ExpiresAt) {
				t.Errorf("child expires %v, after its parent %v", info.ExpiresAt, p.ExpiresAt)
			}
		})
	}

	t.Run("a child issued late expires with its parent", func(t *testing.T) {
		p := parent("admin", 8*time.Hour)
		now = now.Add(7*time.Hour + 30*time.Minute)
		child, info, err := s.IssueTokenFor(ctx, p, "", "child", 0)
		if err != nil {
			t.Fatal(err)
		}
		if !info.ExpiresAt.Equal(*p.ExpiresAt) {
			t.Errorf("child expires %v, parent %v", info.ExpiresAt, p.ExpiresAt)
		}
		now = now.Add(30 * time.Minute)
		if _, err := s.AuthenticateToken(ctx, child); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("the child outlived its parent: %v", err)
		}
	})
}
