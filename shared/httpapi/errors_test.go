package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/httpapi"
	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/store"
)

func TestAuthentication(t *testing.T) {
	s := newStack(t, stackOptions{})
	ctx := context.Background()
	if err := s.auth.EnsureAdmin(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	expiring, err := s.auth.IssueToken(ctx, "alice", "short-lived", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := s.auth.IssueToken(ctx, "bob", "revoked", 0)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.store.GetToken(ctx, auth.Hash(revoked))
	if err != nil {
		t.Fatal(err)
	}
	// There is no revocation call yet: mark it revoked in the store under a fresh hash.
	revokedSecret := auth.NewSecret()
	tok.Hash, tok.Revoked = auth.Hash(revokedSecret), true
	if err := s.store.PutToken(ctx, tok); err != nil {
		t.Fatal(err)
	}

	// Before expiry the short-lived token works.
	if r := s.do(request{method: http.MethodGet, path: v1 + "/jobs", header: map[string]string{"X-Authentication": expiring}}); r.status != http.StatusOK {
		t.Fatalf("fresh token: status %d: %s", r.status, r.body)
	}
	s.authClock.Advance(time.Minute)

	endpoints := []request{
		{method: http.MethodGet, path: v1},
		{method: http.MethodGet, path: v1 + "/jobs"},
		{method: http.MethodGet, path: v1 + "/jobs/1"},
		{method: http.MethodGet, path: v1 + "/tasks"},
		{method: http.MethodGet, path: v1 + "/inventory"},
		{method: http.MethodPost, path: v1 + "/inventory", body: `{"nodes":["web1"]}`},
		{method: http.MethodPost, path: v1 + "/command/task", body: `{"task":"demo::hello","params":{},"scope":{"nodes":["web1"]}}`},
		{method: http.MethodPost, path: "/baton/v1/nodes", body: `{"name":"web1"}`},
	}
	tokens := []struct {
		name  string
		token string
	}{
		{"no token", ""},
		{"wrong token", auth.NewSecret()},
		{"expired token", expiring},
		{"revoked token", revokedSecret},
	}
	before := s.snapshot()
	for _, tc := range tokens {
		for _, ep := range endpoints {
			t.Run(tc.name+"/"+ep.method+" "+ep.path, func(t *testing.T) {
				ep.header = map[string]string{"X-Authentication": tc.token}
				r := s.do(ep)
				wantError(t, r, http.StatusUnauthorized, kindUnauth)
				if strings.Contains(string(r.body), "expired") || strings.Contains(string(r.body), "revoked") {
					t.Errorf("401 body tells why the token was refused: %s", r.body)
				}
			})
		}
	}
	if after := s.snapshot(); after != before {
		t.Errorf("unauthenticated requests changed the store: before %+v, after %+v", before, after)
	}

	t.Run("token query parameter", func(t *testing.T) {
		r := s.do(request{method: http.MethodGet, path: v1 + "/jobs?token=" + s.token, header: map[string]string{"X-Authentication": ""}})
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	t.Run("wrong token query parameter", func(t *testing.T) {
		r := s.do(request{method: http.MethodGet, path: v1 + "/jobs?token=nope", header: map[string]string{"X-Authentication": ""}})
		wantError(t, r, http.StatusUnauthorized, kindUnauth)
	})
}

// validTask is a command the baseline accepts; cases change one thing about it.
const validTask = `{"task":"demo::hello","params":{"name":"Ada"},"scope":{"nodes":["web1"]}}`

func TestCommandTaskRefused(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.enroll("web1", "web2")
	if name := s.submit(validTask); name != "1" {
		t.Fatalf("baseline job is %q, want 1", name)
	}
	huge := `{"task":"demo::hello","params":{},"scope":{"nodes":["web1"]},"description":"` +
		strings.Repeat("a", httpapi.MaxBodyBytes) + `"}`

	cases := []struct {
		name   string
		body   string
		ctype  string // Content-Type; "" sends application/json
		status int
		kind   string
		check  func(t *testing.T, details map[string]any)
	}{
		{name: "malformed JSON", body: `{"task":`, status: 400, kind: kindValidation},
		{name: "not JSON", body: `task=demo::hello`, status: 400, kind: kindValidation},
		{name: "trailing garbage", body: validTask + ` x`, status: 400, kind: kindValidation},
		{name: "two objects", body: validTask + validTask, status: 400, kind: kindValidation},
		{name: "empty body", body: "", status: 400, kind: kindValidation},
		{name: "whitespace body", body: " \n\t ", status: 400, kind: kindValidation},
		{name: "JSON array body", body: `[` + validTask + `]`, status: 400, kind: kindValidation},
		{name: "JSON string body", body: `"demo::hello"`, status: 400, kind: kindValidation},
		{name: "JSON null body", body: `null`, status: 400, kind: kindValidation},
		{name: "unknown top-level field", body: `{"task":"demo::hello","params":{},"scope":{"nodes":["web1"]},"bogus":1}`, status: 400, kind: kindValidation},
		{name: "unknown scope field", body: `{"task":"demo::hello","params":{},"scope":{"nodes":["web1"],"bogus":1}}`, status: 400, kind: kindValidation},
		{name: "task is a number", body: `{"task":5,"params":{},"scope":{"nodes":["web1"]}}`, status: 400, kind: kindValidation},
		{name: "params is an array", body: `{"task":"demo::hello","params":[],"scope":{"nodes":["web1"]}}`, status: 400, kind: kindValidation},
		{name: "params is a string", body: `{"task":"demo::hello","params":"name=Ada","scope":{"nodes":["web1"]}}`, status: 400, kind: kindValidation},
		{name: "scope is a string", body: `{"task":"demo::hello","params":{},"scope":"x"}`, status: 400, kind: kindValidation},
		{name: "scope is an array", body: `{"task":"demo::hello","params":{},"scope":["web1"]}`, status: 400, kind: kindValidation},
		{name: "scope.nodes is a string", body: `{"task":"demo::hello","params":{},"scope":{"nodes":"a"}}`, status: 400, kind: kindValidation},
		{name: "scope.nodes holds a number", body: `{"task":"demo::hello","params":{},"scope":{"nodes":[1]}}`, status: 400, kind: kindValidation},
		{name: "scope.query is an array", body: `{"task":"demo::hello","params":{},"scope":{"query":["from","nodes"]}}`, status: 400, kind: kindValidation},
		{name: "concurrency is a string", body: `{"task":"demo::hello","params":{},"scope":{"nodes":["web1"]},"concurrency":"2"}`, status: 400, kind: kindValidation},
		{name: "concurrency 0", body: `{"task":"demo::hello","params":{},"scope":{"nodes":["web1"]},"concurrency":0}`, status: 400, kind: kindValidation},
		{name: "concurrency -1", body: `{"task":"demo::hello","params":{},"scope":{"nodes":["web1"]},"concurrency":-1}`, status: 400, kind: kindValidation},
		{name: "concurrency 1.5", body: `{"task":"demo::hello","params":{},"scope":{"nodes":["web1"]},"concurrency":1.5}`, status: 400, kind: kindValidation},
		{name: "timeout 0", body: `{"task":"demo::hello","params":{},"scope":{"nodes":["web1"]},"timeout":0}`, status: 400, kind: kindValidation},
		{name: "timeout -5", body: `{"task":"demo::hello","params":{},"scope":{"nodes":["web1"]},"timeout":-5}`, status: 400, kind: kindValidation},
		{name: "timeout 1.5", body: `{"task":"demo::hello","params":{},"scope":{"nodes":["web1"]},"timeout":1.5}`, status: 400, kind: kindValidation},
		{name: "timeout over a week", body: `{"task":"demo::hello","params":{},"scope":{"nodes":["web1"]},"timeout":604801}`, status: 400, kind: kindValidation},
		{name: "timeout overflows int", body: `{"task":"demo::hello","params":{},"scope":{"nodes":["web1"]},"timeout":99999999999999999999}`, status: 400, kind: kindValidation},
		{name: "noop is a string", body: `{"task":"demo::sleep","params":{"seconds":1},"scope":{"nodes":["web1"]},"noop":"yes"}`, status: 400, kind: kindValidation},
		{name: "description is a number", body: `{"task":"demo::hello","params":{},"scope":{"nodes":["web1"]},"description":7}`, status: 400, kind: kindValidation},
		{name: "environment is a bool", body: `{"task":"demo::hello","environment":true,"params":{},"scope":{"nodes":["web1"]}}`, status: 400, kind: kindValidation},
		{name: "missing task", body: `{"params":{},"scope":{"nodes":["web1"]}}`, status: 400, kind: kindValidation},
		{name: "empty task", body: `{"task":"","params":{},"scope":{"nodes":["web1"]}}`, status: 400, kind: kindValidation},
		{name: "upper-case task name", body: `{"task":"Demo::Hello","params":{},"scope":{"nodes":["web1"]}}`, status: 400, kind: kindValidation},
		{name: "task name with three parts", body: `{"task":"demo::hello::x","params":{},"scope":{"nodes":["web1"]}}`, status: 400, kind: kindValidation},
		{name: "task name with a path", body: `{"task":"../demo","params":{},"scope":{"nodes":["web1"]}}`, status: 400, kind: kindValidation},
		{name: "missing scope", body: `{"task":"demo::hello","params":{}}`, status: 400, kind: kindValidation},
		{name: "null scope", body: `{"task":"demo::hello","params":{},"scope":null}`, status: 400, kind: kindValidation},
		{name: "empty scope", body: `{"task":"demo::hello","params":{},"scope":{}}`, status: 400, kind: kindEmptyTarget},
		{name: "empty node list", body: `{"task":"demo::hello","params":{},"scope":{"nodes":[]}}`, status: 400, kind: kindEmptyTarget},
		{name: "nodes and query", body: `{"task":"demo::hello","params":{},"scope":{"nodes":["web1"],"query":"nodes {}"}}`, status: 400, kind: kindValidation},
		{name: "nodes and node_group", body: `{"task":"demo::hello","params":{},"scope":{"nodes":["web1"],"node_group":"g"}}`, status: 400, kind: kindValidation},
		{name: "invalid node name", body: `{"task":"demo::hello","params":{},"scope":{"nodes":["web1","bad name!"]}}`, status: 400, kind: kindValidation},
		{name: "blank node name", body: `{"task":"demo::hello","params":{},"scope":{"nodes":[" "]}}`, status: 400, kind: kindValidation},
		{name: "unknown environment", body: `{"task":"demo::hello","environment":"nope","params":{},"scope":{"nodes":["web1"]}}`, status: 404, kind: kindUnknownEnv},
		{name: "unknown task", body: `{"task":"demo::nope","params":{},"scope":{"nodes":["web1"]}}`, status: 404, kind: kindUnknownTask},
		{name: "unknown module", body: `{"task":"nope","params":{},"scope":{"nodes":["web1"]}}`, status: 404, kind: kindUnknownTask},
		{name: "param of the wrong type", body: `{"task":"demo::sleep","params":{"seconds":"x"},"scope":{"nodes":["web1"]}}`, status: 400, kind: kindValidation,
			check: wantProblems("seconds")},
		{name: "param out of range", body: `{"task":"demo::sleep","params":{"seconds":99999},"scope":{"nodes":["web1"]}}`, status: 400, kind: kindValidation,
			check: wantProblems("seconds")},
		{name: "float for an integer param", body: `{"task":"demo::sleep","params":{"seconds":1.5},"scope":{"nodes":["web1"]}}`, status: 400, kind: kindValidation,
			check: wantProblems("seconds")},
		{name: "missing required param", body: `{"task":"demo::sleep","params":{},"scope":{"nodes":["web1"]}}`, status: 400, kind: kindValidation,
			check: wantProblems("seconds")},
		{name: "empty string for String[1]", body: `{"task":"demo::hello","params":{"name":""},"scope":{"nodes":["web1"]}}`, status: 400, kind: kindValidation,
			check: wantProblems("name")},
		{name: "unknown param", body: `{"task":"demo::hello","params":{"bogus":1},"scope":{"nodes":["web1"]}}`, status: 400, kind: kindValidation,
			check: wantProblems("bogus")},
		{name: "reserved metaparameter", body: `{"task":"demo::sleep","params":{"seconds":1,"_noop":true},"scope":{"nodes":["web1"]}}`, status: 400, kind: kindValidation,
			check: wantProblems("_noop")},
		{name: "noop on a task without supports_noop", body: `{"task":"demo::hello","params":{},"scope":{"nodes":["web1"]},"noop":true}`, status: 400, kind: kindValidation},
		{name: "unknown node_group", body: `{"task":"demo::hello","params":{},"scope":{"node_group":"00000000-0000-4000-8000-000000000000"}}`, status: 404, kind: orchestrator.KindUnknownGroup},
		{name: "bad query", body: `{"task":"demo::hello","params":{},"scope":{"query":"nodes { certname = }"}}`, status: 400, kind: kindQueryError,
			check: func(t *testing.T, d map[string]any) {
				if _, ok := d["position"]; !ok {
					t.Errorf("details has no position: %v", d)
				}
			}},
		{name: "query matching no node", body: `{"task":"demo::hello","params":{},"scope":{"query":"nodes { certname = \"nope\" }"}}`, status: 400, kind: kindEmptyTarget},
		{name: "body over 1 MiB", body: huge, status: http.StatusRequestEntityTooLarge, kind: kindValidation},
		{name: "text/plain content type", body: validTask, ctype: "text/plain", status: 400, kind: kindValidation},
		{name: "form content type", body: validTask, ctype: "application/x-www-form-urlencoded", status: 400, kind: kindValidation},
	}
	before := s.snapshot()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := request{method: http.MethodPost, path: v1 + "/command/task", body: tc.body}
			if tc.ctype != "" {
				req.header = map[string]string{"Content-Type": tc.ctype}
			}
			r := s.do(req)
			details := wantError(t, r, tc.status, tc.kind)
			if tc.check != nil && details != nil {
				tc.check(t, details)
			}
			if after := s.snapshot(); after != before {
				t.Errorf("store changed: before %+v, after %+v", before, after)
			}
		})
	}
	// Nothing was written, not even an id: the next job gets the next number.
	if name := s.submit(`{"task":"demo::hello","params":{},"scope":{"nodes":["web2"]}}`); name != "2" {
		t.Errorf("job after the refused commands is %q, want 2", name)
	}
}

// wantProblems checks that details.problems lists a problem with param.
func wantProblems(param string) func(t *testing.T, d map[string]any) {
	return func(t *testing.T, d map[string]any) {
		t.Helper()
		problems, ok := d["problems"].([]any)
		if !ok || len(problems) == 0 {
			t.Fatalf("details.problems is not a non-empty list: %v", d)
		}
		for _, p := range problems {
			m, _ := p.(map[string]any)
			if m["param"] == param {
				if msg, _ := m["msg"].(string); msg == "" {
					t.Errorf("problem for %s has no msg: %v", param, m)
				}
				return
			}
		}
		t.Errorf("no problem for param %q in %v", param, problems)
	}
}

func TestCommandTaskAcceptsJSONVariants(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.enroll("web1")
	cases := []struct {
		name   string
		header map[string]string
		body   string
	}{
		{"no content type", map[string]string{"Content-Type": ""}, validTask},
		{"charset parameter", map[string]string{"Content-Type": "application/json; charset=utf-8"}, validTask},
		{"surrounding whitespace", nil, "\n  " + validTask + "  \n"},
		{"params omitted", nil, `{"task":"demo::hello","scope":{"nodes":["web1"]}}`},
		{"task without parameters", nil, `{"task":"demo::sysinfo","params":{},"scope":{"nodes":["web1"]}}`},
		{"query scope", nil, `{"task":"demo::hello","params":{},"scope":{"query":"nodes { certname = \"web1\" }"}}`},
		{"integer param", nil, `{"task":"demo::sleep","params":{"seconds":5},"scope":{"nodes":["web1"]},"noop":true,"concurrency":1,"timeout":60}`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(request{method: http.MethodPost, path: v1 + "/command/task", body: tc.body, header: tc.header})
			if r.status != http.StatusAccepted {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			job, _ := r.object(t)["job"].(map[string]any)
			if want := fmt.Sprint(i + 1); job["name"] != want {
				t.Errorf("job name %v, want %s", job["name"], want)
			}
		})
	}
}

func TestJobEndpointsRefused(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.enroll("web1")
	s.submit(validTask)

	var cases []struct {
		path   string
		status int
		kind   string
	}
	add := func(path string, status int, kind string) {
		cases = append(cases, struct {
			path   string
			status int
			kind   string
		}{path, status, kind})
	}
	for _, sub := range []string{"", "/nodes", "/events", "/report"} {
		for _, id := range []string{"abc", "0", "-1", "1.0", "1e3", "99999999999999999999", "%20"} {
			add(v1+"/jobs/"+id+sub, 400, kindValidation)
		}
		add(v1+"/jobs/999"+sub, 404, kindUnknownJob)
	}
	for _, q := range []string{"start=x", "start=-1", "start=1.5"} {
		add(v1+"/jobs/1/events?"+q, 400, kindValidation)
	}
	add(v1+"/jobs/1/nodes?state=bogus", 400, kindValidation)
	for _, q := range []string{"limit=x", "limit=-1", "offset=x", "offset=-1", "order_by=bogus", "order=up", "type=plan", "type=TASK"} {
		add(v1+"/jobs?"+q, 400, kindValidation)
	}
	add(v1+"/tasks?environment=nope", 404, kindUnknownEnv)
	add(v1+"/tasks/demo/hello?environment=nope", 404, kindUnknownEnv)
	add(v1+"/tasks/demo/nope", 404, kindUnknownTask)
	add(v1+"/tasks/nope/hello", 404, kindUnknownTask)
	add(v1+"/tasks/Demo/hello", 400, kindValidation)
	add(v1+"/inventory/nope", 404, kindUnknownNode)

	before := s.snapshot()
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			wantError(t, s.get(tc.path), tc.status, tc.kind)
		})
	}
	if after := s.snapshot(); after != before {
		t.Errorf("reads changed the store: before %+v, after %+v", before, after)
	}
}

