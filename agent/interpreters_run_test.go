//go:build unix

package agent

import (
	"encoding/json"
	"os"
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
	if err != nil || plat.interpreters[".rb"] == "" {
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
	if !strings.Contains(a.logs.String(), "interpreter="+plat.interpreters[".rb"]) {
		t.Errorf("the run was not logged with its interpreter")
	}
	a.stop()

	// Without the .rb mapping the shebang is used, and it names a Ruby that is not here.
	ts2 := newTestServer(t)
	cfg2 := testConfig(t, ts2)
	cfg2.Interpreters = map[string]string{}
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
	cfg.Interpreters = map[string]string{"rb": "/usr/bin/ruby"}
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
		strings.Join(got.Agent.Features, ",") != "shell,puppet-agent" || got.Agent.Interpreters[".rb"] != "/usr/bin/ruby" {
		t.Errorf("facts %s", f.env.Data)
	}
	ta.factsMu.Lock()
	_, leaked := ta.facts[AgentFact]
	ta.factsMu.Unlock()
	if leaked {
		t.Error("the agent's own fact was added to the gathered facts")
	}
}
