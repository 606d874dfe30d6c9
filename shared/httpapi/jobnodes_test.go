package httpapi_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/baton-run/baton/shared/orchestrator"
)

// TestJobNodesPagination: GET /jobs/{id}/nodes takes PE's limit and offset (with or without
// state), answers with pagination {limit, offset, total}, and refuses a bad value PE-style.
func TestJobNodesPagination(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.enroll("n1", "n2", "n3", "n4", "n5")
	// Seven nodes in the job's order: five enrolled (ready) and two that are not (errored at once).
	s.submit(`{"task":"demo::hello","params":{},"scope":{"nodes":["n1","n2","g1","n3","n4","g2","n5"]}}`)
	all := []string{"n1", "n2", "g1", "n3", "n4", "g2", "n5"}

	for _, tc := range []struct {
		query             string
		names             []string
		limit, off, total int
	}{
		{"", all, 0, 0, 7},
		{"limit=3", all[:3], 3, 0, 7},
		{"limit=3&offset=3", all[3:6], 3, 3, 7},
		{"limit=3&offset=6", all[6:], 3, 6, 7},
		{"offset=5", all[5:], 0, 5, 7},
		{"offset=7", nil, 0, 7, 7},
		{"limit=2&offset=100", nil, 2, 100, 7},
		{"limit=0", all, 0, 0, 7},
		{"limit=1000000", all, orchestrator.MaxScopeNodes, 0, 7},
		{"state=errored", []string{"g1", "g2"}, 0, 0, 2},
		{"state=errored&limit=1&offset=1", []string{"g2"}, 1, 1, 2},
		{"state=ready&limit=2&offset=2", []string{"n3", "n4"}, 2, 2, 5},
		{"state=finished&limit=5", nil, 5, 0, 0},
	} {
		t.Run(tc.query, func(t *testing.T) {
			r := s.get(v1 + "/jobs/1/nodes?" + tc.query)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			body := wantKeys(t, "nodes", r.json(t), "items", "next-events", "pagination")
			var names []string
			for _, it := range body["items"].([]any) {
				names = append(names, it.(map[string]any)["name"].(string))
			}
			if !slices.Equal(names, tc.names) {
				t.Errorf("items %v, want %v", names, tc.names)
			}
			p := wantKeys(t, "pagination", body["pagination"], "limit", "offset", "total")
			if got, want := fmt.Sprintf("%v %v %v", p["limit"], p["offset"], p["total"]), fmt.Sprintf("%d %d %d", tc.limit, tc.off, tc.total); got != want {
				t.Errorf("pagination limit, offset, total = %s, want %s", got, want)
			}
			// next-events does not depend on the page: after every node's latest event (g1's
			// and g2's node_errored are events 1 and 2).
			if ne := body["next-events"].(map[string]any); ne["event"] != "3" {
				t.Errorf("next-events %v, want event 3", ne)
			}
		})
	}

	for _, q := range []string{"limit=x", "limit=-1", "limit=1.5", "offset=x", "offset=-1", "offset=", "state=bogus&limit=1"} {
		t.Run("refused "+q, func(t *testing.T) {
			r := s.get(v1 + "/jobs/1/nodes?" + q)
			if q == "offset=" { // empty means absent, as for /jobs
				if r.status != http.StatusOK {
					t.Fatalf("status %d: %s", r.status, r.body)
				}
				return
			}
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.status, r.body)
			}
			e := wantKeys(t, "error", r.json(t), "kind", "msg", "details")
			if e["kind"] != kindValidation {
				t.Errorf("kind %v, want %s", e["kind"], kindValidation)
			}
			name := strings.SplitN(q, "=", 2)[0]
			if msg, _ := e["msg"].(string); !strings.Contains(msg, name) {
				t.Errorf("msg %q does not name %s", msg, name)
			}
		})
	}
}
