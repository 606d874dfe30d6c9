package tasks

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// ParamProblem is one reason a parameter set was rejected: "parameter '<Param>' <Msg>".
type ParamProblem struct {
	Param string `json:"param"`
	Msg   string `json:"msg"`
}

func (p ParamProblem) String() string {
	return fmt.Sprintf("parameter '%s' %s", p.Param, p.Msg)
}

// ParamsError is returned by ValidateParams; Problems are sorted by parameter name.
type ParamsError struct {
	Problems []ParamProblem
}

func (e *ParamsError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return strings.Join(parts, "; ")
}

// RedactedValue replaces sensitive parameter values in Redact's output.
const RedactedValue = "Sensitive [value redacted]"

// ValidateParams checks caller-supplied task parameters against the metadata (reference §5.2)
// and returns the effective parameters. Keys starting with "_" (metaparameters, which the
// orchestrator adds itself) and keys that are not valid parameter names are always rejected.
// When m.Parameters is nil anything else is accepted. Otherwise undeclared parameters are
// rejected; a parameter that is absent or null gets its default, is left out if its type
// accepts undef, and is a problem otherwise; every other value must match its declared type.
// Values of sensitive parameters are not echoed in messages. Unless the task takes its input
// only on stdin, a value that its environment variable cannot carry faithfully (a string with
// a NUL character, or more than MaxEnvValueBytes) is a problem too, rather than being lost on
// the node. On failure the error is a *ParamsError.
func ValidateParams(m Metadata, params map[string]any) (map[string]any, error) {
	var problems []ParamProblem
	add := func(name, format string, args ...any) {
		problems = append(problems, ParamProblem{Param: name, Msg: fmt.Sprintf(format, args...)})
	}
	out := make(map[string]any, len(params))
	for name, v := range params {
		switch {
		case strings.HasPrefix(name, "_"):
			add(name, "is not allowed: names starting with '_' are reserved for metaparameters")
		case !ValidParamName(name):
			add(name, "is not a valid parameter name")
		case m.Parameters == nil:
			out[name] = v
		default:
			if _, ok := m.Parameters[name]; !ok {
				add(name, "is not a parameter of this task")
			}
		}
	}
	for name, decl := range m.Parameters {
		t, err := parameterType(decl)
		if err != nil {
			add(name, "has an invalid type in the task metadata: %v", err)
			continue
		}
		c := checkCtx{hide: decl.Sensitive}
		v, present := params[name]
		if !present || v == nil {
			if decl.Default == nil {
				if !t.acceptsUndef() {
					add(name, "expects a value")
				}
				continue
			}
			if err := decodeJSON(decl.Default, &v); err != nil {
				add(name, "has an invalid default in the task metadata: %v", err)
				continue
			}
			if v == nil {
				continue
			}
		}
		if err := validate(t, v, c); err != nil {
			add(name, "%v", err)
			continue
		}
		out[name] = v
	}
	if !stdinOnly(m) {
		for name, v := range out {
			if msg := envProblem(name, v); msg != "" {
				add(name, "%s", msg)
			}
		}
	}
	if len(problems) > 0 {
		slices.SortFunc(problems, func(a, b ParamProblem) int {
			return cmp.Or(strings.Compare(a.Param, b.Param), strings.Compare(a.Msg, b.Msg))
		})
		return nil, &ParamsError{Problems: problems}
	}
	return out, nil
}

// SensitiveNames returns the sorted names of m's sensitive parameters: those declared with
// "sensitive": true and those whose type is Sensitive (also inside Optional, NotUndef or a
// Variant alternative). A type that does not parse counts as sensitive if it mentions
// Sensitive.
func SensitiveNames(m Metadata) []string {
	var out []string
	for name, p := range m.Parameters {
		if p.Sensitive || declaresSensitive(p.Type) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func declaresSensitive(s string) bool {
	if s == "" {
		return false
	}
	t, err := ParseType(s)
	if err != nil {
		return strings.Contains(s, "Sensitive")
	}
	return isSensitive(t)
}

func isSensitive(t Type) bool {
	switch t := t.(type) {
	case *sensitiveType:
		return true
	case *optionalType:
		return isSensitive(t.inner)
	case *notUndefType:
		return isSensitive(t.inner)
	case *variantType:
		return slices.ContainsFunc(t.types, isSensitive)
	}
	return false
}

// Redact returns a shallow copy of params in which the values of m's sensitive parameters
// (see SensitiveNames) are replaced by RedactedValue.
func Redact(m Metadata, params map[string]any) map[string]any {
	if params == nil {
		return nil
	}
	out := make(map[string]any, len(params))
	for k, v := range params {
		out[k] = v
	}
	for _, name := range SensitiveNames(m) {
		if _, ok := out[name]; ok {
			out[name] = RedactedValue
		}
	}
	return out
}

// MaxEnvValueBytes is the most one PT_name=value environment variable may hold: Linux refuses
// to start a process with a longer one (MAX_ARG_STRLEN, 32 pages of 4 KiB).
const MaxEnvValueBytes = 128 << 10

// stdinOnly reports whether every implementation of the task takes its parameters only as
// JSON on stdin (input_method stdin), which carries any JSON value faithfully. Otherwise each
// top-level parameter is also passed as a PT_name environment variable (environment, both,
// and powershell, which passes them as arguments).
func stdinOnly(m Metadata) bool {
	if m.InputMethod != InputStdin {
		for _, impl := range m.Implementations {
			if impl.InputMethod != InputStdin {
				return false
			}
		}
		return len(m.Implementations) > 0
	}
	for _, impl := range m.Implementations {
		if impl.InputMethod != "" && impl.InputMethod != InputStdin {
			return false
		}
	}
	return true
}

// envProblem says why v cannot be passed as parameter name's environment variable, or "".
// Only a top-level string is passed raw; other values go as compact JSON, which escapes NUL.
// The value itself is never quoted: it may be sensitive.
func envProblem(name string, v any) string {
	var n int
	if s, ok := v.(string); ok {
		if strings.IndexByte(s, 0) >= 0 {
			return "contains a NUL character, which an environment variable cannot carry: the task takes its parameters in its environment (use input_method stdin to pass it)"
		}
		n = len(s)
	} else {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return "cannot be encoded as JSON"
		}
		n = b.Len() - 1 // the newline Encode adds
	}
	if total := len("PT_=") + len(name) + n; total > MaxEnvValueBytes {
		return fmt.Sprintf("is %d bytes as an environment variable, more than the %d one may hold: the task takes its parameters in its environment (use input_method stdin to pass it)", total, MaxEnvValueBytes)
	}
	return ""
}
