package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenHost replaces the test server's address in golden files.
const goldenHost = "http://baton.test"

// checkGolden compares r's body, with the server address normalised and re-indented with
// sorted keys, to testdata/name.
func (s *stack) checkGolden(r response, name string) {
	s.t.Helper()
	if r.status != http.StatusOK {
		s.t.Fatalf("%s: status %d: %s", name, r.status, r.body)
	}
	var v any
	if err := json.Unmarshal(bytes.ReplaceAll(r.body, []byte(s.url), []byte(goldenHost)), &v); err != nil {
		s.t.Fatalf("%s: %v", name, err)
	}
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		s.t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			s.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		s.t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		s.t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// agentSays delivers a message as if node's agent had sent it.
func (s *stack) agentSays(node, msgType string, data any) {
	s.t.Helper()
	e, err := protocol.New(msgType, "pcp:///server", data)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.orch.HandleAgentMessage(context.Background(), node, e); err != nil {
		s.t.Fatalf("%s from %s: %v", msgType, node, err)
	}
}

func (s *stack) transaction(jobID int64, node string) string {
	s.t.Helper()
	n, err := s.store.GetJobNode(context.Background(), jobID, node)
	if err != nil {
		s.t.Fatal(err)
	}
	if n.TransactionID == "" {
		s.t.Fatalf("node %s of job %d has no transaction (state %s)", node, jobID, n.State)
	}
	return n.TransactionID
}

func wantKeys(t *testing.T, what string, v any, keys ...string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s is not an object: %v", what, v)
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%s has no key %q: %v", what, k, m)
		}
	}
	return m
}

