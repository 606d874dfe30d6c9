package tasks

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// jv decodes a JSON literal the way the API layer does (UseNumber).
func jv(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := decodeJSON([]byte(s), &v); err != nil {
		t.Fatalf("bad JSON test value %q: %v", s, err)
	}
	return v
}

func TestParseTypeCanonical(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"Any", "Any"},
		{"Undef", "Undef"},
		{"Boolean", "Boolean"},
		{"Data", "Data"},
		{"Numeric", "Numeric"},
		{"Scalar", "Scalar"},
		{"ScalarData", "ScalarData"},
		{"String", "String"},
		{"String[1]", "String[1]"},
		{"String[0]", "String"},
		{"String[1,default]", "String[1]"},
		{"String[default, 10]", "String[0, 10]"},
		{" String [ 1 , 255 ] ", "String[1, 255]"},
		{"String[\n\t1,\r\n2]", "String[1, 2]"},
		{"Integer", "Integer"},
		{"Integer[0]", "Integer[0]"},
		{"Integer[1,default]", "Integer[1]"},
		{"Integer[default]", "Integer"},
		{"Integer[default,default]", "Integer"},
		{"Integer[default, 10]", "Integer[default, 10]"},
		{"Integer[-5, -1]", "Integer[-5, -1]"},
		{"Integer[1,65535]", "Integer[1, 65535]"},
		{"Integer[010, 0x10]", "Integer[8, 16]"},
		{"Integer[1,]", "Integer[1]"},
		{"Float", "Float"},
		{"Float[0]", "Float[0.0]"},
		{"Float[0.5, 1]", "Float[0.5, 1.0]"},
		{"Float[-1.5e3, 2E-2]", "Float[-1500.0, 0.02]"},
		{"Float[default, 1e100]", "Float[default, 1e+100]"},
		{"Enum[a, 'b', \"c\"]", "Enum['a', 'b', 'c']"},
		{"Enum[present,absent,'no-op', no-op2]", "Enum['present', 'absent', 'no-op', 'no-op2']"},
		{"Enum[foo::bar, _x]", "Enum['foo::bar', '_x']"},
		{"Enum['it''s']", ""}, // two adjacent strings are not valid; see errors
		{`Enum['it\'s', 'back\\slash', 'keep\n']`, `Enum['it\'s', 'back\\slash', 'keep\\n']`},
		{`Enum["tab\there", "dq\"", "\u00e9\u{1F600}"]`, "Enum['tab\there', 'dq\"', 'é😀']"},
		{"Enum[a, B, true]", ""}, // B is a type name, not a string
		{"Enum[a, b, true]", "Enum['a', 'b', true]"},
		{"Enum[a, false]", "Enum['a']"},
		{"Enum", "Enum"},
		{"Pattern", "Pattern"},
		{"Pattern[/^a/]", "Pattern[/^a/]"},
		{"Pattern[/^a\\/b$/, /x/]", "Pattern[/^a\\/b$/, /x/]"},
		{"Pattern['^a/b$']", "Pattern[/^a\\/b$/]"},
		{`Pattern["a\nb"]`, `Pattern[/a\nb/]`},
		{"Pattern[//]", "Pattern[//]"},
		{"Optional", "Optional"},
		{"Optional[String]", "Optional[String]"},
		{"Optional[Any]", "Optional"},
		{"Optional['x']", "Optional[Enum['x']]"},
		{"Optional[Optional[String[1]]]", "Optional[Optional[String[1]]]"},
		{"NotUndef", "NotUndef"},
		{"NotUndef[Integer]", "NotUndef[Integer]"},
		{"Sensitive", "Sensitive"},
		{"Sensitive[String[8]]", "Sensitive[String[8]]"},
		{"Optional[Sensitive[String]]", "Optional[Sensitive[String]]"},
		{"Variant[Integer,String]", "Variant[Integer, String]"},
		{"Variant[Integer]", "Variant[Integer]"},
		{"Variant[Integer, Variant[String, Boolean],]", "Variant[Integer, Variant[String, Boolean]]"},
		{"Array", "Array"},
		{"Array[Any]", "Array"},
		{"Array[String]", "Array[String]"},
		{"Array[String, 1]", "Array[String, 1]"},
		{"Array[String, 1, 10]", "Array[String, 1, 10]"},
		{"Array[Any, 1]", "Array[Any, 1]"},
		{"Array[String, default, 3]", "Array[String, 0, 3]"},
		{"Array[Array[Integer[0]]]", "Array[Array[Integer[0]]]"},
		{"Hash", "Hash"},
		{"Hash[Any, Any]", "Hash"},
		{"Hash[String, Integer]", "Hash[String, Integer]"},
		{"Hash[String, Data, 1]", "Hash[String, Data, 1]"},
		{"Hash[Pattern[/^[a-z]+$/], Array[String], 0, 5]", "Hash[Pattern[/^[a-z]+$/], Array[String], 0, 5]"},
		{"Struct[{}]", "Struct[{}]"},
		{"Struct[{a => Integer}]", "Struct[{'a' => Integer}]"},
		{"Struct[{mode => Enum[r, rw], 'path' => Optional[String[1]], Optional[owner] => String}]",
			"Struct[{'mode' => Enum['r', 'rw'], 'path' => Optional[String[1]], Optional['owner'] => String}]"},
		{"Struct[{Optional['a'] => Optional[String]}]", "Struct[{'a' => Optional[String]}]"},
		{"Struct[{NotUndef['a'] => Optional[String]}]", "Struct[{NotUndef['a'] => Optional[String]}]"},
		{"Struct[{NotUndef['a'] => String}]", "Struct[{'a' => String}]"},
		{"Struct[{'a' => String,}]", "Struct[{'a' => String}]"},
		{"Tuple[String, Integer]", "Tuple[String, Integer]"},
		{"Tuple[String, 1]", "Tuple[String, 1]"},
		{"Tuple[String, Integer, 1, 5]", "Tuple[String, Integer, 1, 5]"},
		{"Tuple[String, default, 3]", "Tuple[String, 0, 3]"},
		{"Tuple[String, 1, default]", "Tuple[String, 1]"},
	}
	for _, tc := range tests {
		if tc.want == "" {
			continue
		}
		t.Run(tc.in, func(t *testing.T) {
			ty, err := ParseType(tc.in)
			if err != nil {
				t.Fatalf("ParseType(%q): %v", tc.in, err)
			}
			if got := ty.String(); got != tc.want {
				t.Fatalf("String() = %q, want %q", got, tc.want)
			}
			again, err := ParseType(ty.String())
			if err != nil {
				t.Fatalf("canonical form %q does not parse: %v", ty.String(), err)
			}
			if again.String() != tc.want {
				t.Fatalf("canonical form is not stable: %q -> %q", tc.want, again.String())
			}
		})
	}
}

func TestParseTypeErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", `unexpected end of input at 0`},
		{"   ", `unexpected end of input at 3`},
		{"string", `expected a type, got "string" at 0`},
		{"Foo", `unknown type "Foo" at 0`},
		{"Stdlib::Port", `unknown type "Stdlib::Port" at 0`},
		{"Integer[1, 10,]]", `unexpected token "]" at 15`},
		{"Integer[]", `unexpected token "]" at 8`},
		{"Integer[1 2]", `unexpected token "2" at 10`},
		{"Integer[1", `unexpected end of input at 9`},
		{"Integer[1,2,3]", `Integer takes at most 2 parameters, got 3 at 0`},
		{"Integer[10, 1]", `Integer: minimum 10 is greater than maximum 1 at 0`},
		{"Integer['1']", `expected an integer or default, got "'1'" at 8`},
		{"Integer[1.5]", `expected an integer or default, got "1.5" at 8`},
		{"Integer[99999999999999999999]", `integer 99999999999999999999 is out of the 64-bit range at 8`},
		{"Integer[08]", `malformed number "08" at 8`},
		{"Integer[1x]", `malformed number "1x" at 8`},
		{"Integer[-]", `unexpected character '-' at 8`},
		{"Float[2.0, 1]", `Float: minimum 2.0 is greater than maximum 1.0 at 0`},
		{"Float[a]", `expected a number or default, got "a" at 6`},
		{"String[-1]", `size must not be negative at 7`},
		{"String[5, 1]", `String: minimum size 5 is greater than maximum size 1 at 0`},
		{"String[a]", `expected an integer size or default, got "a" at 7`},
		{"String[1,2,3]", `String takes at most 2 parameters, got 3 at 0`},
		{"Boolean[1]", `Boolean does not take parameters at 0`},
		{"Any[String]", `Any does not take parameters at 0`},
		{"Enum[]", `unexpected token "]" at 5`},
		{"Enum[true]", `Enum requires at least 1 value at 0`},
		{"Enum[a, true, b]", `Enum: the case-insensitive flag must be the last parameter at 8`},
		{"Enum[1]", `Enum: expected a string, got "1" at 5`},
		{"Enum[String]", `Enum: expected a string, got "String" at 5`},
		{"Enum['it''s']", `unexpected token "'s'" at 9`},
		{"Enum['a", `unterminated string at 5`},
		{`Enum["$x"]`, `string interpolation is not supported at 6`},
		{`Enum["\u{zz}"]`, `malformed unicode escape at 6`},
		{"Pattern[/a]", `unterminated regular expression at 8`},
		{"Pattern[/(?=a)/]", `lookaround is not supported in /(?=a)/ at 8`},
		{"Pattern[/(a)\\1/]", `\1 is not supported in /(a)\1/ at 8`},
		{"Pattern[/a++/]", `unsupported regular expression /a++/`},
		{"Pattern[/[a/]", `unterminated character class in /[a/ at 8`},
		{"Pattern[/(?x)a/]", `the x (extended) flag is not supported`},
		{"Pattern[1]", `Pattern: expected a regular expression or string, got "1" at 8`},
		{"Optional[String, Integer]", `Optional takes 1 parameter, got 2 at 0`},
		{"Optional[1]", `expected a type, got "1" at 9`},
		{"Variant", `Variant requires at least 1 parameter at 0`},
		{"Variant[Integer, 'a']", `expected a type, got "'a'" at 17`},
		{"Array[1, 2]", `expected a type, got "1" at 6`},
		{"Array[String, 1, 2, 3]", `Array takes at most 3 parameters, got 4 at 0`},
		{"Array[String, 3, 1]", `Array: minimum size 3 is greater than maximum size 1 at 0`},
		{"Hash[String]", `Hash takes 2 to 4 parameters, got 1 at 0`},
		{"Hash[String, Integer, a]", `expected an integer size or default, got "a" at 22`},
		{"Struct", `Struct takes 1 parameter, a hash of member names to types at 0`},
		{"Struct[a]", `Struct takes 1 parameter, a hash of member names to types at 0`},
		{"Struct[{a => Integer, a => String}]", `Struct: duplicate key 'a' at 22`},
		{"Struct[{'' => Integer}]", `Struct: key must not be empty at 8`},
		{"Struct[{1 => Integer}]", `Struct: expected a string key, got "1" at 8`},
		{"Struct[{a => 1}]", `expected a type, got "1" at 13`},
		{"Struct[{a Integer}]", `unexpected token "Integer" at 10`},
		{"Struct[{Optional[a, b] => Integer}]", `Struct: Optional key takes 1 parameter at 8`},
		{"Tuple", `Tuple requires at least 1 type at 0`},
		{"Tuple[1, 2]", `Tuple requires at least 1 type at 0`},
		{"Tuple[String, 3, 1]", `Tuple: minimum size 3 is greater than maximum size 1 at 0`},
		{"Integer]", `unexpected token "]" at 7`},
		{"Integer Integer", `unexpected token "Integer" at 8`},
		{"String[1]x", `unexpected token "x" at 9`},
		{"Integer@", `unexpected character '@' at 7`},
		{"foo::", `malformed name "foo::" at 0`},
		{"::", `malformed name "::" at 0`},
		{strings.Repeat("Array[", 100) + "String" + strings.Repeat("]", 100), `type is nested too deeply`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			ty, err := ParseType(tc.in)
			if err == nil {
				t.Fatalf("ParseType(%q) = %v, want error containing %q", tc.in, ty, tc.want)
			}
			var se *TypeSyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *TypeSyntaxError", err)
			}
			if se.Input != tc.in {
				t.Errorf("Input = %q, want %q", se.Input, tc.in)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	type check struct {
		value string // JSON
		err   string // "" = accepted; otherwise the exact message
	}
	tests := []struct {
		typ    string
		checks []check
	}{
		{"Any", []check{{`null`, ""}, {`1`, ""}, {`"x"`, ""}, {`[1]`, ""}, {`{"a":null}`, ""}}},
		{"Undef", []check{{`null`, ""}, {`1`, "expects an Undef value, got Integer"}, {`""`, "expects an Undef value, got String"}}},
		{"Boolean", []check{
			{`true`, ""}, {`false`, ""},
			{`"true"`, "expects a Boolean value, got String"},
			{`0`, "expects a Boolean value, got Integer"},
			{`null`, "expects a Boolean value, got Undef"},
		}},
		{"String", []check{
			{`""`, ""}, {`"x"`, ""},
			{`1`, "expects a String value, got Integer"},
			{`1.5`, "expects a String value, got Float"},
			{`[]`, "expects a String value, got Array"},
			{`{}`, "expects a String value, got Hash"},
			{`null`, "expects a String value, got Undef"},
		}},
		{"String[1]", []check{{`"a"`, ""}, {`""`, "expects a String[1] value, got a String of length 0"}}},
		{"String[2, 3]", []check{
			{`"ab"`, ""}, {`"abc"`, ""}, {`"日本語"`, ""},
			{`"abcd"`, "expects a String[2, 3] value, got a String of length 4"},
			{`"a"`, "expects a String[2, 3] value, got a String of length 1"},
		}},
		{"Integer", []check{
			{`0`, ""}, {`-12`, ""}, {`9223372036854775807`, ""},
			{`1.0`, "expects an Integer value, got Float"},
			{`1e3`, "expects an Integer value, got Float"},
			{`"1"`, "expects an Integer value, got String"},
			{`true`, "expects an Integer value, got Boolean"},
			{`9223372036854775808`, "expects an Integer value in the 64-bit range, got 9223372036854775808"},
		}},
		{"Integer[1, 10]", []check{
			{`1`, ""}, {`10`, ""},
			{`12`, "expects a value between 1 and 10, got 12"},
			{`0`, "expects a value between 1 and 10, got 0"},
		}},
		{"Integer[0]", []check{{`0`, ""}, {`99999`, ""}, {`-1`, "expects a value of at least 0, got -1"}}},
		{"Integer[default, 10]", []check{{`-99`, ""}, {`11`, "expects a value of at most 10, got 11"}}},
		{"Integer[5, 5]", []check{{`5`, ""}, {`6`, "expects a value of 5, got 6"}}},
		{"Float", []check{
			{`1.5`, ""}, {`1e3`, ""}, {`-0.0`, ""}, {`1.0`, ""},
			{`1`, "expects a Float value, got Integer"},
			{`"1.5"`, "expects a Float value, got String"},
		}},
		{"Float[0, 1]", []check{
			{`0.5`, ""}, {`1.0`, ""},
			{`1.5`, "expects a value between 0.0 and 1.0, got 1.5"},
			{`-0.1`, "expects a value between 0.0 and 1.0, got -0.1"},
		}},
		{"Float[0.5]", []check{{`0.25`, "expects a value of at least 0.5, got 0.25"}}},
		{"Float[default, 0.5]", []check{{`0.75`, "expects a value of at most 0.5, got 0.75"}}},
		{"Numeric", []check{{`1`, ""}, {`1.5`, ""}, {`"1"`, "expects a Numeric value, got String"}}},
		{"Scalar", []check{{`1`, ""}, {`1.5`, ""}, {`"s"`, ""}, {`false`, ""}, {`null`, "expects a Scalar value, got Undef"}, {`[]`, "expects a Scalar value, got Array"}}},
		{"ScalarData", []check{{`1`, ""}, {`"s"`, ""}, {`{}`, "expects a ScalarData value, got Hash"}}},
		{"Data", []check{{`null`, ""}, {`1`, ""}, {`"x"`, ""}, {`[1, [null], {"a": {"b": 1.5}}]`, ""}}},
		{"Enum[a, 'b']", []check{
			{`"a"`, ""}, {`"b"`, ""},
			{`"c"`, "expects a match for Enum['a', 'b'], got 'c'"},
			{`"A"`, "expects a match for Enum['a', 'b'], got 'A'"},
			{`1`, "expects a match for Enum['a', 'b'], got Integer"},
		}},
		{"Enum[a, 'b', true]", []check{{`"A"`, ""}, {`"B"`, ""}, {`"c"`, "expects a match for Enum['a', 'b', true], got 'c'"}}},
		{"Enum", []check{{`"anything"`, ""}, {`1`, "expects a match for Enum, got Integer"}}},
		{"Pattern[/^a/, /z$/]", []check{
			{`"abc"`, ""}, {`"xyz"`, ""}, {`"x\nabc"`, ""},
			{`"bcd"`, "expects a match for Pattern[/^a/, /z$/], got 'bcd'"},
			{`null`, "expects a match for Pattern[/^a/, /z$/], got Undef"},
		}},
		{"Pattern[/b/]", []check{{`"abc"`, ""}}}, // matches anywhere, as in Puppet
		{"Pattern[/\\A\\h+\\z/]", []check{{`"00ff"`, ""}, {`"00fg"`, "expects a match for Pattern[/\\A\\h+\\z/], got '00fg'"}, {`"ab\ncd"`, "expects a match for Pattern[/\\A\\h+\\z/], got 'ab\ncd'"}}},
		{"Optional[Integer]", []check{
			{`null`, ""}, {`1`, ""},
			{`"1"`, "expects a value of type Undef or Integer, got String"},
		}},
		{"Optional[Integer[1, 10]]", []check{{`11`, "expects a value between 1 and 10, got 11"}}},
		{"Optional[Enum[a, b]]", []check{{`"c"`, "expects an undef value or a match for Enum['a', 'b'], got 'c'"}}},
		{"Optional[Variant[Integer, Boolean]]", []check{{`"x"`, "expects a value of type Undef, Integer, or Boolean, got String"}}},
		{"Optional", []check{{`null`, ""}, {`[1]`, ""}}},
		{"NotUndef", []check{{`1`, ""}, {`null`, "expects a NotUndef value, got Undef"}}},
		{"NotUndef[String]", []check{{`"x"`, ""}, {`null`, "expects a NotUndef[String] value, got Undef"}, {`1`, "expects a String value, got Integer"}}},
		{"Sensitive[String[8]]", []check{
			{`"longenough"`, ""},
			{`"short"`, "expects a String[8] value, got [value redacted]"},
			{`1`, "expects a String value, got Integer"},
		}},
		{"Sensitive[Enum[a]]", []check{{`"secret"`, "expects a match for Enum['a'], got [value redacted]"}}},
		{"Sensitive[Integer[0, 1]]", []check{{`7`, "expects a value between 0 and 1, got [value redacted]"}}},
		{"Sensitive", []check{{`"x"`, ""}, {`null`, ""}}},
		{"Variant[Integer, String]", []check{
			{`1`, ""}, {`"x"`, ""},
			{`true`, "expects a value of type Integer or String, got Boolean"},
		}},
		{"Variant[Integer, String[5]]", []check{{`"abc"`, "expects a String[5] value, got a String of length 3"}}},
		{"Variant[Enum[a], Pattern[/^b/]]", []check{
			{`"a"`, ""}, {`"bx"`, ""},
			{`"c"`, "expects a match for Variant[Enum['a'], Pattern[/^b/]], got 'c'"},
		}},
		{"Variant[Integer, Boolean, Array[String]]", []check{{`{}`, "expects a value of type Integer, Boolean, or Array, got Hash"}}},
		{"Variant[String[1], String[3]]", []check{{`1`, "expects a String value, got Integer"}}},
		{"Array[Integer]", []check{
			{`[]`, ""}, {`[1, 2]`, ""},
			{`[1, "2"]`, "index 1 expects an Integer value, got String"},
			{`"1"`, "expects an Array value, got String"},
		}},
		{"Array[String, 1]", []check{{`[]`, "expects size to be at least 1, got 0"}}},
		{"Array[String, 1, 2]", []check{{`["a","b","c"]`, "expects size to be between 1 and 2, got 3"}}},
		{"Array[String, 0, 2]", []check{{`["a","b","c"]`, "expects size to be at most 2, got 3"}}},
		{"Array[String, 2, 2]", []check{{`["a"]`, "expects size to be 2, got 1"}}},
		{"Array[Array[Integer[0]]]", []check{{`[[1], [2, -3]]`, "index 1 index 1 expects a value of at least 0, got -3"}}},
		{"Array", []check{{`[null, 1, "x"]`, ""}, {`{}`, "expects an Array value, got Hash"}}},
		{"Hash[String, Integer]", []check{
			{`{}`, ""}, {`{"a": 1}`, ""},
			{`{"a": 1, "b": "x"}`, "entry 'b' expects an Integer value, got String"},
			{`[]`, "expects a Hash value, got Array"},
		}},
		{"Hash[Pattern[/^[a-z]+$/], Any]", []check{{`{"Bad": 1}`, "key of entry 'Bad' expects a match for Pattern[/^[a-z]+$/], got 'Bad'"}}},
		{"Hash[String, Integer, 1]", []check{{`{}`, "expects size to be at least 1, got 0"}}},
		{"Struct[{port => Integer, Optional[host] => String, 'tls' => Optional[Boolean]}]", []check{
			{`{"port": 80}`, ""},
			{`{"port": 80, "host": "h", "tls": null}`, ""},
			{`{"port": "80"}`, "entry 'port' expects an Integer value, got String"},
			{`{"host": "h"}`, "expects a value for key 'port'"},
			{`{"port": 80, "host": null}`, "entry 'host' expects a String value, got Undef"},
			{`{"port": 80, "zzz": 1}`, "unrecognized key 'zzz'"},
			{`[]`, "expects a Struct value, got Array"},
		}},
		{"Struct[{NotUndef[a] => Optional[String]}]", []check{{`{"a": null}`, ""}, {`{}`, "expects a value for key 'a'"}}},
		{"Struct[{}]", []check{{`{}`, ""}, {`{"a": 1}`, "unrecognized key 'a'"}}},
		{"Tuple[String, Integer]", []check{
			{`["a", 1]`, ""},
			{`["a"]`, "expects size to be 2, got 1"},
			{`["a", "b"]`, "index 1 expects an Integer value, got String"},
		}},
		{"Tuple[String, Integer, 1]", []check{{`["a"]`, ""}, {`["a", 1, 2, 3]`, ""}, {`["a", 1, "x"]`, "index 2 expects an Integer value, got String"}, {`[]`, "expects size to be at least 1, got 0"}}},
		{"Tuple[String, Integer, 0, 3]", []check{{`[]`, ""}, {`["a", 1, 2, 3]`, "expects size to be at most 3, got 4"}}},
		{"Array[Struct[{name => String[1], Optional[mode] => Pattern[/^[0-7]{4}$/]}]]", []check{
			{`[{"name": "a", "mode": "0644"}]`, ""},
			{`[{"name": "a"}, {"name": "b", "mode": "644"}]`, "index 1 entry 'mode' expects a match for Pattern[/^[0-7]{4}$/], got '644'"},
		}},
	}
	for _, tc := range tests {
		ty, err := ParseType(tc.typ)
		if err != nil {
			t.Fatalf("ParseType(%q): %v", tc.typ, err)
		}
		for _, c := range tc.checks {
			t.Run(tc.typ+" "+c.value, func(t *testing.T) {
				err := ty.Validate(jv(t, c.value))
				switch {
				case c.err == "" && err != nil:
					t.Fatalf("Validate(%s) = %v, want nil", c.value, err)
				case c.err != "" && err == nil:
					t.Fatalf("Validate(%s) = nil, want %q", c.value, c.err)
				case c.err != "" && err.Error() != c.err:
					t.Fatalf("Validate(%s) = %q, want %q", c.value, err, c.err)
				}
				if err != nil {
					var ve *ValueError
					if !errors.As(err, &ve) {
						t.Fatalf("error %T is not a *ValueError", err)
					}
				}
			})
		}
	}
}

