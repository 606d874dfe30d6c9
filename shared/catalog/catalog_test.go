package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/tasks"
)

// writeTree creates files (slash paths relative to dir); .sh and .ps1 files are executable.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") || strings.HasSuffix(name, ".ps1") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on windows")
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func newTestCatalog(t *testing.T, files map[string]string, opts ...Option) (*Local, string) {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, files)
	c, err := NewLocal(map[string]string{"production": dir}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c, dir
}

const shellTask = "#!/bin/sh\necho '{}'\n"

func TestTask(t *testing.T) {
	tree := map[string]string{
		"mymod/tasks/hello.sh":   shellTask,
		"mymod/tasks/hello.json": `{"description":"says hello","input_method":"environment","parameters":{"name":{"type":"String[1]"}}}`,
		"mymod/tasks/hello.md":   "docs are not an implementation",
		"mymod/tasks/init.sh":    "#!/bin/sh\necho init\n",
		"mymod/tasks/bare.py":    "print('{}')\n",
		"mymod/tasks/impls.json": `{"implementations":[
			{"name":"impls.sh","requirements":["shell"],"files":["mymod/lib/x.sh"]},
			{"name":"impls.ps1","requirements":["powershell"],"input_method":"powershell"}]}`,
		"mymod/tasks/impls.sh":  "#!/bin/sh\n",
		"mymod/tasks/impls.ps1": "param($a)\n",
		"mymod/tasks/multi.json": `{"files":["mymod/files/lib.sh","mymod/files/dir/","othermod/scripts/o.sh","mymod/files/lib.sh"],
			"implementations":[{"name":"multi.sh","files":["mymod/files/dir/b.txt","mymod/tasks/helper.sh"]}]}`,
		"mymod/tasks/multi.sh":          shellTask,
		"mymod/tasks/helper.sh":         "#!/bin/sh\n",
		"mymod/files/lib.sh":            "lib() { :; }\n",
		"mymod/files/dir/b.txt":         "b",
		"mymod/files/dir/a.txt":         "a",
		"mymod/files/dir/sub/c.txt":     "c",
		"mymod/lib/x.sh":                "x",
		"othermod/scripts/o.sh":         "o",
		"othermod/tasks/nothing.README": "",
	}
	type wantFile struct{ filename, body string }
	tests := []struct {
		name      string
		task      string
		wantName  string
		wantFiles []wantFile
		check     func(t *testing.T, task Task)
	}{
		{
			name: "single file with metadata", task: "mymod::hello", wantName: "mymod::hello",
			wantFiles: []wantFile{{"hello.sh", shellTask}},
			check: func(t *testing.T, task Task) {
				if task.Metadata.Description != "says hello" || task.Metadata.InputMethod != "environment" {
					t.Errorf("metadata = %+v", task.Metadata)
				}
				if _, ok := task.Metadata.Parameters["name"]; !ok {
					t.Errorf("parameters = %+v", task.Metadata.Parameters)
				}
				if !strings.Contains(string(task.RawMetadata), `"says hello"`) {
					t.Errorf("raw metadata = %s", task.RawMetadata)
				}
			},
		},
		{
			name: "init task by module name", task: "mymod", wantName: "mymod",
			wantFiles: []wantFile{{"init.sh", "#!/bin/sh\necho init\n"}},
		},
		{
			name: "init task by explicit name", task: "mymod::init", wantName: "mymod",
			wantFiles: []wantFile{{"init.sh", "#!/bin/sh\necho init\n"}},
		},
		{
			name: "no metadata file", task: "mymod::bare", wantName: "mymod::bare",
			wantFiles: []wantFile{{"bare.py", "print('{}')\n"}},
			check: func(t *testing.T, task Task) {
				if string(task.RawMetadata) != "{}" || task.Metadata.Parameters != nil || len(task.Metadata.Implementations) != 0 {
					t.Errorf("metadata = %+v raw %s", task.Metadata, task.RawMetadata)
				}
			},
		},
		{
			name: "implementations with requirements", task: "mymod::impls", wantName: "mymod::impls",
			wantFiles: []wantFile{{"impls.sh", "#!/bin/sh\n"}, {"impls.ps1", "param($a)\n"}, {"mymod/lib/x.sh", "x"}},
			check: func(t *testing.T, task Task) {
				names := []string{}
				for _, f := range task.Files {
					names = append(names, f.Filename)
				}
				for _, tc := range []struct{ feature, impl, input string }{
					{"shell", "impls.sh", tasks.InputBoth},
					{"powershell", "impls.ps1", tasks.InputPowershell},
				} {
					impl, err := tasks.SelectImplementation(task.Metadata, []string{"puppet-agent", tc.feature}, names)
					if err != nil || impl.Name != tc.impl || impl.InputMethod != tc.input {
						t.Errorf("%s: implementation %+v, %v; want %s/%s", tc.feature, impl, err, tc.impl, tc.input)
					}
				}
			},
		},
		{
			name: "multi-file task with a directory entry", task: "mymod::multi", wantName: "mymod::multi",
			wantFiles: []wantFile{
				{"multi.sh", shellTask},
				{"mymod/files/lib.sh", "lib() { :; }\n"},
				{"mymod/files/dir/a.txt", "a"},
				{"mymod/files/dir/b.txt", "b"},
				{"mymod/files/dir/sub/c.txt", "c"},
				{"othermod/scripts/o.sh", "o"},
				{"mymod/tasks/helper.sh", "#!/bin/sh\n"},
			},
		},
	}
	c, dir := newTestCatalog(t, tree)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task, err := c.Task(context.Background(), "production", tc.task)
			if err != nil {
				t.Fatalf("Task: %v", err)
			}
			if task.Name != tc.wantName || task.Environment != "production" || task.Module != strings.Split(tc.wantName, "::")[0] {
				t.Errorf("name/env/module = %q/%q/%q", task.Name, task.Environment, task.Module)
			}
			if len(task.Files) != len(tc.wantFiles) {
				t.Fatalf("files = %+v, want %d files", task.Files, len(tc.wantFiles))
			}
			for i, w := range tc.wantFiles {
				f := task.Files[i]
				if f.Filename != w.filename || f.SHA256 != sum(w.body) || f.SizeBytes != int64(len(w.body)) {
					t.Errorf("file %d = %+v, want %s with sha %s size %d", i, f, w.filename, sum(w.body), len(w.body))
				}
				b, err := os.ReadFile(f.Path)
				if err != nil || string(b) != w.body || !filepath.IsAbs(f.Path) || !strings.HasPrefix(f.Path, dir) {
					t.Errorf("file %d path %s: %q, %v", i, f.Path, b, err)
				}
			}
			if tc.check != nil {
				tc.check(t, task)
			}
		})
	}
}

