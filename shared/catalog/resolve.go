package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/baton-run/baton/shared/tasks"
)

// errNoModule means a module directory does not exist in the environment.
var errNoModule = errors.New("no such module")

// fileRef locates one file of a task: rel is a slash-separated path inside module's directory.
type fileRef struct {
	filename string
	module   string
	rel      string
}

// validName reports whether s is a valid module or (unqualified) task name.
func validName(s string) bool { return !strings.Contains(s, ":") && tasks.ValidTaskName(s) }

// rootSet opens each module directory of one modules directory once, as an os.Root so that
// no path (through "..", or a symlink) can lead outside the module.
type rootSet struct {
	dir   string
	roots map[string]*os.Root
}

func newRootSet(dir string) *rootSet { return &rootSet{dir: dir, roots: map[string]*os.Root{}} }

func (rs *rootSet) get(module string) (*os.Root, error) {
	if r, ok := rs.roots[module]; ok {
		return r, nil
	}
	if !validName(module) {
		return nil, fmt.Errorf("module %q: %w", module, errNoModule)
	}
	p := filepath.Join(rs.dir, module)
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.IsDir()) {
		return nil, fmt.Errorf("module %q: %w", module, errNoModule)
	}
	if err != nil {
		return nil, fmt.Errorf("module %q: %w", module, err)
	}
	r, err := os.OpenRoot(p)
	if err != nil {
		return nil, fmt.Errorf("module %q: %w", module, err)
	}
	rs.roots[module] = r
	return r, nil
}

func (rs *rootSet) path(ref fileRef) string {
	return filepath.Join(rs.dir, ref.module, filepath.FromSlash(ref.rel))
}

func (rs *rootSet) close() {
	for _, r := range rs.roots {
		r.Close()
	}
}

// moduleNames lists the module directories of a modules directory, sorted.
func moduleNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read modules: %w", err)
	}
	var out []string
	for _, e := range entries {
		if !validName(e.Name()) {
			continue
		}
		if fi, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && fi.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// splitTaskFile splits a file name in <module>/tasks into task name and extension.
func splitTaskFile(name string) (stem, ext string) {
	ext = path.Ext(name)
	return strings.TrimSuffix(name, ext), ext
}

// taskNames lists the task names (without module) defined by files in <module>/tasks, sorted.
func taskNames(rs *rootSet, module string) ([]string, error) {
	root, err := rs.get(module)
	if err != nil {
		if errors.Is(err, errNoModule) {
			return nil, fmt.Errorf("%w: %w", err, fs.ErrNotExist)
		}
		return nil, err
	}
	entries, err := fs.ReadDir(root.FS(), "tasks")
	if err != nil {
		return nil, fmt.Errorf("module %s: read tasks: %w", module, err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		stem, ext := splitTaskFile(e.Name())
		if ext == ".md" || ext == ".conf" || !validName(stem) {
			continue
		}
		if !slices.Contains(out, stem) {
			out = append(out, stem)
		}
	}
	slices.Sort(out)
	return out, nil
}

// resolveTask reads a task's metadata and works out its file set without reading the files.
// The returned Task has no Files; refs lists them in order.
func resolveTask(rs *rootSet, env, name string) (Task, []fileRef, error) {
	module, task, err := tasks.SplitTaskName(name)
	if err != nil {
		return Task{}, nil, fmt.Errorf("%w: %w", ErrUnknownTask, err)
	}
	root, err := rs.get(module)
	if errors.Is(err, errNoModule) {
		return Task{}, nil, fmt.Errorf("%w: %w", ErrUnknownTask, err)
	}
	if err != nil {
		return Task{}, nil, err
	}
	entries, err := fs.ReadDir(root.FS(), "tasks")
	if errors.Is(err, fs.ErrNotExist) {
		return Task{}, nil, fmt.Errorf("%w: module %s has no tasks directory", ErrUnknownTask, module)
	}
	if err != nil {
		return Task{}, nil, fmt.Errorf("read %s/tasks: %w", module, err)
	}
	var metaFile string
	var implFiles []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		stem, ext := splitTaskFile(e.Name())
		if stem != task {
			continue
		}
		switch ext {
		case ".json":
			metaFile = e.Name()
		case ".md", ".conf":
		default:
			implFiles = append(implFiles, e.Name())
		}
	}
	if metaFile == "" && len(implFiles) == 0 {
		return Task{}, nil, fmt.Errorf("%w: no %s/tasks/%s.* files", ErrUnknownTask, module, task)
	}

	t := Task{Name: qualify(module, task), Module: module, Environment: env, RawMetadata: json.RawMessage(`{}`)}
	if metaFile != "" {
		raw, err := fs.ReadFile(root.FS(), "tasks/"+metaFile)
		if err != nil {
			return Task{}, nil, fmt.Errorf("read metadata %s/tasks/%s: %w", module, metaFile, err)
		}
		md, err := tasks.ParseMetadata(raw)
		if err != nil {
			return Task{}, nil, fmt.Errorf("%w: metadata %s/tasks/%s: %w", ErrInvalidTask, module, metaFile, err)
		}
		t.Metadata, t.RawMetadata = md, json.RawMessage(raw)
	}

	var refs []fileRef
	add := func(r fileRef) {
		if !slices.ContainsFunc(refs, func(o fileRef) bool { return o.filename == r.filename }) {
			refs = append(refs, r)
		}
	}
	if len(t.Metadata.Implementations) == 0 {
		switch len(implFiles) {
		case 0:
			return Task{}, nil, fmt.Errorf("%w: no implementation file %s/tasks/%s.<ext> and no implementations in metadata", ErrInvalidTask, module, task)
		case 1:
		default:
			return Task{}, nil, fmt.Errorf("%w: several implementation files (%s) and no implementations in metadata to choose between them", ErrInvalidTask, strings.Join(implFiles, ", "))
		}
		ref, err := implRef(root, module, implFiles[0])
		if err != nil {
			return Task{}, nil, fmt.Errorf("%w: %w", ErrInvalidTask, err)
		}
		add(ref)
	} else {
		for _, impl := range t.Metadata.Implementations {
			ref, err := implRef(root, module, impl.Name)
			if err != nil {
				return Task{}, nil, fmt.Errorf("%w: implementation %q: %w", ErrInvalidTask, impl.Name, err)
			}
			add(ref)
		}
	}
	entriesSeen := []string{}
	extra := slices.Clone(t.Metadata.Files)
	for _, impl := range t.Metadata.Implementations {
		extra = append(extra, impl.Files...)
	}
	for _, entry := range extra {
		if slices.Contains(entriesSeen, entry) {
			continue
		}
		entriesSeen = append(entriesSeen, entry)
		more, err := expandEntry(rs, entry)
		if err != nil {
			return Task{}, nil, fmt.Errorf("%w: files entry %q: %w", ErrInvalidTask, entry, err)
		}
		for _, r := range more {
			add(r)
		}
	}
	return t, refs, nil
}

// implRef checks that name is a regular file directly in <module>/tasks.
func implRef(root *os.Root, module, name string) (fileRef, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		return fileRef{}, fmt.Errorf("%q is not a file name in %s/tasks", name, module)
	}
	rel := "tasks/" + name
	fi, err := root.Stat(rel)
	if err != nil {
		return fileRef{}, fmt.Errorf("%s/%s: %w", module, rel, err)
	}
	if !fi.Mode().IsRegular() {
		return fileRef{}, fmt.Errorf("%s/%s is not a regular file", module, rel)
	}
	return fileRef{filename: name, module: module, rel: rel}, nil
}