func TestBrokenTaskInCatalog(t *testing.T) {
	s := newStack(t, stackOptions{})
	writeFile(t, s.modules+"/demo/tasks/broken.json", `{"parameters": {`)
	writeFile(t, s.modules+"/demo/tasks/broken.sh", "#!/bin/sh\n")
	wantError(t, s.get(v1+"/tasks/demo/broken"), 400, kindValidation)
	// The listing skips it and still lists the good tasks.
	r := s.get(v1 + "/tasks")
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "demo::broken") {
		t.Errorf("listing shows the broken task: %s", r.body)
	}
	if !strings.Contains(string(r.body), `"demo::hello"`) {
		t.Errorf("listing lost the good tasks: %s", r.body)
	}
}

func TestInventoryQueryRefused(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.enroll("web1")
	cases := []struct {
		name string
		body string
	}{
		{"malformed", `{"nodes":`},
		{"empty body", ``},
		{"missing nodes", `{}`},
		{"nodes is a string", `{"nodes":"web1"}`},
		{"unknown field", `{"nodes":["web1"],"bogus":true}`},
		{"array body", `["web1"]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, s.post(v1+"/inventory", tc.body), 400, kindValidation)
		})
	}
}

func TestEnrollNode(t *testing.T) {
	s := newStack(t, stackOptions{})
	r := s.post("/baton/v1/nodes", `{"name":"web1"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("enrol: status %d: %s", r.status, r.body)
	}
	body := r.object(t)
	if body["name"] != "web1" {
		t.Errorf("name %v, want web1", body["name"])
	}
	secret, _ := body["secret"].(string)
	if err := s.auth.AuthenticateNode(context.Background(), "web1", secret); err != nil {
		t.Errorf("the returned secret does not authenticate web1: %v", err)
	}

	cases := []struct {
		name   string
		body   string
		status int
		kind   string
	}{
		{"duplicate", `{"name":"web1"}`, 409, kindConflict},
		{"invalid name", `{"name":"bad name!"}`, 400, kindValidation},
		{"name with a slash", `{"name":"a/b"}`, 400, kindValidation},
		{"empty name", `{"name":""}`, 400, kindValidation},
		{"missing name", `{}`, 400, kindValidation},
		{"name is a number", `{"name":5}`, 400, kindValidation},
		{"unknown field", `{"name":"web2","admin":true}`, 400, kindValidation},
		{"malformed", `{"name":`, 400, kindValidation},
		{"empty body", ``, 400, kindValidation},
	}
	before := s.snapshot()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, s.post("/baton/v1/nodes", tc.body), tc.status, tc.kind)
			if after := s.snapshot(); after != before {
				t.Errorf("store changed: before %+v, after %+v", before, after)
			}
		})
	}
}

