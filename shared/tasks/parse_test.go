package tasks

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "metadata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParseMetadata(t *testing.T, b []byte) Metadata {
	t.Helper()
	m, err := ParseMetadata(b)
	if err != nil {
		t.Fatalf("ParseMetadata: %v", err)
	}
	return m
}

func TestParseMetadataFixtures(t *testing.T) {
	t.Run("package", func(t *testing.T) {
		m := mustParseMetadata(t, readFixture(t, "package.json"))
		if m.Description != "Manage and inspect the state of packages" || m.InputMethod != InputStdin || !m.SupportsNoop {
			t.Fatalf("top-level fields: %+v", m)
		}
		if len(m.Parameters) != 4 || m.Parameters["action"].Type != "Enum[install, status, uninstall, upgrade]" {
			t.Fatalf("parameters: %+v", m.Parameters)
		}
		want := []Implementation{
			{Name: "init.rb", Requirements: []string{"puppet-agent"}, Files: []string{"ruby_task_helper/files/task_helper.rb"}},
			{Name: "linux.sh", Requirements: []string{"shell"}, InputMethod: InputEnvironment, Files: []string{"package/files/common.sh"}},
			{Name: "windows.ps1", Requirements: []string{"powershell"}},
		}
		if !reflect.DeepEqual(m.Implementations, want) {
			t.Fatalf("implementations = %+v, want %+v", m.Implementations, want)
		}
		impl, err := SelectImplementation(m, []string{"shell"}, []string{"init.rb", "linux.sh", "windows.ps1"})
		if err != nil || impl.Name != "linux.sh" || impl.InputMethod != InputEnvironment {
			t.Fatalf("SelectImplementation(shell) = %+v, %v", impl, err)
		}
		impl, err = SelectImplementation(m, []string{"powershell"}, []string{"init.rb", "linux.sh", "windows.ps1"})
		if err != nil || impl.Name != "windows.ps1" || impl.InputMethod != InputStdin {
			t.Fatalf("SelectImplementation(powershell) = %+v, %v", impl, err)
		}
	})
	t.Run("service", func(t *testing.T) {
		m := mustParseMetadata(t, readFixture(t, "service.json"))
		if got := string(m.Parameters["force"].Default); got != "false" {
			t.Fatalf("force default = %q", got)
		}
		if got := m.Implementations[2].Files; !slices.Equal(got, []string{"service/files/"}) {
			t.Fatalf("windows files = %v", got)
		}
	})
	t.Run("apt", func(t *testing.T) {
		m := mustParseMetadata(t, readFixture(t, "apt.json"))
		if m.PuppetTaskVersion != 1 {
			t.Fatalf("puppet_task_version = %d", m.PuppetTaskVersion)
		}
		if _, err := ValidateParams(m, map[string]any{"action": "dist-upgrade"}); err != nil {
			t.Fatalf("dist-upgrade: %v", err)
		}
	})
	t.Run("exec", func(t *testing.T) {
		m := mustParseMetadata(t, readFixture(t, "exec.json"))
		if m.InputMethod != InputEnvironment || m.Implementations[1].InputMethod != InputPowershell {
			t.Fatalf("input methods: %+v", m)
		}
		if string(m.Parameters["timeout"].Default) != "300" {
			t.Fatalf("timeout default = %s", m.Parameters["timeout"].Default)
		}
	})
	t.Run("sql", func(t *testing.T) {
		b := readFixture(t, "sql.json")
		m := mustParseMetadata(t, b)
		if !m.Private || m.Remote || !slices.Equal(m.Files, []string{"mysql/lib/helpers.rb", "mysql/scripts/"}) {
			t.Fatalf("fields: %+v", m)
		}
		if !m.Parameters["password"].Sensitive {
			t.Fatal("password is not sensitive")
		}
		if got := string(m.Parameters["options"].Default); got != `{"port":3306}` {
			t.Fatalf("options default = %s (want compacted JSON)", got)
		}
		if m.Extensions["discovery"] == nil || m.Identifiers["category"] != "database" {
			t.Fatalf("extensions/identifiers: %+v %+v", m.Extensions, m.Identifiers)
		}
		if got := UnknownKeys(b); !slices.Equal(got, []string{"x-vendor-note"}) {
			t.Fatalf("UnknownKeys = %v", got)
		}
		if got := SensitiveNames(m); !slices.Equal(got, []string{"password", "token"}) {
			t.Fatalf("SensitiveNames = %v", got)
		}
	})
}