func TestTaskErrors(t *testing.T) {
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"secret.txt": "top secret", "dir/s.txt": "s"})
	tests := []struct {
		name    string
		env     string
		task    string
		tree    map[string]string
		links   map[string]string // link (relative to modules dir) -> target (absolute or relative)
		wantErr error
		wantMsg string
	}{
		{name: "unknown environment", env: "staging", task: "mymod::t", wantErr: ErrUnknownEnvironment},
		{name: "unknown module", task: "nomod::t", wantErr: ErrUnknownTask},
		{name: "unknown task", task: "mymod::nope", wantErr: ErrUnknownTask},
		{name: "module without tasks dir", task: "emptymod::t", tree: map[string]string{"emptymod/files/x": ""}, wantErr: ErrUnknownTask},
		{name: "uppercase name", task: "MyMod::t", wantErr: ErrUnknownTask},
		{name: "too many separators", task: "mymod::t::u", wantErr: ErrUnknownTask},
		{name: "empty name", task: "", wantErr: ErrUnknownTask},
		{name: "traversal in name", task: "../mymod", wantErr: ErrUnknownTask},
		{name: "bad json", task: "mymod::bad", tree: map[string]string{"mymod/tasks/bad.json": `{"description":`, "mymod/tasks/bad.sh": shellTask}, wantErr: ErrInvalidTask},
		{name: "metadata not an object", task: "mymod::bad", tree: map[string]string{"mymod/tasks/bad.json": `["x"]`, "mymod/tasks/bad.sh": shellTask}, wantErr: ErrInvalidTask},
		{name: "metadata null", task: "mymod::bad", tree: map[string]string{"mymod/tasks/bad.json": `null`, "mymod/tasks/bad.sh": shellTask}, wantErr: ErrInvalidTask},
		{name: "wrong field type", task: "mymod::bad", tree: map[string]string{"mymod/tasks/bad.json": `{"parameters":[]}`, "mymod/tasks/bad.sh": shellTask}, wantErr: ErrInvalidTask},
		{name: "unsupported version", task: "mymod::bad", tree: map[string]string{"mymod/tasks/bad.json": `{"puppet_task_version":2}`, "mymod/tasks/bad.sh": shellTask}, wantErr: ErrInvalidTask},
		{name: "bad input method", task: "mymod::bad", tree: map[string]string{"mymod/tasks/bad.json": `{"input_method":"argv"}`, "mymod/tasks/bad.sh": shellTask}, wantErr: ErrInvalidTask},
		{name: "metadata without implementation file", task: "mymod::t", tree: map[string]string{"mymod/tasks/t.json": `{}`}, wantErr: ErrInvalidTask, wantMsg: "no implementation file"},
		{name: "several implementation files", task: "mymod::t", tree: map[string]string{"mymod/tasks/t.sh": "", "mymod/tasks/t.py": ""}, wantErr: ErrInvalidTask, wantMsg: "several implementation files"},
		{name: "implementation file missing", task: "mymod::t", tree: map[string]string{"mymod/tasks/t.json": `{"implementations":[{"name":"t.sh"},{"name":"t.ps1"}]}`, "mymod/tasks/t.sh": ""}, wantErr: ErrInvalidTask, wantMsg: "t.ps1"},
		{name: "implementation name with path", task: "mymod::t", tree: map[string]string{"mymod/tasks/t.json": `{"implementations":[{"name":"../files/t.sh"}]}`, "mymod/files/t.sh": ""}, wantErr: ErrInvalidTask},
		{name: "implementation without name", task: "mymod::t", tree: map[string]string{"mymod/tasks/t.json": `{"implementations":[{"requirements":["shell"]}]}`}, wantErr: ErrInvalidTask},
	}
	for _, entry := range []string{
		"../secret.txt",
		"mymod/files/../../secret.txt",
		"mymod/files/../tasks/t.sh",
		"/etc/passwd",
		`mymod\files\x`,
		"mymod//files/x",
		"mymod/./files/x",
		"mymod/manifests/init.pp",
		"mymod/files",
		"nomod/files/x",
		"Bad/files/x",
		"mymod/files/missing",
		"mymod/files/sub",
		"mymod/files/x/",
		"",
	} {
		tests = append(tests, struct {
			name    string
			env     string
			task    string
			tree    map[string]string
			links   map[string]string
			wantErr error
			wantMsg string
		}{
			name: "files entry " + entry, task: "mymod::t", wantErr: ErrInvalidTask,
			tree: map[string]string{
				"mymod/tasks/t.json":      `{"files":["` + strings.ReplaceAll(entry, `\`, `\\`) + `"]}`,
				"mymod/tasks/t.sh":        shellTask,
				"mymod/files/x":           "x",
				"mymod/files/sub/y":       "y",
				"mymod/manifests/init.pp": "",
			},
		})
	}
	tests = append(tests, []struct {
		name    string
		env     string
		task    string
		tree    map[string]string
		links   map[string]string
		wantErr error
		wantMsg string
	}{
		{
			name: "symlinked file escaping the module", task: "mymod::t", wantErr: ErrInvalidTask,
			tree:  map[string]string{"mymod/tasks/t.json": `{"files":["mymod/files/link"]}`, "mymod/tasks/t.sh": shellTask},
			links: map[string]string{"mymod/files/link": filepath.Join(outside, "secret.txt")},
		},
		{
			name: "relative symlink escaping the module", task: "mymod::t", wantErr: ErrInvalidTask,
			tree:  map[string]string{"mymod/tasks/t.json": `{"files":["mymod/files/link"]}`, "mymod/tasks/t.sh": shellTask, "secret.txt": "s"},
			links: map[string]string{"mymod/files/link": "../../secret.txt"},
		},
		{
			name: "symlink escaping inside a directory entry", task: "mymod::t", wantErr: ErrInvalidTask,
			tree:  map[string]string{"mymod/tasks/t.json": `{"files":["mymod/files/"]}`, "mymod/tasks/t.sh": shellTask, "mymod/files/ok": "ok"},
			links: map[string]string{"mymod/files/zlink": filepath.Join(outside, "secret.txt")},
		},
		{
			name: "symlinked directory escaping the module", task: "mymod::t", wantErr: ErrInvalidTask,
			tree:  map[string]string{"mymod/tasks/t.json": `{"files":["mymod/files/d/"]}`, "mymod/tasks/t.sh": shellTask},
			links: map[string]string{"mymod/files/d": filepath.Join(outside, "dir")},
		},
		{
			name: "implementation symlink escaping the module", task: "mymod::t", wantErr: ErrInvalidTask,
			links: map[string]string{"mymod/tasks/t.sh": filepath.Join(outside, "secret.txt")},
		},
	}...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tree := map[string]string{"mymod/tasks/other.sh": shellTask}
			for k, v := range tc.tree {
				tree[k] = v
			}
			c, dir := newTestCatalog(t, tree)
			for link, target := range tc.links {
				symlink(t, target, filepath.Join(dir, filepath.FromSlash(link)))
			}
			env := tc.env
			if env == "" {
				env = "production"
			}
			task, err := c.Task(context.Background(), env, tc.task)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Task = %+v, %v; want %v", task, err, tc.wantErr)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tc.wantMsg)
			}
		})
	}
}

