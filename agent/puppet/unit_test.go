package puppet

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/puppetrun"
)

// The fixtures are last_run_report.yaml files written by Debian's puppet-agent 7.23.0: a
// `puppet apply` that created a file, and a `puppet agent --onetime --job-id 77` that could
// not reach its server.
func TestParseReportFixtures(t *testing.T) {
	for _, c := range []struct {
		file string
		want report
	}{
		{"apply_changed.yaml", report{time: "2026-11-25T06:09:09.337809693+00:00", transactionUUID: "18adb0c7-2548-44b8-bb8d-211bb12b7f3e",
			environment: "production", status: "changed", configurationVersion: "1795586949",
			metrics: &puppetrun.Metrics{Total: 8, Changed: 1, OutOfSync: 1}}},
		{"agent_failed.yaml", report{time: "2026-11-25T06:07:12.633977265+00:00", transactionUUID: "ec59b77b-b6ad-49b2-bbac-e4a30fcc1519",
			environment: "production", status: "failed", metrics: &puppetrun.Metrics{}}},
	} {
		t.Run(c.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseReport(data)
			if err != nil {
				t.Fatalf("parseReport: %v", err)
			}
			if got.metrics == nil || *got.metrics != *c.want.metrics {
				t.Errorf("metrics = %+v, want %+v", got.metrics, c.want.metrics)
			}
			got.metrics, c.want.metrics = nil, nil
			if got != c.want {
				t.Errorf("report = %+v\nwant     %+v", got, c.want)
			}
		})
	}
}

