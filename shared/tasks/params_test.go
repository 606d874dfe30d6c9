package tasks

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const paramsMetadata = `{
  "parameters": {
    "name":     {"type": "String[1]"},
    "action":   {"type": "Enum[install, status]", "default": "status"},
    "version":  {"type": "Optional[String[1]]"},
    "count":    {"type": "Integer[1, 10]", "default": 3},
    "force":    {"type": "Optional[Boolean]", "default": false},
    "anything": {},
    "opts":     {"type": "Struct[{Optional[port] => Integer}]", "default": {"port": 22}},
    "password": {"type": "String[8]", "sensitive": true},
    "token":    {"type": "Optional[Sensitive[Enum[abcdefgh]]]"},
    "nothing":  {"type": "Undef"},
    "data":     {"type": "Data"}
  }
}`

func TestValidateParams(t *testing.T) {
	m := mustParseMetadata(t, []byte(paramsMetadata))
	base := `"name": "httpd", "password": "longenough"`
	tests := []struct {
		name     string
		params   string // JSON object
		want     string // JSON object of effective params ("" when an error is expected)
		problems []ParamProblem
	}{
		{
			name:   "defaults applied",
			params: `{` + base + `}`,
			want:   `{"name": "httpd", "password": "longenough", "action": "status", "count": 3, "force": false, "opts": {"port": 22}}`,
		},
		{
			name:   "null gets the default, even for Optional",
			params: `{` + base + `, "action": null, "force": null, "count": null}`,
			want:   `{"name": "httpd", "password": "longenough", "action": "status", "count": 3, "force": false, "opts": {"port": 22}}`,
		},
		{
			name:   "given values win",
			params: `{` + base + `, "action": "install", "count": 10, "force": true, "version": "1.2", "anything": [1, {"x": null}], "opts": {}, "token": "abcdefgh", "data": {"k": [1.5]}}`,
			want:   `{"name": "httpd", "password": "longenough", "action": "install", "count": 10, "force": true, "version": "1.2", "anything": [1, {"x": null}], "opts": {}, "token": "abcdefgh", "data": {"k": [1.5]}}`,
		},
		{
			name:   "null for undef-accepting types without default is dropped",
			params: `{` + base + `, "version": null, "anything": null, "nothing": null, "token": null, "data": null}`,
			want:   `{"name": "httpd", "password": "longenough", "action": "status", "count": 3, "force": false, "opts": {"port": 22}}`,
		},
		{
			name:   "missing required",
			params: `{}`,
			problems: []ParamProblem{
				{"name", "expects a value"},
				{"password", "expects a value"},
			},
		},
		{
			name:     "null for a required parameter",
			params:   `{"name": null, "password": "longenough"}`,
			problems: []ParamProblem{{"name", "expects a value"}},
		},
		{
			name:   "type mismatches",
			params: `{"name": "", "password": "longenough", "count": 12, "action": "remove", "force": "yes", "opts": {"port": "22"}, "nothing": 1}`,
			problems: []ParamProblem{
				{"action", "expects a match for Enum['install', 'status'], got 'remove'"},
				{"count", "expects a value between 1 and 10, got 12"},
				{"force", "expects a value of type Undef or Boolean, got String"},
				{"name", "expects a String[1] value, got a String of length 0"},
				{"nothing", "expects an Undef value, got Integer"},
				{"opts", "entry 'port' expects an Integer value, got String"},
			},
		},
		{
			name:   "sensitive values are not echoed",
			params: `{"name": "x", "password": "short", "token": "wrongtoken"}`,
			problems: []ParamProblem{
				{"password", "expects a String[8] value, got [value redacted]"},
				{"token", "expects an undef value or a match for Enum['abcdefgh'], got [value redacted]"},
			},
		},
		{
			name:   "unknown, invalid and metaparameter keys",
			params: `{` + base + `, "colour": "red", "Bad-Name": 1, "_noop": true, "_task": "x"}`,
			problems: []ParamProblem{
				{"Bad-Name", "is not a valid parameter name"},
				{"_noop", "is not allowed: names starting with '_' are reserved for metaparameters"},
				{"_task", "is not allowed: names starting with '_' are reserved for metaparameters"},
				{"colour", "is not a parameter of this task"},
			},
		},
		{
			name:   "integral float for Integer",
			params: `{` + base + `, "count": 2.0}`,
			problems: []ParamProblem{
				{"count", "expects an Integer value, got Float"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ValidateParams(m, jv(t, tc.params).(map[string]any))
			if tc.problems != nil {
				var pe *ParamsError
				if !errors.As(err, &pe) {
					t.Fatalf("error = %v (%T), want *ParamsError", err, err)
				}
				if !reflect.DeepEqual(pe.Problems, tc.problems) {
					t.Fatalf("problems:\n got  %q\n want %q", pe.Problems, tc.problems)
				}
				if got != nil {
					t.Fatalf("params = %v, want nil on error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ValidateParams: %v", err)
			}
			if want := jv(t, tc.want); !reflect.DeepEqual(got, want) {
				t.Fatalf("params:\n got  %v\n want %v", got, want)
			}
		})
	}
}

func TestValidateParamsNoDeclaredParameters(t *testing.T) {
	m := mustParseMetadata(t, []byte(`{"description": "accepts anything"}`))
	got, err := ValidateParams(m, map[string]any{"a": 1, "b": nil, "c": []any{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, map[string]any{"a": 1, "b": nil, "c": []any{"x"}}) {
		t.Fatalf("params = %v", got)
	}
	got, err = ValidateParams(m, nil)
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("nil params: %v, %v (want empty non-nil map)", got, err)
	}
	_, err = ValidateParams(m, map[string]any{"_installdir": "/tmp", "ok": 1, "NOPE": 2})
	var pe *ParamsError
	if !errors.As(err, &pe) || len(pe.Problems) != 2 || pe.Problems[0].Param != "NOPE" || pe.Problems[1].Param != "_installdir" {
		t.Fatalf("error = %v", err)
	}
}

func TestValidateParamsEmptyParameters(t *testing.T) {
	m := mustParseMetadata(t, []byte(`{"parameters": {}}`))
	if got, err := ValidateParams(m, map[string]any{}); err != nil || len(got) != 0 {
		t.Fatalf("no params: %v, %v", got, err)
	}
	_, err := ValidateParams(m, map[string]any{"x": 1})
	var pe *ParamsError
	if !errors.As(err, &pe) || !reflect.DeepEqual(pe.Problems, []ParamProblem{{"x", "is not a parameter of this task"}}) {
		t.Fatalf("error = %v", err)
	}
}

// TestValidateParamsHandBuiltMetadata covers metadata that did not come from ParseMetadata.
func TestValidateParamsHandBuiltMetadata(t *testing.T) {
	m := Metadata{Parameters: map[string]Parameter{
		"a": {Type: "Strng"},
		"b": {Type: "Integer", Default: json.RawMessage(`{`)},
		"c": {Type: "Integer", Default: json.RawMessage(`"x"`)},
		"d": {Type: "Optional[Integer]", Default: json.RawMessage(`null`)},
	}}
	_, err := ValidateParams(m, map[string]any{})
	var pe *ParamsError
	if !errors.As(err, &pe) || len(pe.Problems) != 3 {
		t.Fatalf("error = %v", err)
	}
	for i, want := range []string{"has an invalid type in the task metadata", "has an invalid default in the task metadata", "expects an Integer value, got String"} {
		if !strings.Contains(pe.Problems[i].Msg, want) {
			t.Errorf("problem %d = %q, want it to contain %q", i, pe.Problems[i].Msg, want)
		}
	}
}

func TestParamsErrorMessage(t *testing.T) {
	e := &ParamsError{Problems: []ParamProblem{
		{"count", "expects a value between 1 and 10, got 12"},
		{"name", "expects a value"},
	}}
	want := "parameter 'count' expects a value between 1 and 10, got 12; parameter 'name' expects a value"
	if e.Error() != want {
		t.Fatalf("Error() = %q, want %q", e.Error(), want)
	}
	b, err := json.Marshal(e.Problems)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `[{"param":"count","msg":"expects a value between 1 and 10, got 12"},{"param":"name","msg":"expects a value"}]` {
		t.Fatalf("JSON = %s", b)
	}
}

func TestSensitiveNames(t *testing.T) {
	tests := []struct {
		name string
		meta string
		want []string
	}{
		{"none", `{"parameters": {"a": {"type": "String"}}}`, nil},
		{"no parameters", `{}`, nil},
		{"flag", `{"parameters": {"b": {"sensitive": true}, "a": {"type": "String", "sensitive": true}, "c": {}}}`, []string{"a", "b"}},
		{"types", `{"parameters": {
			"s":  {"type": "Sensitive"},
			"ss": {"type": "Sensitive[String]"},
			"o":  {"type": "Optional[Sensitive[String]]"},
			"n":  {"type": "NotUndef[Sensitive]"},
			"v":  {"type": "Variant[Integer, Sensitive[String]]"},
			"h":  {"type": "Hash[String, Sensitive[String]]"},
			"p":  {"type": "String"}
		}}`, []string{"n", "o", "s", "ss", "v"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := SensitiveNames(mustParseMetadata(t, []byte(tc.meta))); !slices.Equal(got, tc.want) {
				t.Fatalf("SensitiveNames = %v, want %v", got, tc.want)
			}
		})
	}
	// Hand-built metadata with an unparseable type errs on the side of redaction.
	m := Metadata{Parameters: map[string]Parameter{"x": {Type: "Sensitive[Strng]"}, "y": {Type: "Strng"}}}
	if got := SensitiveNames(m); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("SensitiveNames(unparseable) = %v", got)
	}
}

func TestRedact(t *testing.T) {
	m := mustParseMetadata(t, []byte(paramsMetadata))
	in := map[string]any{"name": "httpd", "password": "hunter2hunter2", "token": "abcdefgh", "count": json.Number("3")}
	got := Redact(m, in)
	want := map[string]any{"name": "httpd", "password": RedactedValue, "token": RedactedValue, "count": json.Number("3")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Redact = %v, want %v", got, want)
	}
	if in["password"] != "hunter2hunter2" {
		t.Fatal("Redact modified its input")
	}
	if got := Redact(m, map[string]any{"name": "x"}); !reflect.DeepEqual(got, map[string]any{"name": "x"}) {
		t.Fatalf("Redact without sensitive values = %v", got)
	}
	if Redact(m, nil) != nil {
		t.Fatal("Redact(nil) != nil")
	}
	if RedactedValue != "Sensitive [value redacted]" {
		t.Fatalf("RedactedValue = %q", RedactedValue)
	}
}
