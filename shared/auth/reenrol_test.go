package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/store"
)

// TestReenrolRevokedNode: revoke and re-enrol rotates a node's key. A new enrolment token
// replaces a revoked credential (or an unused enrolment token), never a working one, and the
// old key stays refused.
func TestReenrolRevokedNode(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	s, st := newService(t, &now)
	ctx := t.Context()
	first, _, err := s.CreateEnrollment(ctx, "web1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	oldPub, oldKey, _ := ed25519.GenerateKey(rand.Reader)
	if err := s.Enroll(ctx, "web1", first, oldPub); err != nil {
		t.Fatal(err)
	}
	if err := st.SetNodeFacts(ctx, "web1", []byte(`{"role":"web"}`)); err != nil {
		t.Fatal(err)
	}

	if _, _, err := s.CreateEnrollment(ctx, "web1", time.Hour); !errors.Is(err, store.ErrExists) {
		t.Fatalf("re-enrolling a node with a working key: %v, want ErrExists", err)
	}
	if err := s.AuthenticateNodeHeader(ctx, "web1", SignConnect(oldKey, "web1", now)); err != nil {
		t.Fatalf("a refused re-enrolment changed the node: %v", err)
	}

	if err := s.RevokeNode(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	second, _, err := s.CreateEnrollment(ctx, "web1", time.Hour)
	if err != nil {
		t.Fatalf("re-enrolling a revoked node: %v", err)
	}
	// Before the new token is used, another one may replace it; only the newest works.
	third, _, err := s.CreateEnrollment(ctx, "web1", time.Hour)
	if err != nil {
		t.Fatalf("replacing an unused enrolment token: %v", err)
	}
	newPub, newKey, _ := ed25519.GenerateKey(rand.Reader)
	if err := s.Enroll(ctx, "web1", second, newPub); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("a replaced enrolment token worked: %v", err)
	}
	if err := s.Enroll(ctx, "web1", third, newPub); err != nil {
		t.Fatalf("enrol with the new token: %v", err)
	}
	if err := s.AuthenticateNodeHeader(ctx, "web1", SignConnect(newKey, "web1", now)); err != nil {
		t.Errorf("the new key: %v", err)
	}
	if err := s.AuthenticateNodeHeader(ctx, "web1", SignConnect(oldKey, "web1", now)); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("the old key after re-enrolment: %v", err)
	}
	n, err := st.GetNode(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if string(n.Facts) != `{"role":"web"}` {
		t.Errorf("facts after re-enrolment: %s", n.Facts)
	}

	// A node given a secret (baton node add --secret) is re-enrolled the same way.
	if _, err := s.EnrollNode(ctx, "db1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnrollNode(ctx, "db1"); !errors.Is(err, store.ErrExists) {
		t.Errorf("a second secret for a node with a working one: %v", err)
	}
	if err := s.RevokeNode(ctx, "db1"); err != nil {
		t.Fatal(err)
	}
	secret, err := s.EnrollNode(ctx, "db1")
	if err != nil {
		t.Fatalf("re-enrolling a revoked node with a secret: %v", err)
	}
	if err := s.AuthenticateNode(ctx, "db1", secret); err != nil {
		t.Errorf("the new secret: %v", err)
	}
}
