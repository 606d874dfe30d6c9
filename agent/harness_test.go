//go:build unix

package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/baton-run/baton/shared/protocol"
)

const (
	testNode   = "node1.example.com"
	testSecret = "s3cret-token"
	waitLimit  = 30 * time.Second
)

// frame is one message the test server received from the agent.
type frame struct {
	conn int // 1 for the first connection, 2 for the second, ...
	env  protocol.Envelope
	at   time.Time // when the server read it
}

// testServer plays the control plane: a /pcp WebSocket endpoint that records every frame the
// agent sends, and /files/ serving task files (counting downloads).
type testServer struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	conn      *websocket.Conn
	connSeq   int
	frames    []frame
	problems  []string
	changed   chan struct{}
	files     map[string][]byte
	downloads map[string]int
	rejected  int
	blocked   bool
	upgrades  []time.Time // when each accepted connection's upgrade request came in, in order
}

// setBlocked makes the /pcp endpoint refuse (503) or accept new connections.
func (ts *testServer) setBlocked(b bool) {
	ts.mu.Lock()
	ts.blocked = b
	ts.mu.Unlock()
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	ts := &testServer{t: t, changed: make(chan struct{}), files: map[string][]byte{}, downloads: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/pcp", ts.handlePCP)
	mux.HandleFunc("/files/", func(w http.ResponseWriter, r *http.Request) {
		ts.mu.Lock()
		b, ok := ts.files[r.URL.Path]
		ts.downloads[r.URL.Path]++
		ts.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	})
	ts.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		ts.mu.Lock()
		if ts.conn != nil {
			ts.conn.CloseNow()
		}
		problems := ts.problems
		ts.mu.Unlock()
		ts.srv.Close()
		for _, p := range problems {
			t.Errorf("agent sent a bad frame: %s", p)
		}
	})
	return ts
}

func (ts *testServer) url() string { return "ws" + strings.TrimPrefix(ts.srv.URL, "http") + "/pcp" }

func (ts *testServer) handlePCP(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	blocked := ts.blocked
	ts.mu.Unlock()
	if blocked {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+testSecret || r.Header.Get("X-Baton-Node") != testNode {
		ts.mu.Lock()
		ts.rejected++
		ts.mu.Unlock()
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	upgrade := time.Now() // before the agent's dial returns: a lower bound on its connect time
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	c.SetReadLimit(-1)
	ts.mu.Lock()
	ts.upgrades = append(ts.upgrades, upgrade)
	if ts.conn != nil {
		ts.conn.CloseNow()
	}
	ts.conn = c
	ts.connSeq++
	seq := ts.connSeq
	ts.mu.Unlock()
	defer c.CloseNow()
	for {
		_, data, err := c.Read(context.Background())
		if err != nil {
			return
		}
		env, derr := protocol.Decode(data)
		ts.mu.Lock()
		switch {
		case derr != nil:
			ts.problems = append(ts.problems, fmt.Sprintf("%s: %v", data, derr))
		case env.Sender != "" || env.Target != protocol.ServerURI:
			ts.problems = append(ts.problems, fmt.Sprintf("sender %q target %q", env.Sender, env.Target))
		}
		ts.frames = append(ts.frames, frame{conn: seq, env: env, at: time.Now()})
		close(ts.changed)
		ts.changed = make(chan struct{})
		ts.mu.Unlock()
	}
}

// addFile serves content at /files/<name> and returns the task file entry for it.
func (ts *testServer) addFile(filename string, content []byte) protocol.TaskFile {
	p := "/files/" + strings.ReplaceAll(filename, "/", "_")
	ts.mu.Lock()
	ts.files[p] = content
	ts.mu.Unlock()
	return protocol.TaskFile{
		Filename: filename, URI: protocol.FileURI{Path: p, Params: map[string]string{"environment": "production"}},
		SHA256: sha256Hex(content), SizeBytes: int64(len(content)),
	}
}

func (ts *testServer) downloadCount(f protocol.TaskFile) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.downloads[f.URI.Path]
}

func (ts *testServer) currentConn() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.connSeq
}

