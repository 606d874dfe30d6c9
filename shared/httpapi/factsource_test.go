package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/catalog"
	"github.com/baton-run/baton/shared/httpapi"
	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/puppetdb"
	"github.com/baton-run/baton/shared/seal"
	"github.com/baton-run/baton/shared/store/sqlite"
)

// TestInventoryFactsFromPuppetDB: GET /inventory/{node} shows PuppetDB's facts, marked
// facts_source "puppetdb", for a node whose agent reported none; the agent's facts otherwise
// (PuppetDB not asked); and the agent's empty facts when PuppetDB knows none or fails.
func TestInventoryFactsFromPuppetDB(t *testing.T) {
	var mu sync.Mutex
	asked := map[string]int{}
	pdb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked[r.URL.Path]++
		mu.Unlock()
		switch r.URL.Path {
		case "/pdb/query/v4/nodes/web2/facts":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `[{"certname":"web2","name":"os","value":{"family":"RedHat"}},{"certname":"web2","name":"processorcount","value":4}]`)
		case "/pdb/query/v4/nodes/broken/facts":
			http.Error(w, "PDBReadPool - Connection is not available", http.StatusInternalServerError)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"No information is known about node"}`)
		}
	}))
	defer pdb.Close()
	client, err := puppetdb.New(puppetdb.Config{URL: pdb.URL})
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cat, err := catalog.NewLocal(map[string]string{"production": copyModules(t)})
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.New(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	authn := auth.New(st, time.Now)
	if err := authn.EnsureAdmin(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	token, err := authn.IssueToken(ctx, "admin", "test", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"web1", "web2", "db1", "broken"} {
		if _, err := authn.EnrollNode(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetNodeFacts(ctx, "web1", []byte(`{"os":{"family":"Debian"}}`)); err != nil {
		t.Fatal(err)
	}
	orch := orchestrator.New(st, cat, nil, nil, sealer)
	srv := httptest.NewServer(httpapi.New(orch, cat, nil, authn, nil, httpapi.WithFactSource(client)))
	defer srv.Close()

	get := func(node string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+v1+"/inventory/"+node, nil)
		req.Header.Set("X-Authentication", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		dec := json.NewDecoder(resp.Body)
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET inventory/%s: %d %v %v", node, resp.StatusCode, v, err)
		}
		return v
	}
	family := func(v map[string]any) any {
		facts, _ := v["facts"].(map[string]any)
		os, _ := facts["os"].(map[string]any)
		return os["family"]
	}

	web1 := get("web1")
	if family(web1) != "Debian" || web1["facts_source"] != nil {
		t.Errorf("web1 (agent facts): %v", web1)
	}
	web2 := get("web2")
	if family(web2) != "RedHat" || web2["facts_source"] != "puppetdb" {
		t.Errorf("web2 (PuppetDB facts): %v", web2)
	}
	if f, _ := web2["facts"].(map[string]any); f["processorcount"] != json.Number("4") {
		t.Errorf("web2 facts %v", web2["facts"])
	}
	for _, n := range []string{"db1", "broken"} {
		v := get(n)
		if f, ok := v["facts"].(map[string]any); !ok || len(f) != 0 || v["facts_source"] != nil {
			t.Errorf("%s (none in PuppetDB, or PuppetDB failing): %v", n, v)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if asked["/pdb/query/v4/nodes/web1/facts"] != 0 {
		t.Error("PuppetDB was asked for the facts of a node whose agent reported some")
	}
	if asked["/pdb/query/v4/nodes/web2/facts"] != 1 || asked["/pdb/query/v4/nodes/broken/facts"] != 1 {
		t.Errorf("PuppetDB asked %v", asked)
	}
}
