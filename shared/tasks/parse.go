package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// ErrInvalidMetadata is wrapped by every error ParseMetadata returns for a metadata document
// that is not valid Task Spec v1 metadata.
var ErrInvalidMetadata = errors.New("invalid task metadata")

// ErrInvalidTaskName is wrapped by SplitTaskName's errors.
var ErrInvalidTaskName = errors.New("invalid task name")

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// metadataKeys are the top-level keys Bolt knows (task.rb METADATA_KEYS) plus identifiers.
var metadataKeys = []string{
	"description", "extensions", "files", "identifiers", "implementations", "input_method",
	"parameters", "private", "puppet_task_version", "remote", "supports_noop",
}

// fileMounts are the module directories a "files" entry may name (reference §5.2).
var fileMounts = []string{"files", "lib", "tasks", "scripts"}

// ValidParamName reports whether name is a valid task parameter name (^[a-z][a-z0-9_]*$).
func ValidParamName(name string) bool { return nameRE.MatchString(name) }

// ValidTaskName reports whether name is "module" or "module::task" with each part matching
// ^[a-z][a-z0-9_]*$ (reference §5.1).
func ValidTaskName(name string) bool {
	_, _, err := SplitTaskName(name)
	return err == nil
}

// SplitTaskName splits "module::task" into its parts; "module" alone names module::init.
func SplitTaskName(name string) (module, task string, err error) {
	parts := strings.Split(name, "::")
	switch {
	case len(parts) == 1 && nameRE.MatchString(parts[0]):
		return parts[0], "init", nil
	case len(parts) == 2 && nameRE.MatchString(parts[0]) && nameRE.MatchString(parts[1]):
		return parts[0], parts[1], nil
	}
	return "", "", fmt.Errorf("%w: %q (want module or module::task, each matching [a-z][a-z0-9_]*)", ErrInvalidTaskName, name)
}

