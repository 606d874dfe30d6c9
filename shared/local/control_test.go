package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/client"
)

// maxRunning replays a job's events and returns the most nodes that ran at once.
func maxRunning(t *testing.T, evs []client.Event) int {
	t.Helper()
	running, peak := 0, 0
	for _, e := range evs {
		switch e.Type {
		case "node_running":
			running++
		case "node_finished", "node_failed", "node_errored", "node_stopped":
			running--
		}
		peak = max(peak, running)
	}
	return peak
}

func nodeNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i+1)
	}
	return out
}

func (h *harness) fleet(names []string) {
	h.t.Helper()
	h.enroll(names...)
	for _, n := range names {
		h.startAgent(n)
	}
	h.waitConnected(names...)
}

func (h *harness) events(name string) []client.Event {
	h.t.Helper()
	evs, _, err := h.api.Events(context.Background(), name, 1)
	if err != nil {
		h.t.Fatal(err)
	}
	return evs
}

func TestConcurrencyLimits(t *testing.T) {
	t.Run("per job: concurrency 2 on 6 nodes", func(t *testing.T) {
		h := newHarness(t)
		names := nodeNames("c", 6)
		h.fleet(names)
		ref := h.run(client.TaskRequest{Task: "demo::sleep", Params: map[string]any{"seconds": 1}, Concurrency: 2, Scope: client.Scope{Nodes: names}})
		job, _ := h.waitJob(ref.Name, 30*time.Second)
		if job.NodeStates["finished"] != 6 {
			t.Fatalf("node states %v", job.NodeStates)
		}
		if peak := maxRunning(t, h.events(ref.Name)); peak != 2 {
			t.Errorf("at most %d nodes ran at once, want exactly 2", peak)
		}
	})
	t.Run("server-wide cap across two jobs", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.TaskConcurrency = 2 })
		names := nodeNames("g", 6)
		h.fleet(names)
		a := h.run(client.TaskRequest{Task: "demo::sleep", Params: map[string]any{"seconds": 1}, Scope: client.Scope{Nodes: names[:3]}})
		b := h.run(client.TaskRequest{Task: "demo::sleep", Params: map[string]any{"seconds": 1}, Scope: client.Scope{Nodes: names[3:]}})
		type edge struct {
			at    time.Time
			delta int
		}
		var edges []edge
		for _, ref := range []client.JobRef{a, b} {
			_, nodes := h.waitJob(ref.Name, 30*time.Second)
			for _, n := range nodes {
				if n.State != "finished" {
					t.Fatalf("%s: %s", n.Name, n.State)
				}
				edges = append(edges, edge{*n.StartTimestamp, 1}, edge{*n.FinishTimestamp, -1})
			}
		}
		sort.Slice(edges, func(i, j int) bool {
			if edges[i].at.Equal(edges[j].at) {
				return edges[i].delta < edges[j].delta // a slot freed at t may be taken at t
			}
			return edges[i].at.Before(edges[j].at)
		})
		running, peak := 0, 0
		for _, e := range edges {
			running += e.delta
			peak = max(peak, running)
		}
		if peak != 2 {
			t.Errorf("peak running across both jobs = %d, want 2", peak)
		}
	})
}

func TestMaxErrorsStopsTheRollout(t *testing.T) {
	h := newHarness(t)
	names := nodeNames("e", 5)
	h.fleet(names)
	ref := h.run(client.TaskRequest{Task: "demo::fail", Concurrency: 1, MaxErrors: "1", Scope: client.Scope{Nodes: names}})
	job, nodes := h.waitJob(ref.Name, 30*time.Second)
	if job.State != "failed" {
		t.Errorf("job state %s, want failed", job.State)
	}
	// One error is allowed; the second stops the rollout: e1 and e2 fail, e3..e5 are skipped.
	want := map[string]string{"e1": "failed", "e2": "failed", "e3": "skipped", "e4": "skipped", "e5": "skipped"}
	for _, n := range nodes {
		if n.State != want[n.Name] {
			t.Errorf("%s: %s, want %s", n.Name, n.State, want[n.Name])
		}
	}
	evs := h.events(ref.Name)
	if last := evs[len(evs)-1]; last.Type != "job_aborted" {
		t.Errorf("last event %s %q", last.Type, last.Message)
	}

	t.Run("a percentage", func(t *testing.T) {
		// 40% of 5 nodes = 2 errors allowed: the third failure stops it.
		ref := h.run(client.TaskRequest{Task: "demo::fail", Concurrency: 1, MaxErrors: "40%", Scope: client.Scope{Nodes: names}})
		job, _ := h.waitJob(ref.Name, 30*time.Second)
		if job.State != "failed" || job.NodeStates["failed"] != 3 || job.NodeStates["skipped"] != 2 {
			t.Errorf("job %s %v", job.State, job.NodeStates)
		}
	})
}

