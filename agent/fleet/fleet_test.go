package fleet_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-run/baton/agent/fleet"
	"github.com/baton-run/baton/shared/client"
	"github.com/baton-run/baton/shared/local"
)

func modules(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "examples", "modules"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFleetRunsJobsAndReconnectsWithItsKeys runs a fleet against baton serve: it enrols
// itself, connects, answers a job on every node (with the failure rate asked for), and a
// second fleet of the same names reconnects with the kept keys, enrolling nothing.
func TestFleetRunsJobsAndReconnectsWithItsKeys(t *testing.T) {
	srv, err := local.Start(local.Config{Listen: "127.0.0.1:0", DataDir: filepath.Join(t.TempDir(), "data"),
		Modules: modules(t), PlainHTTP: true, SweepInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	tokenBytes, err := os.ReadFile(srv.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tokenBytes))
	api := client.New(srv.URL(), token)
	keys := filepath.Join(t.TempDir(), "keys")
	const n = 20

	run := func(cfg fleet.Config, want string) {
		t.Helper()
		f, err := fleet.New(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- f.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("fleet run: %v", err)
			}
		}()
		eventually(t, "every agent to connect", func() bool { return f.Connected() == n })
		ref, err := api.RunTask(t.Context(), client.TaskRequest{Task: "bench::noop", Scope: client.Scope{Nodes: f.Names()}})
		if err != nil {
			t.Fatal(err)
		}
		job, err := api.WaitJob(t.Context(), ref.Name, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if job.State != "finished" || job.NodeStates[want] != n {
			t.Fatalf("job %s %v, want %d nodes %s", job.State, job.NodeStates, n, want)
		}
		if runs, failed := f.NodeRuns(); runs != n || (want == "failed") != (failed == n) {
			t.Fatalf("the fleet ran %d, failed %d", runs, failed)
		}
		nodes, err := api.JobNodes(t.Context(), ref.Name)
		if err != nil {
			t.Fatal(err)
		}
		if want == "finished" {
			var out map[string]any
			if err := json.Unmarshal(nodes[0].Result, &out); err != nil || out["node"] != nodes[0].Name {
				t.Fatalf("result %s does not come from %s", nodes[0].Result, nodes[0].Name)
			}
			if txn, _ := out["transaction_id"].(string); txn == "" {
				t.Fatalf("result %s has no transaction_id", nodes[0].Result)
			}
			if run, _ := out["run"].(float64); run < 1 || run > n {
				t.Fatalf("result %s: run %v, want 1 to %d", nodes[0].Result, out["run"], n)
			}
		}
	}

	run(fleet.Config{Count: n, Prefix: "v", Server: "ws://" + srv.Addr() + "/pcp", Token: token, KeysDir: keys}, "finished")
	if entries, err := os.ReadDir(keys); err != nil || len(entries) != n {
		t.Fatalf("keys dir holds %d files (%v), want %d", len(entries), err, n)
	}
	for _, name := range []string{"v1", "v20"} {
		fi, err := os.Stat(filepath.Join(keys, name+".key"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key of %s: %v %v", name, fi, err)
		}
	}
	// Again, without a token: the keys are enough, and every run fails as asked.
	run(fleet.Config{Count: n, Prefix: "v", Server: "ws://" + srv.Addr() + "/pcp", KeysDir: keys, FailRate: 1}, "failed")

	// Names already enrolled elsewhere, without keys here, are refused with a clear error.
	_, err = fleet.New(t.Context(), fleet.Config{Count: 2, Prefix: "v", Server: "ws://" + srv.Addr() + "/pcp", Token: token,
		KeysDir: filepath.Join(t.TempDir(), "other")})
	if err == nil || !strings.Contains(err.Error(), "already enrolled") || !strings.Contains(err.Error(), "revoke") {
		t.Fatalf("error = %v", err)
	}
}

// TestDialParallelBoundsHandshakesInFlight: with DialParallel 2, no more than two of the
// fleet's connection attempts reach the server at once, however many agents are dialling.
func TestDialParallelBoundsHandshakesInFlight(t *testing.T) {
	var inFlight, most, seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		seen.Add(1)
		select { // a slow connect, then refused: every agent keeps trying
		case <-time.After(50 * time.Millisecond):
		case <-r.Context().Done():
		}
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	keys := t.TempDir()
	const n = 8
	for i := 1; i <= n; i++ {
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(keys, fmt.Sprintf("d%d.key", i)), []byte(base64.StdEncoding.EncodeToString(priv)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, err := fleet.New(t.Context(), fleet.Config{Count: n, Prefix: "d", Server: "ws" + strings.TrimPrefix(srv.URL, "http") + "/pcp",
		KeysDir: keys, MaxBackoff: 20 * time.Millisecond, DialParallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	eventually(t, "several rounds of connection attempts", func() bool { return seen.Load() >= 4*n })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("fleet run: %v", err)
	}
	if m := most.Load(); m != 2 {
		t.Errorf("at most %d connection attempts were in flight at once, want 2", m)
	}
}