func (ts *testServer) frameCount() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.frames)
}

// sendRaw writes b to the agent's current connection.
func (ts *testServer) sendRaw(t *testing.T, b []byte) {
	t.Helper()
	var c *websocket.Conn
	waitUntil(t, "an agent connection", func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		c = ts.conn
		return c != nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatalf("server write: %v", err)
	}
}

func (ts *testServer) send(t *testing.T, messageType string, v any) protocol.Envelope {
	t.Helper()
	e, err := protocol.New(messageType, protocol.AgentURI(testNode), v)
	if err != nil {
		t.Fatal(err)
	}
	return ts.sendEnvelope(t, e)
}

// sendEnvelope writes e to the agent, from the server.
func (ts *testServer) sendEnvelope(t *testing.T, e protocol.Envelope) protocol.Envelope {
	t.Helper()
	e.Sender, e.Target = protocol.ServerURI, protocol.AgentURI(testNode)
	b, err := protocol.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	ts.sendRaw(t, b)
	return e
}

// dropConn closes the agent's connection from the server side.
func (ts *testServer) dropConn() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.conn != nil {
		ts.conn.CloseNow()
		ts.conn = nil
	}
}

// waitFrame waits for the first frame at index >= from that matches, returning it and its index.
func (ts *testServer) waitFrame(t *testing.T, from int, what string, match func(frame) bool) (frame, int) {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		ts.mu.Lock()
		for i := from; i < len(ts.frames); i++ {
			if match(ts.frames[i]) {
				f := ts.frames[i]
				ts.mu.Unlock()
				return f, i
			}
		}
		ch := ts.changed
		ts.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; frames: %s", what, ts.dump())
		}
	}
}

func (ts *testServer) count(match func(frame) bool) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.countLocked(match)
}

// countLocked is count for a match function called by waitFrame (which holds ts.mu).
func (ts *testServer) countLocked(match func(frame) bool) int {
	n := 0
	for _, f := range ts.frames {
		if match(f) {
			n++
		}
	}
	return n
}

func (ts *testServer) dump() string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var b strings.Builder
	for _, f := range ts.frames {
		fmt.Fprintf(&b, "\n  conn %d %s %s", f.conn, f.env.MessageType, f.env.Data)
	}
	return b.String()
}

// txnOf returns the transaction_id in a frame's data ("" when it has none).
func txnOf(f frame) string {
	var d struct {
		TransactionID string `json:"transaction_id"`
	}
	_ = json.Unmarshal(f.env.Data, &d)
	return d.TransactionID
}

func isType(mt string) func(frame) bool {
	return func(f frame) bool { return f.env.MessageType == mt }
}

func isTxn(mt, txn string) func(frame) bool {
	return func(f frame) bool { return f.env.MessageType == mt && txnOf(f) == txn }
}

// isOutcome matches the rpc_non_blocking_response or rpc_error_message of txn.
func isOutcome(txn string) func(frame) bool {
	return func(f frame) bool {
		return (f.env.MessageType == protocol.TypeNonBlockingResponse || f.env.MessageType == protocol.TypeRPCError) &&
			txnOf(f) == txn
	}
}

func onConn(n int, m func(frame) bool) func(frame) bool {
	return func(f frame) bool { return f.conn == n && m(f) }
}

// runRequest sends a task run request and returns the request envelope.
func (ts *testServer) runRequest(t *testing.T, txn string, p protocol.TaskParams) protocol.Envelope {
	t.Helper()
	params, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return ts.send(t, protocol.TypeNonBlockingRequest, protocol.NonBlockingRequest{
		TransactionID: txn, NotifyOutcome: true, Module: protocol.ModuleTask, Action: protocol.ActionRun, Params: params,
	})
}