// TestJobShapes runs one job to a mixed state — web1 finished through agent messages, web2
// waiting for its agent, ghost not enrolled — and checks the job, nodes, events and report.
func TestJobShapes(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.enroll("web1", "web2")

	r := s.post(v1+"/command/task", `{"task":"demo::hello","params":{"name":"Ada","loud":true},"description":"golden",
		"scope":{"nodes":["web1","web2","ghost"]},"concurrency":5,"timeout":60}`)
	if r.status != http.StatusAccepted {
		t.Fatalf("submit: status %d: %s", r.status, r.body)
	}
	want := `{"job":{"id":"` + s.url + `/orchestrator/v1/jobs/1","name":"1"}}`
	var got any
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if gb, _ := json.Marshal(got); string(gb) != want {
		t.Errorf("submit response %s, want %s", r.body, want)
	}

	s.orchClock.Advance(2 * time.Second)
	txn := s.transaction(1, "web1")
	s.agentSays("web1", protocol.TypeProvisionalResponse, protocol.ProvisionalResponse{TransactionID: txn})
	s.orchClock.Advance(3 * time.Second)
	results, err := json.Marshal(protocol.TaskResults{Exitcode: 0, Stdout: `{"greeting":"HELLO, ADA"}`})
	if err != nil {
		t.Fatal(err)
	}
	s.agentSays("web1", protocol.TypeNonBlockingResponse, protocol.NonBlockingResponse{TransactionID: txn, Results: results})

	t.Run("job", func(t *testing.T) {
		r := s.get(v1 + "/jobs/1")
		s.checkGolden(r, "job.golden.json")
		job := wantKeys(t, "job", r.json(t), "id", "name", "state", "command", "type", "options", "owner", "timestamp",
			"environment", "node_count", "node_states", "status", "nodes", "report", "events", "description")
		if job["id"] != s.url+"/orchestrator/v1/jobs/1" || job["name"] != "1" {
			t.Errorf("id %v name %v", job["id"], job["name"])
		}
		wantKeys(t, "options", job["options"], "params", "scope", "task", "environment", "noop", "sensitive", "transport", "description")
		wantKeys(t, "owner", job["owner"], "id", "login")
		wantKeys(t, "environment", job["environment"], "name")
		for _, link := range []string{"nodes", "report", "events"} {
			l := wantKeys(t, link, job[link], "id")
			if l["id"] != s.url+"/orchestrator/v1/jobs/1/"+link {
				t.Errorf("%s link %v", link, l["id"])
			}
		}
		if status, ok := job["status"].([]any); !ok || len(status) == 0 {
			t.Errorf("status is not a non-empty list: %v", job["status"])
		}
	})
	t.Run("nodes", func(t *testing.T) {
		r := s.get(v1 + "/jobs/1/nodes")
		s.checkGolden(r, "nodes.golden.json")
		body := wantKeys(t, "nodes", r.json(t), "next-events", "items")
		wantKeys(t, "next-events", body["next-events"], "id", "event")
		items, _ := body["items"].([]any)
		if len(items) != 3 {
			t.Fatalf("%d items, want 3", len(items))
		}
		for _, it := range items {
			wantKeys(t, "node", it, "name", "state", "transport", "start_timestamp", "finish_timestamp", "duration",
				"timestamp", "transaction_uuid", "latest-event-id", "details", "result")
		}
	})
	t.Run("nodes by state", func(t *testing.T) {
		body := s.get(v1 + "/jobs/1/nodes?state=errored").object(t)
		items, _ := body["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["name"] != "ghost" {
			t.Errorf("state=errored gives %v, want ghost only", items)
		}
	})
	t.Run("events", func(t *testing.T) {
		r := s.get(v1 + "/jobs/1/events?start=1")
		s.checkGolden(r, "events.golden.json")
		body := wantKeys(t, "events", r.json(t), "next-events", "items")
		next := wantKeys(t, "next-events", body["next-events"], "id", "event")
		items, _ := body["items"].([]any)
		if len(items) == 0 {
			t.Fatal("no events")
		}
		last := wantKeys(t, "event", items[len(items)-1], "id", "type", "timestamp", "details", "message")
		lastID, ok := last["id"].(string)
		if !ok {
			t.Fatalf("event id %v is not a string", last["id"])
		}
		if next["event"] == lastID || next["id"] != s.url+"/orchestrator/v1/jobs/1/events?start="+next["event"].(string) {
			t.Errorf("next-events %v does not point past event %s", next, lastID)
		}
		// Polling from next-events gives nothing new and the same next-events.
		again := s.get(v1 + "/jobs/1/events?start=" + next["event"].(string)).object(t)
		if items, _ := again["items"].([]any); len(items) != 0 {
			t.Errorf("polling from next-events returned %v", items)
		}
		if n := again["next-events"].(map[string]any); n["event"] != next["event"] {
			t.Errorf("next-events moved from %v to %v", next["event"], n["event"])
		}
		// A later start skips the earlier events.
		tail := s.get(v1 + "/jobs/1/events?start=" + lastID).object(t)
		if items, _ := tail["items"].([]any); len(items) != 1 {
			t.Errorf("start=%s gives %d events, want 1", lastID, len(items))
		}
	})
	t.Run("report", func(t *testing.T) {
		s.checkGolden(s.get(v1+"/jobs/1/report"), "report.golden.json")
	})
	t.Run("list", func(t *testing.T) {
		s.submit(`{"task":"demo::sysinfo","scope":{"nodes":["web2"]}}`)
		body := s.get(v1 + "/jobs?order_by=name&order=desc&limit=1&offset=1").object(t)
		pag := wantKeys(t, "pagination", body["pagination"], "limit", "offset", "total")
		if pag["total"] != json.Number("2") || pag["limit"] != json.Number("1") || pag["offset"] != json.Number("1") {
			t.Errorf("pagination %v", pag)
		}
		items, _ := body["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["name"] != "1" {
			t.Fatalf("page holds %v, want job 1", items)
		}
		fromList, _ := json.Marshal(items[0])
		var fromGet any
		if err := json.Unmarshal(s.get(v1+"/jobs/1").body, &fromGet); err != nil {
			t.Fatal(err)
		}
		if single, _ := json.Marshal(fromGet); !bytes.Equal(fromList, single) {
			t.Errorf("job in list differs from GET /jobs/1:\n%s\n%s", fromList, single)
		}
		if items := s.get(v1 + "/jobs?type=deploy").object(t)["items"].([]any); len(items) != 0 {
			t.Errorf("type=deploy lists %d task jobs", len(items))
		}
	})
}

