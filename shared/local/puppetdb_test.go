package local

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/puppetdb"
)

// TestServePuppetDBTargeting: with Config.PuppetDB, a task's scope.query goes to PuppetDB
// as written (a subquery the built-in subset cannot parse) through baton serve's API, and
// exactly the enrolled nodes among the certnames it returns run the task on their agents;
// PuppetDB's refusal comes back as a 400 query-error. PuppetDB here is a stand-in answering
// from a table; make test-puppetdb runs the same against a real PuppetDB.
func TestServePuppetDBTargeting(t *testing.T) {
	const nginx = `inventory[certname] { facts.os.family = "Debian" and resources { type = "Class" and title = "Nginx" } }`
	pdb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Query string }
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &req)
		if r.URL.Path != "/pdb/query/v4" || req.Query != nginx {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, "PQL parse error at line 1, column 7:")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `[{"certname":"web1"},{"certname":"web2"},{"certname":"elsewhere.example.test"}]`)
	}))
	defer pdb.Close()

	if _, err := Start(tlsConfig(t, func(c *Config) { c.PuppetDB = puppetdb.Config{URL: "http://pdb.example.test:8080"} })); err == nil ||
		!strings.Contains(err.Error(), "no authentication") {
		t.Fatalf("plain HTTP to a PuppetDB off loopback: Start = %v, want refused", err)
	}
	srv := startServer(t, tlsConfig(t, func(c *Config) { c.PuppetDB = puppetdb.Config{URL: pdb.URL} }))
	api := newAPIClient(t, srv)
	for _, n := range []string{"web1", "web2", "db1"} {
		cfg := agentConfig(t, srv, n, api.enroll(n))
		cfg.TLSFingerprint = srv.Fingerprint()
		runAgent(t, cfg)
	}
	waitFor(t, "the agents to connect", 20*time.Second, func() bool {
		return api.connected("web1") && api.connected("web2") && api.connected("db1")
	})

	var created struct {
		Job struct{ Name string } `json:"job"`
	}
	if err := api.call(http.MethodPost, "/orchestrator/v1/command/task",
		map[string]any{"task": "demo::hello", "params": map[string]any{"name": "PuppetDB"}, "scope": map[string]any{"query": nginx}}, &created); err != nil {
		t.Fatal(err)
	}
	var job struct {
		State string `json:"state"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for job.State != "finished" {
		if err := api.call(http.MethodGet, "/orchestrator/v1/jobs/"+created.Job.Name+"?wait=5s", nil, &job); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) || job.State == "failed" || job.State == "stopped" {
			t.Fatalf("job %s: %s", created.Job.Name, job.State)
		}
	}
	var nodes struct {
		Items []struct{ Name, State string } `json:"items"`
	}
	if err := api.call(http.MethodGet, "/orchestrator/v1/jobs/"+created.Job.Name+"/nodes", nil, &nodes); err != nil {
		t.Fatal(err)
	}
	var ran []string
	for _, n := range nodes.Items {
		if n.State != "finished" {
			t.Errorf("node %s %s", n.Name, n.State)
		}
		ran = append(ran, n.Name)
	}
	slices.Sort(ran)
	if !slices.Equal(ran, []string{"web1", "web2"}) {
		t.Errorf("the job ran on %q, want web1 and web2", ran)
	}

	err := api.call(http.MethodPost, "/orchestrator/v1/command/task",
		map[string]any{"task": "demo::hello", "params": map[string]any{}, "scope": map[string]any{"query": "nodes[certname] { certname ~~ 1 }"}}, &created)
	if err == nil || !strings.Contains(err.Error(), ": 400 ") || !strings.Contains(err.Error(), `"kind":"puppetlabs.orchestrator/query-error"`) ||
		!strings.Contains(err.Error(), "PQL parse error at line 1, column 7") {
		t.Errorf("a query PuppetDB rejects: %v, want 400 query-error with PuppetDB's message", err)
	}
}