func TestUnknownEndpoint(t *testing.T) {
	s := newStack(t, stackOptions{})
	cases := []request{
		{method: http.MethodGet, path: v1 + "/nope"},
		{method: http.MethodGet, path: v1 + "/jobs/1/nope"},
		{method: http.MethodGet, path: "/nope"},
		{method: http.MethodGet, path: "/"},
		{method: http.MethodPost, path: v1 + "/command/nope", body: `{}`},
		{method: http.MethodGet, path: v1 + "/command/task"},
		{method: http.MethodDelete, path: v1 + "/jobs/1"},
		{method: http.MethodGet, path: v1 + "/nope", header: map[string]string{"X-Authentication": ""}},
	}
	for _, req := range cases {
		t.Run(req.method+" "+req.path, func(t *testing.T) {
			r := s.do(req)
			if r.status != http.StatusNotFound && r.status != http.StatusMethodNotAllowed {
				t.Errorf("status %d, want 404 or 405", r.status)
			}
			wantError(t, r, r.status, kindNotFound)
		})
	}
}

// failingStore is a store whose method named fail returns err; the rest reach the real store.
type failingStore struct {
	store.Store
	fail string
	err  error
}

func (f failingStore) CreateJob(ctx context.Context, j jobs.Job, nodes []jobs.Node, evs []jobs.Event) (jobs.Job, error) {
	if f.fail == "CreateJob" {
		return jobs.Job{}, f.err
	}
	return f.Store.CreateJob(ctx, j, nodes, evs)
}