// runTask sends a task run request and waits for its task results.
func (ts *testServer) runTask(t *testing.T, txn string, p protocol.TaskParams) protocol.TaskResults {
	t.Helper()
	from := ts.frameCount()
	ts.runRequest(t, txn, p)
	f, _ := ts.waitFrame(t, from, "outcome of "+txn, isOutcome(txn))
	return taskResults(t, f)
}

func taskResults(t *testing.T, f frame) protocol.TaskResults {
	t.Helper()
	if f.env.MessageType != protocol.TypeNonBlockingResponse {
		t.Fatalf("want a non_blocking_response, got %s %s", f.env.MessageType, f.env.Data)
	}
	var resp protocol.NonBlockingResponse
	if err := json.Unmarshal(f.env.Data, &resp); err != nil {
		t.Fatal(err)
	}
	var res protocol.TaskResults
	dec := json.NewDecoder(bytes.NewReader(resp.Results))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("results %s: %v", resp.Results, err)
	}
	return res
}

func rpcError(t *testing.T, f frame) protocol.RPCError {
	t.Helper()
	if f.env.MessageType != protocol.TypeRPCError {
		t.Fatalf("want an rpc_error_message, got %s %s", f.env.MessageType, f.env.Data)
	}
	var e protocol.RPCError
	if err := json.Unmarshal(f.env.Data, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// statusQuery asks for txn's status and waits for the answer.
func (ts *testServer) statusQuery(t *testing.T, txn string) protocol.StatusResults {
	t.Helper()
	from := ts.frameCount()
	q := "q-" + protocol.NewID()
	params, _ := json.Marshal(protocol.StatusQueryParams{TransactionID: txn})
	ts.send(t, protocol.TypeBlockingRequest, protocol.BlockingRequest{
		TransactionID: q, Module: protocol.ModuleStatus, Action: protocol.ActionQuery, Params: params,
	})
	f, _ := ts.waitFrame(t, from, "status response", isTxn(protocol.TypeBlockingResponse, q))
	var resp protocol.BlockingResponse
	if err := json.Unmarshal(f.env.Data, &resp); err != nil {
		t.Fatal(err)
	}
	var st protocol.StatusResults
	if err := json.Unmarshal(resp.Results, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// syncWriter collects log output for assertions and mirrors it to the test log.
type syncWriter struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(p)
	w.mu.Unlock()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// testAgent is a running Agent with its directories and logs.
type testAgent struct {
	*Agent
	cfg  Config
	logs *syncWriter
	stop func()
}

func testConfig(t *testing.T, ts *testServer) Config {
	return Config{
		Server: ts.url(), Name: testNode, Secret: testSecret,
		CacheDir: filepath.Join(t.TempDir(), "cache"), SpoolDir: filepath.Join(t.TempDir(), "spool"),
		Facts: func(context.Context) (map[string]any, error) {
			return map[string]any{"hostname": "node1", "os": map[string]any{"family": "Debian"}}, nil
		},
		PingInterval:    200 * time.Millisecond,
		MaxBackoff:      50 * time.Millisecond,
		DownloadBackoff: []time.Duration{time.Millisecond, 2 * time.Millisecond},
		// Tasks run as baton-agent runs them: under its supervisor process (this test binary),
		// with the script as the fallback.
		Supervisor: testSupervisor(t), SupervisorDaemon: testSupervisorDaemon(t),
	}
}

// startAgent runs an agent with cfg until stop is called (or the test ends).
func startAgent(t *testing.T, cfg Config, opts ...Option) *testAgent {
	t.Helper()
	logs := &syncWriter{t: t}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v", err)
				}
			case <-time.After(waitLimit):
				t.Errorf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return &testAgent{Agent: a, cfg: cfg, logs: logs, stop: stop}
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func script(body string) []byte { return []byte("#!/bin/sh\n" + body + "\n") }

func lines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// processGone reports whether pid no longer runs (absent, or a zombie nobody reaped yet).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && f[0] == "Z"
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