// UnknownKeys returns the sorted top-level keys of a metadata document that Task Spec v1 does
// not define (Bolt warns about them). It returns nil when b is not a JSON object.
func UnknownKeys(b []byte) []string {
	var raw map[string]json.RawMessage
	if json.Unmarshal(b, &raw) != nil {
		return nil
	}
	var out []string
	for k := range raw {
		if !slices.Contains(metadataKeys, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// ParseMetadata decodes and validates a task metadata document (reference §5.2): a JSON object
// whose known keys have the right JSON types, puppet_task_version 1 if present, a known
// input_method, valid parameter names, parseable parameter types (missing type means Any),
// defaults that match their types, named implementations and well-formed "files" entries.
// Unknown keys are allowed (see UnknownKeys); a null value counts as absent. Errors wrap
// ErrInvalidMetadata.
func ParseMetadata(b []byte) (Metadata, error) {
	m, err := parseMetadata(b)
	if err != nil {
		return Metadata{}, fmt.Errorf("%w: %w", ErrInvalidMetadata, err)
	}
	return m, nil
}

func parseMetadata(b []byte) (Metadata, error) {
	var m Metadata
	top, err := decodeObject(b)
	if err != nil {
		return m, err
	}
	for _, k := range sortedRawKeys(top) {
		raw := top[k]
		if isNull(raw) {
			continue
		}
		switch k {
		case "description":
			err = decodeAs(raw, "a string", &m.Description)
		case "puppet_task_version":
			var v json.Number
			err = decodeAs(raw, "an integer", &v)
			if err == nil && v.String() != "1" {
				err = fmt.Errorf("puppet_task_version %s is not supported (only 1)", v)
			}
			m.PuppetTaskVersion = 1
		case "supports_noop":
			err = decodeAs(raw, "a boolean", &m.SupportsNoop)
		case "remote":
			err = decodeAs(raw, "a boolean", &m.Remote)
		case "private":
			err = decodeAs(raw, "a boolean", &m.Private)
		case "input_method":
			err = decodeAs(raw, "a string", &m.InputMethod)
			if err == nil {
				err = checkInputMethod(m.InputMethod)
			}
		case "parameters":
			m.Parameters, err = parseParameters(raw)
		case "implementations":
			m.Implementations, err = parseImplementations(raw)
		case "files":
			m.Files, err = parseFiles(raw)
		case "extensions":
			err = decodeAs(raw, "an object", &m.Extensions)
		case "identifiers":
			err = decodeAs(raw, "an object", &m.Identifiers)
		}
		if err != nil {
			return Metadata{}, fmt.Errorf("%s: %w", k, err)
		}
	}
	// Empty lists and objects mean the same as absent ones; keep one representation so that
	// metadata survives a JSON round trip (Parameters is the exception: {} accepts none).
	if len(m.Implementations) == 0 {
		m.Implementations = nil
	}
	if len(m.Files) == 0 {
		m.Files = nil
	}
	if len(m.Extensions) == 0 {
		m.Extensions = nil
	}
	if len(m.Identifiers) == 0 {
		m.Identifiers = nil
	}
	return m, nil
}

func checkInputMethod(s string) error {
	switch s {
	case InputStdin, InputEnvironment, InputBoth, InputPowershell:
		return nil
	}
	return fmt.Errorf("unsupported input method %q (want stdin, environment, both or powershell)", s)
}

// decodeObject decodes b as exactly one JSON object (numbers as json.Number).
func decodeObject(b []byte) (map[string]json.RawMessage, error) {
	var v any
	if err := decodeJSON(b, &v); err != nil {
		return nil, err
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("must be a JSON object, got %s", jsonKind(v))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// decodeJSON decodes exactly one JSON value from b into v, with UseNumber.
func decodeJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// decodeAs decodes raw into dst, which must have the JSON kind want ("a string", ...).
func decodeAs(raw json.RawMessage, want string, dst any) error {
	var v any
	if err := decodeJSON(raw, &v); err != nil {
		return err
	}
	got := jsonKind(v)
	if want == "an integer" {
		n, ok := v.(json.Number)
		if !ok || strings.ContainsAny(string(n), ".eE") {
			return fmt.Errorf("must be an integer, got %s", got)
		}
		*dst.(*json.Number) = n
		return nil
	}
	if got != want {
		return fmt.Errorf("must be %s, got %s", want, got)
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	return d.Decode(dst)
}

func sortedRawKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func parseParameters(raw json.RawMessage) (map[string]Parameter, error) {
	var obj map[string]json.RawMessage
	if err := decodeAs(raw, "an object", &obj); err != nil {
		return nil, err
	}
	params := make(map[string]Parameter, len(obj))
	for _, name := range sortedRawKeys(obj) {
		p, err := parseParameter(name, obj[name])
		if err != nil {
			return nil, fmt.Errorf("parameter %q: %w", name, err)
		}
		params[name] = p
	}
	return params, nil
}

func parseParameter(name string, raw json.RawMessage) (Parameter, error) {
	var p Parameter
	if !ValidParamName(name) {
		return p, errors.New("invalid parameter name (want [a-z][a-z0-9_]*)")
	}
	var fields map[string]json.RawMessage
	if err := decodeAs(raw, "an object", &fields); err != nil {
		return p, err
	}
	for _, k := range sortedRawKeys(fields) {
		v := fields[k]
		if isNull(v) {
			continue
		}
		var err error
		switch k {
		case "type":
			err = decodeAs(v, "a string", &p.Type)
			if err == nil && strings.TrimSpace(p.Type) == "" {
				err = errors.New("must not be empty")
			}
		case "description":
			err = decodeAs(v, "a string", &p.Description)
		case "sensitive":
			err = decodeAs(v, "a boolean", &p.Sensitive)
		case "default":
			// Store the default the way json.Marshal writes it (compact, HTML-escaped) so
			// that Metadata survives a JSON round trip unchanged.
			var enc []byte
			if enc, err = json.Marshal(v); err == nil {
				p.Default = json.RawMessage(enc)
			}
		}
		if err != nil {
			return p, fmt.Errorf("%s: %w", k, err)
		}
	}
	t, err := parameterType(p)
	if err != nil {
		return p, err
	}
	if p.Default != nil {
		var dv any
		if err := decodeJSON(p.Default, &dv); err != nil {
			return p, fmt.Errorf("default: %w", err)
		}
		if err := validate(t, dv, checkCtx{hide: p.Sensitive}); err != nil {
			return p, fmt.Errorf("default value %w", err)
		}
	}
	return p, nil
}

// parameterType parses p.Type; a missing type is Any.
func parameterType(p Parameter) (Type, error) {
	if p.Type == "" {
		return anyType{}, nil
	}
	return ParseType(p.Type)
}

func parseImplementations(raw json.RawMessage) ([]Implementation, error) {
	var list []json.RawMessage
	if err := decodeAs(raw, "an array", &list); err != nil {
		return nil, err
	}
	out := make([]Implementation, 0, len(list))
	for i, item := range list {
		impl, err := parseImplementation(item)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out = append(out, impl)
	}
	return out, nil
}

func parseImplementation(raw json.RawMessage) (Implementation, error) {
	var impl Implementation
	var fields map[string]json.RawMessage
	if err := decodeAs(raw, "an object", &fields); err != nil {
		return impl, err
	}
	for _, k := range sortedRawKeys(fields) {
		v := fields[k]
		if isNull(v) {
			continue
		}
		var err error
		switch k {
		case "name":
			err = decodeAs(v, "a string", &impl.Name)
		case "requirements":
			impl.Requirements, err = parseStrings(v)
		case "input_method":
			err = decodeAs(v, "a string", &impl.InputMethod)
			if err == nil {
				err = checkInputMethod(impl.InputMethod)
			}
		case "files":
			impl.Files, err = parseFiles(v)
		case "remote":
			err = decodeAs(v, "a boolean", &impl.Remote)
		}
		if err != nil {
			return impl, fmt.Errorf("%s: %w", k, err)
		}
	}
	if len(impl.Requirements) == 0 {
		impl.Requirements = nil
	}
	if len(impl.Files) == 0 {
		impl.Files = nil
	}
	switch {
	case impl.Name == "":
		return impl, errors.New("name is required")
	case impl.Name == "." || impl.Name == ".." || strings.ContainsAny(impl.Name, "/\\\x00"):
		return impl, fmt.Errorf("name %q must be a file name in the task's directory", impl.Name)
	}
	return impl, nil
}

func parseStrings(raw json.RawMessage) ([]string, error) {
	var list []any
	if err := decodeAs(raw, "an array", &list); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(list))
	for i, v := range list {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("[%d] must be a string, got %s", i, jsonKind(v))
		}
		out = append(out, s)
	}
	return out, nil
}

func parseFiles(raw json.RawMessage) ([]string, error) {
	files, err := parseStrings(raw)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if err := CheckFileRef(f); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// CheckFileRef checks a "files" entry: <module>/{files,lib,tasks,scripts}/<path>, with "/"
// separators, no "." or ".." segments, no empty segments and no leading "/". A trailing "/"
// names a directory (and may follow the mount directly: "mymod/files/").
func CheckFileRef(f string) error {
	bad := func(why string) error { return fmt.Errorf("file %q %s", f, why) }
	if strings.HasPrefix(f, "/") {
		return bad("must be relative to the modules directory")
	}
	if strings.ContainsAny(f, "\\\x00") {
		return bad(`must use "/" separators`)
	}
	segs := strings.Split(strings.TrimSuffix(f, "/"), "/")
	if len(segs) < 2 || !nameRE.MatchString(segs[0]) || !slices.Contains(fileMounts, segs[1]) {
		return bad("must be <module>/{files,lib,tasks,scripts}/<path>")
	}
	if len(segs) == 2 && !strings.HasSuffix(f, "/") {
		return bad("must name a file or a directory (ending in /) inside the mount")
	}
	for _, s := range segs[2:] {
		if s == "" || s == "." || s == ".." {
			return bad(`must not contain empty, "." or ".." segments`)
		}
	}
	return nil
}
