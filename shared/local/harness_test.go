package local

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/agent"
	"github.com/baton-run/baton/shared/client"
)

// harness is a local server with agents and an API client, all on loopback.
type harness struct {
	t       *testing.T
	srv     *Server
	cfg     Config
	api     *client.Client
	secrets map[string]string
	agents  map[string]*testAgent
}

type testAgent struct {
	cfg    agent.Config
	cancel context.CancelFunc
	done   chan struct{}
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("BATON_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// copyModules copies the repository's example modules into a temporary directory so that
// tests may change them.
func copyModules(t *testing.T) string {
	t.Helper()
	src, err := filepath.Abs("../../examples/modules")
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "modules")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func newHarness(t *testing.T, mutate ...func(*Config)) *harness {
	t.Helper()
	// Plain HTTP: shared/client, which the harness drives the API with, takes no TLS settings;
	// tls_test.go covers TLS.
	// A generous connect timeout: tests start agents after creating jobs for them, and an
	// agent's start can take seconds on a loaded machine. The test of the timeout sets its own.
	cfg := Config{Listen: "127.0.0.1:0", DataDir: filepath.Join(t.TempDir(), "data"), Modules: copyModules(t), PlainHTTP: true,
		ConnectTimeout: 60 * time.Second, TimeoutGrace: 2 * time.Second, SweepInterval: 50 * time.Millisecond, Logger: testLogger(t)}
	for _, m := range mutate {
		m(&cfg)
	}
	h := &harness{t: t, cfg: cfg, secrets: map[string]string{}, agents: map[string]*testAgent{}}
	h.start()
	t.Cleanup(func() {
		for name := range h.agents {
			h.stopAgent(name)
		}
		if h.srv != nil {
			h.srv.Close()
		}
	})
	return h
}

func (h *harness) start() {
	h.t.Helper()
	srv, err := Start(h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.srv = srv
	h.cfg.Listen = srv.Addr() // a restart comes back on the same port
	token, err := os.ReadFile(srv.AdminTokenPath())
	if err != nil {
		h.t.Fatal(err)
	}
	h.api = client.New(srv.URL(), strings.TrimSpace(string(token)))
}

func (h *harness) restart() {
	h.t.Helper()
	if err := h.srv.Close(); err != nil {
		h.t.Fatal(err)
	}
	h.start()
}

func (h *harness) enroll(names ...string) {
	h.t.Helper()
	for _, n := range names {
		secret, err := h.api.EnrollNode(context.Background(), n)
		if err != nil {
			h.t.Fatalf("enroll %s: %v", n, err)
		}
		h.secrets[n] = secret
	}
}

// startAgent runs an agent for an enrolled node; its directories survive restarts.
func (h *harness) startAgent(name string) *testAgent {
	h.t.Helper()
	return h.startAgentWith(name, nil)
}

// startAgentWith runs an agent that reports facts instead of gathering them (nil: gather).
func (h *harness) startAgentWith(name string, facts map[string]any, opts ...agent.Option) *testAgent {
	h.t.Helper()
	cfg := agent.Config{Server: "ws://" + h.srv.Addr() + "/pcp", Name: name, Secret: h.secrets[name],
		CacheDir:     filepath.Join(filepath.Dir(h.cfg.DataDir), "agents", name, "cache"),
		SpoolDir:     filepath.Join(filepath.Dir(h.cfg.DataDir), "agents", name, "spool"),
		PingInterval: time.Second, MaxBackoff: 200 * time.Millisecond, DownloadBackoff: []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond},
		Logger: testLogger(h.t).With("agent", name)}
	if facts != nil {
		cfg.Facts = func(context.Context) (map[string]any, error) { return facts, nil }
	}
	a, err := agent.New(cfg, opts...)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta := &testAgent{cfg: cfg, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(ta.done)
		if err := a.Run(ctx); err != nil {
			h.t.Errorf("agent %s: %v", name, err)
		}
	}()
	h.agents[name] = ta
	return ta
}

func (h *harness) stopAgent(name string) {
	if a, ok := h.agents[name]; ok {
		a.cancel()
		<-a.done
		delete(h.agents, name)
	}
}

// eventually polls cond until it holds or the deadline passes.
func (h *harness) eventually(what string, timeout time.Duration, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

func (h *harness) waitConnected(names ...string) {
	h.t.Helper()
	h.eventually("agents to connect", 10*time.Second, func() bool {
		inv, err := h.api.Inventory(context.Background())
		if err != nil {
			return false
		}
		connected := map[string]bool{}
		for _, n := range inv {
			connected[n.Name] = n.Connected
		}
		for _, n := range names {
			if !connected[n] {
				return false
			}
		}
		return true
	})
}

func (h *harness) run(req client.TaskRequest) client.JobRef {
	h.t.Helper()
	ref, err := h.api.RunTask(context.Background(), req)
	if err != nil {
		h.t.Fatalf("run task: %v", err)
	}
	return ref
}

func (h *harness) waitJob(name string, timeout time.Duration) (client.Job, []client.Node) {
	h.t.Helper()
	var job client.Job
	h.eventually("job "+name+" to end", timeout, func() bool {
		var err error
		job, err = h.api.Job(context.Background(), name)
		return err == nil && job.Done()
	})
	nodes, err := h.api.JobNodes(context.Background(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	return job, nodes
}
