package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// needPuppet skips a test that needs Debian's puppet-agent package (puppet and its Ruby)
// unless BATON_REQUIRE_PUPPET=1 (set by CI, which installs it): then their absence fails it.
func needPuppet(t *testing.T) {
	t.Helper()
	var missing []string
	for _, bin := range []string{"puppet", "ruby", "python3"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("BATON_REQUIRE_PUPPET") == "1" {
		t.Fatalf("BATON_REQUIRE_PUPPET=1 but %v not found on PATH (install Debian's puppet-agent package)", missing)
	}
	t.Skipf("%v not found (set BATON_REQUIRE_PUPPET=1 to make this a failure)", missing)
}

// TestForgeModulesThroughRealAgents runs the Forge-like modules of examples/modules with the
// real binaries — baton serve and baton-agent (with its task supervisor) — on this machine's
// Debian puppet-agent package, where /opt/puppetlabs/puppet/bin/ruby does not exist.
func TestForgeModulesThroughRealAgents(t *testing.T) {
	needPuppet(t)
	if _, err := os.Stat("/opt/puppetlabs/puppet/bin/ruby"); err == nil {
		t.Skip("this machine has Puppet's AIO Ruby: the AIO shebang would work without interpreters")
	}
	out, err := exec.Command("puppet", "--version").Output()
	if err != nil {
		t.Fatalf("puppet --version: %v", err)
	}
	puppetVersion := strings.TrimSpace(string(out))

	c := newCluster(t)
	c.serve(t)
	creds := map[string]string{}
	for _, n := range []string{"deb1", "win1", "sh1", "bare1"} {
		creds[n] = filepath.Join(c.root, n+".cred")
		c.batonOK(t, "node", "add", n, "--out", creds[n])
	}
	agentArgs := func(n string, extra ...string) []string {
		dir := filepath.Join(c.root, "agents", n)
		return append([]string{"--credential", creds[n], "--cache-dir", filepath.Join(dir, "cache"),
			"--spool-dir", filepath.Join(dir, "spool"), "--log-level", "warn"}, extra...)
	}
	writeConfig := func(n, body string) string {
		p := filepath.Join(c.root, n+".json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// deb1: everything detected (shell, puppet-agent; .rb → the Ruby Debian's puppet runs on).
	c.agents["deb1"] = c.start(t, "baton-agent deb1", "baton-agent", agentArgs("deb1")...)
	// win1: says it is a PowerShell node. pwsh is not installed here, so /bin/cat stands in as
	// the .ps1 interpreter: the output then shows which implementation file was chosen.
	c.agents["win1"] = c.start(t, "baton-agent win1", "baton-agent", agentArgs("win1", "--features", "powershell", "--interpreters", ".ps1=/bin/cat")...)
	// sh1: shell only, and no .rb interpreter (config file keys).
	c.agents["sh1"] = c.start(t, "baton-agent sh1", "baton-agent", agentArgs("sh1", "--config",
		writeConfig("sh1", `{"features":["shell"],"interpreters":{"rb":""}}`))...)
	// bare1: no features at all.
	c.agents["bare1"] = c.start(t, "baton-agent bare1", "baton-agent", agentArgs("bare1", "--config", writeConfig("bare1", `{"features":[]}`))...)

	type inventory struct {
		Connected     bool     `json:"connected"`
		Features      []string `json:"features"`
		PuppetVersion string   `json:"puppet_version"`
		Facts         struct {
			Agent struct {
				Interpreters map[string]string `json:"interpreters"`
			} `json:"baton_agent"`
		} `json:"facts"`
	}
	nodes := map[string]inventory{}
	for _, n := range []string{"deb1", "win1", "sh1", "bare1"} {
		deadline := time.Now().Add(90 * time.Second)
		for {
			var inv inventory
			r := c.batonOK(t, "node", "show", n)
			decodeJSON(t, "node show", r.stdout, &inv)
			nodes[n] = inv
			if inv.Connected && inv.Facts.Agent.Interpreters != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not connect and report its features: %s\nagent output:\n%s", n, r.stdout, c.agents[n].output.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	t.Run("the inventory shows the detected features and Puppet version", func(t *testing.T) {
		deb := nodes["deb1"]
		if !slices.Equal(deb.Features, []string{"shell", "puppet-agent"}) || deb.PuppetVersion != puppetVersion {
			t.Errorf("deb1: features %v puppet %q; want [shell puppet-agent] and %q", deb.Features, deb.PuppetVersion, puppetVersion)
		}
		if rb := deb.Facts.Agent.Interpreters[".rb"]; !strings.HasPrefix(filepath.Base(rb), "ruby") {
			t.Errorf("deb1 .rb interpreter %q", rb)
		}
		if f := nodes["win1"].Features; !slices.Equal(f, []string{"powershell"}) {
			t.Errorf("win1 features %v", f)
		}
		if f := nodes["sh1"].Features; !slices.Equal(f, []string{"shell"}) {
			t.Errorf("sh1 features %v", f)
		}
		if _, ok := nodes["sh1"].Facts.Agent.Interpreters[".rb"]; ok {
			t.Errorf("sh1 kept a .rb interpreter: %v", nodes["sh1"].Facts.Agent.Interpreters)
		}
	})

	run := func(t *testing.T, args ...string) (result, map[string]boltItem) {
		t.Helper()
		r := c.baton(t, append(append([]string{"task", "run"}, args...), "--format", "json")...)
		var o boltOutput
		decodeJSON(t, "task run "+strings.Join(args, " "), r.stdout, &o)
		items := map[string]boltItem{}
		for _, it := range o.Items {
			items[it.Target] = it
		}
		return r, items
	}
	value := func(t *testing.T, it boltItem) map[string]any {
		t.Helper()
		var v map[string]any
		if err := json.Unmarshal(it.Value, &v); err != nil {
			t.Fatalf("value %s: %v", it.Value, err)
		}
		return v
	}

	t.Run("a Ruby task with the AIO shebang and ruby_task_helper runs through the .rb interpreter", func(t *testing.T) {
		r, items := run(t, "forgelike::ruby_greet", "--nodes", "deb1", "name=Forge")
		it := items["deb1"]
		v := value(t, it)
		if r.code != 0 || it.Status != "success" || v["greeting"] != "hello Forge" || v["task"] != "forgelike::ruby_greet" {
			t.Fatalf("ruby_greet on deb1: %s", r)
		}
		if rb, _ := v["ruby_bin"].(string); strings.HasPrefix(rb, "/opt/puppetlabs") || !strings.Contains(rb, "ruby") {
			t.Errorf("ran on Ruby %q", rb)
		}
		if dir, _ := v["installdir"].(string); dir == "" {
			t.Errorf("no _installdir for a task with files: %v", v)
		}
	})

	t.Run("TaskHelper errors become the task's _error", func(t *testing.T) {
		for _, task := range []string{"forgelike::ruby_greet", "forgelike::python_greet"} {
			r, items := run(t, task, "--nodes", "deb1", "fail_with=on purpose")
			it := items["deb1"]
			var v struct {
				Error struct {
					Kind    string         `json:"kind"`
					Msg     string         `json:"msg"`
					Details map[string]any `json:"details"`
				} `json:"_error"`
			}
			if err := json.Unmarshal(it.Value, &v); err != nil || r.code != 1 || it.Status != "failure" ||
				v.Error.Kind != "forgelike/asked-to-fail" || v.Error.Msg != "asked to fail: on purpose" || v.Error.Details["reason"] != "on purpose" {
				t.Errorf("%s failing: %s", task, r)
			}
		}
	})

	t.Run("without a .rb interpreter the AIO shebang fails as it did before", func(t *testing.T) {
		r, items := run(t, "forgelike::ruby_greet", "--nodes", "sh1")
		if it := items["sh1"]; r.code != 1 || it.Status != "failure" || !strings.Contains(string(it.Value), "127") {
			t.Errorf("ruby_greet on sh1 (no .rb interpreter): %s", r)
		}
	})

	t.Run("a Python task with python_task_helper", func(t *testing.T) {
		r, items := run(t, "forgelike::python_greet", "--nodes", "deb1,sh1", "name=Py")
		for _, n := range []string{"deb1", "sh1"} {
			if v := value(t, items[n]); items[n].Status != "success" || v["greeting"] != "hello Py" || v["task"] != "forgelike::python_greet" {
				t.Errorf("python_greet on %s: %s", n, r)
			}
		}
	})

	t.Run("the implementation follows the node's features", func(t *testing.T) {
		r, items := run(t, "forgelike::platform", "--nodes", "deb1,win1,sh1,bare1")
		if v := value(t, items["deb1"]); v["implementation"] != "puppet-agent" || v["puppet_version"] != puppetVersion {
			t.Errorf("deb1 (shell, puppet-agent) ran %v; want the puppet-agent implementation with Puppet %s", v, puppetVersion)
		}
		if v := value(t, items["win1"]); !strings.Contains(v["_output"].(string), `Write-Output '{"implementation":"powershell"}'`) {
			t.Errorf("win1 (powershell) ran %v; want platform.ps1", v)
		}
		if v := value(t, items["sh1"]); v["implementation"] != "shell" || v["task"] != "forgelike::platform" {
			t.Errorf("sh1 (shell) ran %v; want platform.sh", v)
		}
		// No implementation fits a node without features: PE's error (pxp-agent's message,
		// the orchestrator's execution-failure), and the node errored.
		bare := items["bare1"]
		if bare.State != "errored" || !strings.Contains(string(bare.Value), "puppetlabs.orchestrator/execution-failure") ||
			!strings.Contains(string(bare.Value), "no implementations match supported features: ") {
			t.Errorf("bare1 (no features): %+v (value %s)", bare, bare.Value)
		}
		if r.code != 1 {
			t.Errorf("exit %d with an errored node", r.code)
		}
	})

	t.Run("private tasks are not listed but run by name", func(t *testing.T) {
		rows := tableRows(c.batonOK(t, "task", "list").stdout)
		if _, ok := rows["forgelike::internal"]; ok {
			t.Errorf("task list shows the private forgelike::internal")
		}
		if _, ok := rows["forgelike::ruby_greet"]; !ok {
			t.Errorf("task list lacks forgelike::ruby_greet")
		}
		r, items := run(t, "forgelike::internal", "--nodes", "sh1")
		if v := value(t, items["sh1"]); r.code != 0 || v["private_task"] != "ran" {
			t.Errorf("running the private task: %s", r)
		}
	})

	t.Run("noop: supports_noop tasks get _noop, others are refused", func(t *testing.T) {
		r := c.baton(t, "task", "run", "forgelike::ruby_greet", "--nodes", "deb1", "--noop")
		if r.code == 0 || !strings.Contains(r.stderr, "forgelike::ruby_greet does not support noop") {
			t.Errorf("noop run of a task without supports_noop: %s", r)
		}
		file := filepath.Join(t.TempDir(), "lines.txt")
		r, items := run(t, "forgelike::ensure_line", "--nodes", "deb1", "--noop", "path="+file, "line=managed by baton")
		if v := value(t, items["deb1"]); r.code != 0 || v["noop"] != true || v["would_add"] != true {
			t.Errorf("noop run: %s", r)
		}
		if _, err := os.Stat(file); !os.IsNotExist(err) {
			t.Errorf("the noop run wrote %s (%v)", file, err)
		}
		r, items = run(t, "forgelike::ensure_line", "--nodes", "deb1", "path="+file, "line=managed by baton")
		if v := value(t, items["deb1"]); r.code != 0 || v["changed"] != true {
			t.Errorf("real run: %s", r)
		}
		if b, err := os.ReadFile(file); err != nil || string(b) != "managed by baton\n" {
			t.Errorf("%s = %q, %v", file, b, err)
		}
	})
}
