package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
)

// examplesDir is the demo modules tree shipped with the repository.
var examplesDir = filepath.Join("..", "..", "examples", "modules")

func TestExampleModules(t *testing.T) {
	c, err := NewLocal(map[string]string{"production": examplesDir})
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.List(context.Background(), "production")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range list {
		names = append(names, s.Name)
		if s.Description == "" {
			t.Errorf("%s has no description", s.Name)
		}
	}
	want := []string{"bench::noop", "chaos::ledger", "demo::bigoutput", "demo::fail", "demo::hello", "demo::multi", "demo::secret", "demo::sleep", "demo::sysinfo", "demo::ticker",
		"forgelike::ensure_line", "forgelike::internal", "forgelike::platform", "forgelike::python_greet", "forgelike::ruby_greet"}
	if !slices.Equal(names, want) {
		t.Fatalf("List = %v, want %v", names, want)
	}
	for _, name := range names {
		task, err := c.Task(context.Background(), "production", name)
		if err != nil {
			t.Errorf("Task(%s): %v", name, err)
			continue
		}
		for _, f := range task.Files {
			fi, err := os.Stat(f.Path)
			if err != nil {
				t.Fatal(err)
			}
			if ext := filepath.Ext(f.Path); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o755 && (ext == ".sh" || ext == ".rb" || ext == ".py") && filepath.Base(filepath.Dir(f.Path)) == "tasks" {
				t.Errorf("%s: mode %v, want 0755", f.Path, fi.Mode().Perm())
			}
		}
	}
	multi, err := c.Task(context.Background(), "production", "demo::multi")
	if err != nil {
		t.Fatal(err)
	}
	if len(multi.Files) != 2 || multi.Files[1].Filename != "demo/files/lib.sh" {
		t.Errorf("demo::multi files = %+v", multi.Files)
	}
	// The Forge-like modules (see README "Forge modules and interpreters").
	listed := Listed(list, false)
	if len(listed) != len(list)-1 || slices.ContainsFunc(listed, func(s Summary) bool { return s.Name == "forgelike::internal" }) {
		t.Errorf("Listed(false) = %v: want all but the private forgelike::internal", listed)
	}
	if all := Listed(list, true); len(all) != len(list) {
		t.Errorf("Listed(true) left out %d tasks", len(list)-len(all))
	}
	rb, err := c.Task(context.Background(), "production", "forgelike::ruby_greet")
	if err != nil {
		t.Fatal(err)
	}
	if len(rb.Files) != 2 || rb.Files[0].Filename != "ruby_greet.rb" || rb.Files[1].Filename != "ruby_task_helper/files/task_helper.rb" {
		t.Errorf("forgelike::ruby_greet files = %+v", rb.Files)
	}
	platform, err := c.Task(context.Background(), "production", "forgelike::platform")
	if err != nil {
		t.Fatal(err)
	}
	var pf []string
	for _, f := range platform.Files {
		pf = append(pf, f.Filename)
	}
	if !slices.Equal(pf, []string{"platform.rb", "platform.ps1", "platform.sh", "ruby_task_helper/files/task_helper.rb"}) {
		t.Errorf("forgelike::platform files = %v", pf)
	}
	if noop, err := c.Task(context.Background(), "production", "forgelike::ensure_line"); err != nil || !noop.Metadata.SupportsNoop {
		t.Errorf("forgelike::ensure_line: supports_noop %v, %v", noop.Metadata.SupportsNoop, err)
	}
	secret, err := c.Task(context.Background(), "production", "demo::secret")
	if err != nil {
		t.Fatal(err)
	}
	if p := secret.Metadata.Parameters["password"]; !p.Sensitive || p.Type != "Sensitive[String[1]]" {
		t.Errorf("demo::secret password = %+v", p)
	}
}

// TestExampleScripts runs each demo task the way the agent does (exec bit + shebang, PT_
// variables or stdin JSON) and checks its exit code and JSON output.
func TestExampleScripts(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("POSIX sh tasks")
	}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	absModules, err := filepath.Abs(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		task     string
		env      []string
		stdin    string
		wantExit int
		want     map[string]any // expected keys of the output object (nil: only check it is one)
	}{
		{task: "hello", env: []string{"PT_name=world"}, want: map[string]any{"greeting": "hello world"}},
		{task: "hello", env: []string{`PT_name=a "quoted"\ name`, "PT_loud=true"}, want: map[string]any{"greeting": `HELLO A "QUOTED"\ NAME`}},
		{task: "sysinfo"},
		{task: "fail", wantExit: 3},
		{task: "sleep", env: []string{"PT_seconds=0"}, want: map[string]any{"slept": 0.0, "noop": false}},
		{task: "sleep", env: []string{"PT_seconds=30", "PT__noop=true"}, want: map[string]any{"slept": 0.0, "noop": true, "would_sleep": 30.0}},
		{task: "sleep", stdin: `{"seconds": 0, "_task": "demo::sleep"}`, want: map[string]any{"slept": 0.0, "noop": false}},
		{task: "multi", env: []string{"PT__installdir=" + absModules, "PT_message=hi"}, want: map[string]any{"message": "hi"}},
		{task: "secret", env: []string{"PT_password=hunter2"}, want: map[string]any{"password_length": 7.0}},
	}
	for _, tc := range tests {
		t.Run(tc.task, func(t *testing.T) {
			cmd := exec.Command(filepath.Join(absModules, "demo", "tasks", tc.task+".sh"))
			cmd.Env = append(os.Environ(), tc.env...)
			cmd.Stdin = bytes.NewBufferString(tc.stdin)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			exit := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				exit = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if exit != tc.wantExit {
				t.Fatalf("exit %d, want %d; stderr %s", exit, tc.wantExit, stderr.String())
			}
			if tc.wantExit != 0 {
				if stderr.Len() == 0 {
					t.Error("failing task wrote nothing to stderr")
				}
				return
			}
			var out map[string]any
			if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
				t.Fatalf("stdout %q is not a JSON object: %v", stdout.String(), err)
			}
			if len(out) == 0 {
				t.Errorf("empty output object")
			}
			for k, v := range tc.want {
				if out[k] != v {
					t.Errorf("%s = %#v, want %#v (output %s)", k, out[k], v, stdout.String())
				}
			}
		})
	}
}
