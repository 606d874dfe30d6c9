package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/store"
)

// TestDatabaseFilesArePrivate: under the usual umask (022), the database and its -wal and
// -shm files are created 0600, and files an older version left readable by others are made
// private when the store is opened.
func TestDatabaseFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "baton.db")
	files := []string{path, path + "-wal", path + "-shm", path + authStampSuffix}
	check := func(when string) {
		t.Helper()
		for _, f := range files {
			st, err := os.Stat(f)
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if perm := st.Mode().Perm(); perm != 0o600 {
				t.Errorf("%s: %s has mode %v, want 0600", when, filepath.Base(f), perm)
			}
		}
	}
	write := func(s *Store) {
		t.Helper()
		if err := s.PutToken(context.Background(), store.Token{Hash: time.Now().String(), Login: "x", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}

	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	write(s) // the -wal and -shm files exist while the store is open
	check("created")
	s.Close()

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	write(s)
	for _, f := range files {
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if _, err := os.Stat(path + "-wal"); os.IsNotExist(err) {
		// SQLite removed the WAL on close: leave one behind as a crash would.
		if err := os.WriteFile(path+"-wal", nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+"-shm", nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	write(s)
	check("reopened")
}
