package sqlite

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/store"
)

// TestAuthStamp checks the token change stamp: the changes of tokens, roles and users
// change the generation, a new token does not, a store on the same file sees the other's
// changes, an unusable stamp makes the generation unknown (and the changes still succeed),
// and root gives a stamp it creates to the database's owner.
func TestAuthStamp(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t)
	other, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	gen := func() string {
		t.Helper()
		g, ok := s.AuthGeneration()
		if !ok {
			t.Fatal("no generation")
		}
		return g
	}
	now := time.Unix(0, 0).UTC()
	last := gen()
	changes := []struct {
		name   string
		change func() error
		moves  bool
	}{
		{"a new token", func() error { return other.PutToken(ctx, store.Token{Hash: "h1", Login: "a", CreatedAt: now}) }, false},
		{"a revocation", func() error { return other.RevokeToken(ctx, "h1") }, true},
		{"a role", func() error { _, err := other.PutRole(ctx, store.Role{Name: "r", CreatedAt: now}); return err }, true},
		{"a user", func() error { _, err := other.PutUser(ctx, store.User{Login: "a", CreatedAt: now}); return err }, true},
		{"a role removed", func() error { return other.DeleteRole(ctx, "r") }, true},
		{"a refused change", func() error { _, err := other.PutUser(ctx, store.User{Login: "a", CreatedAt: now}); return err }, true},
	}
	for _, c := range changes {
		_ = c.change() // the refused one fails: the stamp moves anyway
		if g := gen(); (g != last) != c.moves {
			t.Errorf("%s: generation changed %v, want %v", c.name, g != last, c.moves)
		}
		last = gen()
	}

	// A directory where the stamp should be: the generation is unknown, changes still work.
	stamp := path + authStampSuffix
	if err := os.Remove(stamp); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(stamp, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.AuthGeneration(); ok {
		t.Error("a directory in the stamp's place gave a generation")
	}
	if err := other.RevokeToken(ctx, "h1"); err != nil {
		t.Errorf("a change with no stamp to write: %v", err)
	}
	if err := os.Remove(stamp); err != nil {
		t.Fatal(err)
	}

	if os.Geteuid() != 0 {
		t.Log("not root: the stamp's owner is not checked")
		return
	}
	if err := os.Chown(path, 4242, 4343); err != nil {
		t.Fatal(err)
	}
	if err := other.RevokeToken(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(stamp)
	if err != nil {
		t.Fatal(err)
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 4242 || sys.Gid != 4343 || st.Mode().Perm() != 0o600 {
		t.Errorf("a stamp root made for another user's database: owner %d:%d, mode %v", sys.Uid, sys.Gid, st.Mode().Perm())
	}
	if _, ok := s.AuthGeneration(); !ok {
		t.Error("no generation from the new stamp")
	}
}