// TestMetadataJSONRoundTrip checks that encoding a parsed Metadata and parsing it again gives
// the same value, in particular that "parameters": {} (accept none) and a missing
// "parameters" (accept anything) stay distinct.
func TestMetadataJSONRoundTrip(t *testing.T) {
	inputs := map[string][]byte{
		"no parameters":    []byte(`{"description": "x"}`),
		"empty parameters": []byte(`{"parameters": {}}`),
		"empty lists":      []byte(`{"implementations": [], "files": [], "extensions": {}, "identifiers": {}}`),
		"html in default":  []byte(`{"parameters": {"a": {"default": "<&>\u2028 \u0041", "type": "String"}}}`),
		"impl empty lists": []byte(`{"implementations": [{"name": "a.sh", "requirements": [], "files": []}]}`),
	}
	for _, f := range []string{"package.json", "service.json", "apt.json", "exec.json", "sql.json"} {
		inputs[f] = readFixture(t, f)
	}
	for name, b := range inputs {
		t.Run(name, func(t *testing.T) {
			m := mustParseMetadata(t, b)
			enc, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			m2 := mustParseMetadata(t, enc)
			if !reflect.DeepEqual(m, m2) {
				t.Fatalf("round trip changed metadata:\n%+v\n%+v\n(JSON %s)", m, m2, enc)
			}
		})
	}
	if m := mustParseMetadata(t, []byte(`{}`)); m.Parameters != nil {
		t.Fatal("missing parameters must decode as nil")
	}
	if m := mustParseMetadata(t, []byte(`{"parameters": null}`)); m.Parameters != nil {
		t.Fatal("null parameters must decode as nil")
	}
	if m := mustParseMetadata(t, []byte(`{"parameters": {}}`)); m.Parameters == nil || len(m.Parameters) != 0 {
		t.Fatal("{} parameters must decode as an empty, non-nil map")
	}
}

func TestParseMetadataErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"not JSON", `{`, "unexpected EOF"},
		{"trailing data", `{} {}`, "unexpected data after the JSON value"},
		{"array", `[]`, "must be a JSON object, got an array"},
		{"string", `"x"`, "must be a JSON object, got a string"},
		{"null", `null`, "must be a JSON object, got null"},
		{"description type", `{"description": 1}`, "description: must be a string, got a number"},
		{"version 2", `{"puppet_task_version": 2}`, "puppet_task_version 2 is not supported (only 1)"},
		{"version float", `{"puppet_task_version": 1.0}`, "puppet_task_version: must be an integer, got a number"},
		{"version string", `{"puppet_task_version": "1"}`, "puppet_task_version: must be an integer, got a string"},
		{"noop type", `{"supports_noop": "yes"}`, "supports_noop: must be a boolean, got a string"},
		{"remote type", `{"remote": 1}`, "remote: must be a boolean, got a number"},
		{"private type", `{"private": []}`, "private: must be a boolean, got an array"},
		{"input method", `{"input_method": "args"}`, `input_method: unsupported input method "args"`},
		{"input method type", `{"input_method": true}`, "input_method: must be a string, got a boolean"},
		{"parameters type", `{"parameters": []}`, "parameters: must be an object, got an array"},
		{"parameter name", `{"parameters": {"Name": {}}}`, `parameters: parameter "Name": invalid parameter name`},
		{"parameter underscore", `{"parameters": {"_noop": {}}}`, `parameter "_noop": invalid parameter name`},
		{"parameter dash", `{"parameters": {"a-b": {}}}`, `parameter "a-b": invalid parameter name`},
		{"parameter not object", `{"parameters": {"a": "String"}}`, `parameter "a": must be an object, got a string`},
		{"parameter type type", `{"parameters": {"a": {"type": 1}}}`, `parameter "a": type: must be a string, got a number`},
		{"parameter empty type", `{"parameters": {"a": {"type": " "}}}`, `parameter "a": type: must not be empty`},
		{"parameter bad type", `{"parameters": {"a": {"type": "Strin"}}}`, `parameter "a": parse type "Strin": unknown type "Strin" at 0`},
		{"parameter sensitive type", `{"parameters": {"a": {"sensitive": "yes"}}}`, `parameter "a": sensitive: must be a boolean`},
		{"default mismatch", `{"parameters": {"a": {"type": "Integer", "default": "x"}}}`, `parameter "a": default value expects an Integer value, got String`},
		{"default range", `{"parameters": {"a": {"type": "Integer[1, 10]", "default": 0}}}`, `default value expects a value between 1 and 10, got 0`},
		{"sensitive default hidden", `{"parameters": {"a": {"type": "Enum[x]", "sensitive": true, "default": "hunter2"}}}`, `got [value redacted]`},
		{"implementations type", `{"implementations": {}}`, "implementations: must be an array, got an object"},
		{"implementation no name", `{"implementations": [{"requirements": ["shell"]}]}`, "implementations: [0]: name is required"},
		{"implementation name path", `{"implementations": [{"name": "../x.sh"}]}`, `implementations: [0]: name "../x.sh" must be a file name`},
		{"implementation not object", `{"implementations": ["init.sh"]}`, "implementations: [0]: must be an object, got a string"},
		{"implementation requirements", `{"implementations": [{"name": "a.sh", "requirements": "shell"}]}`, "requirements: must be an array, got a string"},
		{"implementation requirement item", `{"implementations": [{"name": "a.sh", "requirements": [1]}]}`, "requirements: [0] must be a string, got a number"},
		{"implementation input method", `{"implementations": [{"name": "a.sh", "input_method": "pipe"}]}`, `input_method: unsupported input method "pipe"`},
		{"implementation files", `{"implementations": [{"name": "a.sh", "files": ["/etc/passwd"]}]}`, `file "/etc/passwd" must be relative`},
		{"files type", `{"files": "mymod/files/a"}`, "files: must be an array, got a string"},
		{"files mount", `{"files": ["mymod/manifests/init.pp"]}`, `must be <module>/{files,lib,tasks,scripts}/<path>`},
		{"files module", `{"files": ["MyMod/files/a"]}`, `must be <module>/{files,lib,tasks,scripts}/<path>`},
		{"files dotdot", `{"files": ["mymod/files/../../etc/passwd"]}`, `must not contain empty, "." or ".." segments`},
		{"files dot", `{"files": ["mymod/files/./a"]}`, `must not contain empty, "." or ".." segments`},
		{"files empty segment", `{"files": ["mymod/files//a"]}`, `must not contain empty, "." or ".." segments`},
		{"files backslash", `{"files": ["mymod\\files\\a"]}`, `must use "/" separators`},
		{"files mount only", `{"files": ["mymod/files"]}`, `must name a file or a directory`},
		{"files module only", `{"files": ["mymod"]}`, `must be <module>/{files,lib,tasks,scripts}/<path>`},
		{"extensions type", `{"extensions": []}`, "extensions: must be an object, got an array"},
		{"identifiers type", `{"identifiers": "x"}`, "identifiers: must be an object, got a string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseMetadata([]byte(tc.in))
			if err == nil {
				t.Fatalf("ParseMetadata(%s) succeeded, want error containing %q", tc.in, tc.want)
			}
			if !errors.Is(err, ErrInvalidMetadata) {
				t.Errorf("error %v does not wrap ErrInvalidMetadata", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseMetadataAccepts(t *testing.T) {
	tests := []struct {
		name, in string
		check    func(Metadata) bool
	}{
		{"empty", `{}`, func(m Metadata) bool { return m.Parameters == nil }},
		{"nulls are absent", `{"description": null, "input_method": null, "files": null, "implementations": null}`,
			func(m Metadata) bool { return m.Description == "" && m.Files == nil }},
		{"untyped parameter", `{"parameters": {"anything": {}}}`,
			func(m Metadata) bool { _, ok := m.Parameters["anything"]; return ok }},
		{"parameter null fields", `{"parameters": {"a": {"type": null, "default": null}}}`,
			func(m Metadata) bool { return m.Parameters["a"].Default == nil }},
		{"default matches optional", `{"parameters": {"a": {"type": "Optional[Integer]", "default": 5}}}`,
			func(m Metadata) bool { return string(m.Parameters["a"].Default) == "5" }},
		{"unknown parameter keys allowed", `{"parameters": {"a": {"type": "String", "x-ui": {"widget": "text"}}}}`,
			func(m Metadata) bool { return m.Parameters["a"].Type == "String" }},
		{"unknown implementation keys allowed", `{"implementations": [{"name": "a.sh", "x": 1}]}`,
			func(m Metadata) bool { return m.Implementations[0].Name == "a.sh" }},
		{"implementation remote", `{"implementations": [{"name": "a.rb", "remote": true}]}`,
			func(m Metadata) bool { return m.Implementations[0].Remote }},
		{"files dir", `{"files": ["mymod/files/", "mymod/lib/puppet_x/", "other/tasks/helper.sh", "m/scripts/a/b/c.py"]}`,
			func(m Metadata) bool { return len(m.Files) == 4 }},
		{"remote task", `{"remote": true, "supports_noop": false}`, func(m Metadata) bool { return m.Remote }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := mustParseMetadata(t, []byte(tc.in))
			if !tc.check(m) {
				t.Fatalf("unexpected metadata %+v", m)
			}
		})
	}
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`{}`, nil},
		{`{"description": "d", "parameters": {}, "identifiers": {}}`, nil},
		{`{"zeta": 1, "alpha": 2, "remote": true}`, []string{"alpha", "zeta"}},
		{`[]`, nil},
		{`nope`, nil},
	}
	for _, tc := range tests {
		if got := UnknownKeys([]byte(tc.in)); !slices.Equal(got, tc.want) {
			t.Errorf("UnknownKeys(%s) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestTaskNames(t *testing.T) {
	tests := []struct {
		name         string
		valid        bool
		module, task string
	}{
		{"package", true, "package", "init"},
		{"package::install", true, "package", "install"},
		{"my_mod2::run_it", true, "my_mod2", "run_it"},
		{"mod::init", true, "mod", "init"},
		{"", false, "", ""},
		{"Package", false, "", ""},
		{"package::", false, "", ""},
		{"::install", false, "", ""},
		{"a::b::c", false, "", ""},
		{"2mod", false, "", ""},
		{"mod::Task", false, "", ""},
		{"mod:task", false, "", ""},
		{"mod::ta-sk", false, "", ""},
		{"_mod", false, "", ""},
		{"mod::task ", false, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidTaskName(tc.name); got != tc.valid {
				t.Fatalf("ValidTaskName = %v, want %v", got, tc.valid)
			}
			mod, task, err := SplitTaskName(tc.name)
			if tc.valid {
				if err != nil || mod != tc.module || task != tc.task {
					t.Fatalf("SplitTaskName = %q, %q, %v; want %q, %q", mod, task, err, tc.module, tc.task)
				}
				return
			}
			if !errors.Is(err, ErrInvalidTaskName) {
				t.Fatalf("SplitTaskName error = %v, want ErrInvalidTaskName", err)
			}
		})
	}
}

func TestCheckFileRef(t *testing.T) {
	ok := []string{"m/files/a", "m/files/", "m/lib/x/y.rb", "m/tasks/t.sh", "m/scripts/s.py", "m/files/dir/", "m/files/.hidden"}
	bad := []string{"", "/m/files/a", "m/files", "m", "m/other/a", "M/files/a", "m/files/../a", "m/files/a/..", "m/files//a", "m\\files\\a", "m/files/a\x00"}
	for _, f := range ok {
		if err := CheckFileRef(f); err != nil {
			t.Errorf("CheckFileRef(%q) = %v, want nil", f, err)
		}
	}
	for _, f := range bad {
		if err := CheckFileRef(f); err == nil {
			t.Errorf("CheckFileRef(%q) = nil, want an error", f)
		}
	}
}
