package agent

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// fakeMachine is a probe over a made-up machine: the executables present (by path), what is
// on PATH (by name), first lines of files and what puppet --version prints.
type fakeMachine struct {
	goos    string
	files   map[string]string // path -> first line
	onPath  map[string]string // name -> path
	version string            // "" makes --version fail
}

func (m fakeMachine) probe() probe {
	return probe{
		goos: m.goos,
		lookPath: func(name string) (string, error) {
			if p, ok := m.onPath[name]; ok {
				return p, nil
			}
			return "", exec.ErrNotFound
		},
		isExec:  func(p string) bool { _, ok := m.files[p]; return ok },
		firstLn: func(p string) string { return m.files[p] },
		version: func(context.Context, string) (string, error) {
			if m.version == "" {
				return "", errors.New("exit status 1")
			}
			return m.version, nil
		},
	}
}

func TestDetectPlatform(t *testing.T) {
	debian := fakeMachine{goos: "linux",
		files:   map[string]string{"/usr/bin/puppet": "#!/usr/bin/ruby", "/usr/bin/ruby": "", "/usr/bin/ruby3.1": ""},
		onPath:  map[string]string{"sh": "/usr/bin/sh", "puppet": "/usr/bin/puppet", "ruby": "/usr/bin/ruby3.1", "python3": "/usr/bin/python3"},
		version: "7.23.0"}
	aio := fakeMachine{goos: "linux",
		files:   map[string]string{AIOPuppet: "#!/bin/sh", AIORuby: "", "/usr/bin/ruby": ""},
		onPath:  map[string]string{"sh": "/bin/sh", "ruby": "/usr/bin/ruby", "pwsh": "/usr/bin/pwsh"},
		version: "8.10.0"}
	envShebang := fakeMachine{goos: "linux",
		files:   map[string]string{"/usr/local/bin/puppet": "#!/usr/bin/env -S ruby --disable-gems"},
		onPath:  map[string]string{"sh": "/bin/sh", "puppet": "/usr/local/bin/puppet", "ruby": "/home/u/.rbenv/shims/ruby"},
		version: "8.1.0"}
	brokenPuppet := debian
	brokenPuppet.version = ""
	bare := fakeMachine{goos: "linux", onPath: map[string]string{"sh": "/bin/sh"}}
	windows := fakeMachine{goos: "windows", onPath: map[string]string{"puppet": `C:\puppet\bin\puppet.bat`, "ruby": `C:\ruby\ruby.exe`}, version: "8.10.0"}

	tests := []struct {
		name         string
		m            fakeMachine
		puppetBin    string
		wantFeatures []string
		wantPuppet   string
		wantVersion  string
		wantInterps  map[string][]string
	}{
		{"Debian puppet-agent package: Ruby from puppet's shebang", debian, "",
			[]string{"shell", "puppet-agent"}, "/usr/bin/puppet", "7.23.0",
			map[string][]string{".rb": []string{"/usr/bin/ruby"}, ".py": []string{"/usr/bin/python3"}}},
		{"AIO puppet-agent with pwsh", aio, "",
			[]string{"shell", "powershell", "puppet-agent"}, AIOPuppet, "8.10.0",
			map[string][]string{".rb": []string{AIORuby}, ".ps1": []string{"/usr/bin/pwsh"}}},
		{"puppet with #!/usr/bin/env ruby", envShebang, "",
			[]string{"shell", "puppet-agent"}, "/usr/local/bin/puppet", "8.1.0",
			map[string][]string{".rb": []string{"/home/u/.rbenv/shims/ruby"}}},
		{"puppet that does not answer --version is not advertised", brokenPuppet, "",
			[]string{"shell"}, "/usr/bin/puppet", "",
			map[string][]string{".rb": []string{"/usr/bin/ruby"}, ".py": []string{"/usr/bin/python3"}}},
		{"no puppet, no ruby", bare, "", []string{"shell"}, "", "", map[string][]string{}},
		{"explicit puppet bin that is missing", debian, "/opt/other/puppet",
			[]string{"shell"}, "", "",
			map[string][]string{".rb": []string{"/usr/bin/ruby3.1"}, ".py": []string{"/usr/bin/python3"}}},
		{"Windows: powershell without sh", windows, "",
			[]string{"powershell", "puppet-agent"}, `C:\puppet\bin\puppet.bat`, "8.10.0",
			map[string][]string{".rb": []string{`C:\ruby\ruby.exe`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.m.probe().detect(context.Background(), tt.puppetBin)
			if !slices.Equal(p.Features, tt.wantFeatures) {
				t.Errorf("features %v, want %v", p.Features, tt.wantFeatures)
			}
			if p.PuppetBin != tt.wantPuppet || p.PuppetVersion != tt.wantVersion {
				t.Errorf("puppet %q %q, want %q %q", p.PuppetBin, p.PuppetVersion, tt.wantPuppet, tt.wantVersion)
			}
			if !maps.EqualFunc(p.Interpreters, tt.wantInterps, slices.Equal) {
				t.Errorf("interpreters %v, want %v", p.Interpreters, tt.wantInterps)
			}
		})
	}
}

func TestLooksLikeVersion(t *testing.T) {
	for v, want := range map[string]bool{"7.23.0": true, "8.10.0": true, "6.28.0-rc1": true, "8.1": true,
		"": false, "7": false, "puppet 7.23.0": false, "v7.2": false, "7.x": false, "Error: foo": false} {
		if got := looksLikeVersion(v); got != want {
			t.Errorf("looksLikeVersion(%q) = %v, want %v", v, got, want)
		}
	}
}

// requirePuppet skips a test that needs Debian's puppet-agent package (puppet and the Ruby
// it runs on), unless BATON_REQUIRE_PUPPET=1 (set by CI, which installs it): then their
// absence fails the test.
func requirePuppet(t *testing.T) {
	t.Helper()
	var missing []string
	for _, bin := range []string{"puppet", "ruby"} {
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

// TestDetectPlatformOnThisMachine checks detection against the real puppet: the feature and
// version must be what `puppet --version` says, and .rb must map to a Ruby that exists.
func TestDetectPlatformOnThisMachine(t *testing.T) {
	requirePuppet(t)
	p := DetectPlatform(context.Background(), "")
	out, err := exec.Command(p.PuppetBin, "--version").Output()
	if err != nil {
		t.Fatalf("puppet %q --version: %v", p.PuppetBin, err)
	}
	if want := string(out); p.PuppetVersion == "" || want[:len(p.PuppetVersion)] != p.PuppetVersion {
		t.Errorf("version %q, puppet says %q", p.PuppetVersion, want)
	}
	if !slices.Contains(p.Features, FeaturePuppetAgent) || !slices.Contains(p.Features, FeatureShell) {
		t.Errorf("features %v, want shell and puppet-agent", p.Features)
	}
	rb := p.Interpreters[".rb"][0]
	if fi, err := os.Stat(rb); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf(".rb interpreter %q is not an executable: %v", rb, err)
	}
	// A copy each time: changing it does not change the next caller's.
	p.Interpreters[".rb"][0] = "changed"
	p.Features[0] = "changed"
	if q := DetectPlatform(context.Background(), ""); q.Interpreters[".rb"][0] != rb || q.Features[0] == "changed" {
		t.Errorf("DetectPlatform returned shared state: %+v", q)
	}
}

// TestCachedPuppetVersion: what `puppet --version` printed is kept in the cache directory and
// reused by the next agent process while the executable stays the same (path, size, mtime);
// a changed executable is asked again, and a failure is never kept.
func TestCachedPuppetVersion(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	puppet := filepath.Join(dir, "puppet")
	if err := os.WriteFile(puppet, []byte("#!/bin/sh\necho 7.23.0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "puppet-link")
	if err := os.Symlink(puppet, link); err != nil {
		t.Fatal(err)
	}
	calls := 0
	answer, fail := "7.23.0", false
	version := func(context.Context, string) (string, error) {
		calls++
		if fail {
			return "", errors.New("exit status 1")
		}
		return answer, nil
	}
	ask := func(path string) string {
		t.Helper()
		// A new wrapper each time: as a new agent process would.
		v, err := cachedPuppetVersion(cache, version)(t.Context(), path)
		if err != nil && !fail {
			t.Fatalf("version: %v", err)
		}
		return v
	}
	if v := ask(puppet); v != "7.23.0" || calls != 1 {
		t.Fatalf("first start: %q after %d runs, want 7.23.0 after 1", v, calls)
	}
	if fi, err := os.Stat(filepath.Join(cache, puppetVersionFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("recorded version: %v %v", fi, err)
	}
	if v := ask(puppet); v != "7.23.0" || calls != 1 {
		t.Fatalf("restart: %q after %d runs, want the recorded 7.23.0 without a run", v, calls)
	}
	if v := ask(link); v != "7.23.0" || calls != 1 {
		t.Fatalf("through a symlink: %q after %d runs, want the recorded 7.23.0", v, calls)
	}
	// An upgrade replaces the executable: a new modification time.
	answer = "8.10.0"
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(puppet, later, later); err != nil {
		t.Fatal(err)
	}
	if v := ask(puppet); v != "8.10.0" || calls != 2 {
		t.Fatalf("after an upgrade (mtime): %q after %d runs, want 8.10.0 after 2", v, calls)
	}
	if v := ask(puppet); v != "8.10.0" || calls != 2 {
		t.Fatalf("restart after the upgrade: %q after %d runs", v, calls)
	}
	// Same mtime, another size.
	answer = "8.11.0"
	if err := os.WriteFile(puppet, []byte("#!/bin/sh\necho 8.11.0 # longer\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(puppet, later, later); err != nil {
		t.Fatal(err)
	}
	if v := ask(puppet); v != "8.11.0" || calls != 3 {
		t.Fatalf("after a change of size: %q after %d runs, want 8.11.0 after 3", v, calls)
	}
	// A failure is not kept, and does not erase what was recorded for another executable.
	other := filepath.Join(dir, "puppet2")
	if err := os.WriteFile(other, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	fail = true
	if v := ask(other); v != "" || calls != 4 {
		t.Fatalf("failing puppet: %q after %d runs", v, calls)
	}
	fail = false
	answer = "6.0.0"
	if v := ask(other); v != "6.0.0" || calls != 5 {
		t.Fatalf("after a failure: %q after %d runs, want a new run (5)", v, calls)
	}
	// A damaged record is ignored.
	if err := os.WriteFile(filepath.Join(cache, puppetVersionFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v := ask(other); v != "6.0.0" || calls != 6 {
		t.Fatalf("damaged record: %q after %d runs, want a new run (6)", v, calls)
	}
}

// TestPlatformDetectionCachedAcrossStarts: an agent's detection (Config with CacheDir) records
// the real puppet's version in the cache directory, and a later detection with the same
// directory answers from it.
func TestPlatformDetectionCachedAcrossStarts(t *testing.T) {
	puppet, err := exec.LookPath("puppet")
	if err != nil {
		if os.Getenv("BATON_REQUIRE_PUPPET") != "" {
			t.Fatal("puppet is not on PATH (BATON_REQUIRE_PUPPET is set)")
		}
		t.Skip("puppet is not on PATH")
	}
	cache := t.TempDir()
	p := detectPlatform(t.Context(), puppet, cache)
	if !slices.Contains(p.Features, FeaturePuppetAgent) {
		t.Fatalf("features %v: want puppet-agent (%v)", p.Features, p.PuppetErr)
	}
	b, err := os.ReadFile(filepath.Join(cache, puppetVersionFile))
	if err != nil {
		t.Fatalf("no version recorded: %v", err)
	}
	var rec puppetVersionRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.Version != p.PuppetVersion {
		t.Fatalf("recorded %s, want version %s", b, p.PuppetVersion)
	}
	// What a restarted agent sees: the record, not a run (a version no puppet prints proves it).
	rec.Version = "99.1.2"
	b, _ = json.Marshal(rec)
	if err := os.WriteFile(filepath.Join(cache, puppetVersionFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	pr := systemProbe()
	pr.version = cachedPuppetVersion(cache, func(context.Context, string) (string, error) {
		t.Error("puppet --version ran although its version was recorded")
		return "", errors.New("not expected")
	})
	if q := pr.detect(t.Context(), puppet); q.PuppetVersion != "99.1.2" || !slices.Contains(q.Features, FeaturePuppetAgent) {
		t.Fatalf("restart: version %q features %v, want the recorded 99.1.2 with puppet-agent", q.PuppetVersion, q.Features)
	}
}