// TestValidateGoValues covers values not produced by a UseNumber decoder.
func TestValidateGoValues(t *testing.T) {
	tests := []struct {
		typ   string
		value any
		ok    bool
	}{
		{"Integer", float64(3), true},
		{"Integer", 3.5, false},
		{"Integer", float64(1 << 63), false},
		{"Integer[0, 5]", float64(6), false},
		{"Float", float64(3), true},
		{"Float", 3, false},
		{"Integer", 3, true},
		{"Integer", int64(-3), true},
		{"Integer", uint64(1 << 63), false},
		{"Integer", uint8(7), true},
		{"Numeric", float32(1.5), true},
		{"Integer", json.Number("bogus"), false},
		{"Data", struct{}{}, false},
		{"Data", []any{map[string]any{"a": 1}}, true},
		{"Any", struct{}{}, true},
		{"String", []byte("x"), false},
	}
	for _, tc := range tests {
		ty, err := ParseType(tc.typ)
		if err != nil {
			t.Fatal(err)
		}
		err = ty.Validate(tc.value)
		if (err == nil) != tc.ok {
			t.Errorf("%s.Validate(%#v) = %v, want ok=%v", tc.typ, tc.value, err, tc.ok)
		}
	}
}

func TestRubyRegexp(t *testing.T) {
	tests := []struct {
		re    string
		in    string
		match bool
	}{
		{`^a`, "b\na", true},        // Ruby ^ is a line anchor
		{`\Aa`, "b\na", false},      // \A is the string start
		{`a$`, "a\nb", true},        // Ruby $ is a line anchor
		{`a\z`, "a\n", false},       // \z is the very end
		{`a\Z`, "a\n", true},        // \Z allows a final newline
		{`a\Z`, "ab", false},        //
		{`^\h+$`, "DEADbeef", true}, // \h is a hex digit
		{`^[\h-]+$`, "ab-12", true}, // \h inside a class
		{`^\H+$`, "xyz", true},      //
		{`^\H+$`, "xaz", false},     //
		{`a.b`, "a\nb", false},      // dot does not match newline
		{`(?m)a.b`, "a\nb", true},   // Ruby m: dot matches newline
		{`(?m:a.b)`, "a\nb", true},  //
		{`(?i)abc`, "ABC", true},    //
		{`(?i-m:A.)`, "a\n", false}, //
		{`(?<year>\d{4})`, "2024", true},
		{`\e`, "\x1b", true},
		{`\u00e9`, "é", true},
		{`\u{1F600}`, "😀", true},
		{`[[:alpha:]]+\d`, "ab1", true},
		{`[]a]`, "]", true},
		{`[^]a]`, "]", false},
		{`a\/b`, "a/b", true},
		{`\.`, "x", false},
	}
	for _, tc := range tests {
		t.Run(tc.re+" "+tc.in, func(t *testing.T) {
			re, err := compileRubyRegexp(tc.re)
			if err != nil {
				t.Fatalf("compile /%s/: %v", tc.re, err)
			}
			if got := re.MatchString(tc.in); got != tc.match {
				t.Fatalf("/%s/ matches %q = %v, want %v (Go: %s)", tc.re, tc.in, got, tc.match, re)
			}
		})
	}
	for _, bad := range []string{`a\`, `(?!a)`, `(?<=a)b`, `(?>a)`, `(?#c)`, `\G`, `\k<x>`, `[a&&b]`, `[[a]]`, `[[:alpha]`, `\uZZZZ`, `\u{}`, `(?q)`, `(?i`} {
		if _, err := compileRubyRegexp(bad); err == nil {
			t.Errorf("compile /%s/ succeeded, want an error", bad)
		}
	}
}

func TestAcceptsUndef(t *testing.T) {
	tests := map[string]bool{
		"Any": true, "Data": true, "Undef": true, "Optional": true, "Optional[String]": true,
		"Variant[String, Undef]": true, "Sensitive[Optional[String]]": true, "Sensitive": true,
		"String": false, "NotUndef": false, "Scalar": false, "Variant[String, Integer]": false,
		"Sensitive[String]": false, "Array": false, "Hash": false, "Boolean": false,
	}
	for s, want := range tests {
		ty, err := ParseType(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := ty.acceptsUndef(); got != want {
			t.Errorf("%s accepts undef = %v, want %v", s, got, want)
		}
	}
}