func (f failingStore) EnrolledNodes(ctx context.Context, names []string) (map[string]bool, error) {
	if f.fail == "EnrolledNodes" {
		return nil, f.err
	}
	return f.Store.EnrolledNodes(ctx, names)
}

func (f failingStore) JobCounts(ctx context.Context, id int64) (jobs.StateCounts, error) {
	if f.fail == "JobCounts" {
		return nil, f.err
	}
	return f.Store.JobCounts(ctx, id)
}

func (f failingStore) NodeNames(ctx context.Context) ([]string, error) {
	if f.fail == "NodeNames" {
		return nil, f.err
	}
	return f.Store.NodeNames(ctx)
}

func (f failingStore) FactValues(ctx context.Context, path []string) (map[string]any, error) {
	if f.fail == "FactValues" {
		return nil, f.err
	}
	return f.Store.FactValues(ctx, path)
}

func (f failingStore) CreateJobClaiming(ctx context.Context, j jobs.Job, nodes []jobs.Node, evs []jobs.Event, c store.Claim) (jobs.Job, []jobs.Node, error) {
	if f.fail == "CreateJob" {
		return jobs.Job{}, nil, f.err
	}
	return f.Store.CreateJobClaiming(ctx, j, nodes, evs, c)
}

func (f failingStore) GetJob(ctx context.Context, id int64) (jobs.Job, error) {
	if f.fail == "GetJob" {
		return jobs.Job{}, f.err
	}
	return f.Store.GetJob(ctx, id)
}

