package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/catalog"
	"github.com/baton-run/baton/shared/gateway"
	"github.com/baton-run/baton/shared/httpapi"
	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/seal"
	"github.com/baton-run/baton/shared/store/sqlite"
)

// The fuzz targets drive the real API handler — SQLite store, modules catalog, orchestrator,
// auth — with a valid token, and check the API's promises whatever the input: no panic, never
// a 5xx, every refusal a PE error body, every accepted command a job name. Run one with e.g.
//
//	go test ./shared/httpapi -run '^$' -fuzz '^FuzzCommandTask$' -fuzztime 60s
//
// Seeds are below (f.Add) and in testdata/fuzz/<FuzzName>/.

// fuzzStack is the control plane newStack builds, made once per fuzz worker from the
// *testing.F (newStack needs a *testing.T). Requests go straight to the handler through an
// httptest.ResponseRecorder, so a panic fails the target instead of being swallowed by a
// server, and any raw query string reaches the handler as it is.
type fuzzStack struct {
	api   http.Handler
	token string
	logs  *tailBuffer
}

func newFuzzStack(f *testing.F) *fuzzStack {
	f.Helper()
	logs := &tailBuffer{max: 16 << 10}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	clock := newClock()

	st, err := sqlite.Open(filepath.Join(f.TempDir(), "baton.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	modules, err := filepath.Abs("../../examples/modules") // read only: the catalog never writes
	if err != nil {
		f.Fatal(err)
	}
	cat, err := catalog.NewLocal(map[string]string{"production": modules}, catalog.WithLogger(logger))
	if err != nil {
		f.Fatal(err)
	}
	signer, err := catalog.NewSigner(bytes.Repeat([]byte{7}, 32), clock.Now)
	if err != nil {
		f.Fatal(err)
	}
	sealer, err := seal.New(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		f.Fatal(err)
	}
	authn := auth.New(st, clock.Now)
	gw := gateway.New(logger)
	f.Cleanup(gw.Close)
	urls := signedURLs{signer: signer}
	orch := orchestrator.New(st, cat, urls, gw, sealer, orchestrator.WithLogger(logger), orchestrator.WithClock(clock.Now))

	ctx := context.Background()
	if err := authn.EnsureAdmin(ctx, "admin"); err != nil {
		f.Fatal(err)
	}
	token, err := authn.IssueToken(ctx, "admin", "fuzz", 0)
	if err != nil {
		f.Fatal(err)
	}
	for _, n := range []string{"web1", "web2", "db1"} {
		if _, err := authn.EnrollNode(ctx, n); err != nil {
			f.Fatalf("enroll %s: %v", n, err)
		}
	}
	for _, g := range []inventory.Group{
		{Name: "webs", Nodes: []string{"web1", "web2"}},
		{Name: "databases", Query: `nodes { certname = "db1" }`},
	} {
		if _, err := orch.CreateGroup(ctx, g); err != nil {
			f.Fatalf("create group %s: %v", g.Name, err)
		}
	}
	s := &fuzzStack{api: httpapi.New(orch, cat, urls, authn, logger), token: token, logs: logs}
	// A harness whose every request is refused (a token that stopped working, a missing
	// fixture) would fuzz nothing but the refusal: make sure a realistic command gets through.
	if w := s.serve(http.MethodPost, v1+"/command/task", "", []byte(taskSeeds[0]), nil); w.Code != http.StatusAccepted {
		f.Fatalf("fuzz stack refuses a valid task command: status %d: %s", w.Code, w.Body)
	}
	return s
}

// serve sends one request with the stack's token and returns the answer.
func (s *fuzzStack) serve(method, path, rawQuery string, body []byte, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	r.URL.RawQuery = rawQuery
	r.Header.Set("X-Authentication", s.token)
	if len(body) > 0 {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	s.api.ServeHTTP(w, r)
	return w
}

// check asserts the API's promises about any answer. command names answers that must carry
// a job name when they succeed.
func (s *fuzzStack) check(t *testing.T, what string, w *httptest.ResponseRecorder, command bool) {
	t.Helper()
	body := w.Body.Bytes()
	if w.Code >= 500 {
		t.Fatalf("%s: status %d: %s\nserver log (tail):\n%s", what, w.Code, body, s.logs.String())
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: status %d with Content-Type %q: %s", what, w.Code, ct, body)
	}
	var v map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: status %d: body is not a JSON object: %v\n%s", what, w.Code, err, body)
	}
	if w.Code < 200 || w.Code > 299 {
		kind, _ := v["kind"].(string)
		msg, _ := v["msg"].(string)
		if kind == "" || strings.TrimSpace(msg) == "" {
			t.Fatalf("%s: status %d: error body without kind and msg: %s", what, w.Code, body)
		}
		if _, ok := v["details"].(map[string]any); !ok {
			t.Fatalf("%s: status %d: error body without a details object: %s", what, w.Code, body)
		}
		return
	}
	if command {
		job, _ := v["job"].(map[string]any)
		if name, _ := job["name"].(string); name == "" {
			t.Fatalf("%s: status %d: accepted command without a job name: %s", what, w.Code, body)
		}
	}
}

// taskSeeds are realistic /command/task bodies, accepted and refused.
var taskSeeds = []string{
	`{"task":"demo::hello","params":{"name":"Ada","loud":true},"scope":{"nodes":["web1"]}}`,
	`{"task":"demo::hello","params":{},"scope":{"nodes":["web1","web2"]},"description":"greet","concurrency":1,"timeout":60,"max_errors":"50%"}`,
	`{"task":"demo::sleep","params":{"seconds":5},"scope":{"node_group":"webs"},"noop":true,"max_errors":0}`,
	`{"task":"demo::secret","params":{"password":"hunter2"},"scope":{"query":"nodes { certname = \"db1\" }"}}`,
	`{"task":"demo::multi","environment":"production","params":{"message":"hi"},"scope":{"node_group":"databases"}}`,
	`{"task":"demo","params":{},"scope":{"nodes":["web1"]}}`,
	`{"task":"demo::bigoutput","params":{"kib":1},"scope":{"nodes":["db1"]},"timeout":604800}`,
	`{"task":"demo::sleep","params":{"seconds":"x"},"scope":{"nodes":["web1"]}}`,
	`{"task":"../demo","params":{},"scope":{"nodes":["web1"]}}`,
	`{"task":"demo::hello","params":{},"scope":{"nodes":["web1"],"query":"nodes {}"}}`,
	`{"task":"demo::hello","params":{},"scope":{"query":"nodes { certname = }"}}`,
	`{"task":"demo::hello","params":{},"scope":{}}`,
	`{"task":"demo::hello","params":{"bogus":1},"scope":{"nodes":["bad name!"]}}`,
	`{"task":"demo::hello","scope":{"nodes":["web1"]},"max_errors":"101%","concurrency":0}`,
	`{"task":"demo::hello","scope":{"nodes":["web1"]}} trailing`,
	`[{"task":"demo::hello"}]`,
	`{"task":1e400}`,
	``,
}

func FuzzCommandTask(f *testing.F) {
	for _, b := range taskSeeds {
		f.Add([]byte(b), "application/json", "")
	}
	f.Add([]byte(taskSeeds[0]), "application/json; charset=utf-8", "deploy-2024-05-06")
	f.Add([]byte(taskSeeds[1]), "", strings.Repeat("k", 256))
	f.Add([]byte(taskSeeds[0]), "text/plain", "")
	f.Add([]byte(taskSeeds[0]), "application/json; charset=\"", "")
	s := newFuzzStack(f)
	f.Fuzz(func(t *testing.T, body []byte, contentType, idempotencyKey string) {
		w := s.serve(http.MethodPost, v1+"/command/task", "", body,
			map[string]string{"Content-Type": contentType, httpapi.IdempotencyKeyHeader: idempotencyKey})
		s.check(t, "POST /command/task", w, true)
	})
}

// fuzzRoutes are the endpoints FuzzDecodeRequests reaches; the fuzzer's route byte picks one,
// and its input is the request body, or the raw query string for GET /jobs.
var fuzzRoutes = []struct {
	method, path string
	query        bool // the input is the query string, not the body
	command      bool // a 2xx answer must name a job
}{
	{http.MethodPost, v1 + "/command/task", false, true},
	{http.MethodPost, v1 + "/command/deploy", false, true},
	{http.MethodPost, v1 + "/command/stop", false, true},
	{http.MethodPost, v1 + "/inventory", false, false},
	{http.MethodPost, "/baton/v1/nodes", false, false},
	{http.MethodPost, "/baton/v1/groups", false, false},
	{http.MethodGet, v1 + "/jobs", true, false},
	{http.MethodPost, "/baton/v1/tokens", false, false},
	{http.MethodPost, "/baton/v1/roles", false, false},
	{http.MethodPut, "/baton/v1/users/fuzzer", false, false}, // never the admin: the token must keep working
}

// routeSeeds are realistic inputs per route, in the order of fuzzRoutes.
var routeSeeds = [][]string{
	{taskSeeds[0], taskSeeds[2], taskSeeds[8]},
	{
		`{"environment":"production","scope":{"nodes":["web1"]},"noop":true}`,
		`{"environment":"","scope":{"node_group":"webs"},"concurrency":2,"timeout":600,"tags":"ntp,ssh","skip_tags":"slow","debug":true,"evaltrace":true}`,
		`{"environment":"production","scope":{"query":"nodes { certname = \"db1\" }"},"no_noop":true,"enforce_environment":true,"use_cached_catalog":true,"filetimeout":5,"http_read_timeout":10,"ordering":"manifest"}`,
		`{"environment":"production","scope":{"nodes":["web1"]},"noop":true,"no_noop":true}`,
		`{"environment":"production","scope":{"nodes":["web1"]},"tags":"--exec=/bin/sh"}`,
		`{"scope":{"nodes":["web1"]}}`,
		`{"environment":null,"scope":{"nodes":["web1"]},"max_errors":"10"}`,
	},
	{`{"job":"1"}`, `{"job":1,"force":true}`, `{"job":"999"}`, `{"job":"0"}`, `{"job":9223372036854775808}`, `{"job":{"name":"1"}}`, `{"job":"1","force":"yes"}`},
	{`{"nodes":["web1","unknown"]}`, `{"nodes":[]}`, `{"nodes":null}`, `{"nodes":[""]}`, `{"nodes":"web1"}`, `{}`},
	{`{"name":"web9"}`, `{"name":"web1"}`, `{"name":" spaced "}`, `{"name":"bad name!"}`, `{"name":""}`, `{"name":"a/../b"}`},
	{
		`{"name":"edge","description":"edge nodes","nodes":["web1","web1","db1"]}`,
		`{"name":"dbs2","query":"nodes { certname = \"db1\" }"}`,
		`{"name":"both","nodes":["web1"],"query":"nodes {}"}`,
		`{"name":"webs","nodes":["web1"]}`,
		`{"name":"-bad","nodes":["web1"]}`,
		`{"name":"q","query":"nodes { certname = }"}`,
	},
	{
		"", "limit=10&offset=0", "order_by=timestamp&order=desc", "type=task&task=demo::hello",
		"type=deploy&task=demo::hello", "min_finish_timestamp=2024-05-06T07:08:09Z&max_finish_timestamp=2026-11-25T10:00:00Z",
		"limit=-1", "offset=abc", "order_by=secret", "order=sideways", "min_finish_timestamp=yesterday",
		"limit=99999999999999999999", "%zz", "limit=1;offset=2", "token=wrong",
	},
	{
		`{"label":"ci","lifetime":"1h"}`, `{"login":"deployer","label":"for deployer","lifetime":"7d"}`, `{"lifetime":"3600"}`,
		`{"lifetime":"-1h"}`, `{"lifetime":"y"}`, `{"lifetime":"585y"}`, `{"label":"a,b"}`, `{"login":"bad login!"}`, `{}`,
	},
	{
		`{"name":"operators","description":"run tasks on web nodes","permissions":["tasks:run=demo::hello@group:webs","jobs:view"]}`,
		`{"name":"puppet","permissions":["puppet:run@query:nodes { certname = \"db1\" }"]}`,
		`{"name":"bad","permissions":["tasks:fly"]}`, `{"name":"admin","permissions":[]}`, `{"name":"","permissions":null}`,
	},
	{`{"roles":["admin"]}`, `{"roles":[]}`, `{"roles":["nope"]}`, `{"roles":null}`, `{"roles":"admin"}`},
}

func FuzzDecodeRequests(f *testing.F) {
	for route, inputs := range routeSeeds {
		for _, in := range inputs {
			f.Add(uint8(route), in)
		}
	}
	s := newFuzzStack(f)
	f.Fuzz(func(t *testing.T, route uint8, input string) {
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		var w *httptest.ResponseRecorder
		if r.query {
			w = s.serve(r.method, r.path, input, nil, nil)
		} else {
			w = s.serve(r.method, r.path, "", []byte(input), nil)
		}
		s.check(t, r.method+" "+r.path, w, r.command)
	})
}

// tailBuffer keeps the last max bytes written to it, so that a long fuzz run's log stays small
// and a failure can still show what the server logged just before.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
