package sqlite

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
)

// authStampSuffix names the file beside the database that says when tokens, roles or users
// last changed: every process that changes them through a Store writes new random bytes
// into it once its change is committed (RevokeToken, PutRole, DeleteRole, PutUser). A
// reader compares those bytes with the ones it saw before reading the database and so
// knows, with a stat and a pread and without a read transaction, whether what it read about
// a token may have changed since: auth.Service caches tokens on that basis (AuthGeneration),
// and a token revoked by another process (`baton token rotate-admin`) is refused by the
// server from the first request after that process's change returned. New tokens do not
// change it: nobody can have cached a token before it existed.
const authStampSuffix = "-auth"

// openAuthStamp opens the stamp file with flag (os.O_RDONLY or os.O_WRONLY), creating it
// first (private; privateFiles made an existing one private) when it is missing. Created by
// root for a database another user owns (`sudo baton token rotate-admin`), it is given to
// the database's owner, so that the server can read and write it.
func (s *Store) openAuthStamp(flag int) (*os.File, error) {
	path := s.path + authStampSuffix
	f, err := os.OpenFile(path, flag, 0)
	if !errors.Is(err, os.ErrNotExist) {
		return f, err
	}
	c, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		ownLikeDatabase(c, s.path)
		c.Close()
	case !errors.Is(err, os.ErrExist):
		return nil, err
	}
	return os.OpenFile(path, flag, 0)
}

// AuthGeneration returns the stamp file's bytes, prefixed by how many times this Store has
// opened it: they change whenever a process changes tokens, roles or users. ok is false
// when they cannot be read now. The file is looked up by its name each time (one stat,
// compared with the one of the file open), so
// one deleted or replaced meanwhile (a restore, a clean-up) is opened again, not its old copy
// that nobody writes any more; the count makes what was kept under the old file unusable.
func (s *Store) AuthGeneration() (gen string, ok bool) {
	s.stampMu.Lock()
	defer s.stampMu.Unlock()
	st, err := os.Stat(s.path + authStampSuffix)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	if s.authStamp != nil && (err != nil || !os.SameFile(s.stampInfo, st)) {
		s.authStamp.Close()
		s.authStamp = nil
	}
	if s.authStamp == nil {
		f, err := s.openAuthStamp(os.O_RDONLY)
		if err != nil {
			return "", false
		}
		if s.stampInfo, err = f.Stat(); err != nil {
			f.Close()
			return "", false
		}
		s.authStamp = f
		s.stampOpens++
	}
	var b [16]byte
	n, err := s.authStamp.ReadAt(b[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", false
	}
	return fmt.Sprintf("%d:%x", s.stampOpens, b[:n]), true
}

// authChanged writes new bytes into the stamp file (see authStampSuffix), opened by its name
// (created if missing). It runs after every write of tokens, roles or users, whatever its
// outcome: a failed write costs only a cache miss elsewhere. The change itself is committed
// when this runs, so a stamp that cannot be written is not the caller's error: it is
// logged, and other processes (a running server) may use what they kept of tokens, roles
// and users for up to their cache's lifetime (auth.TokenCacheTTL, 10 s). The server's own
// cache does not depend on the stamp: auth.Service forgets what it kept when it changes them.
func (s *Store) authChanged() {
	var b [16]byte
	_, _ = rand.Read(b[:])
	f, err := s.openAuthStamp(os.O_WRONLY)
	if err == nil {
		_, err = f.WriteAt(b[:], 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		s.log.Warn("tokens, roles or users changed, but the stamp that tells running servers so could not be written: they may use what they kept of them for up to 10 s",
			"error", fmt.Errorf("write %s: %w", s.path+authStampSuffix, err))
	}
}
