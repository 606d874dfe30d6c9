package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/client"
)

func nodeByName(t *testing.T, nodes []client.Node) map[string]client.Node {
	t.Helper()
	m := map[string]client.Node{}
	for _, n := range nodes {
		m[n.Name] = n
	}
	return m
}

func result(t *testing.T, n client.Node) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(n.Result, &m); err != nil {
		t.Fatalf("node %s result %s: %v", n.Name, n.Result, err)
	}
	return m
}

func TestTaskOnThreeAgents(t *testing.T) {
	h := newHarness(t)
	names := []string{"web1", "web2", "db1"}
	h.enroll(names...)
	for _, n := range names {
		h.startAgent(n)
	}
	h.waitConnected(names...)

	ref := h.run(client.TaskRequest{Task: "demo::hello", Params: map[string]any{"name": "Baton"}, Scope: client.Scope{Nodes: names}})
	if ref.Name != "1" || !strings.HasSuffix(ref.ID, "/orchestrator/v1/jobs/1") {
		t.Fatalf("job ref = %+v", ref)
	}
	job, nodes := h.waitJob(ref.Name, 20*time.Second)
	if job.State != "finished" || job.NodeStates["finished"] != 3 || job.NodeCount != 3 {
		t.Fatalf("job = %+v", job)
	}
	if job.Options["task"] != "demo::hello" || job.Owner["login"] != "admin" {
		t.Errorf("job options/owner = %v / %v", job.Options, job.Owner)
	}
	if len(nodes) != 3 {
		t.Fatalf("nodes = %+v", nodes)
	}
	for _, n := range nodes {
		r := result(t, n)
		if n.State != "finished" || r["greeting"] != "hello Baton" {
			t.Errorf("node %s: state %s result %v", n.Name, n.State, r)
		}
		if n.StartTimestamp == nil || n.FinishTimestamp == nil || n.Duration == nil {
			t.Errorf("node %s: missing timestamps: %+v", n.Name, n)
		}
	}
	// Events: a node_running and a node_finished per node, then job_finished, ids 1..7.
	evs, next, err := h.api.Events(context.Background(), ref.Name, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 7 || next != 8 {
		t.Fatalf("events = %d, next = %d: %+v", len(evs), next, evs)
	}
	counts := map[string]int{}
	for i, e := range evs {
		if e.ID != itoa(i+1) {
			t.Errorf("event %d has id %s", i, e.ID)
		}
		counts[e.Type]++
	}
	if counts["node_running"] != 3 || counts["node_finished"] != 3 || evs[6].Type != "job_finished" {
		t.Errorf("event types = %v (last %s)", counts, evs[6].Type)
	}
	if more, _, _ := h.api.Events(context.Background(), ref.Name, next); len(more) != 0 {
		t.Errorf("events after next = %+v", more)
	}
	// The inventory holds each agent's facts (sent in the background once gathered).
	var n client.InventoryNode
	h.eventually("web1's facts", 30*time.Second, func() bool {
		var err error
		if n, err = h.api.InventoryNode(context.Background(), "web1"); err != nil {
			t.Fatal(err)
		}
		var facts map[string]any
		err = json.Unmarshal(n.Facts, &facts)
		networking, _ := facts["networking"].(map[string]any)
		osFacts, _ := facts["os"].(map[string]any)
		return err == nil && networking["hostname"] != nil && osFacts["family"] != nil
	})
	if !n.Connected || n.Broker == "" || n.Timestamp == nil {
		t.Errorf("inventory record = %+v", n)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestTaskOutcomes(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ConnectTimeout = 3 * time.Second })
	h.enroll("n1", "n2", "offline")
	h.startAgent("n1")
	h.startAgent("n2")
	h.waitConnected("n1", "n2")

	t.Run("failure is recorded with Bolt's task-error", func(t *testing.T) {
		job, nodes := h.waitJob(h.run(client.TaskRequest{Task: "demo::fail", Scope: client.Scope{Nodes: []string{"n1"}}}).Name, 20*time.Second)
		if job.State != "finished" || nodes[0].State != "failed" {
			t.Fatalf("job %s node %s", job.State, nodes[0].State)
		}
		e, _ := result(t, nodes[0])["_error"].(map[string]any)
		if e["kind"] != "puppetlabs.tasks/task-error" || !strings.Contains(e["msg"].(string), "exit code 3") {
			t.Errorf("_error = %v", e)
		}
	})
	t.Run("multi-file task gets its install dir", func(t *testing.T) {
		_, nodes := h.waitJob(h.run(client.TaskRequest{Task: "demo::multi", Scope: client.Scope{Nodes: []string{"n1", "n2"}}}).Name, 20*time.Second)
		for _, n := range nodes {
			if n.State != "finished" {
				t.Errorf("%s: %s %s", n.Name, n.State, n.Result)
			}
		}
	})
	t.Run("timeout kills the task and fails the node", func(t *testing.T) {
		// The task would sleep 600 s: a job that ends within waitJob's 2 minutes killed it.
		_, nodes := h.waitJob(h.run(client.TaskRequest{Task: "demo::sleep", Params: map[string]any{"seconds": 600}, Timeout: 1,
			Scope: client.Scope{Nodes: []string{"n1"}}}).Name, 2*time.Minute)
		if nodes[0].State != "failed" {
			t.Fatalf("state %s", nodes[0].State)
		}
		e, _ := result(t, nodes[0])["_error"].(map[string]any)
		if e["kind"] != "puppetlabs.tasks/task-timeout" {
			t.Errorf("_error = %v", e)
		}
	})
	t.Run("noop reaches the task as _noop", func(t *testing.T) {
		_, nodes := h.waitJob(h.run(client.TaskRequest{Task: "demo::sleep", Params: map[string]any{"seconds": 5}, Noop: true,
			Scope: client.Scope{Nodes: []string{"n2"}}}).Name, 20*time.Second)
		if r := result(t, nodes[0]); nodes[0].State != "finished" || r["noop"] != true {
			t.Errorf("noop result %v", r)
		}
	})
	t.Run("offline node errors after the connect timeout, unknown node at once", func(t *testing.T) {
		start := time.Now()
		job, nodes := h.waitJob(h.run(client.TaskRequest{Task: "demo::hello", Scope: client.Scope{Nodes: []string{"n1", "offline", "ghost"}}}).Name, 20*time.Second)
		m := nodeByName(t, nodes)
		if job.State != "finished" || m["n1"].State != "finished" || m["offline"].State != "errored" || m["ghost"].State != "errored" {
			t.Fatalf("job %s nodes %+v", job.State, nodes)
		}
		if msg := m["offline"].Details["message"]; !strings.Contains(msg.(string), "did not connect within 3s") {
			t.Errorf("offline message %v", msg)
		}
		if msg := m["ghost"].Details["message"]; !strings.Contains(msg.(string), "not enrolled") {
			t.Errorf("ghost message %v", msg)
		}
		if d := time.Since(start); d < 3*time.Second {
			t.Errorf("offline node errored after %s, before the connect timeout", d)
		}
	})
	t.Run("concurrency 1 runs one node at a time", func(t *testing.T) {
		_, nodes := h.waitJob(h.run(client.TaskRequest{Task: "demo::sleep", Params: map[string]any{"seconds": 1}, Concurrency: 1,
			Scope: client.Scope{Nodes: []string{"n1", "n2"}}}).Name, 20*time.Second)
		a, b := nodes[0], nodes[1]
		if a.State != "finished" || b.State != "finished" {
			t.Fatalf("states %s %s", a.State, b.State)
		}
		if a.StartTimestamp.After(*b.StartTimestamp) {
			a, b = b, a
		}
		if b.StartTimestamp.Before(*a.FinishTimestamp) {
			t.Errorf("nodes overlapped: %s started %s before %s finished %s", b.Name, b.StartTimestamp, a.Name, a.FinishTimestamp)
		}
	})
}

func TestSensitiveParamsAreNotStored(t *testing.T) {
	h := newHarness(t)
	h.enroll("n1")
	h.startAgent("n1")
	h.waitConnected("n1")
	const secret = "correct-horse-battery-staple"
	ref := h.run(client.TaskRequest{Task: "demo::secret", Params: map[string]any{"password": secret}, Scope: client.Scope{Nodes: []string{"n1"}}})
	job, nodes := h.waitJob(ref.Name, 20*time.Second)
	if nodes[0].State != "finished" {
		t.Fatalf("node %s: %s", nodes[0].State, nodes[0].Result)
	}
	if r := result(t, nodes[0]); r["password_length"] != float64(len(secret)) {
		t.Errorf("result %v", r)
	}
	params, _ := job.Options["params"].(map[string]any)
	if params["password"] != "Sensitive [value redacted]" {
		t.Errorf("options params = %v", job.Options["params"])
	}
	if s, _ := job.Options["sensitive"].([]any); len(s) != 1 || s[0] != "password" {
		t.Errorf("options sensitive = %v", job.Options["sensitive"])
	}
	// Neither the API nor the database file nor the agent's spool holds the secret.
	list, err := h.api.Jobs(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(list)
	if bytes.Contains(b, []byte(secret)) {
		t.Error("job list contains the secret")
	}
	h.srv.Close()
	h.srv = nil
	for _, dir := range []string{h.cfg.DataDir, h.agents["n1"].cfg.SpoolDir} {
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(secret)) {
					t.Errorf("%s contains the secret", p)
				}
			}
			return nil
		})
	}
}

