package local

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/baton-run/baton/agent"
	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/client"
)

// closedWithin reads c until the server closes it, and fails unless that happens within d.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %s", d)
	}
}

func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSlowAndIdleClientsAreCut: a request whose body never arrives is cut at the read
// timeout, and a kept-alive connection with no request at the idle timeout.
func TestSlowAndIdleClientsAreCut(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.ReadTimeout, c.WriteTimeout, c.IdleTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	})
	t.Run("slow body", func(t *testing.T) {
		c := dialRaw(t, h.srv.Addr())
		if _, err := io.WriteString(c, "POST /baton/v1/enroll HTTP/1.1\r\nHost: baton\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{\"name\":"); err != nil {
			t.Fatal(err)
		}
		closedWithin(t, c, 10*time.Second)
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		c := dialRaw(t, h.srv.Addr())
		if _, err := io.WriteString(c, "GET /orchestrator/v1 HTTP/1.1\r\nHost: baton\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Close {
			t.Fatal("the server did not keep the connection alive; nothing to test")
		}
		closedWithin(t, c, 10*time.Second)
	})
}

// TestAgentConnectionOutlivesTimeouts: the timeouts do not apply to agents' WebSocket
// connections; a task that runs longer than them is answered over the connection it was
// sent on.
func TestAgentConnectionOutlivesTimeouts(t *testing.T) {
	// Enrolled and connected first, then the server restarted with the short timeouts: an
	// enrolment whose response the write timeout cut (a handler slower than 200 ms on a loaded
	// runner) could not be asked again. From then on the API calls, which the timeouts do
	// apply to, are retried on a fresh connection; the task run carries an idempotency key.
	h := newHarness(t)
	h.fleet([]string{"web1"})
	h.cfg.ReadTimeout, h.cfg.WriteTimeout, h.cfg.IdleTimeout = 200*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond
	h.restart()
	token, err := os.ReadFile(h.srv.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	h.api = client.NewWithHTTP(h.srv.URL(), strings.TrimSpace(string(token)), &http.Client{Timeout: time.Minute,
		Transport: retryTransport{&http.Transport{DisableKeepAlives: true}}})
	h.waitConnected("web1")
	conn := func() string {
		n, err := h.srv.store.GetNode(context.Background(), "web1")
		if err != nil {
			t.Fatal(err)
		}
		return n.Connection
	}
	before := conn()
	ref := h.run(client.TaskRequest{Task: "demo::sleep", Params: map[string]any{"seconds": 1}, Scope: client.Scope{Nodes: []string{"web1"}},
		IdempotencyKey: "outlives-timeouts"})
	job, nodes := h.waitJob(ref.Name, 20*time.Second)
	if job.State != "finished" || len(nodes) != 1 || nodes[0].State != "finished" {
		t.Fatalf("job %s, nodes %+v", job.State, nodes)
	}
	if after := conn(); after != before {
		t.Errorf("the agent reconnected during the task (connection %s, then %s): the timeouts cut its WebSocket", before, after)
	}
}

// retryTransport sends a request again, on a new connection, when the transport failed (a
// server whose short read or write timeout cut the exchange); the request must be safe to
// repeat.
type retryTransport struct{ base http.RoundTripper }

func (r retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		resp, err := r.base.RoundTrip(req)
		if err == nil || attempt == 20 || req.Context().Err() != nil || (req.Body != nil && req.GetBody == nil) {
			return resp, err
		}
		retry := req.Clone(req.Context())
		if req.GetBody != nil {
			body, berr := req.GetBody()
			if berr != nil {
				return nil, err
			}
			retry.Body = body
		}
		req = retry
	}
}

