package tasks

import (
	"errors"
	"strings"
	"testing"
)

// TestValuesTheEnvironmentCannotCarry: a top-level string with NUL, or a value too long for
// one environment variable, is refused at validation unless the task reads only stdin;
// nested values travel as JSON, which escapes NUL.
func TestValuesTheEnvironmentCannotCarry(t *testing.T) {
	long := strings.Repeat("x", MaxEnvValueBytes)
	params := map[string]map[string]any{
		"NUL":                    {"msg": "a\x00b"},
		"too long":               {"msg": long},
		"NUL nested in an array": {"list": []any{"a\x00b"}},
		"plain":                  {"msg": "hello", "list": []any{"a", "b"}},
	}
	metadata := map[string]string{
		"default (both)":         `{"parameters": {"msg": {"type": "Optional[String]"}, "list": {"type": "Optional[Array[String]]"}}}`,
		"environment":            `{"input_method": "environment", "parameters": {"msg": {"type": "Optional[String]"}, "list": {"type": "Optional[Array[String]]"}}}`,
		"powershell":             `{"input_method": "powershell", "parameters": {"msg": {"type": "Optional[String]"}, "list": {"type": "Optional[Array[String]]"}}}`,
		"no parameters declared": `{}`,
		"stdin":                  `{"input_method": "stdin", "parameters": {"msg": {"type": "Optional[String]"}, "list": {"type": "Optional[Array[String]]"}}}`,
		"one implementation not stdin": `{"input_method": "stdin", "implementations": [{"name": "a.sh"}, {"name": "b.sh", "input_method": "both"}],
			"parameters": {"msg": {"type": "Optional[String]"}, "list": {"type": "Optional[Array[String]]"}}}`,
		"every implementation stdin": `{"implementations": [{"name": "a.sh", "input_method": "stdin"}],
			"parameters": {"msg": {"type": "Optional[String]"}, "list": {"type": "Optional[Array[String]]"}}}`,
	}
	stdin := map[string]bool{"stdin": true, "every implementation stdin": true}
	for mname, raw := range metadata {
		m := mustParseMetadata(t, []byte(raw))
		for pname, p := range params {
			t.Run(mname+"/"+pname, func(t *testing.T) {
				_, err := ValidateParams(m, p)
				refused := !stdin[mname] && (pname == "NUL" || pname == "too long")
				if !refused {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					return
				}
				var pe *ParamsError
				if !errors.As(err, &pe) || len(pe.Problems) != 1 || pe.Problems[0].Param != "msg" {
					t.Fatalf("got %v, want one problem with msg", err)
				}
				want := map[string]string{"NUL": "NUL character", "too long": "more than the 131072"}[pname]
				if msg := pe.Problems[0].Msg; !strings.Contains(msg, want) || !strings.Contains(msg, "input_method stdin") || strings.Contains(msg, "xxxx") {
					t.Errorf("problem %q, want it to say %q and how to pass it, without the value", msg, want)
				}
			})
		}
	}
}

// TestSensitiveValuesNeverInErrors: nothing a caller sent for a sensitive parameter appears
// in a validation error: values, and keys of hashes and structs.
func TestSensitiveValuesNeverInErrors(t *testing.T) {
	const secret = "hunter2-s3cret"
	cases := []struct {
		name  string
		param string // the parameter's declaration
		value any
	}{
		{"unrecognized key of a Sensitive Struct", `{"type": "Sensitive[Struct[{user => String}]]"}`, map[string]any{"user": "u", secret: "x"}},
		{"unrecognized key of a sensitive Struct", `{"type": "Struct[{user => String}]", "sensitive": true}`, map[string]any{"user": "u", secret: "x"}},
		{"bad value under a key of a sensitive Hash", `{"type": "Hash[String, Integer]", "sensitive": true}`, map[string]any{secret: "x"}},
		{"bad key of a Sensitive Hash", `{"type": "Sensitive[Hash[Enum[a, b], String]]"}`, map[string]any{secret: "x"}},
		{"Enum mismatch", `{"type": "Sensitive[Enum[a, b]]"}`, secret},
		{"Pattern mismatch", `{"type": "String", "sensitive": true}`, 42},
		{"string too short", `{"type": "Sensitive[String[100]]"}`, secret},
		{"NUL in a sensitive string", `{"type": "String", "sensitive": true}`, secret + "\x00"},
		{"too long for the environment", `{"type": "Sensitive[String]"}`, secret + strings.Repeat("y", MaxEnvValueBytes)},
		{"in an array", `{"type": "Sensitive[Array[Enum[a]]]"}`, []any{"a", secret}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := mustParseMetadata(t, []byte(`{"parameters": {"p": `+tc.param+`}}`))
			_, err := ValidateParams(m, map[string]any{"p": tc.value})
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "yyyy") {
				t.Errorf("the error shows the sensitive value: %v", err)
			}
		})
	}
}
