package tasks

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var fuzzTypeSeeds = []string{
	"String", "String[1]", "String[1, 10]", "Integer[0]", "Integer[1, default]", "Integer[default, -1]",
	"Float[0.5, 1e3]", "Numeric", "Boolean", "Data", "Any", "Undef", "Scalar", "ScalarData",
	"Enum[a, 'b', \"c\"]", "Enum['x', true]", "Pattern[/^a\\/b$/, 'c/d', \"\\n\"]", "Pattern[/[\\h]+\\Z/]",
	"Optional", "Optional[Integer]", "Optional['x']", "NotUndef", "NotUndef[String]", "Sensitive", "Sensitive[String[8]]",
	"Variant[Integer, String, Boolean]", "Array", "Array[String, 1]", "Array[String, 1, 5]",
	"Hash[String, Integer, 0, 3]", "Struct[{a => Integer, Optional['b'] => String, NotUndef[c] => Optional[Data]}]",
	"Tuple[String, Integer, 1]", "Tuple[String, default, 2]", "Integer[0x1F, 017]", "Enum['it\\'s']",
	"Struct[{'quo\\'te' => Any}]", "Pattern[/(?i)abc(?m:.)/]", "Integer[1,]", "Array[]", "Integer]",
}

func FuzzParseType(f *testing.F) {
	for _, s := range fuzzTypeSeeds {
		f.Add(s)
	}
	values := []any{nil, true, "", "abc", json.Number("1"), json.Number("1.5"), 2.0, []any{"a", json.Number("1")}, map[string]any{"a": json.Number("1")}}
	f.Fuzz(func(t *testing.T, s string) {
		ty, err := ParseType(s)
		if err != nil {
			return
		}
		for _, v := range values {
			_ = ty.Validate(v)
		}
		canon := ty.String()
		again, err := ParseType(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, s, err)
		}
		if again.String() != canon {
			t.Fatalf("canonical form not stable: %q -> %q -> %q", s, canon, again.String())
		}
		for _, v := range values {
			e1, e2 := ty.Validate(v), again.Validate(v)
			if (e1 == nil) != (e2 == nil) {
				t.Fatalf("%q and its canonical form %q disagree on %#v: %v vs %v", s, canon, v, e1, e2)
			}
		}
	})
}

func FuzzParseMetadata(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "metadata", "*.json"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		`{}`, `[]`, `null`, `{"parameters": {}}`, `{"parameters": null}`,
		`{"parameters": {"a": {"type": "Optional[Integer[1]]", "default": 1, "sensitive": true}}}`,
		`{"implementations": [{"name": "a.sh", "requirements": ["shell"], "files": ["m/files/"]}]}`,
		`{"puppet_task_version": 1, "input_method": "both", "files": ["m/lib/x.rb"]}`,
		`{"parameters": {"a": {"type": "Struct[{x => Integer}]", "default": {"x": 1}}}}`,
		`{"parameters": {"a": {"default": "<&>\u2028"}}, "implementations": [], "extensions": {}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMetadata(b)
		_ = UnknownKeys(b)
		if err != nil {
			return
		}
		_ = SensitiveNames(m)
		if p, err := ValidateParams(m, map[string]any{}); err == nil {
			_ = Redact(m, p)
		}
		enc, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("marshal parsed metadata: %v", err)
		}
		m2, err := ParseMetadata(enc)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", enc, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed metadata:\n%#v\n%#v", m, m2)
		}
	})
}