// TestConnectionsPerAddressAreCapped: one address holds at most MaxConnsPerAddress
// connections; the next is closed unread, and a closed one frees its slot.
func TestConnectionsPerAddressAreCapped(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.MaxConnsPerAddress = 3
		c.ConnCapExempt = func(netip.Addr) bool { return false } // loopback is exempt by default
	})
	var held []net.Conn
	for range 3 {
		c := dialRaw(t, h.srv.Addr())
		held = append(held, c)
	}
	// A complete request on each: all three are being served (401: no token).
	for _, c := range held {
		if _, err := io.WriteString(c, "GET /orchestrator/v1 HTTP/1.1\r\nHost: baton\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	over := dialRaw(t, h.srv.Addr())
	closedWithin(t, over, 10*time.Second)

	held[0].Close()
	h.eventually("a slot to be freed", 10*time.Second, func() bool {
		c, err := net.Dial("tcp", h.srv.Addr())
		if err != nil {
			return false
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /orchestrator/v1 HTTP/1.1\r\nHost: baton\r\nConnection: close\r\n\r\n"); err != nil {
			return false
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return false // still refused
		}
		resp.Body.Close()
		return true
	})
}

// TestDataDirIsMadePrivate: a data directory and secrets that others can read are tightened
// at start.
func TestDataDirIsMadePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	for _, f := range []string{"seal.key", "url-signing.key"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(strings.Repeat("ab", 32)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := newHarness(t, func(c *Config) { c.DataDir = dir })
	want := map[string]os.FileMode{".": 0o700, "seal.key": 0o600, "url-signing.key": 0o600, AdminTokenFile: 0o600, "baton.db": 0o600}
	for f, mode := range want {
		st, err := os.Stat(filepath.Join(h.cfg.DataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", f, st.Mode().Perm(), mode)
		}
	}
}

// TestAdminToken: the admin token baton serve makes expires; a never-expiring one left by an
// older version is replaced and revoked at start, a half-spent one is renewed, and
// RotateAdminToken replaces it at once, the server running.
func TestAdminToken(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AdminTokenLifetime = 48 * time.Hour })
	ctx := context.Background()
	principal := func(token string) (auth.Principal, error) { return h.srv.Auth().AuthenticateToken(ctx, token) }
	read := func() string {
		b, err := os.ReadFile(h.srv.AdminTokenPath())
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	first := read()
	p, err := principal(first)
	if err != nil {
		t.Fatal(err)
	}
	if p.ExpiresAt == nil {
		t.Fatal("the admin token never expires")
	}
	if left := time.Until(*p.ExpiresAt); left > 48*time.Hour || left < 47*time.Hour {
		t.Errorf("admin token expires in %s, want 48h", left)
	}

	t.Run("a never-expiring token is replaced and revoked", func(t *testing.T) {
		legacy, err := h.srv.Auth().IssueToken(ctx, "admin", "old admin token", 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(h.srv.AdminTokenPath(), []byte(legacy+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		h.restart()
		if read() == legacy {
			t.Fatal("the never-expiring token was kept")
		}
		if _, err := principal(legacy); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("the never-expiring token still works: %v", err)
		}
	})

	t.Run("a half-spent token is renewed", func(t *testing.T) {
		short, err := h.srv.Auth().IssueToken(ctx, "admin", "half spent", 20*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(h.srv.AdminTokenPath(), []byte(short+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		h.restart()
		renewed := read()
		if renewed == short {
			t.Fatal("a token with less than half its lifetime left was kept")
		}
		if _, err := principal(short); err != nil {
			t.Errorf("the half-spent token was revoked (it should expire on its own): %v", err)
		}
		h.restart()
		if read() != renewed {
			t.Error("a fresh admin token was replaced at restart")
		}
	})

	t.Run("rotate", func(t *testing.T) {
		old := read()
		// The server has just used the old token (and keeps what it read about it): the
		// rotation, made through a store of its own as the CLI's process does, must still
		// be seen on the next request.
		if _, err := client.New(h.srv.URL(), old).Jobs(ctx, nil); err != nil {
			t.Fatal(err)
		}
		path, err := RotateAdminToken(ctx, h.cfg.DataDir, 0)
		if err != nil {
			t.Fatal(err)
		}
		if path != h.srv.AdminTokenPath() {
			t.Errorf("rotated %s", path)
		}
		rotated := read()
		if rotated == old {
			t.Fatal("the token did not change")
		}
		_, err = client.New(h.srv.URL(), old).Jobs(ctx, nil)
		wantAPIError(t, "the rotated-out admin token", err, 401, "puppetlabs.rbac/user-unauthenticated")
		if _, err := client.New(h.srv.URL(), rotated).Jobs(ctx, nil); err != nil {
			t.Errorf("the new admin token: %v", err)
		}
		p, err := principal(rotated)
		if err != nil || p.ExpiresAt == nil || time.Until(*p.ExpiresAt) < DefaultAdminTokenLifetime-time.Hour {
			t.Errorf("rotated token: %+v %v", p, err)
		}
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("token file mode: %v %v", st.Mode(), err)
		}
	})
}

// TestSlowDownloadOutlivesWriteTimeout: a task file download is a stream, exempt from the
// write timeout: an agent on a slow link reads a large file to its end.
func TestSlowDownloadOutlivesWriteTimeout(t *testing.T) {
	const size = 8 << 20 // well over what socket buffers hold
	modules := copyModules(t)
	dir := filepath.Join(modules, "big", "tasks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := "#!/bin/sh\n" + strings.Repeat("#"+strings.Repeat("x", 1022)+"\n", size/1024)
	if err := os.WriteFile(filepath.Join(dir, "blob.sh"), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "blob.json"), []byte(`{"description":"a large file"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	const timeout = 200 * time.Millisecond
	h := newHarness(t, func(c *Config) {
		c.Modules = modules
		c.ReadTimeout, c.WriteTimeout = timeout, timeout
	})
	task, err := h.api.Task(context.Background(), "production", "big::blob")
	if err != nil {
		t.Fatal(err)
	}
	if len(task.Files) != 1 {
		t.Fatalf("files %+v", task.Files)
	}
	uri := task.Files[0].URI
	path, _ := uri["path"].(string)
	req, err := http.NewRequest(http.MethodGet, h.srv.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	q := req.URL.Query()
	params, _ := uri["params"].(map[string]any)
	for k, v := range params {
		q.Set(k, v.(string))
	}
	req.URL.RawQuery = q.Encode()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download: %d", resp.StatusCode)
	}
	first := make([]byte, 64<<10)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	// The time passing is what is tested: the rest is read after the write timeout.
	<-time.After(3 * timeout)
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || int(n)+len(first) != len(body) {
		t.Fatalf("read %d of %d bytes: %v; the write timeout cut the download", int(n)+len(first), len(body), err)
	}
}

// TestRevokedNodeIsEnrolledAgain: revoke and re-enrol through the API rotates a node's key:
// the new key connects and runs tasks, the old one is refused; a node with a working key
// cannot be enrolled over.
func TestRevokedNodeIsEnrolledAgain(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	base := agent.Config{Server: "ws://" + h.srv.Addr() + "/pcp", Name: "k1",
		CacheDir: filepath.Join(t.TempDir(), "cache"), SpoolDir: filepath.Join(t.TempDir(), "spool"),
		Logger: testLogger(t), MaxBackoff: 200 * time.Millisecond}
	enrol := func() ed25519.PrivateKey {
		t.Helper()
		e, err := h.api.EnrollNodeToken(ctx, "k1", "1h")
		if err != nil {
			t.Fatalf("enrolment token: %v", err)
		}
		key, err := agent.Enroll(ctx, base, e.EnrollmentToken, "")
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	oldKey := enrol()
	_, err := h.api.EnrollNodeToken(ctx, "k1", "1h")
	wantAPIError(t, "enrolling a node that holds a working key", err, 409, "puppetlabs.orchestrator/conflict")
	if err := h.api.RevokeNode(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	newKey := enrol()

	connect := func(key ed25519.PrivateKey) int {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c, resp, err := websocket.Dial(dctx, base.Server, &websocket.DialOptions{HTTPHeader: http.Header{
			"X-Baton-Node": {"k1"}, "Authorization": {auth.SignConnect(key, "k1", time.Now())}}})
		if err == nil {
			c.CloseNow()
			return http.StatusSwitchingProtocols
		}
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return resp.StatusCode
	}
	if got := connect(oldKey); got != http.StatusUnauthorized {
		t.Errorf("the revoked key connects: %d", got)
	}
	cfg := base
	cfg.PrivateKey = newKey
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); a.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	h.waitConnected("k1")
	_, nodes := h.waitJob(h.run(client.TaskRequest{Task: "demo::hello", Scope: client.Scope{Nodes: []string{"k1"}}}).Name, 20*time.Second)
	if nodes[0].State != "finished" {
		t.Fatalf("task on the re-enrolled node: %s %s", nodes[0].State, nodes[0].Result)
	}
}