func TestParseReportRejects(t *testing.T) {
	for _, c := range []struct{ name, doc, want string }{
		{"not yaml", "status: [unclosed", "parse yaml"},
		{"a list", "- status: changed\n", "not a mapping"},
		{"no status", "--- !ruby/object:Puppet::Transaction::Report\ntransaction_uuid: x\n", "no status"},
		{"bad metric entry", "status: changed\ntransaction_uuid: x\nmetrics:\n  resources:\n    values:\n    - [total, Total]\n", "not [name, label, value]"},
		{"metric not a number", "status: changed\ntransaction_uuid: x\nmetrics:\n  resources:\n    values:\n    - [total, Total, many]\n", `"total"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := parseReport([]byte(c.doc)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("parseReport error = %v, want one containing %q", err, c.want)
			}
		})
	}
	t.Run("aliases and tags", func(t *testing.T) {
		doc := "--- !ruby/object:Puppet::Transaction::Report\nstatus: &s unchanged\ntransaction_uuid: u\nenvironment: *s\nnoop_pending: true\n" +
			"metrics:\n  resources: !ruby/object:Puppet::Util::Metric\n    values:\n    - - total\n      - Total\n      - 3\n"
		got, err := parseReport([]byte(doc))
		if err != nil || got.environment != "unchanged" || !got.noopPending || got.metrics == nil || got.metrics.Total != 3 {
			t.Fatalf("parseReport = %+v, %v", got, err)
		}
	})
}

func TestFromReport(t *testing.T) {
	fixture, err := os.ReadFile(filepath.Join("testdata", "apply_changed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	failedOutput := []byte("\x1b[1;31mError: Facter: Permission denied @ rb_sysopen - /proc/1/environ\x1b[0m\n" +
		"\x1b[1;31mError: Could not set 'file' on ensure: No such file or directory\x1b[0m\n")
	for _, c := range []struct {
		name       string
		mode       string
		content    string // "" = no report file
		sameBefore bool   // the report is the one seen before the run
		exit       int
		out        []byte
		want       Result
		wantErr    string // substring of Error
	}{
		{name: "apply changed: exit 2 is success", mode: ModeApply, content: string(fixture), exit: 2,
			want: Result{Status: "changed", Exitcode: 0, ConfigurationVersion: "1795586949"}},
		{name: "apply resource failure", mode: ModeApply, content: string(fixture), exit: 4, out: failedOutput,
			want:    Result{Status: "changed", Exitcode: 4, ErrorType: puppetrun.ErrorAgentExitNonZero, ConfigurationVersion: "1795586949"},
			wantErr: "Puppet apply exited with a non 0 exitcode (4): Error: Could not set 'file'"},
		{name: "agent exit 2 is a failure", mode: ModeAgent, content: string(fixture), exit: 2,
			want: Result{Status: "changed", Exitcode: 2, ErrorType: puppetrun.ErrorAgentExitNonZero, ConfigurationVersion: "1795586949"}},
		{name: "report not rewritten", mode: ModeAgent, content: string(fixture), sameBefore: true, exit: 1, out: failedOutput,
			want:    Result{Status: "failed", Exitcode: 1, ErrorType: puppetrun.ErrorNoLastRunReport},
			wantErr: "The Puppet run failed in an unexpected way: Error: Could not set"},
		{name: "no report at all, exit 0", mode: ModeAgent, exit: 0,
			want: Result{Status: "unknown", Exitcode: 0, ErrorType: puppetrun.ErrorNoLastRunReport}},
		{name: "unparsable report", mode: ModeAgent, content: "{{{", exit: 0,
			want: Result{Status: "unknown", Exitcode: 0, ErrorType: puppetrun.ErrorInvalidLastRunReport}, wantErr: "could not be loaded"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "last_run_report.yaml")
			var before os.FileInfo
			if c.content != "" {
				if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
					t.Fatal(err)
				}
				if c.sameBefore {
					before, _ = os.Stat(path)
				}
			}
			r := runner{cfg: Config{Mode: c.mode}.withDefaults()}
			r.log = r.cfg.Logger
			got := r.fromReport(path, before, c.exit, c.out)
			if got.Status != c.want.Status || got.Exitcode != c.want.Exitcode || got.ErrorType != c.want.ErrorType ||
				got.ConfigurationVersion != c.want.ConfigurationVersion || got.Version != 1 {
				t.Errorf("result = %+v, want %+v", got, c.want)
			}
			if !strings.Contains(got.Error, c.wantErr) || (c.want.ErrorType == "") != (got.Error == "") {
				t.Errorf("error = %q, want it to contain %q", got.Error, c.wantErr)
			}
			if strings.Contains(got.Error, "Facter") {
				t.Errorf("error %q repeats facter noise", got.Error)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	for _, c := range []struct{ name, out, want string }{
		{"empty", "", ""},
		{"error lines, facter left out", "\x1b[mNotice: Compiled\x1b[0m\n\x1b[1;31mError: Facter: Permission denied\x1b[0m\n" +
			"\x1b[1;31mError: Could not parse for environment production: Syntax error at end of input\x1b[0m\n",
			"Error: Could not parse for environment production: Syntax error at end of input"},
		{"last three distinct errors", "Error: a\nError: b\nError: a\nError: c\nError: d\n", "Error: b; Error: c; Error: d"},
		{"ruby exception", "/usr/lib/ruby/x.rb:40:in `get!': Could not find environment 'staging' (Puppet::Environments::EnvironmentNotFound)\n" +
			"\tfrom /usr/lib/ruby/y.rb:34:in `push'\n\tfrom /usr/bin/puppet:5:in `<main>'\n",
			"/usr/lib/ruby/x.rb:40:in `get!': Could not find environment 'staging' (Puppet::Environments::EnvironmentNotFound)"},
		{"long line cut", "Error: " + strings.Repeat("x", 1000), "Error: " + strings.Repeat("x", maxLineLen-len("Error: ")) + "..."},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := summarize([]byte(c.out)); got != c.want {
				t.Errorf("summarize = %q, want %q", got, c.want)
			}
		})
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{limit: 10}
	for i := range 30 {
		if _, err := b.Write([]byte(strconv.Itoa(i % 10))); err != nil {
			t.Fatal(err)
		}
	}
	if got := string(b.Bytes()); got != "0123456789" {
		t.Errorf("tail = %q", got)
	}
}