// addPidTask adds a task to the harness's modules that records its process id, then sleeps.
func addPidTask(t *testing.T, h *harness) {
	t.Helper()
	dir := filepath.Join(h.cfg.Modules, "demo", "tasks")
	meta := `{"input_method":"environment","parameters":{"pidfile":{"type":"String[1]"},"seconds":{"type":"Integer"}}}`
	script := "#!/bin/sh\necho $$ > \"$PT_pidfile\"\nexec sleep \"$PT_seconds\"\n"
	if err := os.WriteFile(filepath.Join(dir, "pidsleep.json"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pidsleep.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func processGone(pid int) bool {
	err := syscall.Kill(pid, 0)
	if errors.Is(err, syscall.ESRCH) {
		return true
	}
	// A zombie awaiting its parent's wait counts as gone.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && strings.Contains(string(b), ") Z ")
}

func TestStop(t *testing.T) {
	h := newHarness(t)
	names := nodeNames("s", 3)
	h.fleet(names)
	addPidTask(t, h)

	t.Run("graceful: the running node finishes, the rest are skipped", func(t *testing.T) {
		ref := h.run(client.TaskRequest{Task: "demo::sleep", Params: map[string]any{"seconds": 2}, Concurrency: 1, Scope: client.Scope{Nodes: names}})
		h.eventually("first node running", 10*time.Second, func() bool {
			nodes, err := h.api.JobNodes(context.Background(), ref.Name)
			return err == nil && nodes[0].State == "running"
		})
		res, err := h.api.Stop(context.Background(), ref.Name, false)
		if err != nil {
			t.Fatal(err)
		}
		if res.Nodes["running"] != 1 || res.Nodes["skipped"] != 2 {
			t.Errorf("stop answer counts %v", res.Nodes)
		}
		again, err := h.api.Stop(context.Background(), ref.Name, false)
		if err != nil || again.Name != ref.Name {
			t.Errorf("second stop: %+v %v", again, err)
		}
		job, nodes := h.waitJob(ref.Name, 20*time.Second)
		if job.State != "stopped" {
			t.Errorf("job state %s", job.State)
		}
		m := nodeByName(t, nodes)
		if m["s1"].State != "finished" || m["s2"].State != "skipped" || m["s3"].State != "skipped" {
			t.Errorf("nodes %v %v %v", m["s1"].State, m["s2"].State, m["s3"].State)
		}
		types := []string{}
		for _, e := range h.events(ref.Name) {
			types = append(types, e.Type)
		}
		got := strings.Join(types, ",")
		if got != "node_running,job_stopping,node_skipped,node_skipped,node_finished,job_aborted" {
			t.Errorf("events %s", got)
		}
	})
	t.Run("force: the running process is killed", func(t *testing.T) {
		pidfile := filepath.Join(t.TempDir(), "pid")
		ref := h.run(client.TaskRequest{Task: "demo::pidsleep", Params: map[string]any{"pidfile": pidfile, "seconds": 120}, Scope: client.Scope{Nodes: names[:1]}})
		var pid int
		h.eventually("task process started", 10*time.Second, func() bool {
			b, err := os.ReadFile(pidfile)
			if err != nil {
				return false
			}
			pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
			return err == nil && pid > 0
		})
		if _, err := h.api.Stop(context.Background(), ref.Name, true); err != nil {
			t.Fatal(err)
		}
		job, nodes := h.waitJob(ref.Name, 10*time.Second)
		if job.State != "stopped" || nodes[0].State != "stopped" {
			t.Errorf("job %s node %s", job.State, nodes[0].State)
		}
		h.eventually("the task process to be killed", 10*time.Second, func() bool { return processGone(pid) })
		evs := h.events(ref.Name)
		if evs[len(evs)-1].Type != "job_aborted" {
			t.Errorf("events %+v", evs)
		}
	})
	t.Run("unknown and malformed jobs", func(t *testing.T) {
		_, err := h.api.Stop(context.Background(), "999", false)
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != 404 || ae.Kind != "puppetlabs.orchestrator/unknown-job" {
			t.Errorf("unknown job: %v", err)
		}
		_, err = h.api.Stop(context.Background(), "abc", false)
		if !errors.As(err, &ae) || ae.Status != 400 || ae.Kind != "puppetlabs.orchestrator/validation-error" {
			t.Errorf("bad job name: %v", err)
		}
	})
}

func TestScopes(t *testing.T) {
	h := newHarness(t)
	fleet := map[string]map[string]any{
		"web1": {"role": "web", "os": map[string]any{"family": "Debian"}},
		"web2": {"role": "web", "os": map[string]any{"family": "RedHat"}},
		"db1":  {"role": "db", "os": map[string]any{"family": "Debian"}},
	}
	for name, facts := range fleet {
		h.enroll(name)
		h.startAgentWith(name, facts)
	}
	h.waitConnected("web1", "web2", "db1")
	// Every agent sends its facts in the background after connecting: the queries below read
	// all three nodes' facts, so wait for each of them, not only for one.
	h.eventually("facts of every node", 30*time.Second, func() bool {
		for name, facts := range fleet {
			n, err := h.api.InventoryNode(context.Background(), name)
			var got map[string]any
			if err != nil || json.Unmarshal(n.Facts, &got) != nil || got["role"] != facts["role"] {
				return false
			}
		}
		return true
	})
	targets := func(ref client.JobRef) string {
		_, nodes := h.waitJob(ref.Name, 20*time.Second)
		var out []string
		for _, n := range nodes {
			out = append(out, n.Name)
		}
		sort.Strings(out)
		return strings.Join(out, ",")
	}
	q := `inventory[certname] { facts.os.family = "Debian" and (facts.role ~ "web" or certname = "db1") }`
	if got := targets(h.run(client.TaskRequest{Task: "demo::hello", Scope: client.Scope{Query: q}})); got != "db1,web1" {
		t.Errorf("query targets %s", got)
	}
	if _, err := h.api.CreateGroup(context.Background(), client.Group{Name: "webs", Query: `nodes[certname] { facts.role = "web" }`}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.api.CreateGroup(context.Background(), client.Group{Name: "pair", Nodes: []string{"db1", "web2"}}); err != nil {
		t.Fatal(err)
	}
	if got := targets(h.run(client.TaskRequest{Task: "demo::hello", Scope: client.Scope{NodeGroup: "webs"}})); got != "web1,web2" {
		t.Errorf("query group targets %s", got)
	}
	if got := targets(h.run(client.TaskRequest{Task: "demo::hello", Scope: client.Scope{NodeGroup: "pair"}})); got != "db1,web2" {
		t.Errorf("list group targets %s", got)
	}

	bad := []struct {
		name   string
		req    client.TaskRequest
		status int
		kind   string
	}{
		{"bad query", client.TaskRequest{Task: "demo::hello", Scope: client.Scope{Query: `inventory[certname] { facts.role = }`}}, 400, "puppetlabs.orchestrator/query-error"},
		{"query matching nothing", client.TaskRequest{Task: "demo::hello", Scope: client.Scope{Query: `inventory[certname] { facts.role = "nope" }`}}, 400, "puppetlabs.orchestrator/empty-target"},
		{"unknown group", client.TaskRequest{Task: "demo::hello", Scope: client.Scope{NodeGroup: "nope"}}, 404, "puppetlabs.orchestrator/unknown-node-group"},
		{"nodes and query", client.TaskRequest{Task: "demo::hello", Scope: client.Scope{Nodes: []string{"db1"}, Query: q}}, 400, "puppetlabs.orchestrator/validation-error"},
		{"negative concurrency", client.TaskRequest{Task: "demo::hello", Concurrency: -1, Scope: client.Scope{Nodes: []string{"db1"}}}, 400, "puppetlabs.orchestrator/validation-error"},
		{"bad max_errors", client.TaskRequest{Task: "demo::hello", MaxErrors: "lots", Scope: client.Scope{Nodes: []string{"db1"}}}, 400, "puppetlabs.orchestrator/validation-error"},
		{"max_errors over 100%", client.TaskRequest{Task: "demo::hello", MaxErrors: "101%", Scope: client.Scope{Nodes: []string{"db1"}}}, 400, "puppetlabs.orchestrator/validation-error"},
	}
	before, _ := h.api.Jobs(context.Background(), nil)
	for _, c := range bad {
		_, err := h.api.RunTask(context.Background(), c.req)
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != c.status || ae.Kind != c.kind {
			t.Errorf("%s: %v", c.name, err)
		}
		if c.kind == "puppetlabs.orchestrator/query-error" && ae != nil && ae.Details["position"] == nil {
			t.Errorf("%s: no position in %v", c.name, ae.Details)
		}
	}
	after, _ := h.api.Jobs(context.Background(), nil)
	if before.Pagination["total"] != after.Pagination["total"] {
		t.Errorf("bad requests created jobs: %d → %d", before.Pagination["total"], after.Pagination["total"])
	}
}

func TestIdempotencyKey(t *testing.T) {
	h := newHarness(t)
	h.fleet([]string{"i1"})
	req := client.TaskRequest{Task: "demo::hello", Scope: client.Scope{Nodes: []string{"i1"}}, IdempotencyKey: "deploy-2026-11-25"}
	first := h.run(req)
	second := h.run(req)
	if first.Name != second.Name {
		t.Errorf("same key gave jobs %s and %s", first.Name, second.Name)
	}
	req.IdempotencyKey = "another"
	if third := h.run(req); third.Name == first.Name {
		t.Errorf("a new key returned the old job")
	}
	list, _ := h.api.Jobs(context.Background(), nil)
	if list.Pagination["total"] != 2 {
		t.Errorf("jobs created: %d, want 2", list.Pagination["total"])
	}
}
