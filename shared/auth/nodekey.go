package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/store"
)

// Node credentials, as kept in inventory.Node.CredentialHash:
//
//	<hex sha256>                       a secret the agent holds (Authorization: Bearer <secret>)
//	enroll:<unix expiry>:<hex sha256>  a one-time enrolment token, not yet used
//	ed25519:<base64 public key>        the agent's own key pair; connects are signed
//	""                                 revoked
//
// A signed connect carries "Authorization: Baton-Ed25519 ts=<unix>,nonce=<nonce>,sig=<base64>"
// where sig signs ConnectMessage(node, ts, nonce). The server accepts a timestamp within
// ConnectSkew of its clock and each nonce once, so a captured connect cannot be replayed.
const (
	schemeEnroll  = "enroll:"
	schemeEd25519 = "ed25519:"
	// ConnectSkew is how far a signed connect's timestamp may be from the server's clock.
	ConnectSkew = 2 * time.Minute
	// DefaultEnrollmentTTL is how long an enrolment token can be used.
	DefaultEnrollmentTTL = time.Hour
	// AuthSchemeEd25519 is the Authorization scheme of a signed connect.
	AuthSchemeEd25519 = "Baton-Ed25519"
)

var nonceRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]{16,64}$`) }) // compiled when first used: agent processes (and task supervisors) start faster

// ConnectMessage is what an agent signs to connect as node.
func ConnectMessage(node, ts, nonce string) []byte {
	return []byte("baton-connect/v1\n" + node + "\n" + ts + "\n" + nonce)
}

// SignConnect returns the Authorization header value of a signed connect made at now.
func SignConnect(key ed25519.PrivateKey, node string, now time.Time) string {
	b := make([]byte, 18)
	_, _ = rand.Read(b) // never fails: since Go 1.24 crypto/rand.Read crashes the program rather than return an error
	nonce := base64.RawURLEncoding.EncodeToString(b)
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := ed25519.Sign(key, ConnectMessage(node, ts, nonce))
	return fmt.Sprintf("%s ts=%s,nonce=%s,sig=%s", AuthSchemeEd25519, ts, nonce, base64.StdEncoding.EncodeToString(sig))
}

// CreateEnrollment enrols node name with a one-time enrolment token valid for ttl (0: the
// default), which the node's agent exchanges for its own key with Enroll.
func (s *Service) CreateEnrollment(ctx context.Context, name string, ttl time.Duration) (string, time.Time, error) {
	if !ValidNodeName(name) {
		return "", time.Time{}, fmt.Errorf("%w: %q (use letters, digits, '.', '-' and '_')", ErrInvalidName, name)
	}
	if ttl <= 0 {
		ttl = DefaultEnrollmentTTL
	}
	if ttl > 30*24*time.Hour {
		return "", time.Time{}, fmt.Errorf("%w: an enrolment token lasts at most 30 days", ErrInvalid)
	}
	token := NewSecret()
	exp := s.now().UTC().Add(ttl).Truncate(time.Second)
	n := inventory.Node{Name: name, CredentialHash: schemeEnroll + strconv.FormatInt(exp.Unix(), 10) + ":" + Hash(token),
		Facts: []byte("{}"), CreatedAt: s.now().UTC()}
	if err := s.createOrReenrol(ctx, n); err != nil {
		return "", time.Time{}, err
	}
	return token, exp, nil
}

// createOrReenrol creates node n, or, when a node of that name exists that was revoked or has
// not used its enrolment token yet, gives it n's credential in place of the old one (its
// facts and its place in past jobs stay). A node that holds a working key or secret is not
// replaced: ErrExists, until it is revoked.
func (s *Service) createOrReenrol(ctx context.Context, n inventory.Node) error {
	_, err := s.store.CreateNode(ctx, n)
	if !errors.Is(err, store.ErrExists) {
		if err != nil {
			return fmt.Errorf("enrol node %s: %w", n.Name, err)
		}
		return nil
	}
	for attempt := 0; ; attempt++ {
		cur, err := s.store.GetNode(ctx, n.Name)
		if err != nil {
			return fmt.Errorf("re-enrol node %s: %w", n.Name, err)
		}
		if cur.CredentialHash != "" && !strings.HasPrefix(cur.CredentialHash, schemeEnroll) {
			return fmt.Errorf("enrol node %s: %w: it holds a working credential; revoke it first (baton node revoke %s) to enrol it again",
				n.Name, store.ErrExists, n.Name)
		}
		cur.CredentialHash = n.CredentialHash
		_, err = s.store.UpdateNode(ctx, cur)
		if errors.Is(err, store.ErrConflict) && attempt < 10 {
			continue
		}
		if err != nil {
			return fmt.Errorf("re-enrol node %s: %w", n.Name, err)
		}
		return nil
	}
}

// MaxBulkEnrollments caps the nodes one CreateEnrollments call enrols.
const MaxBulkEnrollments = 10000

// Enrollment is one node's one-time enrolment token, as CreateEnrollments made it.
type Enrollment struct {
	Name      string
	Token     string
	ExpiresAt time.Time
}

// CreateEnrollments enrols the named nodes together, each with its own one-time enrolment
// token valid for ttl (0: the default): all of them, or none when a name is invalid, given
// twice or taken (ErrInvalidName, ErrInvalid, or store.ErrExists naming the taken ones).
func (s *Service) CreateEnrollments(ctx context.Context, names []string, ttl time.Duration) ([]Enrollment, error) {
	if len(names) == 0 || len(names) > MaxBulkEnrollments {
		return nil, fmt.Errorf("%w: enrol 1 to %d nodes at a time, not %d", ErrInvalid, MaxBulkEnrollments, len(names))
	}
	if ttl <= 0 {
		ttl = DefaultEnrollmentTTL
	}
	if ttl > 30*24*time.Hour {
		return nil, fmt.Errorf("%w: an enrolment token lasts at most 30 days", ErrInvalid)
	}
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		if !ValidNodeName(name) {
			return nil, fmt.Errorf("%w: %q (use letters, digits, '.', '-' and '_')", ErrInvalidName, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("%w: node %s is named twice", ErrInvalid, name)
		}
		seen[name] = true
	}
	taken, err := s.store.EnrolledNodes(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("enrol nodes: %w", err)
	}
	if len(taken) > 0 {
		list := make([]string, 0, len(taken))
		for _, name := range names {
			if taken[name] {
				list = append(list, name)
			}
		}
		return nil, &TakenError{Names: list}
	}
	now := s.now().UTC()
	exp := now.Add(ttl).Truncate(time.Second)
	out := make([]Enrollment, len(names))
	nodes := make([]inventory.Node, len(names))
	for i, name := range names {
		token := NewSecret()
		out[i] = Enrollment{Name: name, Token: token, ExpiresAt: exp}
		nodes[i] = inventory.Node{Name: name, CredentialHash: schemeEnroll + strconv.FormatInt(exp.Unix(), 10) + ":" + Hash(token),
			Facts: []byte("{}"), CreatedAt: now}
	}
	if err := s.store.CreateNodes(ctx, nodes); err != nil {
		return nil, fmt.Errorf("enrol %d nodes: %w", len(names), err)
	}
	return out, nil
}

// TakenError is CreateEnrollments' refusal of names already enrolled; it wraps
// store.ErrExists.
type TakenError struct{ Names []string }

func (e *TakenError) Error() string {
	shown := e.Names
	if len(shown) > 10 {
		shown = shown[:10]
	}
	more := ""
	if len(e.Names) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(e.Names)-len(shown))
	}
	return fmt.Sprintf("%d of the nodes are already enrolled: %s%s", len(e.Names), strings.Join(shown, ", "), more)
}

func (e *TakenError) Unwrap() error { return store.ErrExists }

// Enroll exchanges node name's enrolment token for the agent's public key. The token works
// once and until it expires; afterwards the node authenticates only with its key.
func (s *Service) Enroll(ctx context.Context, name, token string, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key must be %d bytes", ErrInvalid, ed25519.PublicKeySize)
	}
	for attempt := 0; ; attempt++ {
		n, err := s.store.GetNode(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: unknown node", ErrUnauthenticated)
		}
		if err != nil {
			return fmt.Errorf("enrol %s: %w", name, err)
		}
		rest, ok := strings.CutPrefix(n.CredentialHash, schemeEnroll)
		if !ok {
			return fmt.Errorf("%w: node %s has no enrolment token (already enrolled or revoked)", ErrUnauthenticated, name)
		}
		expStr, hash, _ := strings.Cut(rest, ":")
		exp, err := strconv.ParseInt(expStr, 10, 64)
		if err != nil || !s.now().Before(time.Unix(exp, 0)) {
			return fmt.Errorf("%w: the enrolment token of %s has expired", ErrUnauthenticated, name)
		}
		want, _ := hex.DecodeString(hash)
		got := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(got[:], want) != 1 {
			return fmt.Errorf("%w: wrong enrolment token", ErrUnauthenticated)
		}
		n.CredentialHash = schemeEd25519 + base64.StdEncoding.EncodeToString(pub)
		_, err = s.store.UpdateNode(ctx, n)
		if errors.Is(err, store.ErrConflict) && attempt < 3 {
			continue // someone else changed the node: look again (a second use then fails)
		}
		if err != nil {
			return fmt.Errorf("enrol %s: %w", name, err)
		}
		return nil
	}
}

// AuthenticateNodeHeader checks an agent's connect: its Authorization header value is either
// "Bearer <secret>" or a signed "Baton-Ed25519 ..." connect (see SignConnect).
func (s *Service) AuthenticateNodeHeader(ctx context.Context, name, authorization string) error {
	scheme, params, _ := strings.Cut(strings.TrimSpace(authorization), " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return s.AuthenticateNode(ctx, name, strings.TrimSpace(params))
	case strings.EqualFold(scheme, AuthSchemeEd25519):
		return s.authenticateSigned(ctx, name, params)
	}
	return fmt.Errorf("%w: Authorization must be Bearer or %s", ErrUnauthenticated, AuthSchemeEd25519)
}

func (s *Service) authenticateSigned(ctx context.Context, name, params string) error {
	p := map[string]string{}
	for _, kv := range strings.Split(params, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		p[k] = v
	}
	ts, nonce := p["ts"], p["nonce"]
	sig, err := base64.StdEncoding.DecodeString(p["sig"])
	if err != nil || len(sig) != ed25519.SignatureSize || !nonceRE().MatchString(nonce) {
		return fmt.Errorf("%w: malformed signed connect", ErrUnauthenticated)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: malformed timestamp", ErrUnauthenticated)
	}
	now := s.now()
	if d := now.Sub(time.Unix(sec, 0)); d > ConnectSkew || d < -ConnectSkew {
		return fmt.Errorf("%w: connect timestamp is %s off the server's clock", ErrUnauthenticated, d.Round(time.Second))
	}
	n, err := s.store.GetNode(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: unknown node", ErrUnauthenticated)
	}
	if err != nil {
		return fmt.Errorf("look up node %s: %w", name, err)
	}
	enc, ok := strings.CutPrefix(n.CredentialHash, schemeEd25519)
	if !ok {
		return fmt.Errorf("%w: node %s has no key (not enrolled, or revoked)", ErrUnauthenticated, name)
	}
	pub, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("node %s: bad stored public key", name)
	}
	if !ed25519.Verify(pub, ConnectMessage(name, ts, nonce), sig) {
		return fmt.Errorf("%w: bad signature", ErrUnauthenticated)
	}
	// Only now record the nonce: a forged connect must not use up a real one.
	if err := s.store.UseNonce(ctx, name+"/"+nonce, now, now.Add(2*ConnectSkew)); err != nil {
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("%w: replayed connect (nonce already used)", ErrUnauthenticated)
		}
		return fmt.Errorf("record nonce: %w", err)
	}
	return nil
}
