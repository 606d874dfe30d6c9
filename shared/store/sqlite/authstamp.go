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
// knows, with one pread and without a read transaction, whether what it read about a token
// may have changed since: auth.Service caches tokens on that basis (AuthGeneration), and a
// token revoked by another process (`baton admin-token rotate`) is refused on the server's
// next request. New tokens do not change it: nobody can have cached a token before it
// existed.
const authStampSuffix = "-auth"

// openAuthStamp opens (creating it, private; privateFiles made an existing one private) the stamp file of the database at path; nil
// when it cannot be (the Store then says it cannot tell, and nothing caches on it).
func (s *Store) openAuthStamp() {
	f, err := os.OpenFile(s.path+authStampSuffix, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		s.log.Warn("the token change stamp cannot be opened: API tokens are read from the database on every request", "error", err)
		return
	}
	s.authStamp = f
}

// AuthGeneration returns the bytes of the stamp file: they change whenever a process
// changes tokens, roles or users. ok is false when there is no stamp to read.
func (s *Store) AuthGeneration() (gen string, ok bool) {
	if s.authStamp == nil {
		return "", false
	}
	var b [16]byte
	n, err := s.authStamp.ReadAt(b[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", false
	}
	return string(b[:n]), true
}

// authChanged writes new bytes into the stamp file (see authStampSuffix). It runs after
// every write of tokens, roles or users, whatever its outcome: a failed write costs only a
// cache miss elsewhere. When the stamp cannot be written, caches of the running server
// keep what they read for at most their lifetime (auth.TokenCacheTTL); the change itself
// is committed, so the caller is not told of a failure: it is logged.
func (s *Store) authChanged() {
	if s.authStamp == nil {
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	if _, err := s.authStamp.WriteAt(b[:], 0); err != nil {
		s.log.Warn("the token change stamp cannot be written: other processes may use what they cached of tokens, roles and users for up to their cache's lifetime",
			"error", fmt.Errorf("write %s: %w", s.path+authStampSuffix, err))
	}
}