func (f failingStore) ListJobs(ctx context.Context, q store.JobQuery) ([]jobs.Job, int, error) {
	if f.fail == "ListJobs" {
		return nil, 0, f.err
	}
	return f.Store.ListJobs(ctx, q)
}

func (f failingStore) ListJobNodes(ctx context.Context, id int64) ([]jobs.Node, error) {
	if f.fail == "ListJobNodes" {
		return nil, f.err
	}
	return f.Store.ListJobNodes(ctx, id)
}

func (f failingStore) ListEvents(ctx context.Context, id, start int64, limit int) ([]jobs.Event, error) {
	if f.fail == "ListEvents" {
		return nil, f.err
	}
	return f.Store.ListEvents(ctx, id, start, limit)
}

func (f failingStore) ListNodes(ctx context.Context) ([]inventory.Node, error) {
	if f.fail == "ListNodes" {
		return nil, f.err
	}
	return f.Store.ListNodes(ctx)
}

func (f failingStore) GetNode(ctx context.Context, name string) (inventory.Node, error) {
	if f.fail == "GetNode" {
		return inventory.Node{}, f.err
	}
	return f.Store.GetNode(ctx, name)
}

// failingAuthStore fails token look-ups.
type failingAuthStore struct {
	auth.Store
	err error
}

