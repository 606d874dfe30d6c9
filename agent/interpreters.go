package agent

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// Interpreters (Bolt's `interpreters` setting, same name and shape): a map of file extension
// to the interpreter that runs task files with that extension. Forge tasks written in Ruby
// start with `#!/opt/puppetlabs/puppet/bin/ruby`, which exists only with Puppet's own (AIO)
// packages; with Debian's puppet-agent package that shebang fails (exit 127), and the
// ".rb" mapping runs them with the Ruby Puppet runs on instead.
//
// A task file whose extension has a mapping is started as `interpreter file` (argv, never
// through a shell); any other file is started directly, by its shebang and exec bit.

// NormalizeInterpreters checks an interpreters map and returns it with every extension in
// its canonical form (".rb": keys are accepted with or without the leading dot, like Bolt).
// An empty interpreter removes the extension's mapping when merged (see MergeInterpreters).
func NormalizeInterpreters(m map[string]string) (map[string]string, error) {
	if m == nil {
		return nil, nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		ext, err := normalizeExt(k)
		if err != nil {
			return nil, err
		}
		if prev, dup := out[ext]; dup && prev != v {
			return nil, fmt.Errorf("interpreters: %q is given twice (%q and %q)", ext, prev, v)
		}
		if strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("interpreters: %s: bad interpreter path", ext)
		}
		out[ext] = strings.TrimSpace(v)
	}
	return out, nil
}

func normalizeExt(k string) (string, error) {
	ext := "." + strings.TrimPrefix(strings.TrimSpace(k), ".")
	if ext == "." || strings.ContainsAny(ext[1:], `./\ =,`) || strings.ContainsRune(ext, 0) {
		return "", fmt.Errorf("interpreters: %q is not a file extension (want e.g. .rb or rb)", k)
	}
	return ext, nil
}

// ParseInterpreters reads the flag/environment form of the setting:
// ".rb=/usr/bin/ruby,.py=/usr/bin/python3" (a repeated flag's values are joined with ",").
// "ext=" (no interpreter) removes a default mapping.
func ParseInterpreters(s string) (map[string]string, error) {
	m := map[string]string{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("interpreters: %q: want EXT=INTERPRETER, e.g. .rb=/usr/bin/ruby", item)
		}
		ext, err := normalizeExt(k)
		if err != nil {
			return nil, err
		}
		if prev, dup := m[ext]; dup && prev != strings.TrimSpace(v) {
			return nil, fmt.Errorf("interpreters: %q is given twice (%q and %q)", ext, prev, strings.TrimSpace(v))
		}
		m[ext] = strings.TrimSpace(v)
	}
	return NormalizeInterpreters(m)
}

// MergeInterpreters returns defaults overridden by explicit (both normalized): an explicit
// entry replaces the default for its extension, and one with an empty interpreter removes it.
func MergeInterpreters(defaults, explicit map[string]string) map[string]string {
	out := make(map[string]string, len(defaults)+len(explicit))
	for k, v := range defaults {
		out[k] = v
	}
	for k, v := range explicit {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// FormatInterpreters renders a map in the flag form, sorted by extension (for logs).
func FormatInterpreters(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

// taskCommand returns how to start the task file exe: `interpreter exe` when interps maps
// exe's extension, exe itself otherwise.
func taskCommand(exe string, interps map[string]string) (path string, args []string) {
	if interp := interps[filepath.Ext(exe)]; interp != "" && filepath.Ext(exe) != "" {
		return interp, []string{exe}
	}
	return exe, nil
}

// interpreterOf names the interpreter of a command built by taskCommand ("" for a direct start).
func interpreterOf(path string, args []string) string {
	if len(args) == 0 {
		return ""
	}
	return path
}