func TestCommand(t *testing.T) {
	flags := []string{"--noop", "--environment", "production", "--waitforcert", "60", "--splay", "--no-usecacheonfailure", "--use_cached_catalog", "--tags", "web"}
	extra := []string{"--confdir", "/x/conf"}
	for _, c := range []struct {
		name string
		cfg  Config
		in   Input
		want []string
	}{
		{"agent", Config{ExtraArgs: extra}, Input{Flags: flags, Job: "42"},
			append(append(append([]string{"agent"}, flags...), extra...), "--onetime", "--no-daemonize", "--verbose", "--job-id", "42")},
		{"agent without job", Config{}, Input{Flags: []string{"--noop"}},
			[]string{"agent", "--noop", "--onetime", "--no-daemonize", "--verbose"}},
		{"apply drops agent-only flags and the job", Config{Mode: ModeApply, Manifest: "/m/site.pp", ModulePath: "/m/modules", ExtraArgs: extra},
			Input{Flags: flags, Job: "42"},
			[]string{"apply", "--noop", "--environment", "production", "--tags", "web", "--confdir", "/x/conf",
				"--detailed-exitcodes", "--modulepath", "/m/modules", "/m/site.pp"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := ValidateFlags(c.in.Flags); err != nil {
				t.Fatal(err)
			}
			r := runner{cfg: c.cfg.withDefaults()}
			if got := r.command(c.in); !slices.Equal(got, c.want) {
				t.Errorf("command =\n%q\nwant\n%q", got, c.want)
			}
		})
	}
}

// Flag checks happen before puppet is looked for, so these need no puppet.
func TestRunRejectsInput(t *testing.T) {
	for _, c := range []struct {
		name string
		in   Input
	}{
		{"onetime", Input{Flags: []string{"--onetime"}}},
		{"no-daemonize", Input{Flags: []string{"--no-daemonize"}}},
		{"verbose", Input{Flags: []string{"--verbose"}}},
		{"setting with =", Input{Flags: []string{"--config_version=x"}}},
		{"not allow-listed", Input{Flags: []string{"--prerun_command", "reboot"}}},
		{"shell metacharacters", Input{Flags: []string{"--noop;rm -rf /"}}},
		{"shell in a value", Input{Flags: []string{"--tags", "$(reboot)"}}},
		{"value after a boolean flag", Input{Flags: []string{"--noop", "production"}}},
		{"value flag without value", Input{Flags: []string{"--environment"}}},
		{"bad job id", Input{Flags: []string{}, Job: "--noop"}},
		{"job id with a space", Input{Flags: []string{}, Job: "1 2"}},
		{"negative timeout", Input{Flags: []string{}, Timeout: -1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Run(context.Background(), Config{PuppetBin: "/nonexistent/puppet"}, c.in)
			want := failure(-1, puppetrun.ErrorInvalidJSON, got.Error)
			if got.Error == "" || got.Exitcode != -1 || got.ErrorType != want.ErrorType || got.Status != "unknown" ||
				got.Time != "unknown" || got.TransactionUUID != "unknown" || got.Environment != "unknown" || got.Metrics != nil {
				t.Errorf("Run = %+v, want an invalid_json early error", got)
			}
		})
	}
	t.Run("allowed", func(t *testing.T) {
		for _, flags := range [][]string{
			{"--noop"}, {"--no-noop"}, {"--environment", "production", "--strict_environment_mode"},
			{"--tags", "web,db::server", "--skip_tags", "slow"}, {"--http_read_timeout", "30", "--evaltrace", "--trace", "--debug"},
		} {
			if err := ValidateFlags(flags); err != nil {
				t.Errorf("ValidateFlags(%q) = %v", flags, err)
			}
		}
	})
	t.Run("noop and no_noop", func(t *testing.T) {
		if _, err := FlagsFromOptions(DeployOptions{Noop: true, NoNoop: true}); !errors.Is(err, puppetrun.ErrInvalidFlags) {
			t.Errorf("FlagsFromOptions error = %v, want ErrInvalidFlags", err)
		}
		got, err := FlagsFromOptions(DeployOptions{Environment: "production", EnforceEnvironment: true, NoNoop: true})
		if want := []string{"--environment", "production", "--strict_environment_mode", "--no-noop"}; err != nil || !slices.Equal(got, want) {
			t.Errorf("FlagsFromOptions = %q, %v; want %q", got, err, want)
		}
	})
}

