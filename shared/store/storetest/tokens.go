package storetest

import (
	"testing"
	"time"

	"github.com/baton-run/baton/shared/store"
)

// tokenHashes returns the hashes of ts, in order.
func tokenHashes(ts []store.Token) []string {
	out := []string{}
	for _, tk := range ts {
		out = append(out, tk.Hash)
	}
	return out
}

func equalTokens(t *testing.T, what string, got, want []store.Token) {
	t.Helper()
	equal(t, what, got, want, func(s []store.Token) []store.Token { return normSlice(s, normToken) })
}

func runTokens(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("PutAndGet", func(t *testing.T) {
		s := newStore(t)
		tests := []store.Token{
			{Hash: "aa11", Login: "admin", Label: "ci", CreatedAt: at(0)},
			{Hash: "bb22", Login: "alice", Label: "", CreatedAt: at(10), ExpiresAt: ptr(at(10).Add(24 * time.Hour))},
			{Hash: "cc33", Login: "bob", Label: "old laptop", CreatedAt: at(20), ExpiresAt: ptr(at(30)), Revoked: true},
		}
		for _, tk := range tests {
			t.Run(tk.Hash, func(t *testing.T) {
				must(t, "put token", s.PutToken(t.Context(), tk))
				got, err := s.GetToken(t.Context(), tk.Hash)
				must(t, "get token", err)
				equal(t, "stored token", got, tk, normToken)
			})
		}
	})

	t.Run("PutDuplicateExists", func(t *testing.T) {
		s := newStore(t)
		tk := store.Token{Hash: "aa11", Login: "admin", CreatedAt: at(0)}
		must(t, "put token", s.PutToken(t.Context(), tk))
		dup := tk
		dup.Login = "mallory"
		mustErrIs(t, "put duplicate", s.PutToken(t.Context(), dup), store.ErrExists)
		got, err := s.GetToken(t.Context(), tk.Hash)
		must(t, "get token", err)
		equal(t, "token after duplicate put", got, tk, normToken)
		list, err := s.ListTokens(t.Context(), "mallory")
		must(t, "list tokens", err)
		if len(list) != 0 {
			t.Fatalf("duplicate put listed %v under its login", tokenHashes(list))
		}
	})

	t.Run("GetUnknownIsNotFound", func(t *testing.T) {
		s := newStore(t)
		_, err := s.GetToken(t.Context(), "nope")
		mustErrIs(t, "get unknown token", err, store.ErrNotFound)
	})

	t.Run("ListNewestFirstByLogin", func(t *testing.T) {
		s := newStore(t)
		for _, login := range []string{"", "alice"} {
			got, err := s.ListTokens(t.Context(), login)
			must(t, "list tokens on empty store", err)
			if len(got) != 0 {
				t.Fatalf("empty store lists tokens %v for %q", tokenHashes(got), login)
			}
		}
		// Put in an order that is neither by time nor by hash.
		put := []store.Token{
			{Hash: "h3", Login: "alice", Label: "laptop", CreatedAt: at(30), ExpiresAt: ptr(at(30).Add(time.Hour))},
			{Hash: "h1", Login: "alice", Label: "first", CreatedAt: at(10)},
			{Hash: "h5", Login: "bob", Label: "ci", CreatedAt: at(50), Revoked: true},
			{Hash: "h2", Login: "bob", Label: "", CreatedAt: at(20)},
			{Hash: "h4", Login: "Alice", Label: "not alice", CreatedAt: at(40)},
			{Hash: "h6", Login: "alice", Label: "phone", CreatedAt: at(60).Add(500 * time.Millisecond)},
		}
		byHash := map[string]store.Token{}
		for _, tk := range put {
			must(t, "put token", s.PutToken(t.Context(), tk))
			byHash[tk.Hash] = tk
		}
		tokens := func(hashes ...string) []store.Token {
			out := make([]store.Token, len(hashes))
			for i, h := range hashes {
				out[i] = byHash[h]
			}
			return out
		}
		tests := []struct {
			login string
			want  []store.Token
		}{
			{"", tokens("h6", "h5", "h4", "h3", "h2", "h1")},
			{"alice", tokens("h6", "h3", "h1")},
			{"Alice", tokens("h4")},
			{"bob", tokens("h5", "h2")},
			{"carol", nil},
		}
		for _, tt := range tests {
			t.Run("login "+tt.login, func(t *testing.T) {
				got, err := s.ListTokens(t.Context(), tt.login)
				must(t, "list tokens", err)
				equalTokens(t, "listed tokens", got, tt.want)
			})
		}
	})

	t.Run("Revoke", func(t *testing.T) {
		s := newStore(t)
		keep := store.Token{Hash: "keep", Login: "alice", Label: "keep", CreatedAt: at(0)}
		tk := store.Token{Hash: "gone", Login: "alice", Label: "lost laptop", CreatedAt: at(10), ExpiresAt: ptr(at(3600))}
		must(t, "put token", s.PutToken(t.Context(), keep))
		must(t, "put token", s.PutToken(t.Context(), tk))

		revoked := tk
		revoked.Revoked = true
		for _, attempt := range []string{"first", "second"} {
			t.Run(attempt, func(t *testing.T) {
				must(t, "revoke token", s.RevokeToken(t.Context(), tk.Hash))
				got, err := s.GetToken(t.Context(), tk.Hash)
				must(t, "get revoked token", err)
				equal(t, "revoked token", got, revoked, normToken)
				list, err := s.ListTokens(t.Context(), "alice")
				must(t, "list tokens", err)
				equalTokens(t, "tokens after revoke", list, []store.Token{revoked, keep})
				all, err := s.ListTokens(t.Context(), "")
				must(t, "list all tokens", err)
				equalTokens(t, "all tokens after revoke", all, []store.Token{revoked, keep})
			})
		}
	})

	t.Run("RevokeUnknownIsNotFound", func(t *testing.T) {
		s := newStore(t)
		mustErrIs(t, "revoke unknown token", s.RevokeToken(t.Context(), "nope"), store.ErrNotFound)
		_, err := s.GetToken(t.Context(), "nope")
		mustErrIs(t, "get token after failed revoke", err, store.ErrNotFound)
		list, err := s.ListTokens(t.Context(), "")
		must(t, "list tokens", err)
		if len(list) != 0 {
			t.Fatalf("revoking an unknown token created %v", tokenHashes(list))
		}
	})
}