var extraDirs = []string{"files", "lib", "scripts", "tasks"}

// expandEntry resolves one metadata "files" entry: "<module>/{files,lib,scripts,tasks}/path",
// or a directory when it ends in "/" (every regular file below it, sorted).
func expandEntry(rs *rootSet, entry string) ([]fileRef, error) {
	if entry == "" || strings.HasPrefix(entry, "/") || strings.Contains(entry, `\`) {
		return nil, errors.New("must be a relative path with / separators")
	}
	isDir := strings.HasSuffix(entry, "/")
	segs := strings.Split(strings.TrimSuffix(entry, "/"), "/")
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return nil, errors.New("must not contain empty, . or .. path segments")
		}
	}
	if len(segs) < 2 || !slices.Contains(extraDirs, segs[1]) || (!isDir && len(segs) < 3) {
		return nil, errors.New("must be <module>/{files,lib,scripts,tasks}/<path>")
	}
	module := segs[0]
	root, err := rs.get(module)
	if err != nil {
		return nil, err
	}
	rel := strings.Join(segs[1:], "/")
	fi, err := root.Stat(rel)
	if err != nil {
		return nil, err
	}
	if !isDir {
		if !fi.Mode().IsRegular() {
			return nil, errors.New("not a regular file (directory entries end in /)")
		}
		return []fileRef{{filename: entry, module: module, rel: rel}}, nil
	}
	if !fi.IsDir() {
		return nil, errors.New("not a directory")
	}
	var out []fileRef
	err = fs.WalkDir(root.FS(), rel, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			fi, err := root.Stat(p)
			if err != nil {
				return err
			}
			if !fi.Mode().IsRegular() {
				return nil // symlinked directories are not followed
			}
		case !d.Type().IsRegular():
			return nil
		}
		out = append(out, fileRef{filename: module + "/" + p, module: module, rel: p})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b fileRef) int { return strings.Compare(a.filename, b.filename) })
	return out, nil
}