func TestSHA256Checks(t *testing.T) {
	// n2's agent starts after its job was made, and must connect within the connect timeout
	// for the download to be tried at all: the harness's 3 s are too short for an agent's
	// start on a loaded runner (the node errored "did not connect within 3s").
	h := newHarness(t, func(c *Config) { c.ConnectTimeout = time.Minute })
	h.enroll("n1", "n2")
	h.startAgent("n1")
	h.waitConnected("n1")

	t.Run("a tampered cache file is not executed", func(t *testing.T) {
		_, nodes := h.waitJob(h.run(client.TaskRequest{Task: "demo::hello", Scope: client.Scope{Nodes: []string{"n1"}}}).Name, 20*time.Second)
		if nodes[0].State != "finished" {
			t.Fatalf("first run %s", nodes[0].State)
		}
		marker := filepath.Join(t.TempDir(), "tampered-ran")
		cached, _ := filepath.Glob(filepath.Join(h.agents["n1"].cfg.CacheDir, "*", "hello.sh"))
		if len(cached) != 1 {
			t.Fatalf("cache entries %v", cached)
		}
		if err := os.WriteFile(cached[0], []byte("#!/bin/sh\ntouch "+marker+"\necho '{\"tampered\":true}'\n"), 0o700); err != nil {
			t.Fatal(err)
		}
		_, nodes = h.waitJob(h.run(client.TaskRequest{Task: "demo::hello", Scope: client.Scope{Nodes: []string{"n1"}}}).Name, 20*time.Second)
		if r := result(t, nodes[0]); nodes[0].State != "finished" || r["greeting"] != "hello world" {
			t.Errorf("second run %s %v", nodes[0].State, r)
		}
		if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
			t.Error("the tampered cache file was executed")
		}
	})
	t.Run("a download that does not match is refused and the node errors", func(t *testing.T) {
		// The job records the file's SHA-256 when it is created; the file changes before the
		// (offline) node's agent downloads it.
		ref := h.run(client.TaskRequest{Task: "demo::sysinfo", Scope: client.Scope{Nodes: []string{"n2"}}})
		path := filepath.Join(h.cfg.Modules, "demo", "tasks", "sysinfo.sh")
		if err := os.WriteFile(path, []byte("#!/bin/sh\necho '{\"swapped\":true}'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		h.startAgent("n2")
		_, nodes := h.waitJob(ref.Name, 90*time.Second)
		if nodes[0].State != "errored" || !strings.Contains(nodes[0].Details["message"].(string), "SHA that differs") {
			t.Errorf("node %s: %v %s", nodes[0].State, nodes[0].Details, nodes[0].Result)
		}
	})
	t.Run("forged and expired file URLs are refused", func(t *testing.T) {
		task, err := h.api.Task(context.Background(), "", "demo::hello")
		if err != nil {
			t.Fatal(err)
		}
		uri := task.Files[0].URI
		params, _ := uri["params"].(map[string]any)
		get := func(expires, sig string) int {
			resp, err := http.Get(h.srv.URL() + uri["path"].(string) + "?expires=" + expires + "&signature=" + sig)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		exp, sig := params["expires"].(string), params["signature"].(string)
		if got := get(exp, sig); got != 200 {
			t.Errorf("signed URL: %d", got)
		}
		if got := get(exp, strings.Repeat("0", len(sig))); got != 403 {
			t.Errorf("forged signature: %d", got)
		}
		if got := get("1", sig); got != 403 {
			t.Errorf("changed expiry: %d", got)
		}
	})
}

// TestNothingLostAcrossServerRestart stops the server while a task runs; the agent keeps the
// result in its spool and delivers it to the restarted server, which records it once.
func TestNothingLostAcrossServerRestart(t *testing.T) {
	h := newHarness(t)
	h.enroll("n1")
	h.startAgent("n1")
	h.waitConnected("n1")
	ref := h.run(client.TaskRequest{Task: "demo::sleep", Params: map[string]any{"seconds": 2}, Scope: client.Scope{Nodes: []string{"n1"}}})
	h.eventually("node running", 10*time.Second, func() bool {
		nodes, err := h.api.JobNodes(context.Background(), ref.Name)
		return err == nil && nodes[0].State == "running"
	})
	h.restart()
	job, nodes := h.waitJob(ref.Name, 30*time.Second)
	if job.State != "finished" || nodes[0].State != "finished" {
		t.Fatalf("after restart: job %s node %s %s", job.State, nodes[0].State, nodes[0].Result)
	}
	evs, _, err := h.api.Events(context.Background(), ref.Name, 1)
	if err != nil {
		t.Fatal(err)
	}
	finished := 0
	for _, e := range evs {
		if e.Type == "node_finished" {
			finished++
		}
	}
	if finished != 1 {
		t.Errorf("node_finished events = %d, want exactly 1: %+v", finished, evs)
	}
}

// TestWaitForJob checks GET /jobs/{id}?wait=: it answers once the job ends, well before the
// wait is over, and refuses a bad wait or an unknown job.
func TestWaitForJob(t *testing.T) {
	h := newHarness(t)
	h.enroll("w1")
	h.startAgent("w1")
	h.waitConnected("w1")
	ref := h.run(client.TaskRequest{Task: "demo::sleep", Params: map[string]any{"seconds": 1}, Scope: client.Scope{Nodes: []string{"w1"}}})
	ctx := context.Background()
	job, err := h.api.WaitJob(ctx, ref.Name, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if job.State != "finished" || job.NodeStates["finished"] != 1 {
		t.Fatalf("after waiting: %+v", job)
	}
	// A finished job answers at once, and a short wait returns the job as it is.
	if job, err = h.api.WaitJob(ctx, ref.Name, time.Millisecond); err != nil || job.State != "finished" {
		t.Fatalf("wait on a finished job: %+v, %v", job, err)
	}
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/orchestrator/v1/jobs/" + ref.Name + "?wait=soon", http.StatusBadRequest},
		{"/orchestrator/v1/jobs/" + ref.Name + "?wait=-1s", http.StatusBadRequest},
		{"/orchestrator/v1/jobs/999?wait=1s", http.StatusNotFound},
	} {
		token, err := os.ReadFile(h.srv.AdminTokenPath())
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL()+tc.path, nil)
		req.Header.Set("X-Authentication", strings.TrimSpace(string(token)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s: %d, want %d", tc.path, resp.StatusCode, tc.code)
		}
	}
}

// TestCloseWithAConnectionThatSendsNothing checks that a connection that has sent no request
// yet (an agent caught reconnecting by the shutdown) does not make Close fail: net/http's
// Shutdown counts such a connection busy for its first 5 s, longer than the grace, and Close
// then closes what is left.
func TestCloseWithAConnectionThatSendsNothing(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ShutdownGrace = 300 * time.Millisecond })
	silent, err := net.Dial("tcp", h.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// A request on a connection of its own: connections are accepted in order, so by its
	// answer the silent one has been accepted (and sits in net/http's StateNew).
	tr := &http.Transport{DisableKeepAlives: true}
	resp, err := (&http.Client{Transport: tr}).Get(h.srv.URL() + "/orchestrator/v1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := h.srv.Close(); err != nil {
		t.Fatalf("close with a silent connection open: %v", err)
	}
	h.srv = nil
	// The silent connection was closed: reading from it ends.
	_ = silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Error("the silent connection is still open after Close")
	}
}