func (f failingAuthStore) GetToken(context.Context, string) (store.Token, error) {
	return store.Token{}, f.err
}

func TestInternalErrorsDoNotLeak(t *testing.T) {
	const secretText = "disk on fire at /var/lib/baton/baton.db: SQLITE_IOERR"
	injected := fmt.Errorf("%s", secretText)
	orchFails := func(method string) stackOptions {
		return stackOptions{orchStore: func(st store.Store) store.Store { return failingStore{Store: st, fail: method, err: injected} }}
	}
	authFails := stackOptions{authStore: func(st auth.Store) auth.Store { return failingAuthStore{Store: st, err: injected} }}

	cases := []struct {
		name string
		opts stackOptions
		req  request
	}{
		{"list jobs", orchFails("ListJobs"), request{method: http.MethodGet, path: v1 + "/jobs"}},
		{"node counts of listed jobs", orchFails("JobCounts"), request{method: http.MethodGet, path: v1 + "/jobs"}},
		{"get job", orchFails("GetJob"), request{method: http.MethodGet, path: v1 + "/jobs/1"}},
		{"job nodes", orchFails("ListJobNodes"), request{method: http.MethodGet, path: v1 + "/jobs/1/nodes"}},
		{"job events", orchFails("ListEvents"), request{method: http.MethodGet, path: v1 + "/jobs/1/events"}},
		{"job report", orchFails("GetJob"), request{method: http.MethodGet, path: v1 + "/jobs/1/report"}},
		{"create job", orchFails("CreateJob"), request{method: http.MethodPost, path: v1 + "/command/task", body: validTask}},
		{"look up scope nodes", orchFails("EnrolledNodes"), request{method: http.MethodPost, path: v1 + "/command/task", body: validTask}},
		{"resolve query", orchFails("NodeNames"), request{method: http.MethodPost, path: v1 + "/command/task",
			body: `{"task":"demo::hello","params":{},"scope":{"query":"nodes {}"}}`}},
		{"resolve query by facts", orchFails("FactValues"), request{method: http.MethodPost, path: v1 + "/command/task",
			body: `{"task":"demo::hello","params":{},"scope":{"query":"nodes { facts.os.family = \"Debian\" }"}}`}},
		{"list inventory", orchFails("ListNodes"), request{method: http.MethodGet, path: v1 + "/inventory"}},
		{"get inventory", orchFails("GetNode"), request{method: http.MethodGet, path: v1 + "/inventory/web1"}},
		{"query inventory", orchFails("GetNode"), request{method: http.MethodPost, path: v1 + "/inventory", body: `{"nodes":["web1"]}`}},
		{"token look-up", authFails, request{method: http.MethodGet, path: v1 + "/jobs"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t, tc.opts)
			s.enroll("web1")
			s.seedJob()
			before := s.snapshot()
			r := s.do(tc.req)
			details := wantError(t, r, http.StatusInternalServerError, kindUnknownErr)
			if strings.Contains(string(r.body), "disk on fire") || strings.Contains(string(r.body), "/var/lib") ||
				strings.Contains(strings.ToLower(string(r.body)), "sqlite") {
				t.Errorf("500 body leaks the internal error: %s", r.body)
			}
			id, _ := details["request_id"].(string)
			if id == "" {
				t.Fatalf("details has no request_id: %s", r.body)
			}
			if msg := r.object(t)["msg"].(string); !strings.Contains(msg, id) {
				t.Errorf("msg %q does not name request %s", msg, id)
			}
			// The operator can find the real error by the request id.
			var logged bool
			for line := range strings.SplitSeq(s.logs.String(), "\n") {
				if strings.Contains(line, id) && strings.Contains(line, "disk on fire") {
					logged = true
				}
			}
			if !logged {
				t.Errorf("no log line holds both request id %s and the error:\n%s", id, s.logs.String())
			}
			if after := s.snapshot(); after != before {
				t.Errorf("store changed: before %+v, after %+v", before, after)
			}
		})
	}
}

