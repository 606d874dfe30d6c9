package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Interpreters (Bolt's `interpreters` setting, same name and shape): a map of file extension
// to the interpreter that runs task files with that extension — a path, or an array of the
// path and its arguments (`{"rb": ["/usr/bin/ruby", "-r", "puppet"], ".py": "/usr/bin/python3"}`).
// Forge tasks written in Ruby start with `#!/opt/puppetlabs/puppet/bin/ruby`, which exists
// only with Puppet's own (AIO) packages; with Debian's puppet-agent package that shebang
// fails (exit 127), and the ".rb" mapping runs them with the Ruby Puppet runs on instead.
//
// A task file whose extension has a mapping is started as `interp[0] interp[1:]... file`
// (argv, never through a shell); any other file is started directly, by its shebang and
// exec bit. In this package a mapping is a []string: the path, then the arguments; an empty
// one means "no interpreter" (in overrides it removes a detected default).

// extPattern is what Bolt accepts as an interpreters key (its schema's propertyNames:
// `^.?[a-zA-Z0-9]+$`, the optional first character being the dot): ".rb" and "rb" both
// name task files ending in ".rb"; extensions are case sensitive.
var extPattern = regexp.MustCompile(`^\.?[a-zA-Z0-9]+$`)

// InterpreterMap is the config file form of the setting: a JSON object whose values are an
// interpreter path (a string) or an array of the path and its arguments, as in Bolt. The
// string "" decodes to an empty mapping (no interpreter: removes a detected default); an
// empty array, an array whose path is empty and any other JSON type are errors.
type InterpreterMap map[string][]string

// UnmarshalJSON decodes {"ext": "path" | ["path", "arg", ...], ...}.
func (m *InterpreterMap) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("interpreters: want an object of extension to interpreter path or [path, args...]: %w", err)
	}
	if raw == nil { // null
		*m = nil
		return nil
	}
	out := make(InterpreterMap, len(raw))
	for k, v := range raw {
		argv, err := decodeInterpreter(v)
		if err != nil {
			return fmt.Errorf("interpreters: %q: %w", k, err)
		}
		out[k] = argv
	}
	*m = out
	return nil
}

func decodeInterpreter(v json.RawMessage) ([]string, error) {
	switch v = bytes.TrimSpace(v); {
	case len(v) > 0 && v[0] == '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, err
		}
		if strings.TrimSpace(s) == "" {
			return []string{}, nil // no interpreter
		}
		return []string{s}, nil
	case len(v) > 0 && v[0] == '[':
		var a []string
		if err := json.Unmarshal(v, &a); err != nil {
			return nil, fmt.Errorf("want an array of strings [path, args...]: %w", err)
		}
		if len(a) == 0 {
			return nil, fmt.Errorf("empty array: want [path, args...] (\"\" removes a default interpreter)")
		}
		if strings.TrimSpace(a[0]) == "" {
			return nil, fmt.Errorf("empty interpreter path in %s", v)
		}
		return a, nil
	default:
		return nil, fmt.Errorf("want an interpreter path or an array [path, args...], not %s", v)
	}
}

// NormalizeInterpreters checks an interpreters map and returns a copy with every extension
// in its canonical form (".rb": keys are accepted with or without the leading dot, like
// Bolt) and every path trimmed. An empty mapping means no interpreter (it removes the
// extension's mapping when merged, see MergeInterpreters); a non-empty one must start with a
// non-empty path.
func NormalizeInterpreters(m map[string][]string) (map[string][]string, error) {
	if m == nil {
		return nil, nil
	}
	out := make(map[string][]string, len(m))
	for k, v := range m {
		ext, err := normalizeExt(k)
		if err != nil {
			return nil, err
		}
		argv := slices.Clone(v)
		if argv == nil {
			argv = []string{}
		}
		if len(argv) > 0 {
			if argv[0] = strings.TrimSpace(argv[0]); argv[0] == "" {
				return nil, fmt.Errorf("interpreters: %s: empty interpreter path in %q", ext, v)
			}
		}
		for _, a := range argv {
			if strings.ContainsRune(a, 0) {
				return nil, fmt.Errorf("interpreters: %s: bad interpreter %q", ext, v)
			}
		}
		if prev, dup := out[ext]; dup && !slices.Equal(prev, argv) {
			return nil, fmt.Errorf("interpreters: %q is given twice (%q and %q)", ext, prev, argv)
		}
		out[ext] = argv
	}
	return out, nil
}

func normalizeExt(k string) (string, error) {
	k = strings.TrimSpace(k)
	if !extPattern.MatchString(k) {
		return "", fmt.Errorf("interpreters: %q is not a file extension (want letters and digits with or without the dot, e.g. .rb or rb)", k)
	}
	return "." + strings.TrimPrefix(k, "."), nil
}

// ParseInterpreters reads the flag/environment form of the setting, either
// ".rb=/usr/bin/ruby,.py=/usr/bin/python3" (a path per extension; "ext=" removes a default
// mapping) or, for interpreters with arguments, the config file's JSON object:
// {".rb": ["/usr/bin/ruby", "-r", "puppet"], "py": "/usr/bin/python3"}.
func ParseInterpreters(s string) (map[string][]string, error) {
	if t := strings.TrimSpace(s); strings.HasPrefix(t, "{") {
		var m InterpreterMap
		if err := m.UnmarshalJSON([]byte(t)); err != nil {
			return nil, err
		}
		return NormalizeInterpreters(m)
	}
	m := map[string][]string{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("interpreters: %q: want EXT=INTERPRETER, e.g. .rb=/usr/bin/ruby (or a JSON object for arguments)", item)
		}
		ext, err := normalizeExt(k)
		if err != nil {
			return nil, err
		}
		argv := []string{}
		if v = strings.TrimSpace(v); v != "" {
			argv = []string{v}
		}
		if prev, dup := m[ext]; dup && !slices.Equal(prev, argv) {
			return nil, fmt.Errorf("interpreters: %q is given twice (%q and %q)", ext, prev, argv)
		}
		m[ext] = argv
	}
	return NormalizeInterpreters(m)
}

// MergeInterpreters returns defaults overridden by explicit (both normalized): an explicit
// entry replaces the default for its extension, and an empty one removes it.
func MergeInterpreters(defaults, explicit map[string][]string) map[string][]string {
	out := make(map[string][]string, len(defaults)+len(explicit))
	for k, v := range defaults {
		out[k] = v
	}
	for k, v := range explicit {
		if len(v) == 0 {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// FormatInterpreters renders a map for logs, sorted by extension:
// ".py=/usr/bin/python3,.rb=/usr/bin/ruby -r puppet".
func FormatInterpreters(m map[string][]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+strings.Join(m[k], " "))
	}
	return strings.Join(parts, ",")
}

// interpreterFacts is how the agent reports its interpreters with its facts (and the server
// shows them in the inventory): extension → the command line, path and arguments joined by
// spaces. Empty mappings are left out.
func interpreterFacts(m map[string][]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if len(v) > 0 {
			out[k] = strings.Join(v, " ")
		}
	}
	return out
}

// taskCommand returns how to start the task file exe: `interp[0] interp[1:]... exe` when
// interps maps exe's extension, exe itself otherwise.
func taskCommand(exe string, interps map[string][]string) (path string, args []string) {
	ext := filepath.Ext(exe)
	if interp := interps[ext]; ext != "" && len(interp) > 0 && interp[0] != "" {
		return interp[0], append(slices.Clone(interp[1:]), exe)
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
