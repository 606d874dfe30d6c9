package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/baton-run/baton/shared/tasks"
)

// Errors returned (wrapped) by the catalog; check them with errors.Is.
var (
	ErrUnknownEnvironment = errors.New("unknown environment")
	ErrUnknownTask        = errors.New("unknown task")
	ErrInvalidTask        = errors.New("invalid task")
	ErrUnknownFile        = errors.New("unknown file")
)

// envNameRE is Puppet's environment name rule.
var envNameRE = regexp.MustCompile(`^[a-z0-9_]+$`)

// File is one file of a task.
type File struct {
	// Filename is the name the agent installs the file under: the basename for an
	// implementation file ("init.sh"), the module-relative path for a file referenced by
	// metadata "files" ("mymod/files/lib.sh").
	Filename  string
	Path      string // absolute path on disk
	SHA256    string // lowercase hex
	SizeBytes int64
}

// Task is a task of an environment with its metadata and files.
type Task struct {
	Name        string // module::task, or module for init
	Module      string
	Environment string
	Metadata    tasks.Metadata
	RawMetadata json.RawMessage // the metadata file as written, {} when there is none
	Files       []File          // implementation files first, then the extra files
}

// Summary is a task as listed.
type Summary struct {
	Name        string
	Private     bool
	Description string
}

// Listed returns the tasks of all that a listing shows: like Bolt's `bolt task show`, tasks
// whose metadata says "private": true are left out unless includePrivate is set. Private
// tasks can still be looked up and run by name.
func Listed(all []Summary, includePrivate bool) []Summary {
	out := make([]Summary, 0, len(all))
	for _, s := range all {
		if includePrivate || !s.Private {
			out = append(out, s)
		}
	}
	return out
}

// Option configures a Local.
type Option func(*Local)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *Local) {
		if l != nil {
			c.logger = l
		}
	}
}

// Local is a catalog backed by a modules directory per environment. Tasks are read from disk
// on every call; SHA-256 sums are cached by (path, size, mtime). It is safe for concurrent use.
type Local struct {
	envs   map[string]string // environment -> absolute modules directory
	logger *slog.Logger
	sums   *sumCache
	tasks  *taskCache
}