func TestCommandStopRefused(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.enroll("web1")
	s.submit(validTask)
	cases := []struct {
		name   string
		body   string
		status int
		kind   string
	}{
		{"malformed", `{"job":`, 400, kindValidation},
		{"empty body", ``, 400, kindValidation},
		{"missing job", `{}`, 400, kindValidation},
		{"null job", `{"job":null}`, 400, kindValidation},
		{"job not a number", `{"job":"abc"}`, 400, kindValidation},
		{"job 0", `{"job":"0"}`, 400, kindValidation},
		{"job -1", `{"job":-1}`, 400, kindValidation},
		{"job 1.5", `{"job":1.5}`, 400, kindValidation},
		{"job is an object", `{"job":{"name":"1"}}`, 400, kindValidation},
		{"force is a string", `{"job":"1","force":"yes"}`, 400, kindValidation},
		{"unknown field", `{"job":"1","bogus":1}`, 400, kindValidation},
		{"array body", `[{"job":"1"}]`, 400, kindValidation},
		{"unknown job", `{"job":"999"}`, 404, kindUnknownJob},
	}
	before := s.snapshot()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, s.post(v1+"/command/stop", tc.body), tc.status, tc.kind)
			if after := s.snapshot(); after != before {
				t.Errorf("store changed: before %+v, after %+v", before, after)
			}
		})
	}
	if state := s.get(v1 + "/jobs/1").object(t)["state"]; state != "running" {
		t.Errorf("job 1 is %v after refused stops, want running", state)
	}
}
