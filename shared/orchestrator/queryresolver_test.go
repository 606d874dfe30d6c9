package orchestrator_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/puppetdb"
	"github.com/baton-run/baton/shared/seal"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/store/sqlite"
)

// pdbStandIn answers POST /pdb/query/v4 from a table of query → (status, body), as PuppetDB
// does (results as JSON, a rejected query as 400 text/plain), and counts the queries.
type pdbStandIn struct {
	mu      sync.Mutex
	answers map[string][2]string // query → {status, body}
	asked   []string
}

func (p *pdbStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Query string `json:"query"`
	}
	b, _ := io.ReadAll(r.Body)
	json.Unmarshal(b, &req)
	p.mu.Lock()
	p.asked = append(p.asked, req.Query)
	a, ok := p.answers[req.Query]
	p.mu.Unlock()
	switch {
	case !ok:
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "PQL parse error at line 1, column 1:\n"+req.Query+"\n^\n\nExpected one of:\n\nfrom\n")
	case a[0] == "500":
		http.Error(w, a[1], http.StatusInternalServerError)
	default:
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, a[1])
	}
}

const (
	// Queries the built-in subset cannot express: a subquery, and a resources entity.
	nginxQuery  = `inventory[certname] { facts.os.family = "Debian" and resources { type = "Class" and title = "Nginx" } }`
	webQuery    = `resources[certname] { type = "Class" and title = "Profile::Web" }`
	ghostQuery  = `inventory[certname] { facts.kernel = "Plan9" }`
	noneQuery   = `inventory[certname] { facts.os.family = "Solaris" }`
	brokenQuery = `nodes[certname] { deactivated is null }`
	countQuery  = `facts[count()] { name = "os" }`
	allDebian   = `facts[certname] { name = "os" and value ~ "Debian" }`
)

