package agent

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestParseInterpreters(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr string
	}{
		{".rb=/usr/bin/ruby,.py=/usr/bin/python3", map[string]string{".rb": "/usr/bin/ruby", ".py": "/usr/bin/python3"}, ""},
		{"rb=/usr/bin/ruby, py = /usr/bin/python3 ", map[string]string{".rb": "/usr/bin/ruby", ".py": "/usr/bin/python3"}, ""},
		{"", map[string]string{}, ""},
		{".py=", map[string]string{".py": ""}, ""},
		{".rb", nil, "want EXT=INTERPRETER"},
		{"=/usr/bin/ruby", nil, "not a file extension"},
		{"tar.gz=/bin/x", nil, "not a file extension"},
		{".rb=/a,rb=/b", nil, "given twice"},
	}
	for _, tt := range tests {
		got, err := ParseInterpreters(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseInterpreters(%q) error %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !maps.Equal(got, tt.want) {
			t.Errorf("ParseInterpreters(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestNormalizeAndMergeInterpreters(t *testing.T) {
	explicit, err := NormalizeInterpreters(map[string]string{"rb": "/usr/local/bin/ruby", ".py": ""})
	if err != nil {
		t.Fatal(err)
	}
	defaults := map[string]string{".rb": "/usr/bin/ruby", ".py": "/usr/bin/python3", ".ps1": "/usr/bin/pwsh"}
	got := MergeInterpreters(defaults, explicit)
	want := map[string]string{".rb": "/usr/local/bin/ruby", ".ps1": "/usr/bin/pwsh"}
	if !maps.Equal(got, want) {
		t.Errorf("merged %v, want %v", got, want)
	}
	if defaults[".py"] != "/usr/bin/python3" {
		t.Error("MergeInterpreters changed its defaults")
	}
	if _, err := NormalizeInterpreters(map[string]string{"rb": "/a", ".rb": "/b"}); err == nil {
		t.Error("rb and .rb with different interpreters accepted")
	}
	if s := FormatInterpreters(want); s != ".ps1=/usr/bin/pwsh,.rb=/usr/local/bin/ruby" {
		t.Errorf("FormatInterpreters = %q", s)
	}
}

func TestTaskCommand(t *testing.T) {
	interps := map[string]string{".rb": "/usr/bin/ruby", ".py": "/usr/bin/python3", ".sh": ""}
	tests := []struct {
		exe      string
		wantPath string
		wantArgs []string
	}{
		{"/c/abc/init.rb", "/usr/bin/ruby", []string{"/c/abc/init.rb"}},
		{"/i/mod/tasks/x.py", "/usr/bin/python3", []string{"/i/mod/tasks/x.py"}},
		{"/c/abc/init.sh", "/c/abc/init.sh", nil}, // empty mapping: shebang
		{"/c/abc/init", "/c/abc/init", nil},       // no extension: shebang
		{"/c/abc/init.RB", "/c/abc/init.RB", nil}, // extensions match exactly, as in Bolt
		{"/c/abc/task.ps1", "/c/abc/task.ps1", nil},
	}
	for _, tt := range tests {
		p, a := taskCommand(tt.exe, interps)
		if p != tt.wantPath || !slices.Equal(a, tt.wantArgs) {
			t.Errorf("taskCommand(%q) = %q %q, want %q %q", tt.exe, p, a, tt.wantPath, tt.wantArgs)
		}
	}
}

func TestConfigInterpretersAndFeatures(t *testing.T) {
	base := Config{Server: "ws://127.0.0.1/pcp", Name: "n", Secret: "s", CacheDir: "/c", SpoolDir: "/s"}
	c := base
	c.Interpreters = map[string]string{"rb": "/usr/bin/ruby"}
	c.Features = []string{"shell"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d := c.withDefaults()
	if !maps.Equal(d.Interpreters, map[string]string{".rb": "/usr/bin/ruby"}) || !slices.Equal(d.Features, []string{"shell"}) {
		t.Errorf("explicit settings not kept: %v %v", d.Interpreters, d.Features)
	}
	// Explicit features and interpreters: nothing to detect, resolved at once.
	select {
	case <-d.platform.done:
	default:
		t.Error("explicit settings still wait for detection")
	}
	// Overrides apply over the detected defaults (or over explicit interpreters).
	c.InterpreterOverrides = map[string]string{"py": "/opt/py", ".rb": ""}
	c.Interpreters = nil
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	res, err := c.withDefaults().platform.get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := MergeInterpreters(DetectPlatform(t.Context(), "").Interpreters, map[string]string{".py": "/opt/py", ".rb": ""})
	if !maps.Equal(res.interpreters, want) || !slices.Equal(res.features, []string{"shell"}) {
		t.Errorf("resolved %v %v, want %v [shell]", res.interpreters, res.features, want)
	}
	for _, bad := range []Config{
		func() Config { c := base; c.Interpreters = map[string]string{"": "/x"}; return c }(),
		func() Config { c := base; c.Features = []string{"shell,powershell"}; return c }(),
		func() Config { c := base; c.Features = []string{""}; return c }(),
		func() Config { c := base; c.InterpreterOverrides = map[string]string{"a b": "/x"}; return c }(),
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate accepted interpreters %v features %q", bad.Interpreters, bad.Features)
		}
	}
}
