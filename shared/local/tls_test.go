package local

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-run/baton/agent"
)

// logBuffer collects a logger's text output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitFor polls cond every 20ms until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

func tlsConfig(t *testing.T, mutate ...func(*Config)) Config {
	t.Helper()
	cfg := Config{Listen: "127.0.0.1:0", DataDir: filepath.Join(t.TempDir(), "data"), Modules: copyModules(t),
		ConnectTimeout: 3 * time.Second, SweepInterval: 50 * time.Millisecond, Logger: testLogger(t)}
	for _, m := range mutate {
		m(&cfg)
	}
	return cfg
}

func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	srv, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// apiClient talks to a TLS server, trusting its certificate as a CA (the self-signed one is
// its own CA), with the admin token.
type apiClient struct {
	t     *testing.T
	srv   *Server
	base  string
	token string
	http  *http.Client
}

func newAPIClient(t *testing.T, srv *Server) *apiClient {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(srv.CertificatePEM()) {
		t.Fatalf("CertificatePEM holds no certificate:\n%s", srv.CertificatePEM())
	}
	token, err := os.ReadFile(srv.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &apiClient{t: t, srv: srv, base: srv.URL(), token: strings.TrimSpace(string(token)), http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (c *apiClient) call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("X-Authentication", c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

func (c *apiClient) connected(name string) bool {
	var n struct {
		Connected bool `json:"connected"`
	}
	return c.call(http.MethodGet, "/orchestrator/v1/inventory/"+name, nil, &n) == nil && n.Connected
}

func (c *apiClient) enroll(name string) string {
	c.t.Helper()
	// Enrolment goes through the server's auth service: what `baton node add` calls.
	secret, err := c.srv.Auth().EnrollNode(context.Background(), name)
	if err != nil {
		c.t.Fatalf("enroll %s: %v", name, err)
	}
	return secret
}

// runAgent runs an agent until the test ends.
func runAgent(t *testing.T, cfg agent.Config) {
	t.Helper()
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(ctx); err != nil {
			t.Errorf("agent %s: %v", cfg.Name, err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func agentConfig(t *testing.T, srv *Server, name, secret string) agent.Config {
	dir := t.TempDir()
	return agent.Config{Server: srv.AgentURL(), Name: name, Secret: secret,
		CacheDir: filepath.Join(dir, "cache"), SpoolDir: filepath.Join(dir, "spool"),
		Facts:        func(context.Context) (map[string]any, error) { return map[string]any{"os": "test"}, nil },
		PingInterval: time.Second, MaxBackoff: 100 * time.Millisecond, DownloadBackoff: []time.Duration{},
		Logger: testLogger(t).With("agent", name)}
}

func TestAgentRunsTaskOverPinnedTLS(t *testing.T) {
	srv := startServer(t, tlsConfig(t))
	if !srv.TLS() || !strings.HasPrefix(srv.URL(), "https://") || !strings.HasPrefix(srv.AgentURL(), "wss://") {
		t.Fatalf("TLS %v, URL %s, agent URL %s: want https and wss", srv.TLS(), srv.URL(), srv.AgentURL())
	}
	api := newAPIClient(t, srv)

	cfg := agentConfig(t, srv, "tls1", api.enroll("tls1"))
	// Upper case with colons, as other tools print fingerprints.
	var colons []string
	for i := 0; i < len(srv.Fingerprint()); i += 2 {
		colons = append(colons, strings.ToUpper(srv.Fingerprint()[i:i+2]))
	}
	cfg.TLSFingerprint = strings.Join(colons, ":")
	runAgent(t, cfg)
	waitFor(t, "the agent to connect over WSS", 10*time.Second, func() bool { return api.connected("tls1") })

	var ref struct {
		Job struct {
			Name string `json:"name"`
		} `json:"job"`
	}
	req := map[string]any{"environment": "production", "task": "demo::hello", "params": map[string]any{"name": "pinned"},
		"scope": map[string]any{"nodes": []string{"tls1"}}}
	if err := api.call(http.MethodPost, "/orchestrator/v1/command/task", req, &ref); err != nil {
		t.Fatal(err)
	}
	var job struct {
		State string `json:"state"`
	}
	waitFor(t, "the job to end", 20*time.Second, func() bool {
		return api.call(http.MethodGet, "/orchestrator/v1/jobs/"+ref.Job.Name, nil, &job) == nil &&
			(job.State == "finished" || job.State == "failed" || job.State == "stopped")
	})
	var nodes struct {
		Items []struct {
			Name   string          `json:"name"`
			State  string          `json:"state"`
			Result json.RawMessage `json:"result"`
		} `json:"items"`
	}
	if err := api.call(http.MethodGet, "/orchestrator/v1/jobs/"+ref.Job.Name+"/nodes", nil, &nodes); err != nil {
		t.Fatal(err)
	}
	// The task file was downloaded from /files/ over HTTPS with the same pin.
	if job.State != "finished" || len(nodes.Items) != 1 || !strings.Contains(string(nodes.Items[0].Result), "hello pinned") {
		t.Fatalf("job %s %s, nodes %+v", ref.Job.Name, job.State, nodes.Items)
	}
}

func TestAgentWithAnotherFingerprintIsRefused(t *testing.T) {
	var serverLog, agentLog logBuffer
	srv := startServer(t, tlsConfig(t, func(c *Config) { c.Logger = serverLog.logger() }))
	api := newAPIClient(t, srv)

	cfg := agentConfig(t, srv, "mitm1", api.enroll("mitm1"))
	cfg.TLSFingerprint = strings.Repeat("ab", 32)
	cfg.Logger = agentLog.logger()
	runAgent(t, cfg)
	waitFor(t, "the agent to log the refused certificate", 10*time.Second, func() bool {
		return strings.Contains(agentLog.String(), "does not match the pinned TLS fingerprint") &&
			strings.Contains(agentLog.String(), "the server's is SHA-256 "+srv.Fingerprint())
	})
	waitFor(t, "the server to log the failed handshake", 10*time.Second, func() bool {
		return strings.Contains(serverLog.String(), "TLS handshake error")
	})
	// The handshake failed, so no HTTP request reached the /pcp handler: the node never
	// connected, and the server logged no request of this node.
	if api.connected("mitm1") {
		t.Error("an agent that refused the server's certificate is connected")
	}
	if log := serverLog.String(); strings.Contains(log, "mitm1") {
		t.Errorf("the server's handlers saw the refused agent:\n%s", log)
	}
}

func TestPlainHTTPOnlyOnLoopbackUnlessInsecure(t *testing.T) {
	for _, tc := range []struct {
		name    string
		listen  string
		plain   bool
		insec   bool
		refused bool
	}{
		{"plain on every IPv4 address", "0.0.0.0:0", true, false, true},
		{"plain on every address", ":0", true, false, true},
		{"plain on every IPv6 address", "[::]:0", true, false, true},
		{"plain on a LAN address", "10.1.2.3:0", true, false, true},
		{"insecure on every IPv4 address", "0.0.0.0:0", false, true, false},
		{"plain on 127.0.0.1", "127.0.0.1:0", true, false, false},
		{"plain on localhost", "localhost:0", true, false, false},
		{"TLS on every IPv4 address", "0.0.0.0:0", false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tlsConfig(t, func(c *Config) { c.Listen, c.PlainHTTP, c.Insecure = tc.listen, tc.plain, tc.insec })
			srv, err := Start(cfg)
			if tc.refused {
				if !errors.Is(err, ErrPlainHTTPNotLoopback) || !strings.Contains(err.Error(), "--insecure") {
					t.Fatalf("Start = %v, want ErrPlainHTTPNotLoopback mentioning --insecure", err)
				}
				if _, err := os.Stat(cfg.DataDir); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a refused server created its data directory (%v)", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Start = %v", err)
			}
			defer srv.Close()
			wantScheme := "https://"
			if tc.plain || tc.insec {
				wantScheme = "http://"
			}
			if !strings.HasPrefix(srv.URL(), wantScheme) || srv.TLS() != (wantScheme == "https://") {
				t.Errorf("URL %s, TLS %v; want %s", srv.URL(), srv.TLS(), wantScheme)
			}
			if wantScheme == "http://" && (srv.Fingerprint() != "" || srv.CertificatePEM() != nil || srv.CertFile() != "") {
				t.Errorf("a plain HTTP server reports a certificate")
			}
		})
	}
}

func TestConfigTLSSettings(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"certificate without key", func(c *Config) { c.TLSCert = "x.crt" }, "--tls-key"},
		{"key without certificate", func(c *Config) { c.TLSKey = "x.key" }, "--tls-cert"},
		{"certificate and insecure", func(c *Config) { c.TLSCert, c.TLSKey, c.Insecure = "x.crt", "x.key", true }, "plain HTTP"},
		{"certificate and extra names", func(c *Config) { c.TLSCert, c.TLSKey, c.TLSSANs = "x.crt", "x.key", []string{"a"} }, "--tls-san"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{DataDir: "d", Modules: "m"}
			tc.mutate(&cfg)
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
	t.Run("insecure implies plain HTTP", func(t *testing.T) {
		cfg := Config{DataDir: "d", Modules: "m", Insecure: true}
		if err := cfg.Validate(); err != nil || !cfg.PlainHTTP {
			t.Errorf("Validate = %v, PlainHTTP %v", err, cfg.PlainHTTP)
		}
	})
}

func TestSelfSignedCertificate(t *testing.T) {
	cfg := tlsConfig(t, func(c *Config) { c.TLSSANs = []string{"baton.example.test", "192.0.2.7"} })
	srv, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	first := srv.Fingerprint()
	certPath, keyPath := filepath.Join(cfg.DataDir, TLSCertFile), filepath.Join(cfg.DataDir, TLSKeyFile)
	if srv.CertFile() != certPath {
		t.Errorf("CertFile = %s, want %s", srv.CertFile(), certPath)
	}
	for path, mode := range map[string]os.FileMode{certPath: 0o644, keyPath: 0o600} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, want mode %v", path, err, mode)
		}
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(certPEM, srv.CertificatePEM()) {
		t.Errorf("CertificatePEM differs from %s", certPath)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatalf("%s is not PEM", certPath)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if Fingerprint(leaf.Raw) != first || len(first) != 64 {
		t.Errorf("Fingerprint = %q, want the SHA-256 of %s's DER", first, certPath)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", leaf.PublicKey)
	}
	host, _ := os.Hostname()
	for _, name := range []string{"localhost", "127.0.0.1", "::1", host, "baton.example.test", "192.0.2.7"} {
		if name == "" {
			continue
		}
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("the certificate does not name %s: %v", name, err)
		}
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}

	t.Run("reused on the next start", func(t *testing.T) {
		cfg.Listen = "127.0.0.1:0"
		srv := startServer(t, cfg)
		if srv.Fingerprint() != first {
			t.Errorf("fingerprint after a restart %s, want %s", srv.Fingerprint(), first)
		}
		// The certificate really is what the listener presents.
		conn, err := tls.Dial("tcp", srv.Addr(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if got := Fingerprint(conn.ConnectionState().PeerCertificates[0].Raw); got != first {
			t.Errorf("the listener presents %s, want %s", got, first)
		}
	})

	t.Run("a broken pair is an error, not replaced", func(t *testing.T) {
		if err := os.WriteFile(keyPath, []byte("not a key"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Start(cfg)
		if err == nil || !strings.Contains(err.Error(), "delete") {
			t.Errorf("Start with a broken key = %v, want an error saying how to recover", err)
		}
	})
}

func TestOperatorCertificate(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, err := selfSigned("", []string{"operator.example.test"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "op.crt"), filepath.Join(dir, "op.key")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := tlsConfig(t, func(c *Config) { c.TLSCert, c.TLSKey = certFile, keyFile })
	srv := startServer(t, cfg)
	block, _ := pem.Decode(certPEM)
	if srv.Fingerprint() != Fingerprint(block.Bytes) || srv.CertFile() != certFile {
		t.Errorf("Fingerprint %s, CertFile %s: want the operator's certificate %s", srv.Fingerprint(), srv.CertFile(), certFile)
	}
	entries, err := os.ReadDir(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if slices.Contains([]string{TLSCertFile, TLSKeyFile}, e.Name()) {
			t.Errorf("a server with the operator's certificate made %s", e.Name())
		}
	}
}

func TestNormalizeFingerprint(t *testing.T) {
	want := strings.Repeat("0a", 32)
	for _, tc := range []struct {
		in  string
		err bool
	}{
		{want, false},
		{strings.ToUpper(want), false},
		{strings.TrimSuffix(strings.Repeat("0A:", 32), ":"), false},
		{" " + want + "\n", false},
		{want[:62], true},
		{want + "00", true},
		{strings.Repeat("zz", 32), true},
		{"", true},
	} {
		got, err := NormalizeFingerprint(tc.in)
		if (err != nil) != tc.err || (!tc.err && got != want) {
			t.Errorf("NormalizeFingerprint(%q) = %q, %v", tc.in, got, err)
		}
	}
}
