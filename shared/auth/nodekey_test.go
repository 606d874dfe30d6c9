package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEnrollmentAndSignedConnects(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	s, st := newService(t, &now)
	ctx := t.Context()
	token, exp, err := s.CreateEnrollment(ctx, "web1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(now.Add(time.Hour)) {
		t.Errorf("expiry %v", exp)
	}
	n, _ := st.GetNode(ctx, "web1")
	if strings.Contains(n.CredentialHash, token) {
		t.Fatal("the enrolment token is stored in clear")
	}
	if err := s.AuthenticateNodeHeader(ctx, "web1", "Bearer "+token); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("the enrolment token works as a connect credential: %v", err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	if err := s.Enroll(ctx, "web1", "wrong", pub); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("wrong token: %v", err)
	}
	if err := s.Enroll(ctx, "web1", token, pub); err != nil {
		t.Fatal(err)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if err := s.Enroll(ctx, "web1", token, other); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("an enrolment token worked twice: %v", err)
	}

	hdr := SignConnect(priv, "web1", now)
	if err := s.AuthenticateNodeHeader(ctx, "web1", hdr); err != nil {
		t.Fatalf("signed connect: %v", err)
	}
	if err := s.AuthenticateNodeHeader(ctx, "web1", hdr); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("a replayed connect was accepted: %v", err)
	}
	if err := s.AuthenticateNodeHeader(ctx, "web2", SignConnect(priv, "web1", now)); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("web1's signature accepted for web2: %v", err)
	}
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	for name, h := range map[string]string{
		"another key":       SignConnect(stranger, "web1", now),
		"stale timestamp":   SignConnect(priv, "web1", now.Add(-3*time.Minute)),
		"future timestamp":  SignConnect(priv, "web1", now.Add(3*time.Minute)),
		"garbage":           "Baton-Ed25519 ts=1,nonce=x,sig=y",
		"no scheme":         "hello",
		"bearer for a key":  "Bearer something",
		"basic":             "Basic d2ViMTp4",
		"tampered nonce":    strings.Replace(SignConnect(priv, "web1", now), "nonce=", "nonce=A", 1),
		"empty":             "",
		"unsigned params":   AuthSchemeEd25519 + " ts=" + "1764064800" + ",nonce=abcdefghijklmnopqrstuvwx",
		"bad base64 of sig": AuthSchemeEd25519 + " ts=1764064800,nonce=abcdefghijklmnopqrstuvwx,sig=!!!",
	} {
		if err := s.AuthenticateNodeHeader(ctx, "web1", h); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := s.RevokeNode(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	if err := s.AuthenticateNodeHeader(ctx, "web1", SignConnect(priv, "web1", now)); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("a revoked node's key still works: %v", err)
	}

	t.Run("an expired enrolment token does not work", func(t *testing.T) {
		tok, _, err := s.CreateEnrollment(ctx, "late", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Minute)
		if err := s.Enroll(ctx, "late", tok, pub); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("expired token: %v", err)
		}
	})
}
