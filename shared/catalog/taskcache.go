package catalog

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/baton-run/baton/shared/tasks"
)

// taskCache keeps resolved tasks while the files they came from stay as they were, so that
// submitting a job does not read the module's tasks directory, read and parse the metadata
// and open every file again (about a quarter of a millisecond per job on the round trip of
// a one-node job). A task is used again only when every path it was resolved from still
// names the same file (device and inode) with the same type, size and modification time:
// the module's directory, its tasks directory (adding or removing a file there changes its
// modification time), the metadata file (or its absence), and each task file. Tasks whose
// metadata names files of their own ("files", implementation "files") are resolved every
// time: their directory entries would need every directory below them checked. Nor is a task
// kept while one of its paths was modified in the last racyWindow.
type taskCache struct {
	mu sync.Mutex
	m  map[string]cachedTask // environment + "\x00" + task name
}

type cachedTask struct {
	task   Task
	checks []pathCheck
}

// pathCheck is what a path named when a task was resolved: its FileInfo (following
// symlinks), or nil when nothing was there.
type pathCheck struct {
	path string
	fi   fs.FileInfo
}

const maxCachedTasks = 1024

// racyWindow: a path modified less than this before it was looked at may change again within
// the same timestamp tick (file systems and kernels with coarse timestamps), unseen by the
// checks, as git's "racily clean" entries; a task resolved from such a path is not kept.
const racyWindow = 2 * time.Second

// racy reports whether any path in checks was modified within racyWindow of now (or after).
func racy(checks []pathCheck, now time.Time) bool {
	for _, c := range checks {
		if c.fi != nil && c.fi.ModTime().After(now.Add(-racyWindow)) {
			return true
		}
	}
	return false
}

func newTaskCache() *taskCache { return &taskCache{m: map[string]cachedTask{}} }

func taskKey(env, name string) string { return env + "\x00" + name }

// get returns the cached task for (env, name) if every path it was resolved from is unchanged.
// The task is shared with the cache apart from Files: callers must not modify its Metadata or
// RawMetadata (none does: they read them).
func (c *taskCache) get(env, name string) (Task, bool) {
	c.mu.Lock()
	e, ok := c.m[taskKey(env, name)]
	c.mu.Unlock()
	if !ok || !unchanged(e.checks) {
		return Task{}, false
	}
	t := e.task
	t.Files = slices.Clone(e.task.Files)
	return t, true
}

func (c *taskCache) put(env, name string, t Task, checks []pathCheck) {
	t.Files = slices.Clone(t.Files)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedTasks {
		clear(c.m)
	}
	c.m[taskKey(env, name)] = cachedTask{task: t, checks: checks}
}

// look records what each path names now.
func look(paths []string) []pathCheck {
	out := make([]pathCheck, len(paths))
	for i, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			fi = nil // absent, or unreadable: either way compared as nothing there
		}
		out[i] = pathCheck{path: p, fi: fi}
	}
	return out
}

// unchanged reports whether every path still names what it named.
func unchanged(checks []pathCheck) bool {
	for _, c := range checks {
		fi, err := os.Stat(c.path)
		if err != nil {
			if c.fi != nil || !errors.Is(err, fs.ErrNotExist) {
				return false
			}
			continue
		}
		if !sameFile(c.fi, fi) {
			return false
		}
	}
	return true
}

// sameFile reports whether a and b describe the same file, unmodified.
func sameFile(a, b fs.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.Mode() == b.Mode() &&
		a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// taskPaths are the paths task name of modules directory dir is resolved from, apart from
// its files: the module, its tasks directory and its metadata file.
func taskPaths(dir, name string) ([]string, bool) {
	module, task, err := tasks.SplitTaskName(name)
	if err != nil || !validName(module) {
		return nil, false
	}
	m := filepath.Join(dir, module)
	return []string{m, filepath.Join(m, "tasks"), filepath.Join(m, "tasks", task+".json")}, true
}

// cacheable reports whether t's files are all its own module's task files.
func cacheable(t Task) bool {
	if len(t.Metadata.Files) > 0 {
		return false
	}
	for _, impl := range t.Metadata.Implementations {
		if len(impl.Files) > 0 {
			return false
		}
	}
	for _, f := range t.Files {
		if strings.ContainsAny(f.Filename, `/\`) {
			return false
		}
	}
	return true
}