// NewLocal returns a catalog for envs, a map of environment name to modules directory (a
// Puppet modulepath directory holding <module>/tasks/...).
func NewLocal(envs map[string]string, opts ...Option) (*Local, error) {
	if len(envs) == 0 {
		return nil, errors.New("new catalog: no environments")
	}
	c := &Local{
		envs:   make(map[string]string, len(envs)),
		logger: slog.New(slog.DiscardHandler),
		sums:   newSumCache(),
		tasks:  newTaskCache(),
	}
	for _, o := range opts {
		o(c)
	}
	c.logger = c.logger.With("component", "catalog")
	for env, dir := range envs {
		if !envNameRE.MatchString(env) {
			return nil, fmt.Errorf("new catalog: invalid environment name %q", env)
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("new catalog: environment %s: %w", env, err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("new catalog: environment %s: %w", env, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("new catalog: environment %s: %s is not a directory", env, abs)
		}
		c.envs[env] = abs
	}
	return c, nil
}

// EnvironmentsFromDir reads Puppet's environments layout: every <dir>/<env>/modules directory
// is an environment. Entries with invalid environment names or without modules are skipped.
func EnvironmentsFromDir(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read environments %s: %w", dir, err)
	}
	envs := map[string]string{}
	for _, e := range entries {
		if !envNameRE.MatchString(e.Name()) {
			continue
		}
		mods := filepath.Join(dir, e.Name(), "modules")
		if fi, err := os.Stat(mods); err == nil && fi.IsDir() {
			envs[e.Name()] = mods
		}
	}
	if len(envs) == 0 {
		return nil, fmt.Errorf("read environments %s: no <env>/modules directories", dir)
	}
	return envs, nil
}

// Environments returns the environment names, sorted.
func (c *Local) Environments() []string {
	out := make([]string, 0, len(c.envs))
	for env := range c.envs {
		out = append(out, env)
	}
	slices.Sort(out)
	return out
}

func (c *Local) modulesDir(env string) (string, error) {
	dir, ok := c.envs[env]
	if !ok {
		return "", fmt.Errorf("environment %q: %w", env, ErrUnknownEnvironment)
	}
	return dir, nil
}

// Task loads task name ("module::task" or "module") of env from disk, with the SHA-256 and
// size of each of its files.
func (c *Local) Task(ctx context.Context, env, name string) (Task, error) {
	dir, err := c.modulesDir(env)
	if err != nil {
		return Task{}, fmt.Errorf("load task %s: %w", name, err)
	}
	if t, ok := c.tasks.get(env, name); ok {
		return t, nil
	}
	// What the task is resolved from, looked at before and after: a change in between
	// (a file being edited) leaves nothing cached.
	paths, cache := taskPaths(dir, name)
	var before []pathCheck
	if cache {
		before = look(paths)
	}
	rs := newRootSet(dir)
	defer rs.close()
	t, refs, err := resolveTask(rs, env, name)
	if err != nil {
		return Task{}, fmt.Errorf("load task %s in %s: %w", name, env, err)
	}
	checks := before
	for _, ref := range refs {
		if err := ctx.Err(); err != nil {
			return Task{}, fmt.Errorf("load task %s in %s: %w", name, env, err)
		}
		f, file, fi, err := c.openRefInfo(rs, ref)
		if err != nil {
			return Task{}, fmt.Errorf("load task %s in %s: %w", t.Name, env, err)
		}
		f.Close()
		t.Files = append(t.Files, file)
		checks = append(checks, pathCheck{path: file.Path, fi: fi}) // the file that was hashed
	}
	if cache && cacheable(t) && unchanged(before) && !racy(checks, time.Now()) {
		c.tasks.put(env, name, t, slices.Clip(checks))
	}
	return t, nil
}

// List returns the tasks of env sorted by name, private ones included. Tasks that cannot be
// loaded (bad metadata, missing files) are logged and skipped.
func (c *Local) List(ctx context.Context, env string) ([]Summary, error) {
	dir, err := c.modulesDir(env)
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	mods, err := moduleNames(dir)
	if err != nil {
		return nil, fmt.Errorf("list tasks in %s: %w", env, err)
	}
	rs := newRootSet(dir)
	defer rs.close()
	var out []Summary
	for _, mod := range mods {
		names, err := taskNames(rs, mod)
		if errors.Is(err, fs.ErrNotExist) {
			// A module without tasks, such as the Forge's ruby_task_helper, whose files
			// other modules' tasks use.
			continue
		}
		if err != nil {
			c.logger.Warn("skipping module", "environment", env, "module", mod, "error", err)
			continue
		}
		for _, n := range names {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("list tasks in %s: %w", env, err)
			}
			t, _, err := resolveTask(rs, env, qualify(mod, n))
			if err != nil {
				c.logger.Warn("skipping task", "environment", env, "task", qualify(mod, n), "error", err)
				continue
			}
			out = append(out, Summary{Name: t.Name, Private: t.Metadata.Private, Description: t.Metadata.Description})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Open opens the file called filename (a Filename as in Task.Files) of one of the tasks of
// module in env. Only files in the file set of a loadable task of that module are opened;
// anything else is ErrUnknownFile. The caller closes the file, which is positioned at 0;
// File describes the opened file.
func (c *Local) Open(ctx context.Context, env, module, filename string) (*os.File, File, error) {
	dir, err := c.modulesDir(env)
	if err != nil {
		return nil, File{}, fmt.Errorf("open %s/%s: %w", module, filename, err)
	}
	if !validName(module) {
		return nil, File{}, fmt.Errorf("open %s/%s in %s: %w", module, filename, env, ErrUnknownFile)
	}
	rs := newRootSet(dir)
	defer rs.close()
	names, err := taskNames(rs, module)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, File{}, fmt.Errorf("open %s/%s in %s: %w", module, filename, env, ErrUnknownFile)
		}
		return nil, File{}, fmt.Errorf("open %s/%s in %s: %w", module, filename, env, err)
	}
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return nil, File{}, fmt.Errorf("open %s/%s in %s: %w", module, filename, env, err)
		}
		_, refs, err := resolveTask(rs, env, qualify(module, n))
		if err != nil {
			continue
		}
		for _, ref := range refs {
			if ref.filename != filename {
				continue
			}
			f, file, err := c.openRef(rs, ref)
			if err != nil {
				return nil, File{}, fmt.Errorf("open %s/%s in %s: %w", module, filename, env, err)
			}
			return f, file, nil
		}
	}
	return nil, File{}, fmt.Errorf("open %s/%s in %s: %w", module, filename, env, ErrUnknownFile)
}

func qualify(module, task string) string {
	if task == "init" {
		return module
	}
	return module + "::" + task
}
