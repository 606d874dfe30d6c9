package local

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-run/baton/agent"
	"github.com/baton-run/baton/agent/puppet"
	"github.com/baton-run/baton/shared/client"
)

// requirePuppet skips when Debian's puppet is missing, unless BATON_REQUIRE_PUPPET is set.
func requirePuppet(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("puppet"); err != nil {
		if os.Getenv("BATON_REQUIRE_PUPPET") != "" {
			t.Fatalf("puppet is required (BATON_REQUIRE_PUPPET is set): %v", err)
		}
		t.Skip("puppet is not installed (apt-get install puppet-agent)")
	}
}

// masterless returns Puppet settings for an isolated `puppet apply` of manifest.
func masterless(t *testing.T, manifest string) puppet.Config {
	dir := t.TempDir()
	var extra []string
	for _, d := range []string{"confdir", "vardir", "codedir", "logdir", "rundir", "ssldir", "publicdir"} {
		p := filepath.Join(dir, d)
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		extra = append(extra, "--"+d, p)
	}
	return puppet.Config{Mode: puppet.ModeApply, Manifest: manifest, ExtraArgs: extra}
}

type runResult struct {
	Status      string         `json:"status"`
	Metrics     map[string]int `json:"metrics"`
	NoopPending bool           `json:"noop_pending"`
	Noop        struct {
		Noop bool `json:"noop"`
	} `json:"noop"`
	Environment     string `json:"environment"`
	TransactionUUID string `json:"transaction_uuid"`
	ErrorType       string `json:"error_type"`
}

func TestPuppetRunsThroughBaton(t *testing.T) {
	requirePuppet(t)
	h := newHarness(t)
	target := filepath.Join(t.TempDir(), "motd")
	manifest := filepath.Join(t.TempDir(), "site.pp")
	write := func(content string) {
		if err := os.WriteFile(manifest, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`file { '` + target + `': ensure => file, content => "managed by baton\n" }` + "\n")
	h.enroll("p1")
	h.startAgentWith("p1", nil, agent.WithPuppet(masterless(t, manifest)))
	h.waitConnected("p1")

	deploy := func(req client.DeployRequest) (client.Job, client.Node, runResult) {
		t.Helper()
		req.Scope = client.Scope{Nodes: []string{"p1"}}
		ref, err := h.api.Deploy(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		job, nodes := h.waitJob(ref.Name, 90*time.Second)
		var r runResult
		if err := json.Unmarshal(nodes[0].Result, &r); err != nil {
			t.Fatalf("result %s: %v", nodes[0].Result, err)
		}
		return job, nodes[0], r
	}

	t.Run("noop on a fresh node reports the pending change and changes nothing", func(t *testing.T) {
		_, n, r := deploy(client.DeployRequest{Environment: "production", Noop: true})
		if n.State != "finished" || !r.Noop.Noop || !r.NoopPending || r.Metrics["out_of_sync"] != 1 {
			t.Errorf("noop run: %s %+v", n.State, r)
		}
		if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a noop run created %s", target)
		}
	})
	t.Run("a run that changes the file reports changed", func(t *testing.T) {
		job, n, r := deploy(client.DeployRequest{Environment: "production"})
		if job.Type != "deploy" || n.State != "finished" || r.Status != "changed" || r.Metrics["changed"] != 1 || r.TransactionUUID == "" {
			t.Errorf("first run: %s %s %+v", job.Type, n.State, r)
		}
		if b, err := os.ReadFile(target); err != nil || string(b) != "managed by baton\n" {
			t.Errorf("target: %q %v", b, err)
		}
	})
	t.Run("the next run reports unchanged", func(t *testing.T) {
		_, n, r := deploy(client.DeployRequest{Environment: "production"})
		if n.State != "finished" || r.Status != "unchanged" || r.Metrics["changed"] != 0 {
			t.Errorf("second run: %s %+v", n.State, r)
		}
	})
	t.Run("a broken manifest fails the node", func(t *testing.T) {
		write("file { 'oops' ensure => \n")
		job, n, r := deploy(client.DeployRequest{Environment: "production"})
		if n.State != "failed" || r.Status != "failed" || job.State != "finished" {
			t.Errorf("broken manifest: job %s node %s %+v", job.State, n.State, r)
		}
	})
	t.Run("bad deploy requests are refused and create nothing", func(t *testing.T) {
		before, _ := h.api.Jobs(t.Context(), nil)
		for name, req := range map[string]client.DeployRequest{
			"noop and no_noop":      {Environment: "production", Noop: true, NoNoop: true},
			"shell characters":      {Environment: "production", Tags: "web;reboot"},
			"bad ordering":          {Environment: "production", Ordering: "chaos"},
			"enforce without env":   {Environment: "", EnforceEnvironment: true},
			"bad environment name":  {Environment: "prod/../x"},
			"negative concurrency":  {Environment: "production", Concurrency: -2},
			"negative file timeout": {Environment: "production", Filetimeout: -1},
		} {
			req.Scope = client.Scope{Nodes: []string{"p1"}}
			_, err := h.api.Deploy(t.Context(), req)
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Status != 400 || ae.Kind != "puppetlabs.orchestrator/validation-error" {
				t.Errorf("%s: %v", name, err)
			}
		}
		after, _ := h.api.Jobs(t.Context(), nil)
		if before.Pagination["total"] != after.Pagination["total"] {
			t.Errorf("refused requests created jobs")
		}
	})
}
