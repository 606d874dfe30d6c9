package local

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-run/baton/agent"
	"github.com/baton-run/baton/agent/puppet"
	"github.com/baton-run/baton/shared/client"
	"github.com/baton-run/baton/shared/puppetrun"
)

// puppetServerEnv is what scripts/test-puppetserver.sh passes to TestPuppetServer.
type puppetServerEnv struct {
	manifest string // the production environment's site.pp, which the test may rewrite
	target   string // the file the manifest manages
	content  string // the line the manifest puts in target
	ssldir   string // the server's ssldir, holding the localhost certificate
}

func loadPuppetServerEnv(t *testing.T) puppetServerEnv {
	t.Helper()
	e := puppetServerEnv{manifest: os.Getenv("BATON_PUPPETSERVER_MANIFEST"), target: os.Getenv("BATON_PUPPETSERVER_TARGET"),
		content: os.Getenv("BATON_PUPPETSERVER_CONTENT"), ssldir: os.Getenv("BATON_PUPPETSERVER_SSLDIR")}
	if e.manifest == "" || e.target == "" || e.content == "" || e.ssldir == "" {
		t.Fatal("BATON_PUPPETSERVER_{MANIFEST,TARGET,CONTENT,SSLDIR} must be set: run `make test-puppetserver`")
	}
	return e
}

