package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigValidateTransportSecurity(t *testing.T) {
	fp := strings.Repeat("0f", 32)
	// Names resolve through this table, never through DNS.
	hosts := map[string][]string{
		"localhost.localstack.cloud": {"127.0.0.1"},
		"dual.example":               {"127.0.0.1", "::1"},
		"mixed.example":              {"127.0.0.1", "10.0.0.7"},
		"baton.example.com":          {"203.0.113.10"},
	}
	base := Config{Name: "n", Secret: "s", CacheDir: "/c", SpoolDir: "/s",
		LookupHost: func(_ context.Context, h string) ([]string, error) {
			if a, ok := hosts[h]; ok {
				return a, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: h, IsNotFound: true}
		}}
	for _, tc := range []struct {
		name     string
		server   string
		mod      func(*Config)
		wantErr  string
		validate bool // only Validate: the server must never be dialled
	}{
		{"ws to loopback IPv4", "ws://127.0.0.1:8143/pcp", nil, "", true},
		{"ws to another loopback address", "ws://127.1.2.3:8143/pcp", nil, "", true},
		{"ws to loopback IPv6", "ws://[::1]:8143/pcp", nil, "", true},
		{"ws to localhost", "ws://LocalHost:8143/pcp", nil, "", true},
		{"ws to a LAN address", "ws://10.1.2.3:8143/pcp", nil, "Insecure (baton-agent --insecure)", true},
		{"ws to a name", "ws://baton.example.com/pcp", nil, "not loopback", true},
		{"ws to a name that resolves to loopback", "ws://localhost.localstack.cloud:4510/pcp", nil, "", false},
		{"ws to a name with only loopback addresses", "ws://dual.example/pcp", nil, "", true},
		{"ws to a name with one address that is not loopback", "ws://mixed.example/pcp", nil, "not loopback", true},
		{"ws to a name that does not resolve", "ws://nowhere.example/pcp", nil, "not loopback", true},
		{"ws to every address", "ws://0.0.0.0:8143/pcp", nil, "not loopback", true},
		{"ws to a LAN address with Insecure", "ws://10.1.2.3:8143/pcp", func(c *Config) { c.Insecure = true }, "", true},
		{"wss with a pin", "wss://10.1.2.3:8143/pcp", func(c *Config) { c.TLSFingerprint = fp }, "", false},
		{"wss with a pin with colons", "wss://10.1.2.3:8143/pcp", func(c *Config) {
			c.TLSFingerprint = strings.TrimSuffix(strings.Repeat("0F:", 32), ":")
		}, "", false},
		{"a pin that is too short", "wss://10.1.2.3:8143/pcp", func(c *Config) { c.TLSFingerprint = fp[:40] }, "64 hex digits", true},
		{"a pin that is not hex", "wss://10.1.2.3:8143/pcp", func(c *Config) { c.TLSFingerprint = strings.Repeat("xy", 32) }, "64 hex digits", true},
		{"a pin and a CA file", "wss://10.1.2.3:8143/pcp", func(c *Config) { c.TLSFingerprint, c.CAFile = fp, "/ca.pem" }, "not both", true},
		{"a pin without TLS", "ws://127.0.0.1:8143/pcp", func(c *Config) { c.TLSFingerprint = fp }, "use wss://", true},
		{"a CA file without TLS", "ws://127.0.0.1:8143/pcp", func(c *Config) { c.CAFile = "/ca.pem" }, "use wss://", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			c.Server = tc.server
			if tc.mod != nil {
				tc.mod(&c)
			}
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				if !tc.validate {
					if _, err := New(c); err != nil {
						t.Fatalf("New() = %v", err)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// tlsServer is an httptest TLS server on loopback answering "ok".
func tlsServer(t *testing.T) (srv *httptest.Server, fingerprint string) {
	t.Helper()
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	sum := sha256.Sum256(srv.Certificate().Raw)
	return srv, hex.EncodeToString(sum[:])
}

func get(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && string(b) != "ok" {
		return errors.New("unexpected body " + string(b))
	}
	return err
}

func TestTLSHTTPClient(t *testing.T) {
	server, fp := tlsServer(t)
	other, _ := tlsServer(t) // another host:port, with another certificate
	wss := "wss" + strings.TrimPrefix(server.URL, "https") + "/pcp"
	dir := t.TempDir()
	newClient := func(t *testing.T, mod func(*Config)) (*http.Client, error) {
		t.Helper()
		c := Config{Server: wss, Name: "n", Secret: "s", CacheDir: filepath.Join(dir, "c"), SpoolDir: filepath.Join(dir, "s")}
		mod(&c)
		a, err := New(c)
		if err != nil {
			return nil, err
		}
		return a.cfg.HTTPClient, nil
	}

	t.Run("the pinned certificate is accepted, for the server only", func(t *testing.T) {
		c, err := newClient(t, func(c *Config) { c.TLSFingerprint = strings.ToUpper(fp) })
		if err != nil {
			t.Fatal(err)
		}
		if err := get(c, server.URL+"/files/x"); err != nil {
			t.Errorf("GET from the pinned server: %v", err)
		}
		// Another host is verified with the system's CAs, which do not know httptest's.
		if err := get(c, other.URL); err == nil || errors.Is(err, ErrTLSFingerprintMismatch) {
			t.Errorf("GET from another host = %v, want a CA verification error", err)
		}
	})
	t.Run("another certificate is refused", func(t *testing.T) {
		c, err := newClient(t, func(c *Config) { c.TLSFingerprint = strings.Repeat("ab", 32) })
		if err != nil {
			t.Fatal(err)
		}
		err = get(c, server.URL)
		if !errors.Is(err, ErrTLSFingerprintMismatch) || !strings.Contains(err.Error(), fp) {
			t.Errorf("GET = %v, want ErrTLSFingerprintMismatch naming the server's fingerprint %s", err, fp)
		}
	})
	t.Run("a CA file is trusted", func(t *testing.T) {
		ca := filepath.Join(dir, "ca.pem")
		if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: server.Certificate().Raw}), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := newClient(t, func(c *Config) { c.CAFile = ca })
		if err != nil {
			t.Fatal(err)
		}
		if err := get(c, server.URL); err != nil {
			t.Errorf("GET with the CA file: %v", err)
		}
	})
	t.Run("without settings the certificate is verified with the system's CAs", func(t *testing.T) {
		c, err := newClient(t, func(*Config) {})
		if err != nil {
			t.Fatal(err)
		}
		if err := get(c, server.URL); err == nil {
			t.Error("a self-signed certificate was accepted without a pin or CA file")
		}
	})
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"a missing CA file", func(c *Config) { c.CAFile = filepath.Join(dir, "nope.pem") }, "CA file"},
		{"a CA file without certificates", func(c *Config) {
			c.CAFile = filepath.Join(dir, "empty.pem")
			os.WriteFile(c.CAFile, []byte("nothing here"), 0o644)
		}, "holds no PEM certificate"},
		{"a pin with a transport that cannot take it", func(c *Config) {
			c.TLSFingerprint = fp
			c.HTTPClient = &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("no") })}
		}, "*http.Transport"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := newClient(t, tc.mod); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
