package orchestrator_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/seal"
	"github.com/baton-run/baton/shared/store/sqlite"
)

func newScopeService(t *testing.T) (*orchestrator.Service, *countingStore) {
	t.Helper()
	base, err := sqlite.Open(filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { base.Close() })
	st := newCountingStore(base)
	sealer, err := seal.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	orch := orchestrator.New(st, oneTask{}, noURLs{}, nil, sealer, orchestrator.WithKick(func(int64) {}))
	return orch, st
}

func nodeNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("node%06d.example.com", i)
	}
	return names
}

// leastPrivileged may run tasks only on a group that does not exist: every node is refused.
var leastPrivileged = &orchestrator.Permit{Scopes: []string{"group:nothing"}, What: "run task demo::noop"}

// TestScopeNodeCap: a scope of more than MaxScopeNodes names is refused with a validation
// error before any work per name and before the caller's permissions are checked; a
// 10,000-node job is accepted.
func TestScopeNodeCap(t *testing.T) {
	orch, st := newScopeService(t)
	ctx := t.Context()
	submit := func(names []string, permit *orchestrator.Permit) (jobs.Job, error) {
		return orch.SubmitTask(ctx, orchestrator.TaskRequest{Task: "demo::noop",
			Common: orchestrator.Common{Scope: orchestrator.Scope{Nodes: names}, Permit: permit}}, jobs.Owner{Login: "someone"})
	}
	for _, n := range []int{orchestrator.MaxScopeNodes + 1, 100000} {
		for _, permit := range []*orchestrator.Permit{nil, leastPrivileged} {
			st.reset()
			start := time.Now()
			_, err := submit(nodeNames(n), permit)
			took := time.Since(start)
			e, ok := orchestrator.AsError(err)
			if !ok || e.Kind != orchestrator.KindValidation || e.Details["limit"] != orchestrator.MaxScopeNodes || e.Details["count"] != n {
				t.Fatalf("%d names (permit %v): %v, want a validation error naming the limit", n, permit != nil, err)
			}
			if calls, _, by := st.totals(); calls != 0 {
				t.Errorf("%d names: the refusal made store calls %v", n, by)
			}
			t.Logf("%d names refused in %s", n, took)
		}
	}
	job, err := submit(nodeNames(10000), nil)
	if err != nil {
		t.Fatalf("a 10,000-node job: %v", err)
	}
	if job.NodeCount != 10000 {
		t.Errorf("node count %d", job.NodeCount)
	}
}

// TestScopeDeduplicationIsLinear: names are de-duplicated in linear time, before the
// permission filter; a least-privileged caller's refusal costs time in proportion to the
// names sent. Sixteen times the names may cost at most 30 times the time (linear work
// measures 9–12 times, with -race or not; the quadratic de-duplication the issue found
// measures 44–58 times); each size takes its fastest of several runs, the two sizes run
// alternately so that a loaded runner slows both alike rather than only the one measured
// while another process took the cores.
func TestScopeDeduplicationIsLinear(t *testing.T) {
	orch, _ := newScopeService(t)
	ctx := t.Context()
	run := func(n int, names []string) time.Duration {
		start := time.Now()
		_, err := orch.SubmitTask(ctx, orchestrator.TaskRequest{Task: "demo::noop",
			Common: orchestrator.Common{Scope: orchestrator.Scope{Nodes: names[:min(len(names), orchestrator.MaxScopeNodes)]}, Permit: leastPrivileged}},
			jobs.Owner{Login: "someone"})
		took := time.Since(start)
		if e, ok := orchestrator.AsError(err); !ok || e.Kind != orchestrator.KindNotPermitted {
			t.Fatalf("%d names: %v, want not-permitted", n, err)
		}
		return took
	}
	withDuplicates := func(n int) []string {
		names := nodeNames(n)
		return append(names, names[:n/2]...)
	}
	smallNames, largeNames := withDuplicates(1250), withDuplicates(20000)
	small, large := time.Duration(1<<63-1), time.Duration(1<<63-1)
	for range 7 {
		small = min(small, run(1250, smallNames))
		large = min(large, run(20000, largeNames))
	}
	t.Logf("1,250 names: %s; 20,000 names: %s (%.1f×)", small, large, float64(large)/float64(small))
	if large > 30*small {
		t.Errorf("16× the names took %.1f× the time: de-duplication is not linear", float64(large)/float64(small))
	}
}

func TestScopeKeepsOrderAndDropsDuplicates(t *testing.T) {
	orch, st := newScopeService(t)
	ctx := t.Context()
	job, err := orch.SubmitTask(ctx, orchestrator.TaskRequest{Task: "demo::noop",
		Common: orchestrator.Common{Scope: orchestrator.Scope{Nodes: []string{"b", " a", "b", "c", "a "}}}}, jobs.Owner{Login: "someone"})
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := st.ListJobNodes(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range nodes {
		got = append(got, n.Name)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("job nodes %v, want a, b, c", got)
	}
}