func newResolverService(t *testing.T, opts ...orchestrator.Option) (*orchestrator.Service, *pdbStandIn) {
	t.Helper()
	pdb := &pdbStandIn{answers: map[string][2]string{
		nginxQuery:  {"200", `[{"certname":"web2"},{"certname":"web1"},{"certname":"ghost.example.test"}]`},
		webQuery:    {"200", `[{"certname":"web1"},{"certname":"db1"}]`},
		ghostQuery:  {"200", `[{"certname":"ghost.example.test"},{"certname":"not a node name!"}]`},
		noneQuery:   {"200", `[]`},
		brokenQuery: {"500", "java.sql.SQLTransientConnectionException: PDBReadPool - Connection is not available"},
		countQuery:  {"200", `[{"count":3}]`},
		allDebian:   {"200", `[{"certname":"web1","name":"os"},{"certname":"web2","name":"os"},{"certname":"web1","name":"os"}]`},
	}}
	srv := httptest.NewServer(pdb)
	t.Cleanup(srv.Close)
	client, err := puppetdb.New(puppetdb.Config{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, n := range []string{"web1", "web2", "db1"} {
		// No facts at all: with a resolver, the inventory's facts play no part.
		if _, err := st.CreateNode(t.Context(), inventory.Node{Name: n, Facts: json.RawMessage(`{}`), CreatedAt: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	sealer, err := seal.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	orch := orchestrator.New(st, oneTask{}, noURLs{}, nil, sealer, append([]orchestrator.Option{orchestrator.WithKick(func(int64) {}),
		orchestrator.WithQueryResolver(client)}, opts...)...)
	return orch, pdb
}

func jobNodeNames(t *testing.T, orch *orchestrator.Service, job jobs.Job) []string {
	t.Helper()
	nodes, err := orch.JobNodes(t.Context(), job.ID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	slices.Sort(names)
	return names
}

// TestQueryResolverTargets: with a QueryResolver, scope.query goes to it as written and the
// job targets exactly the enrolled nodes among the certnames it returns.
func TestQueryResolverTargets(t *testing.T) {
	orch, pdb := newResolverService(t)
	for _, tt := range []struct {
		query string
		want  []string
	}{
		{nginxQuery, []string{"web1", "web2"}}, // ghost.example.test is not enrolled here
		{webQuery, []string{"db1", "web1"}},
		{allDebian, []string{"web1", "web2"}},
	} {
		job, err := orch.SubmitTask(t.Context(), orchestrator.TaskRequest{Task: "demo::noop",
			Common: orchestrator.Common{Scope: orchestrator.Scope{Query: tt.query}}}, jobs.Owner{Login: "admin"})
		if err != nil {
			t.Fatalf("%s: %v", tt.query, err)
		}
		if got := jobNodeNames(t, orch, job); !slices.Equal(got, tt.want) {
			t.Errorf("%s: job nodes %q, want %q", tt.query, got, tt.want)
		}
		if job.NodeCount != len(tt.want) {
			t.Errorf("%s: node count %d", tt.query, job.NodeCount)
		}
	}
	if !slices.Equal(pdb.asked, []string{nginxQuery, webQuery, allDebian}) {
		t.Errorf("PuppetDB was asked %q", pdb.asked)
	}
}

// TestQueryResolverErrors: PuppetDB's refusals and failures reach the caller as PE errors,
// and no job is made.
func TestQueryResolverErrors(t *testing.T) {
	orch, _ := newResolverService(t)
	for _, tt := range []struct {
		query, kind string
		msg         []string
	}{
		{`inventory[certname] { facts.os.family = }`, orchestrator.KindQueryError, []string{"PuppetDB rejected the query", "PQL parse error at line 1, column 1"}},
		{countQuery, orchestrator.KindQueryError, []string{"carry no certname"}},
		{noneQuery, orchestrator.KindEmptyTarget, []string{"matches no nodes"}},
		{ghostQuery, orchestrator.KindEmptyTarget, []string{"matches 2 nodes, none of them enrolled"}},
		{brokenQuery, orchestrator.KindPuppetDBError, []string{"500", "PDBReadPool"}},
	} {
		_, err := orch.SubmitTask(t.Context(), orchestrator.TaskRequest{Task: "demo::noop",
			Common: orchestrator.Common{Scope: orchestrator.Scope{Query: tt.query}}}, jobs.Owner{Login: "admin"})
		e, ok := orchestrator.AsError(err)
		if !ok || e.Kind != tt.kind {
			t.Errorf("%s: %v, want kind %s", tt.query, err, tt.kind)
			continue
		}
		for _, m := range tt.msg {
			if !strings.Contains(e.Msg, m) {
				t.Errorf("%s: msg %q does not contain %q", tt.query, e.Msg, m)
			}
		}
		if e.Details["query"] != tt.query {
			t.Errorf("%s: details %v lack the query", tt.query, e.Details)
		}
	}
	if _, total, err := orch.Jobs(t.Context(), store.JobQuery{Limit: 10}); err != nil || total != 0 {
		t.Errorf("jobs made: %d, %v", total, err)
	}
}

// TestQueryResolverPermitsAndGroups: query: permissions and node groups' queries are
// PuppetDB queries too; PuppetDB failing is not mistaken for "not permitted".
func TestQueryResolverPermitsAndGroups(t *testing.T) {
	orch, _ := newResolverService(t)
	ctx := t.Context()
	submit := func(sc orchestrator.Scope, permit *orchestrator.Permit) (jobs.Job, error) {
		return orch.SubmitTask(ctx, orchestrator.TaskRequest{Task: "demo::noop",
			Common: orchestrator.Common{Scope: sc, Permit: permit}}, jobs.Owner{Login: "operator"})
	}
	// Permitted on the nodes with Class Profile::Web only: of web1, web2, db1 it keeps web1, db1.
	job, err := submit(orchestrator.Scope{Nodes: []string{"web1", "web2", "db1"}},
		&orchestrator.Permit{Scopes: []string{"query:" + webQuery}, What: "run task demo::noop"})
	if err != nil {
		t.Fatal(err)
	}
	if got := jobNodeNames(t, orch, job); !slices.Equal(got, []string{"db1", "web1"}) {
		t.Errorf("permitted nodes %q", got)
	}
	_, err = submit(orchestrator.Scope{Nodes: []string{"web1"}},
		&orchestrator.Permit{Scopes: []string{"query:" + brokenQuery}, What: "run task demo::noop"})
	if e, ok := orchestrator.AsError(err); !ok || e.Kind != orchestrator.KindPuppetDBError {
		t.Errorf("PuppetDB failing during the permission check: %v, want a puppetdb-error", err)
	}

	// A group's query in full PQL is accepted (PuppetDB checks it when it runs) and targets
	// what PuppetDB returns.
	if _, err := orch.CreateGroup(ctx, inventory.Group{Name: "nginx", Query: nginxQuery}); err != nil {
		t.Fatalf("group with a PQL subquery: %v", err)
	}
	job, err = submit(orchestrator.Scope{NodeGroup: "nginx"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := jobNodeNames(t, orch, job); !slices.Equal(got, []string{"web1", "web2"}) {
		t.Errorf("group nodes %q", got)
	}
}
