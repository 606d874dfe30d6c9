package agent

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
)

func equalInterps(a, b map[string][]string) bool { return maps.EqualFunc(a, b, slices.Equal) }

func TestParseInterpreters(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string][]string
		wantErr string
	}{
		{".rb=/usr/bin/ruby,.py=/usr/bin/python3", map[string][]string{".rb": {"/usr/bin/ruby"}, ".py": {"/usr/bin/python3"}}, ""},
		{"rb=/usr/bin/ruby, py = /usr/bin/python3 ", map[string][]string{".rb": {"/usr/bin/ruby"}, ".py": {"/usr/bin/python3"}}, ""},
		{"", map[string][]string{}, ""},
		{".py=", map[string][]string{".py": {}}, ""},
		{".rb", nil, "want EXT=INTERPRETER"},
		{"=/usr/bin/ruby", nil, "not a file extension"},
		{"tar.gz=/bin/x", nil, "not a file extension"},
		{"c++=/bin/x", nil, "not a file extension"}, // Bolt's keys: letters and digits
		{".rb=/a,rb=/b", nil, "given twice"},
		// The JSON form, for interpreters with arguments (Bolt's shape).
		{` {"rb": ["/usr/bin/ruby", "-r", "puppet"], ".py": "/usr/bin/python3", "sh": ""}`,
			map[string][]string{".rb": {"/usr/bin/ruby", "-r", "puppet"}, ".py": {"/usr/bin/python3"}, ".sh": {}}, ""},
		{`{"rb": []}`, nil, "empty array"},
		{`{"rb": ["", "-r", "puppet"]}`, nil, "empty interpreter path"},
		{`{"rb": [" "]}`, nil, "empty interpreter path"},
		{`{"rb": 3}`, nil, "want an interpreter path or an array"},
		{`{"rb": ["/usr/bin/ruby", 3]}`, nil, "array of strings"},
		{`{"rb": "/usr/bin/ruby"`, nil, "want an object"},
		{`{"a/b": "/x"}`, nil, "not a file extension"},
		{`{"rb": "/a", ".rb": ["/a", "-w"]}`, nil, "given twice"},
	}
	for _, tt := range tests {
		got, err := ParseInterpreters(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseInterpreters(%q) error %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !equalInterps(got, tt.want) {
			t.Errorf("ParseInterpreters(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestInterpreterMapJSON: the config file key takes Bolt's values, a path or an array of the
// path and its arguments; "" is "no interpreter"; anything else is an error naming the key.
func TestInterpreterMapJSON(t *testing.T) {
	tests := []struct {
		in      string
		want    InterpreterMap
		wantErr string
	}{
		{`{"rb": ["/usr/bin/ruby", "-r", "puppet"], ".py": "/usr/bin/python3"}`,
			InterpreterMap{"rb": {"/usr/bin/ruby", "-r", "puppet"}, ".py": {"/usr/bin/python3"}}, ""},
		{`{"rb": ""}`, InterpreterMap{"rb": {}}, ""},
		{`{}`, InterpreterMap{}, ""},
		{`null`, nil, ""},
		{`{"rb": []}`, nil, `"rb": empty array`},
		{`{"rb": [""]}`, nil, `"rb": empty interpreter path`},
		{`{"rb": null}`, nil, `"rb": want an interpreter path or an array`},
		{`{"rb": {"path": "/x"}}`, nil, `"rb": want an interpreter path or an array`},
		{`["/usr/bin/ruby"]`, nil, "want an object"},
	}
	for _, tt := range tests {
		var got struct {
			Interpreters InterpreterMap `json:"interpreters"`
		}
		err := json.Unmarshal([]byte(`{"interpreters": `+tt.in+`}`), &got)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !equalInterps(got.Interpreters, tt.want) || (got.Interpreters == nil) != (tt.want == nil) {
			t.Errorf("%s: got %q, %v; want %q", tt.in, got.Interpreters, err, tt.want)
		}
	}
}

func TestNormalizeAndMergeInterpreters(t *testing.T) {
	explicit, err := NormalizeInterpreters(map[string][]string{"rb": {" /usr/local/bin/ruby ", "-r", "puppet"}, ".py": {}})
	if err != nil {
		t.Fatal(err)
	}
	defaults := map[string][]string{".rb": {"/usr/bin/ruby"}, ".py": {"/usr/bin/python3"}, ".ps1": {"/usr/bin/pwsh"}}
	got := MergeInterpreters(defaults, explicit)
	want := map[string][]string{".rb": {"/usr/local/bin/ruby", "-r", "puppet"}, ".ps1": {"/usr/bin/pwsh"}}
	if !equalInterps(got, want) {
		t.Errorf("merged %q, want %q", got, want)
	}
	if defaults[".py"][0] != "/usr/bin/python3" {
		t.Error("MergeInterpreters changed its defaults")
	}
	for _, bad := range []map[string][]string{
		{"rb": {"/a"}, ".rb": {"/b"}},
		{"rb": {""}},
		{"rb": {"", "-w"}},
		{"rb": {"/a\x00"}},
		{"r b": {"/a"}},
	} {
		if _, err := NormalizeInterpreters(bad); err == nil {
			t.Errorf("NormalizeInterpreters(%q) accepted", bad)
		}
	}
	if s := FormatInterpreters(want); s != ".ps1=/usr/bin/pwsh,.rb=/usr/local/bin/ruby -r puppet" {
		t.Errorf("FormatInterpreters = %q", s)
	}
	if f := interpreterFacts(map[string][]string{".rb": {"/usr/bin/ruby", "-r", "puppet"}, ".py": {}}); !maps.Equal(f, map[string]string{".rb": "/usr/bin/ruby -r puppet"}) {
		t.Errorf("interpreterFacts = %q", f)
	}
}

func TestTaskCommand(t *testing.T) {
	interps := map[string][]string{
		".rb": {"/usr/bin/ruby"}, ".py": {"/usr/bin/python3"}, ".sh": {},
		".pp": {"/usr/bin/puppet", "apply", "--noop"}, // an array: path and arguments
		".x":  {""},                                   // not normalized: no path, no interpreter
	}
	tests := []struct {
		exe      string
		wantPath string
		wantArgs []string
	}{
		{"/c/abc/init.rb", "/usr/bin/ruby", []string{"/c/abc/init.rb"}},
		{"/i/mod/tasks/x.py", "/usr/bin/python3", []string{"/i/mod/tasks/x.py"}},
		{"/c/abc/site.pp", "/usr/bin/puppet", []string{"apply", "--noop", "/c/abc/site.pp"}},
		{"/c/abc/init.sh", "/c/abc/init.sh", nil}, // empty mapping: shebang
		{"/c/abc/init.x", "/c/abc/init.x", nil},
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
	// Building a command does not change the mapping (no append into its backing array).
	interps[".pp"] = interps[".pp"][:2:3] // room to append in place
	_, a1 := taskCommand("/a.pp", interps)
	_, a2 := taskCommand("/b.pp", interps)
	if !slices.Equal(a1, []string{"apply", "/a.pp"}) || !slices.Equal(a2, []string{"apply", "/b.pp"}) {
		t.Errorf("taskCommand shared its args: %q %q", a1, a2)
	}
}

func TestConfigInterpretersAndFeatures(t *testing.T) {
	base := Config{Server: "ws://127.0.0.1/pcp", Name: "n", Secret: "s", CacheDir: "/c", SpoolDir: "/s"}
	c := base
	c.Interpreters = map[string][]string{"rb": {"/usr/bin/ruby", "-r", "puppet"}}
	c.Features = []string{"shell"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d := c.withDefaults()
	if !equalInterps(d.Interpreters, map[string][]string{".rb": {"/usr/bin/ruby", "-r", "puppet"}}) || !slices.Equal(d.Features, []string{"shell"}) {
		t.Errorf("explicit settings not kept: %v %v", d.Interpreters, d.Features)
	}
	// Explicit features and interpreters: nothing to detect, resolved at once.
	select {
	case <-d.platform.done:
	default:
		t.Error("explicit settings still wait for detection")
	}
	// Overrides apply over the detected defaults (or over explicit interpreters).
	c.InterpreterOverrides = map[string][]string{"py": {"/opt/py", "-u"}, ".rb": {}}
	c.Interpreters = nil
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	res, err := c.withDefaults().platform.get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := MergeInterpreters(DetectPlatform(t.Context(), "").Interpreters, map[string][]string{".py": {"/opt/py", "-u"}, ".rb": {}})
	if !equalInterps(res.interpreters, want) || !slices.Equal(res.features, []string{"shell"}) {
		t.Errorf("resolved %v %v, want %v [shell]", res.interpreters, res.features, want)
	}
	for _, bad := range []Config{
		func() Config { c := base; c.Interpreters = map[string][]string{"": {"/x"}}; return c }(),
		func() Config { c := base; c.Interpreters = map[string][]string{"rb": {"", "-w"}}; return c }(),
		func() Config { c := base; c.Features = []string{"shell,powershell"}; return c }(),
		func() Config { c := base; c.Features = []string{""}; return c }(),
		func() Config { c := base; c.InterpreterOverrides = map[string][]string{"a b": {"/x"}}; return c }(),
		func() Config { c := base; c.InterpreterOverrides = map[string][]string{"rb": {" "}}; return c }(),
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate accepted interpreters %v features %q", bad.Interpreters, bad.Features)
		}
	}
}
