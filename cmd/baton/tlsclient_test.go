package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCLITLSTrust(t *testing.T) {
	newServer := func(cert *tls.Certificate) (*httptest.Server, string) {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
		if cert != nil {
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
		}
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
		srv.StartTLS()
		t.Cleanup(srv.Close)
		sum := sha256.Sum256(srv.Certificate().Raw)
		return srv, hex.EncodeToString(sum[:])
	}
	server, fp := newServer(nil)
	other, otherFP := newServer(testCertificate(t)) // another address and another certificate
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: server.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		state    *servedState // what `baton serve` recorded, if anything
		env      map[string]string
		explicit *serverTrust // node add --tls-fingerprint / --ca-file
		want     string       // "" for success, else part of the error
	}{
		{"the local server's recorded fingerprint", &servedState{localState: localState{URL: server.URL}, TLSFingerprint: fp}, nil, nil, ""},
		{"a local server with another certificate", &servedState{localState: localState{URL: server.URL}, TLSFingerprint: otherFP}, nil, nil, "not the expected " + otherFP},
		{"the recorded fingerprint is for another address", &servedState{localState: localState{URL: other.URL}, TLSFingerprint: fp}, nil, nil, "unknown authority"},
		{"no trust: the system's CAs", nil, nil, nil, "unknown authority"},
		{"BATON_TLS_FINGERPRINT", nil, map[string]string{"BATON_TLS_FINGERPRINT": strings.ToUpper(fp)}, nil, ""},
		{"BATON_TLS_FINGERPRINT of another certificate", nil, map[string]string{"BATON_TLS_FINGERPRINT": otherFP}, nil, "not the expected"},
		{"BATON_CA_FILE", nil, map[string]string{"BATON_CA_FILE": caFile}, nil, ""},
		{"both variables", nil, map[string]string{"BATON_CA_FILE": caFile, "BATON_TLS_FINGERPRINT": fp}, nil, "not both"},
		{"a bad BATON_TLS_FINGERPRINT", nil, map[string]string{"BATON_TLS_FINGERPRINT": "abc"}, nil, "64 hex digits"},
		{"a flag beats the local state", &servedState{localState: localState{URL: server.URL}, TLSFingerprint: otherFP}, nil, &serverTrust{Fingerprint: fp}, ""},
		{"a flag pinning another certificate", nil, nil, &serverTrust{Fingerprint: otherFP}, "not the expected"},
		{"a CA file flag", nil, nil, &serverTrust{CAFile: caFile}, ""},
		{"a missing CA file", nil, nil, &serverTrust{CAFile: filepath.Join(dir, "nope.pem")}, "CA file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("XDG_CONFIG_HOME", t.TempDir())
			t.Setenv("BATON_TLS_FINGERPRINT", tc.env["BATON_TLS_FINGERPRINT"])
			t.Setenv("BATON_CA_FILE", tc.env["BATON_CA_FILE"])
			if tc.state != nil {
				if err := writeLocalState(*tc.state); err != nil {
					t.Fatal(err)
				}
			}
			trust := newTLSTrust(cliTLS.base.Clone())
			if tc.explicit != nil {
				if err := trust.set(server.URL, *tc.explicit); err != nil {
					t.Fatal(err)
				}
			}
			c := trust.httpClient()
			defer trust.CloseIdleConnections()
			resp, err := c.Get(server.URL + "/orchestrator/v1/jobs")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "ok" {
					t.Fatalf("body %q", b)
				}
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("GET = %v, want success", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("GET = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// testCertificate is a self-signed certificate for 127.0.0.1 that is not httptest's.
func testCertificate(t *testing.T) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "other"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestNewServerTrust(t *testing.T) {
	fp := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, fp, ca string
		want         serverTrust
		err          bool
	}{
		{"nothing", "", "", serverTrust{}, false},
		{"fingerprint with colons", strings.TrimSuffix(strings.Repeat("AB:", 32), ":"), "", serverTrust{Fingerprint: fp}, false},
		{"CA file", "", "/ca.pem", serverTrust{CAFile: "/ca.pem"}, false},
		{"both", fp, "/ca.pem", serverTrust{}, true},
		{"bad fingerprint", "abcd", "", serverTrust{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := newServerTrust(tc.fp, tc.ca)
			var ue usageErr
			if tc.err != errors.As(err, &ue) || got != tc.want {
				t.Errorf("newServerTrust = %+v, %v; want %+v, usage error %v", got, err, tc.want, tc.err)
			}
		})
	}
	if err := newTLSTrust(cliTLS.base.Clone()).set("http://127.0.0.1:8143", serverTrust{Fingerprint: fp}); err == nil {
		t.Error("a pin for a plain HTTP server was accepted")
	}
}