func TestRunConfigAndBinary(t *testing.T) {
	for _, c := range []struct {
		name     string
		cfg      Config
		wantType string
		wantErr  string
	}{
		{"unknown mode", Config{Mode: "server"}, puppetrun.ErrorAgentFailedToStart, "unknown mode"},
		{"apply without manifest", Config{Mode: ModeApply}, puppetrun.ErrorAgentFailedToStart, "needs a manifest"},
		{"manifest in agent mode", Config{Manifest: "site.pp"}, puppetrun.ErrorAgentFailedToStart, "apply only"},
		{"negative lock wait", Config{LockWait: -time.Second}, puppetrun.ErrorAgentFailedToStart, "negative lock wait"},
		{"missing binary path", Config{PuppetBin: "/nonexistent/bin/puppet"}, puppetrun.ErrorNoPuppetBin,
			"Puppet executable '/nonexistent/bin/puppet' does not exist"},
		{"binary not on PATH", Config{PuppetBin: "baton-no-such-puppet"}, puppetrun.ErrorNoPuppetBin, "baton-no-such-puppet"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Run(context.Background(), c.cfg, Input{Flags: []string{"--noop"}})
			if got.ErrorType != c.wantType || !strings.Contains(got.Error, c.wantErr) || got.Exitcode != -1 || got.Status != "unknown" {
				t.Errorf("Run = %+v, want %s containing %q", got, c.wantType, c.wantErr)
			}
		})
	}
	if err := (Config{Mode: "server"}).Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Validate error = %v, want ErrInvalidConfig", err)
	}
}

func TestLockfiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	holder := startLockHolder(t)
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		path string
		want bool
	}{
		{"missing", filepath.Join(dir, "none.lock"), false},
		{"live puppet process", write("live.lock", strconv.Itoa(holder.Process.Pid)), true},
		{"process that is not puppet", write("other.lock", strconv.Itoa(os.Getpid())), false},
		{"process that is gone", write("gone.lock", strconv.Itoa(exited.Process.Pid)), false},
		{"not a pid", write("junk.lock", "junk"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := lockHeld(c.path); got != c.want {
				t.Errorf("lockHeld = %v, want %v", got, c.want)
			}
		})
	}
	for _, c := range []struct {
		name, content string
		wantMsg       string
	}{
		{"with message", `{"disabled_message":"maintenance window"}`, "maintenance window"},
		{"without message", `{}`, ""},
		{"not json", `x`, ""},
	} {
		t.Run("disabled "+c.name, func(t *testing.T) {
			msg, disabled := disabledState(write("disabled.lock", c.content))
			if !disabled || msg != c.wantMsg {
				t.Errorf("disabledState = %q, %v; want %q, true", msg, disabled, c.wantMsg)
			}
		})
	}
	if _, disabled := disabledState(filepath.Join(dir, "none.lock")); disabled {
		t.Error("a missing disabled lockfile counts as disabled")
	}
}

// startLockHolder starts a long-lived process whose command name is "puppet" (sleep run
// through a symlink), which Puppet's Pidlock accepts as a live Puppet run holding a lock.
func startLockHolder(t *testing.T) *exec.Cmd {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "puppet")
	if err := os.Symlink(sleep, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}
