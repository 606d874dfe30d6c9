package agent

import (
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"slices"
	"testing"
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
		wantInterps  map[string]string
	}{
		{"Debian puppet-agent package: Ruby from puppet's shebang", debian, "",
			[]string{"shell", "puppet-agent"}, "/usr/bin/puppet", "7.23.0",
			map[string]string{".rb": "/usr/bin/ruby", ".py": "/usr/bin/python3"}},
		{"AIO puppet-agent with pwsh", aio, "",
			[]string{"shell", "powershell", "puppet-agent"}, AIOPuppet, "8.10.0",
			map[string]string{".rb": AIORuby, ".ps1": "/usr/bin/pwsh"}},
		{"puppet with #!/usr/bin/env ruby", envShebang, "",
			[]string{"shell", "puppet-agent"}, "/usr/local/bin/puppet", "8.1.0",
			map[string]string{".rb": "/home/u/.rbenv/shims/ruby"}},
		{"puppet that does not answer --version is not advertised", brokenPuppet, "",
			[]string{"shell"}, "/usr/bin/puppet", "",
			map[string]string{".rb": "/usr/bin/ruby", ".py": "/usr/bin/python3"}},
		{"no puppet, no ruby", bare, "", []string{"shell"}, "", "", map[string]string{}},
		{"explicit puppet bin that is missing", debian, "/opt/other/puppet",
			[]string{"shell"}, "", "",
			map[string]string{".rb": "/usr/bin/ruby3.1", ".py": "/usr/bin/python3"}},
		{"Windows: powershell without sh", windows, "",
			[]string{"powershell", "puppet-agent"}, `C:\puppet\bin\puppet.bat`, "8.10.0",
			map[string]string{".rb": `C:\ruby\ruby.exe`}},
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
			if !maps.Equal(p.Interpreters, tt.wantInterps) {
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
	rb := p.Interpreters[".rb"]
	if fi, err := os.Stat(rb); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf(".rb interpreter %q is not an executable: %v", rb, err)
	}
	// A copy each time: changing it does not change the next caller's.
	p.Interpreters[".rb"] = "changed"
	p.Features[0] = "changed"
	if q := DetectPlatform(context.Background(), ""); q.Interpreters[".rb"] != rb || q.Features[0] == "changed" {
		t.Errorf("DetectPlatform returned shared state: %+v", q)
	}
}
