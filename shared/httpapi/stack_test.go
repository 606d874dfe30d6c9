package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/catalog"
	"github.com/baton-run/baton/shared/gateway"
	"github.com/baton-run/baton/shared/httpapi"
	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/protocol"
	"github.com/baton-run/baton/shared/seal"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/store/sqlite"
)

// epoch is the fixed start of every test clock, so that stored timestamps are reproducible.
var epoch = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// fakeClock is a clock the test moves; it is read from server goroutines.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: epoch} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects log output written from server goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// signedURLs adapts catalog.Signer to the FileURLs ports, as `baton serve` does.
type signedURLs struct{ signer *catalog.Signer }

func (u signedURLs) FileURI(_ context.Context, env, module, filename, _ string) (protocol.FileURI, error) {
	return u.signer.Sign(env, module, filename, 5*time.Minute), nil
}

// stack is the real control plane in-process — SQLite store, modules catalog, orchestrator and
// API — with no agents: the gateway has no connections, so every send fails not-connected and
// nodes that get a concurrency slot stay ready.
type stack struct {
	t         *testing.T
	url       string // the API server's base URL, http://127.0.0.1:port
	store     *sqlite.Store
	auth      *auth.Service
	orch      *orchestrator.Service
	modules   string // the environment production's modules directory (a copy)
	token     string // a valid API token for login "admin"
	authClock *fakeClock
	orchClock *fakeClock
	logs      *syncBuffer
	client    *http.Client
}

type stackOptions struct {
	// orchStore wraps the store the orchestrator sees (the auth service gets the real one).
	orchStore func(store.Store) store.Store
	// authStore wraps the store the auth service sees.
	authStore func(auth.Store) auth.Store
}

// copyModules copies the repository's example modules so that a test may change them.
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