func TestSymlinksInsideModule(t *testing.T) {
	c, dir := newTestCatalog(t, map[string]string{
		"mymod/tasks/t.json":  `{"files":["mymod/files/link","mymod/lib/"]}`,
		"mymod/tasks/real.sh": shellTask,
		"mymod/files/real":    "real",
		"mymod/lib/a":         "a",
		"mymod/scripts/d/b":   "b",
	})
	symlink(t, "real.sh", filepath.Join(dir, "mymod/tasks/t.sh"))
	symlink(t, "real", filepath.Join(dir, "mymod/files/link"))
	symlink(t, "../files/real", filepath.Join(dir, "mymod/lib/flink"))
	symlink(t, "../scripts/d", filepath.Join(dir, "mymod/lib/dlink")) // directories behind links are not walked
	task, err := c.Task(context.Background(), "production", "mymod::t")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ name, sum string }{
		{"t.sh", sum(shellTask)}, {"mymod/files/link", sum("real")}, {"mymod/lib/a", sum("a")}, {"mymod/lib/flink", sum("real")},
	}
	if len(task.Files) != len(want) {
		t.Fatalf("files = %+v", task.Files)
	}
	for i, w := range want {
		if task.Files[i].Filename != w.name || task.Files[i].SHA256 != w.sum {
			t.Errorf("file %d = %+v, want %s %s", i, task.Files[i], w.name, w.sum)
		}
	}
}