// TestPuppetServer runs `puppet agent` jobs through Baton against a real puppetserver on
// loopback. scripts/test-puppetserver.sh (make test-puppetserver, root) installs, configures
// and starts the server, writes the production manifest, and restores everything afterwards;
// without BATON_PUPPETSERVER=1 the test is skipped.
//
// The agent uses the server's own identity (certname localhost, the server's ssldir): it
// reuses the certificate `puppetserver ca setup` made, so a run needs no CSR and leaves no
// new signed certificate in the CA (a fresh certname per run would add one each time, and
// re-requesting a signed name fails). Its vardir, publicdir, rundir and logdir are private,
// so its reports and locks stay in the test's temporary directory.
func TestPuppetServer(t *testing.T) {
	if os.Getenv("BATON_PUPPETSERVER") != "1" {
		t.Skip("needs a puppetserver on localhost:8140: run `make test-puppetserver` (root)")
	}
	requirePuppet(t)
	env := loadPuppetServerEnv(t)

	extra := []string{"--server", "localhost", "--certname", "localhost", "--ssldir", env.ssldir}
	state := t.TempDir()
	for _, d := range []string{"vardir", "publicdir", "rundir", "logdir"} {
		p := filepath.Join(state, d)
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		extra = append(extra, "--"+d, p)
	}

	h := newHarness(t)
	h.enroll("localhost")
	h.startAgentWith("localhost", map[string]any{"certname": "localhost"},
		agent.WithPuppet(puppet.Config{Mode: puppet.ModeAgent, ExtraArgs: extra, Logger: testLogger(t)}))
	h.waitConnected("localhost")

	deploy := func(t *testing.T, req client.DeployRequest) (client.Job, client.Node, puppetrun.Result) {
		t.Helper()
		req.Environment = "production"
		req.Scope = client.Scope{Nodes: []string{"localhost"}}
		ref, err := h.api.Deploy(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		job, nodes := h.waitJob(ref.Name, 3*time.Minute)
		if len(nodes) != 1 {
			t.Fatalf("job %s has %d nodes", ref.Name, len(nodes))
		}
		var r puppetrun.Result
		if err := json.Unmarshal(nodes[0].Result, &r); err != nil {
			t.Fatalf("result %s: %v", nodes[0].Result, err)
		}
		if r.Metrics == nil {
			t.Fatalf("result without metrics: %s", nodes[0].Result)
		}
		return job, nodes[0], r
	}
	// common checks what every run here must report: a finished deploy job and node, and a
	// report of a successful agent run in production.
	common := func(t *testing.T, job client.Job, n client.Node, r puppetrun.Result) {
		t.Helper()
		if job.Type != "deploy" || job.State != "finished" || n.State != "finished" {
			t.Errorf("job %s %s, node %s", job.Type, job.State, n.State)
		}
		if r.ErrorType != "" || r.Error != "" || r.Exitcode != 0 || r.Version != 1 {
			t.Errorf("error %q %q, exitcode %d, version %d", r.ErrorType, r.Error, r.Exitcode, r.Version)
		}
		if r.Environment != "production" || r.TransactionUUID == "" || r.TransactionUUID == "unknown" ||
			r.ConfigurationVersion == "" || r.Time == "" || r.Time == "unknown" {
			t.Errorf("environment %q, transaction_uuid %q, configuration_version %q, time %q",
				r.Environment, r.TransactionUUID, r.ConfigurationVersion, r.Time)
		}
		if r.Metrics.Total < 1 || r.Metrics.Failed != 0 {
			t.Errorf("metrics %+v", *r.Metrics)
		}
	}
	readTarget := func(t *testing.T) string {
		t.Helper()
		b, err := os.ReadFile(env.target)
		if err != nil {
			t.Fatalf("managed file: %v", err)
		}
		return string(b)
	}
	first, second := env.content+"\n", env.content+", second version\n"
	uuids := map[string]string{}
	seen := func(t *testing.T, step string, r puppetrun.Result) {
		t.Helper()
		if prev, ok := uuids[r.TransactionUUID]; ok {
			t.Errorf("%s reused the transaction_uuid of %s: %s", step, prev, r.TransactionUUID)
		}
		uuids[r.TransactionUUID] = step
	}

	t.Run("the first run creates the managed file and reports changed", func(t *testing.T) {
		job, n, r := deploy(t, client.DeployRequest{})
		common(t, job, n, r)
		seen(t, "first run", r)
		if r.Status != "changed" || r.Metrics.Changed != 1 || r.Metrics.OutOfSync != 1 || r.NoopPending || r.Noop.Noop {
			t.Errorf("first run: %+v metrics %+v", r, *r.Metrics)
		}
		if got := readTarget(t); got != first {
			t.Errorf("managed file %q, want %q", got, first)
		}
	})
	t.Run("the second run reports unchanged", func(t *testing.T) {
		job, n, r := deploy(t, client.DeployRequest{})
		common(t, job, n, r)
		seen(t, "second run", r)
		if r.Status != "unchanged" || r.Metrics.Changed != 0 || r.Metrics.OutOfSync != 0 || r.NoopPending {
			t.Errorf("second run: %+v metrics %+v", r, *r.Metrics)
		}
	})

	manifest := fmt.Sprintf("file { '%s': ensure => file, content => %q }\n", env.target, second)
	if err := os.WriteFile(env.manifest, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("a noop run after the manifest changed reports the pending change and changes nothing", func(t *testing.T) {
		job, n, r := deploy(t, client.DeployRequest{Noop: true})
		common(t, job, n, r)
		seen(t, "noop run", r)
		if !r.Noop.Noop || !r.NoopPending || r.Status != "unchanged" || r.Metrics.Changed != 0 || r.Metrics.OutOfSync != 1 {
			t.Errorf("noop run: %+v metrics %+v", r, *r.Metrics)
		}
		if got := readTarget(t); got != first {
			t.Errorf("noop run changed the managed file to %q", got)
		}
	})
	t.Run("a run with tags that match nothing changes nothing", func(t *testing.T) {
		job, n, r := deploy(t, client.DeployRequest{Tags: "baton_no_such_tag"})
		common(t, job, n, r)
		seen(t, "tagged run", r)
		if r.Status != "unchanged" || r.Metrics.Changed != 0 || r.Metrics.OutOfSync != 0 || r.NoopPending {
			t.Errorf("tagged run: %+v metrics %+v", r, *r.Metrics)
		}
		if got := readTarget(t); got != first {
			t.Errorf("tagged run changed the managed file to %q", got)
		}
	})
	t.Run("a normal run then applies the pending change", func(t *testing.T) {
		job, n, r := deploy(t, client.DeployRequest{})
		common(t, job, n, r)
		seen(t, "last run", r)
		if r.Status != "changed" || r.Metrics.Changed != 1 || r.NoopPending {
			t.Errorf("last run: %+v metrics %+v", r, *r.Metrics)
		}
		if got := readTarget(t); got != second {
			t.Errorf("managed file %q, want %q", got, second)
		}
	})
}