func newStack(t *testing.T, opts stackOptions) *stack {
	t.Helper()
	s := &stack{t: t, modules: copyModules(t), authClock: newClock(), orchClock: newClock(), logs: &syncBuffer{}}
	logger := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	st, err := sqlite.Open(filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s.store = st

	cat, err := catalog.NewLocal(map[string]string{"production": s.modules}, catalog.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := catalog.NewSigner(bytes.Repeat([]byte{7}, 32), s.orchClock.Now)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.New(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	var authStore auth.Store = st
	if opts.authStore != nil {
		authStore = opts.authStore(st)
	}
	s.auth = auth.New(authStore, s.authClock.Now)
	var orchStore store.Store = st
	if opts.orchStore != nil {
		orchStore = opts.orchStore(st)
	}
	gw := gateway.New(logger)
	t.Cleanup(gw.Close)
	urls := signedURLs{signer: signer}
	s.orch = orchestrator.New(orchStore, cat, urls, gw, sealer,
		orchestrator.WithLogger(logger), orchestrator.WithClock(s.orchClock.Now))
	api := httpapi.New(s.orch, cat, urls, s.auth, logger)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	s.url = srv.URL
	s.client = srv.Client()

	// The token is issued on the real store so that a failing auth store still has one to look up.
	if err := auth.New(st, s.authClock.Now).EnsureAdmin(context.Background(), "admin"); err != nil {
		t.Fatal(err)
	}
	token, err := auth.New(st, s.authClock.Now).IssueToken(context.Background(), "admin", "test", 0)
	if err != nil {
		t.Fatal(err)
	}
	s.token = token
	return s
}

// enroll enrols nodes directly through the auth service.
func (s *stack) enroll(names ...string) {
	s.t.Helper()
	for _, n := range names {
		if _, err := s.auth.EnrollNode(context.Background(), n); err != nil {
			s.t.Fatalf("enroll %s: %v", n, err)
		}
	}
}

// response is one HTTP exchange's outcome.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic value, failing the test if it is not JSON.
func (r response) json(t *testing.T) any {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("status %d: body is not JSON: %v\n%s", r.status, err, r.body)
	}
	return v
}

// object decodes the body as a JSON object.
func (r response) object(t *testing.T) map[string]any {
	t.Helper()
	m, ok := r.json(t).(map[string]any)
	if !ok {
		t.Fatalf("status %d: body is not a JSON object:\n%s", r.status, r.body)
	}
	return m
}

type request struct {
	method string
	path   string // relative to the server, e.g. /orchestrator/v1/jobs
	body   string
	// header overrides; "X-Authentication" defaults to the stack's token and "Content-Type"
	// to application/json when there is a body. An empty value removes the header.
	header map[string]string
}

func (s *stack) do(req request) response {
	s.t.Helper()
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	hr, err := http.NewRequest(req.method, s.url+req.path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	hr.Header.Set("X-Authentication", s.token)
	if req.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range req.header {
		if v == "" {
			hr.Header.Del(k)
		} else {
			hr.Header.Set(k, v)
		}
	}
	resp, err := s.client.Do(hr)
	if err != nil {
		s.t.Fatalf("%s %s: %v", req.method, req.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: read body: %v", req.method, req.path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (s *stack) get(path string) response {
	s.t.Helper()
	return s.do(request{method: http.MethodGet, path: path})
}

func (s *stack) post(path, body string) response {
	s.t.Helper()
	return s.do(request{method: http.MethodPost, path: path, body: body})
}

const v1 = "/orchestrator/v1"

// submit posts a task command that must be accepted and returns the job's name.
func (s *stack) submit(body string) string {
	s.t.Helper()
	r := s.post(v1+"/command/task", body)
	if r.status != http.StatusAccepted {
		s.t.Fatalf("submit %s: status %d, want 202: %s", body, r.status, r.body)
	}
	job, _ := r.object(s.t)["job"].(map[string]any)
	name, _ := job["name"].(string)
	if name == "" {
		s.t.Fatalf("submit: no job name in %s", r.body)
	}
	return name
}

// snapshot is what a refused command must leave unchanged.
type snapshot struct {
	jobs       int
	unfinished int
	events     int
	nodes      int
}

func (s *stack) snapshot() snapshot {
	s.t.Helper()
	ctx := context.Background()
	list, total, err := s.store.ListJobs(ctx, store.JobQuery{})
	if err != nil {
		s.t.Fatal(err)
	}
	unfinished, err := s.store.ListUnfinishedJobs(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	events := 0
	for _, j := range list {
		evs, err := s.store.ListEvents(ctx, j.ID, 0, 0)
		if err != nil {
			s.t.Fatal(err)
		}
		events += len(evs)
	}
	nodes, err := s.store.ListNodes(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	return snapshot{jobs: total, unfinished: len(unfinished), events: events, nodes: len(nodes)}
}

// wantError checks that r is a PE error response: the status, a JSON content type, the kind,
// a non-empty msg and a details object. It returns the details.
func wantError(t *testing.T, r response, status int, kind string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d; body: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	body := r.object(t)
	if got, _ := body["kind"].(string); got != kind {
		t.Errorf("kind %q, want %q; body: %s", got, kind, r.body)
	}
	if msg, _ := body["msg"].(string); strings.TrimSpace(msg) == "" {
		t.Errorf("msg is empty; body: %s", r.body)
	}
	details, ok := body["details"].(map[string]any)
	if !ok {
		t.Errorf("details is not an object; body: %s", r.body)
	}
	for k := range body {
		if k != "kind" && k != "msg" && k != "details" {
			t.Errorf("unexpected key %q in error body %s", k, r.body)
		}
	}
	return details
}

// PE error kinds the tests expect.
const (
	kindValidation  = orchestrator.KindValidation
	kindUnknownEnv  = orchestrator.KindUnknownEnvironment
	kindUnknownJob  = orchestrator.KindUnknownJob
	kindUnknownTask = orchestrator.KindUnknownTask
	kindUnknownNode = orchestrator.KindUnknownNode
	kindEmptyTarget = orchestrator.KindEmptyTarget
	kindQueryError  = orchestrator.KindQueryError
	kindConflict    = orchestrator.KindConflict
	kindUnauth      = "puppetlabs.rbac/user-unauthenticated"
	kindNotFound    = "puppetlabs.orchestrator/not-found"
	kindUnknownErr  = "puppetlabs.orchestrator/unknown-error"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// seedJob writes job 1 on web1 straight into the store, past any fault-injecting wrapper.
func (s *stack) seedJob() {
	s.t.Helper()
	now := s.orchClock.Now()
	j := jobs.NewJob(jobs.Job{Type: jobs.TypeTask, Environment: "production", Task: "demo::hello",
		Owner: jobs.Owner{ID: "admin", Login: "admin"}, Options: json.RawMessage(`{}`), NodeCount: 1, MaxErrors: -1}, now)
	j, err := s.store.CreateJob(context.Background(), j, []jobs.Node{{Name: "web1", State: jobs.NodeNew}}, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	if j.ID != 1 {
		s.t.Fatalf("seeded job has id %d, want 1", j.ID)
	}
}