func TestTaskFileEdited(t *testing.T) {
	c, dir := newTestCatalog(t, map[string]string{"mymod/tasks/t.sh": "#!/bin/sh\necho one\n"})
	p := filepath.Join(dir, "mymod/tasks/t.sh")
	get := func() string {
		t.Helper()
		task, err := c.Task(context.Background(), "production", "mymod::t")
		if err != nil {
			t.Fatal(err)
		}
		return task.Files[0].SHA256
	}
	if got := get(); got != sum("#!/bin/sh\necho one\n") {
		t.Fatalf("sha = %s", got)
	}
	edited := "#!/bin/sh\necho two, edited\n"
	if err := os.WriteFile(p, []byte(edited), 0o755); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != sum(edited) {
		t.Fatalf("after edit sha = %s, want %s", got, sum(edited))
	}
}

// TestSumCacheKey shows that an unchanged (path, size, mtime) is not hashed again: a same-size
// rewrite with the old mtime restored still reports the cached sum, and a new mtime does not.
func TestSumCacheKey(t *testing.T) {
	c, dir := newTestCatalog(t, map[string]string{"mymod/tasks/t.sh": "aaaa"})
	p := filepath.Join(dir, "mymod/tasks/t.sh")
	get := func() string {
		t.Helper()
		task, err := c.Task(context.Background(), "production", "mymod::t")
		if err != nil {
			t.Fatal(err)
		}
		return task.Files[0].SHA256
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	first := get()
	if err := os.WriteFile(p, []byte("bbbb"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != first {
		t.Errorf("same size and mtime: sha = %s, want cached %s", got, first)
	}
	later := fi.ModTime().Add(time.Second)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != sum("bbbb") {
		t.Errorf("new mtime: sha = %s, want %s", got, sum("bbbb"))
	}
}

func TestList(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	c, _ := newTestCatalog(t, map[string]string{
		"zmod/tasks/init.sh":      shellTask,
		"amod/tasks/run.sh":       shellTask,
		"amod/tasks/run.json":     `{"description":"runs things"}`,
		"amod/tasks/hidden.sh":    shellTask,
		"amod/tasks/hidden.json":  `{"private":true,"description":"internal"}`,
		"amod/tasks/broken.sh":    shellTask,
		"amod/tasks/broken.json":  `{"description":`,
		"amod/tasks/orphan.json":  `{}`,
		"amod/tasks/README.md":    "not a task",
		"amod/tasks/Bad-Name.sh":  shellTask,
		"amod/tasks/sub/nested":   "not a task either",
		"notmod/README":           "module without tasks",
		"Upper/tasks/x.sh":        shellTask,
		"amod/files/unrelated.sh": shellTask,
	}, WithLogger(logger))
	got, err := c.List(context.Background(), "production")
	if err != nil {
		t.Fatal(err)
	}
	want := []Summary{
		{Name: "amod::hidden", Private: true, Description: "internal"},
		{Name: "amod::run", Description: "runs things"},
		{Name: "zmod"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("List = %+v\nwant %+v", got, want)
	}
	for _, skipped := range []string{"amod::broken", "amod::orphan"} {
		if !strings.Contains(logs.String(), skipped) {
			t.Errorf("log does not mention skipped %s:\n%s", skipped, logs.String())
		}
	}
	if _, err := c.List(context.Background(), "nope"); !errors.Is(err, ErrUnknownEnvironment) {
		t.Errorf("List(nope) error = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.List(ctx, "production"); !errors.Is(err, context.Canceled) {
		t.Errorf("List(canceled) error = %v", err)
	}
}

func TestOpen(t *testing.T) {
	c, _ := newTestCatalog(t, map[string]string{
		"mymod/tasks/t.sh":        shellTask,
		"mymod/tasks/t.json":      `{"files":["mymod/files/lib/","othermod/lib/o.rb"]}`,
		"mymod/tasks/broken.sh":   shellTask,
		"mymod/tasks/broken.json": `{"files":["mymod/files/secret.key"]}` + "garbage",
		"mymod/files/lib/l.sh":    "l",
		"mymod/files/secret.key":  "do not serve",
		"othermod/lib/o.rb":       "o",
		"othermod/tasks/x.sh":     shellTask,
	})
	ok := []struct{ module, filename, body string }{
		{"mymod", "t.sh", shellTask},
		{"mymod", "mymod/files/lib/l.sh", "l"},
		{"mymod", "othermod/lib/o.rb", "o"},
		{"othermod", "x.sh", shellTask},
	}
	for _, tc := range ok {
		t.Run("open "+tc.module+"/"+tc.filename, func(t *testing.T) {
			f, file, err := c.Open(context.Background(), "production", tc.module, tc.filename)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, len(tc.body)+1)
			n, _ := f.Read(b)
			if string(b[:n]) != tc.body || file.SHA256 != sum(tc.body) || file.SizeBytes != int64(len(tc.body)) || file.Filename != tc.filename {
				t.Errorf("read %q, file %+v", b[:n], file)
			}
		})
	}
	bad := []struct {
		env, module, filename string
		wantErr               error
	}{
		{"production", "mymod", "mymod/files/secret.key", ErrUnknownFile}, // exists, but only a broken task names it
		{"production", "mymod", "t.json", ErrUnknownFile},
		{"production", "mymod", "../mymod/tasks/t.sh", ErrUnknownFile},
		{"production", "mymod", "mymod/files/lib/../../files/secret.key", ErrUnknownFile},
		{"production", "mymod", "/etc/passwd", ErrUnknownFile},
		{"production", "othermod", "t.sh", ErrUnknownFile},
		{"production", "othermod", "othermod/lib/o.rb", ErrUnknownFile}, // not a file of any othermod task
		{"production", "nomod", "t.sh", ErrUnknownFile},
		{"production", "..", "mymod/tasks/t.sh", ErrUnknownFile},
		{"staging", "mymod", "t.sh", ErrUnknownEnvironment},
	}
	for _, tc := range bad {
		t.Run("refuse "+tc.env+"/"+tc.module+"/"+tc.filename, func(t *testing.T) {
			f, _, err := c.Open(context.Background(), tc.env, tc.module, tc.filename)
			if err == nil {
				f.Close()
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Open error = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestNewLocalAndEnvironments(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"production/modules/m/tasks/t.sh": shellTask,
		"dev_1/modules/m/tasks/t.sh":      shellTask,
		"nomodules/manifests/site.pp":     "",
		"Bad-Env/modules/m/tasks/t.sh":    shellTask,
		"afile":                           "",
	})
	envs, err := EnvironmentsFromDir(root)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewLocal(envs)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Environments(); !slices.Equal(got, []string{"dev_1", "production"}) {
		t.Errorf("Environments = %v", got)
	}
	if _, err := EnvironmentsFromDir(filepath.Join(root, "nomodules")); err == nil {
		t.Error("EnvironmentsFromDir without environments: no error")
	}
	for name, envs := range map[string]map[string]string{
		"none":         {},
		"missing dir":  {"production": filepath.Join(root, "missing")},
		"file":         {"production": filepath.Join(root, "afile")},
		"invalid name": {"Prod": filepath.Join(root, "production/modules")},
	} {
		if _, err := NewLocal(envs); err == nil {
			t.Errorf("NewLocal(%s): no error", name)
		}
	}
}

// TestExpandEntryRejects checks the catalog's own path checks on "files" entries, which hold
// even if metadata parsing let an entry through.
func TestExpandEntryRejects(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"mymod/files/x": "x", "mymod/files/sub/y": "y", "secret.txt": "s"})
	rs := newRootSet(dir)
	t.Cleanup(rs.close)
	for _, entry := range []string{
		"", "/etc/passwd", "../secret.txt", "mymod/files/../../secret.txt", "mymod/files/./x",
		"mymod//files/x", `mymod\files\x`, "mymod/manifests/x", "mymod/files", "mymod",
		"nomod/files/x", "Bad/files/x", "mymod/files/missing", "mymod/files/sub", "mymod/files/x/",
	} {
		t.Run(entry, func(t *testing.T) {
			if refs, err := expandEntry(rs, entry); err == nil {
				t.Errorf("expandEntry(%q) = %+v, want an error", entry, refs)
			}
		})
	}
	refs, err := expandEntry(rs, "mymod/files/")
	if err != nil || len(refs) != 2 || refs[0].filename != "mymod/files/sub/y" || refs[1].filename != "mymod/files/x" {
		t.Errorf("expandEntry(mymod/files/) = %+v, %v", refs, err)
	}
}
