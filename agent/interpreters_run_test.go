//go:build unix

package agent

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-run/baton/shared/protocol"
)

// aioRubyTask is a Forge-style Ruby task: the AIO shebang (absent with Debian's puppet-agent
// package), parameters as JSON on stdin, a JSON result on stdout.
const aioRubyTask = `#!/opt/puppetlabs/puppet/bin/ruby
require 'json'
params = JSON.parse($stdin.read)
puts({ 'greeting' => "hello #{params['name']}", 'ruby' => RUBY_VERSION, 'task' => params['_task'] }.to_json)
`

// TestAIOShebangRubyTaskRunsThroughInterpreter: a task with `#!/opt/puppetlabs/puppet/bin/ruby`
// on a node without that path runs through the detected .rb interpreter (the Ruby Debian's
// puppet runs on); with the mapping removed it fails to start, as it did before interpreters.
func TestAIOShebangRubyTaskRunsThroughInterpreter(t *testing.T) {
	requirePuppet(t)
	if _, err := os.Stat(AIORuby); err == nil {
		t.Skipf("%s exists here: the shebang would work without an interpreter", AIORuby)
	}
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	a := startAgent(t, cfg)
	plat, err := a.Agent.cfg.platform.get(t.Context())
	if err != nil || len(plat.interpreters[".rb"]) == 0 {
		t.Fatalf("no .rb interpreter detected: %v, %v", plat.interpreters, err)
	}
	file := ts.addFile("hello.rb", []byte(aioRubyTask))
	p := protocol.TaskParams{Task: "forge::hello", Input: mustJSON(t, map[string]any{"name": "world"}),
		Files: []protocol.TaskFile{file}, Metadata: mustJSON(t, map[string]any{"input_method": "stdin"})}
	res := ts.runTask(t, "txn-aio-ruby", p)
	if res.Exitcode != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q", res.Exitcode, res.Stdout, res.Stderr)
	}
	var out map[string]string
	if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
		t.Fatalf("stdout %q: %v", res.Stdout, err)
	}
	if out["greeting"] != "hello world" || out["task"] != "forge::hello" || out["ruby"] == "" {
		t.Errorf("result %v", out)
	}
	if !strings.Contains(a.logs.String(), "interpreter="+plat.interpreters[".rb"][0]) {
		t.Errorf("the run was not logged with its interpreter")
	}
	a.stop()

	// Without the .rb mapping the shebang is used, and it names a Ruby that is not here.
	ts2 := newTestServer(t)
	cfg2 := testConfig(t, ts2)
	cfg2.Interpreters = map[string][]string{}
	startAgent(t, cfg2)
	file2 := ts2.addFile("hello.rb", []byte(aioRubyTask))
	p.Files = []protocol.TaskFile{file2}
	res = ts2.runTask(t, "txn-aio-ruby-direct", p)
	if res.Exitcode != 127 {
		t.Errorf("without an interpreter: exit %d (stderr %q), want 127", res.Exitcode, res.Stderr)
	}
}

// TestFactsReportFeatures: the agent reports the features selection uses, its interpreters and
// the Puppet version with its facts, under AgentFact, without changing the gathered facts.
func TestFactsReportFeatures(t *testing.T) {
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	cfg.Features = []string{"shell", "puppet-agent"}
	cfg.Interpreters = map[string][]string{"rb": {"/usr/bin/ruby", "-r", "json"}, "py": {"/usr/bin/python3"}}
	cfg.PuppetVersion = "7.23.0"
	ta := startAgent(t, cfg)
	f, _ := ts.waitFrame(t, 0, "facts", isType(protocol.TypeFacts))
	var facts struct {
		Facts struct {
			Hostname      string `json:"hostname"`
			PuppetVersion string `json:"puppetversion"`
			Agent         struct {
				Features      []string          `json:"features"`
				Interpreters  map[string]string `json:"interpreters"`
				PuppetVersion string            `json:"puppet_version"`
			} `json:"baton_agent"`
		} `json:"facts"`
	}
	if err := json.Unmarshal(f.env.Data, &facts); err != nil {
		t.Fatal(err)
	}
	got := facts.Facts
	if got.Hostname != "node1" || got.PuppetVersion != "7.23.0" || got.Agent.PuppetVersion != "7.23.0" ||
		strings.Join(got.Agent.Features, ",") != "shell,puppet-agent" || got.Agent.Interpreters[".rb"] != "/usr/bin/ruby -r json" || got.Agent.Interpreters[".py"] != "/usr/bin/python3" {
		t.Errorf("facts %s", f.env.Data)
	}
	ta.factsMu.Lock()
	_, leaked := ta.facts[AgentFact]
	ta.factsMu.Unlock()
	if leaked {
		t.Error("the agent's own fact was added to the gathered facts")
	}
}

// TestInterpreterWithArguments: an interpreter given as an array (Bolt's shape) starts the
// task as `path args... file`, argv by argv: here `env GREETING=hi "two words" /bin/sh
// file`, which only works when every argument reaches env unsplit and unquoted by a shell.
// The logged interpreter is the path.
func TestInterpreterWithArguments(t *testing.T) {
	env, err := exec.LookPath("env")
	if err != nil {
		t.Skip("no env here")
	}
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	cfg.Features = []string{"shell"}
	cfg.Interpreters = map[string][]string{"greet": {env, "GREETING=hi there", "/bin/sh", "-e"}}
	a := startAgent(t, cfg)
	// No shebang, no exec bit needed: the interpreter reads the file.
	file := ts.addFile("hello.greet", []byte("echo \"{\\\"greeting\\\": \\\"$GREETING $PT_name\\\", \\\"arg0\\\": \\\"$0\\\"}\"\n"))
	p := protocol.TaskParams{Task: "forge::greet", Input: mustJSON(t, map[string]any{"name": "world"}),
		Files: []protocol.TaskFile{file}, Metadata: mustJSON(t, map[string]any{"input_method": "environment"})}
	res := ts.runTask(t, "txn-interp-args", p)
	if res.Exitcode != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q", res.Exitcode, res.Stdout, res.Stderr)
	}
	var out map[string]string
	if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
		t.Fatalf("stdout %q: %v", res.Stdout, err)
	}
	if out["greeting"] != "hi there world" || filepath.Base(out["arg0"]) != "hello.greet" {
		t.Errorf("result %v, want greeting %q and $0 the task file", out, "hi there world")
	}
	if !strings.Contains(a.logs.String(), "interpreter="+env) {
		t.Errorf("the run was not logged with its interpreter %s", env)
	}
}
