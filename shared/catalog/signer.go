package catalog

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

// Errors returned by Signer.Verify.
var (
	ErrURLExpired   = errors.New("file URL expired")
	ErrBadSignature = errors.New("file URL signature invalid")
)

// MinKeyBytes is the shortest HMAC key NewSigner accepts.
const MinKeyBytes = 16

// Signer makes and checks expiring file URLs: HMAC-SHA256 over environment, module, filename
// and expiry time.
type Signer struct {
	key []byte
	now func() time.Time
}

// NewSigner returns a Signer using key (at least MinKeyBytes bytes) and the clock now
// (time.Now when nil).
func NewSigner(key []byte, now func() time.Time) (*Signer, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("new signer: key must be at least %d bytes, got %d", MinKeyBytes, len(key))
	}
	if now == nil {
		now = time.Now
	}
	return &Signer{key: append([]byte(nil), key...), now: now}, nil
}

// Sign returns the URL of filename (a Task.Files Filename, may contain /) of a task of module
// in env, valid for ttl: path /files/<env>/<module>/<filename> with params expires (unix
// seconds) and signature (hex).
func (s *Signer) Sign(env, module, filename string, ttl time.Duration) protocol.FileURI {
	expires := strconv.FormatInt(s.now().Add(ttl).Unix(), 10)
	segs := strings.Split(filename, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return protocol.FileURI{
		Path: "/files/" + url.PathEscape(env) + "/" + url.PathEscape(module) + "/" + strings.Join(segs, "/"),
		Params: map[string]string{
			"expires":   expires,
			"signature": hex.EncodeToString(s.mac(env, module, filename, expires)),
		},
	}
}

// Verify checks a URL's signature (in constant time), then its expiry.
func (s *Signer) Verify(env, module, filename, expires, signature string) error {
	got, err := hex.DecodeString(signature)
	if err != nil || !hmac.Equal(got, s.mac(env, module, filename, expires)) {
		return ErrBadSignature
	}
	exp, err := strconv.ParseInt(expires, 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	if !s.now().Before(time.Unix(exp, 0)) {
		return fmt.Errorf("expired at %s: %w", time.Unix(exp, 0).UTC().Format(time.RFC3339), ErrURLExpired)
	}
	return nil
}

// mac authenticates the fields length-prefixed, so no two field lists share an encoding.
func (s *Signer) mac(fields ...string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("baton-file-url-v1\n"))
	for _, f := range fields {
		m.Write([]byte(strconv.Itoa(len(f)) + ":" + f + "\n"))
	}
	return m.Sum(nil)
}
