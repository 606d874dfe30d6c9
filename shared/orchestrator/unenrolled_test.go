package orchestrator_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/orchestrator"
)

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// records returns the logged JSON records with the given message.
func (s *syncBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

const unenrolledMsg = "query matched nodes that are not enrolled here: the job leaves them out"

// TestQueryResolverReportsUnenrolled: certnames PuppetDB returns that are not enrolled here are
// left out of the job, logged at info (count and names) and recorded in the job's options as
// "unenrolled_matches"; a query whose certnames are all enrolled records nothing.
func TestQueryResolverReportsUnenrolled(t *testing.T) {
	var logs syncBuffer
	orch, _ := newResolverService(t, orchestrator.WithLogger(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	type unenrolled struct {
		Count  int      `json:"count"`
		Sample []string `json:"sample"`
	}
	options := func(t *testing.T, job jobs.Job) (opts struct {
		Unenrolled *unenrolled `json:"unenrolled_matches"`
		Scope      struct {
			Query string `json:"query"`
		} `json:"scope"`
	}) {
		t.Helper()
		if err := json.Unmarshal(job.Options, &opts); err != nil {
			t.Fatalf("options %s: %v", job.Options, err)
		}
		return opts
	}
	scope := orchestrator.Common{Scope: orchestrator.Scope{Query: nginxQuery}}

	// A task job: web1 and web2 targeted, ghost.example.test (not enrolled) reported.
	job, err := orch.SubmitTask(t.Context(), orchestrator.TaskRequest{Task: "demo::noop", Common: scope}, jobs.Owner{Login: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if got := jobNodeNames(t, orch, job); !slices.Equal(got, []string{"web1", "web2"}) {
		t.Errorf("job nodes %q", got)
	}
	want := unenrolled{Count: 1, Sample: []string{"ghost.example.test"}}
	if o := options(t, job); o.Unenrolled == nil || o.Unenrolled.Count != want.Count || !slices.Equal(o.Unenrolled.Sample, want.Sample) || o.Scope.Query != nginxQuery {
		t.Errorf("task job options %s, want unenrolled_matches %+v", job.Options, want)
	}
	recs := logs.records(t, unenrolledMsg)
	if len(recs) != 1 {
		t.Fatalf("%d info records %q, want 1; logs:\n%s", len(recs), unenrolledMsg, logs.b.String())
	}
	r := recs[0]
	if r["level"] != "INFO" || r["query"] != nginxQuery || r["matched"] != 3.0 || r["enrolled"] != 2.0 || r["not_enrolled"] != 1.0 ||
		!slices.Equal(toStrings(r["sample"]), want.Sample) {
		t.Errorf("log record %v", r)
	}

	// A Puppet run job records it the same way.
	dj, err := orch.SubmitDeploy(t.Context(), orchestrator.DeployRequest{Common: scope}, jobs.Owner{Login: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if o := options(t, dj); o.Unenrolled == nil || o.Unenrolled.Count != 1 {
		t.Errorf("deploy job options %s, want unenrolled_matches", dj.Options)
	}

	// Every certname enrolled: nothing recorded, nothing logged.
	job, err = orch.SubmitTask(t.Context(), orchestrator.TaskRequest{Task: "demo::noop",
		Common: orchestrator.Common{Scope: orchestrator.Scope{Query: webQuery}}}, jobs.Owner{Login: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if o := options(t, job); o.Unenrolled != nil || strings.Contains(string(job.Options), "unenrolled") {
		t.Errorf("options %s record unenrolled matches where there are none", job.Options)
	}
	if n := len(logs.records(t, unenrolledMsg)); n != 2 {
		t.Errorf("%d records %q after a fully enrolled query, want still 2", n, unenrolledMsg)
	}

	// None enrolled: no job, and the log names both certnames (the invalid one too).
	if _, err := orch.SubmitTask(t.Context(), orchestrator.TaskRequest{Task: "demo::noop",
		Common: orchestrator.Common{Scope: orchestrator.Scope{Query: ghostQuery}}}, jobs.Owner{Login: "admin"}); err == nil {
		t.Fatal("a query matching no enrolled node made a job")
	}
	recs = logs.records(t, unenrolledMsg)
	if last := recs[len(recs)-1]; last["not_enrolled"] != 2.0 || !slices.Equal(toStrings(last["sample"]), []string{"ghost.example.test", "not a node name!"}) {
		t.Errorf("log record %v", last)
	}
}

func toStrings(v any) []string {
	a, _ := v.([]any)
	out := make([]string, 0, len(a))
	for _, x := range a {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}