func TestSensitiveParamsAreRedacted(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.enroll("web1")
	name := s.submit(`{"task":"demo::secret","params":{"password":"hunter2-very-secret"},"scope":{"nodes":["web1"]}}`)
	for _, path := range []string{"/jobs/" + name, "/jobs", "/jobs/" + name + "/nodes", "/jobs/" + name + "/events"} {
		r := s.get(v1 + path)
		if r.status != http.StatusOK {
			t.Fatalf("%s: status %d: %s", path, r.status, r.body)
		}
		if bytes.Contains(r.body, []byte("hunter2")) {
			t.Errorf("%s shows the sensitive value: %s", path, r.body)
		}
	}
	opts := s.get(v1 + "/jobs/" + name).object(t)["options"].(map[string]any)
	if sens, _ := opts["sensitive"].([]any); len(sens) != 1 || sens[0] != "password" {
		t.Errorf("options.sensitive %v, want [password]", opts["sensitive"])
	}
	if params := opts["params"].(map[string]any); params["password"] == nil {
		t.Errorf("options.params lost the redacted key: %v", params)
	}
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestTaskShapes(t *testing.T) {
	s := newStack(t, stackOptions{})

	t.Run("list", func(t *testing.T) {
		body := s.get(v1 + "/tasks").object(t)
		env := wantKeys(t, "environment", body["environment"], "name", "code_id")
		if env["name"] != "production" {
			t.Errorf("environment %v", env)
		}
		items, _ := body["items"].([]any)
		var names []string
		for _, it := range items {
			m := wantKeys(t, "task", it, "id", "name")
			names = append(names, m["name"].(string))
			if m["name"] == "demo::hello" && m["id"] != s.url+"/orchestrator/v1/tasks/demo/hello" {
				t.Errorf("demo::hello id %v", m["id"])
			}
		}
		for _, want := range []string{"demo::hello", "demo::sleep", "demo::multi", "demo::secret"} {
			if !slices.Contains(names, want) {
				t.Errorf("listing lacks %s: %v", want, names)
			}
		}
	})
	cases := []struct {
		task  string
		files []string // Filename, path under the modules directory
	}{
		{"hello", []string{"hello.sh", "demo/tasks/hello.sh"}},
		{"multi", []string{"multi.sh", "demo/tasks/multi.sh", "demo/files/lib.sh", "demo/files/lib.sh"}},
	}
	for _, tc := range cases {
		t.Run(tc.task, func(t *testing.T) {
			r := s.get(v1 + "/tasks/demo/" + tc.task)
			body := wantKeys(t, "task", r.json(t), "id", "name", "environment", "metadata", "files")
			if body["id"] != s.url+"/orchestrator/v1/tasks/demo/"+tc.task || body["name"] != "demo::"+tc.task {
				t.Errorf("id %v name %v", body["id"], body["name"])
			}
			meta, err := os.ReadFile(filepath.Join(s.modules, "demo", "tasks", tc.task+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var wantMeta any
			if err := json.Unmarshal(meta, &wantMeta); err != nil {
				t.Fatal(err)
			}
			var gotMeta struct {
				Metadata any `json:"metadata"`
			}
			if err := json.Unmarshal(r.body, &gotMeta); err != nil {
				t.Fatal(err)
			}
			gm, _ := json.Marshal(gotMeta.Metadata)
			wm, _ := json.Marshal(wantMeta)
			if !bytes.Equal(gm, wm) {
				t.Errorf("metadata %s, want the file's %s", gm, wm)
			}
			files, _ := body["files"].([]any)
			if len(files) != len(tc.files)/2 {
				t.Fatalf("%d files, want %d: %v", len(files), len(tc.files)/2, files)
			}
			for i, f := range files {
				m := wantKeys(t, "file", f, "filename", "uri", "sha256", "size_bytes")
				if m["filename"] != tc.files[2*i] {
					t.Errorf("file %d filename %v, want %s", i, m["filename"], tc.files[2*i])
				}
				content, err := os.ReadFile(filepath.Join(s.modules, filepath.FromSlash(tc.files[2*i+1])))
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(content)
				if sha, _ := m["sha256"].(string); !hex64.MatchString(sha) || sha != hex.EncodeToString(sum[:]) {
					t.Errorf("%s sha256 %v, want %x", m["filename"], m["sha256"], sum)
				}
				if n, _ := m["size_bytes"].(json.Number).Int64(); n != int64(len(content)) {
					t.Errorf("%s size_bytes %v, want %d", m["filename"], m["size_bytes"], len(content))
				}
				uri := wantKeys(t, "uri", m["uri"], "path", "params")
				if uri["path"] != "/files/production/demo/"+tc.files[2*i] {
					t.Errorf("%s uri path %v", m["filename"], uri["path"])
				}
				wantKeys(t, "uri params", uri["params"], "expires", "signature")
			}
		})
	}
}

func TestInventoryShapes(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.enroll("web1", "web2")
	ctx := context.Background()
	if err := s.orch.NodeConnected(ctx, "web1", "conn-1", time.Time{}); err != nil {
		t.Fatal(err)
	}
	s.agentSays("web1", protocol.TypeFacts, protocol.Facts{Facts: map[string]any{"os": map[string]any{"family": "Debian"}}})

	t.Run("list", func(t *testing.T) {
		items, _ := s.get(v1 + "/inventory").object(t)["items"].([]any)
		if len(items) != 2 {
			t.Fatalf("items %v", items)
		}
		web1 := wantKeys(t, "web1", items[0], "name", "connected", "broker", "timestamp")
		web2 := wantKeys(t, "web2", items[1], "name", "connected")
		if web1["name"] != "web1" || web1["connected"] != true || web2["name"] != "web2" || web2["connected"] != false {
			t.Errorf("items %v", items)
		}
		for _, k := range []string{"broker", "timestamp", "facts"} {
			if _, ok := web2[k]; ok {
				t.Errorf("disconnected web2 has %s: %v", k, web2)
			}
		}
		if _, ok := web1["facts"]; ok {
			t.Errorf("listing shows facts: %v", web1)
		}
	})
	t.Run("one node", func(t *testing.T) {
		n := wantKeys(t, "web1", s.get(v1+"/inventory/web1").json(t), "name", "connected", "broker", "timestamp", "facts")
		facts, _ := n["facts"].(map[string]any)
		if os, _ := facts["os"].(map[string]any); os["family"] != "Debian" {
			t.Errorf("facts %v", n["facts"])
		}
		web2 := wantKeys(t, "web2", s.get(v1+"/inventory/web2").json(t), "name", "connected", "facts")
		if f, _ := web2["facts"].(map[string]any); f == nil {
			t.Errorf("web2 facts %v, want {}", web2["facts"])
		}
	})
	t.Run("query", func(t *testing.T) {
		items, _ := s.post(v1+"/inventory", `{"nodes":["web1","unknown"]}`).object(t)["items"].([]any)
		if len(items) != 2 {
			t.Fatalf("items %v", items)
		}
		if m := items[0].(map[string]any); m["name"] != "web1" || m["connected"] != true || m["broker"] == nil {
			t.Errorf("web1 %v", m)
		}
		unknown := items[1].(map[string]any)
		if unknown["name"] != "unknown" || unknown["connected"] != false {
			t.Errorf("unknown %v", unknown)
		}
		if _, ok := unknown["broker"]; ok {
			t.Errorf("unknown node has a broker: %v", unknown)
		}
		if items, _ := s.post(v1+"/inventory", `{"nodes":[]}`).object(t)["items"].([]any); items == nil || len(items) != 0 {
			t.Errorf(`{"nodes":[]} gives %v, want []`, items)
		}
	})
}

func TestRoot(t *testing.T) {
	s := newStack(t, stackOptions{})
	for _, path := range []string{v1, v1 + "/"} {
		t.Run(path, func(t *testing.T) {
			r := s.get(path)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			body := wantKeys(t, "root", r.json(t), "info", "status", "collections", "commands")
			wantKeys(t, "info", body["info"], "title", "description", "warning", "version", "license")
			wantKeys(t, "status", body["status"], "name", "id")
			for _, list := range []string{"collections", "commands"} {
				items, _ := body[list].([]any)
				if len(items) == 0 {
					t.Errorf("%s is empty", list)
				}
				for _, it := range items {
					m := wantKeys(t, list, it, "name", "id")
					if id, _ := m["id"].(string); !strings.HasPrefix(id, s.url+"/orchestrator/v1/") {
						t.Errorf("%s link %v is not an absolute API URL", list, id)
					}
				}
			}
		})
	}
}
