package catalog

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestTaskCache checks that a resolved task is used again while its files stay as they were,
// and that every change to what it was resolved from is seen: an edited file, edited
// metadata, a file added or removed next to it, a file replaced by a symlink out of its
// module, the module removed.
func TestTaskCache(t *testing.T) {
	const meta = `{"description": "one"}`
	c, dir := newTestCatalog(t, map[string]string{
		"mymod/tasks/t.sh":           shellTask,
		"mymod/tasks/t.json":         meta,
		"mymod/tasks/bare.sh":        shellTask,
		"mymod/files/helper.sh":      "#!/bin/sh\n",
		"mymod/tasks/withfiles.sh":   shellTask,
		"mymod/tasks/withfiles.json": `{"files": ["mymod/files/helper.sh"]}`,
		"outside/secret.sh":          "#!/bin/sh\necho secret\n",
	})
	ctx := t.Context()
	// Files written just now are "racy" (modified within racyWindow): not kept.
	cached := func(name string) bool {
		_, ok := c.tasks.get("production", name)
		return ok
	}
	task := func(name string) Task {
		t.Helper()
		got, err := c.Task(ctx, "production", name)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	task("mymod::t")
	if cached("mymod::t") {
		t.Fatal("a task whose files were modified a moment ago was kept")
	}
	// Every path an hour old from here on; later gives a path a modification time of its
	// own, after every one before and still long past (on a file system with coarse
	// timestamps, two changes within one tick look the same).
	tick := time.Now().Add(-time.Hour)
	if err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, tick, tick)
	}); err != nil {
		t.Fatal(err)
	}
	later := func(path string) {
		t.Helper()
		tick = tick.Add(time.Second)
		if err := os.Chtimes(path, tick, tick); err != nil {
			t.Fatal(err)
		}
	}

	first := task("mymod::t")
	if !cached("mymod::t") {
		t.Fatal("a resolved task was not kept")
	}
	again := task("mymod::t")
	if again.Files[0] != first.Files[0] || again.Metadata.Description != "one" {
		t.Fatalf("cached task %+v, first %+v", again, first)
	}
	again.Files[0].SHA256 = "changed by a caller"
	if task("mymod::t").Files[0].SHA256 != first.Files[0].SHA256 {
		t.Fatal("a caller's change to its copy reached the cache")
	}
	task("mymod::withfiles")
	if cached("mymod::withfiles") {
		t.Error("a task with metadata files was kept (its directories are not checked)")
	}

	// An edited implementation file.
	p := filepath.Join(dir, "mymod/tasks/t.sh")
	edited := "#!/bin/sh\necho '{\"edited\": true}'\n"
	if err := os.WriteFile(p, []byte(edited), 0o755); err != nil {
		t.Fatal(err)
	}
	later(p)
	if got := task("mymod::t").Files[0].SHA256; got != sum(edited) {
		t.Fatalf("after an edit: sha %s, want %s", got, sum(edited))
	}
	// Edited metadata, same size.
	mp := filepath.Join(dir, "mymod/tasks/t.json")
	if err := os.WriteFile(mp, []byte(`{"description": "two"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	later(mp)
	if got := task("mymod::t").Metadata.Description; got != "two" {
		t.Fatalf("after a metadata edit: description %q", got)
	}
	// A second implementation next to it, without metadata to choose: refused.
	task("mymod::bare")
	tasksDir := filepath.Join(dir, "mymod/tasks")
	writeTree(t, dir, map[string]string{"mymod/tasks/bare.py": "print('{}')\n"})
	later(tasksDir)
	if _, err := c.Task(ctx, "production", "mymod::bare"); !errors.Is(err, ErrInvalidTask) {
		t.Fatalf("with two implementation files: %v, want ErrInvalidTask", err)
	}
	if err := os.Remove(filepath.Join(dir, "mymod/tasks/bare.py")); err != nil {
		t.Fatal(err)
	}
	later(tasksDir)
	task("mymod::bare")
	// The file replaced by a symlink out of the module: refused, as on first resolution.
	if err := os.Remove(filepath.Join(dir, "mymod/tasks/bare.sh")); err != nil {
		t.Fatal(err)
	}
	symlink(t, filepath.Join(dir, "outside/secret.sh"), filepath.Join(dir, "mymod/tasks/bare.sh"))
	later(tasksDir)
	if _, err := c.Task(ctx, "production", "mymod::bare"); err == nil {
		t.Fatal("a task file linked out of its module was served from the cache")
	}
	// The task removed.
	for _, f := range []string{"t.sh", "t.json"} {
		if err := os.Remove(filepath.Join(tasksDir, f)); err != nil {
			t.Fatal(err)
		}
	}
	later(tasksDir)
	if _, err := c.Task(ctx, "production", "mymod::t"); !errors.Is(err, ErrUnknownTask) {
		t.Fatalf("after removal: %v, want ErrUnknownTask", err)
	}
}
