package query

import (
	"errors"
	"strings"
	"testing"
)

// validQueries maps accepted queries to their canonical String() form.
var validQueries = []struct{ in, canonical string }{
	{`inventory[certname] {}`, `inventory[certname] {}`},
	{`inventory[certname] { }`, `inventory[certname] {}`},
	{`inventory {}`, `inventory[certname] {}`},
	{"\tnodes [ certname ]\n{\n}\n", `nodes[certname] {}`},
	{`nodes[certname] { certname = "db1" }`, `nodes[certname] { certname = "db1" }`},
	{`inventory[certname] { facts.os.family = "Debian" and (facts.role ~ "web" or certname = "db1") }`,
		`inventory[certname] { facts.os.family = "Debian" and (facts.role ~ "web" or certname = "db1") }`},
	{`Inventory[Certname] { Facts.os.family = 'Debian' AND NOT Certname = "x" Or facts.b = FALSE }`,
		`inventory[certname] { facts.os.family = "Debian" and not certname = "x" or facts.b = false }`},
	{`inventory{certname="a" or certname="b" and certname="c"}`,
		`inventory[certname] { certname = "a" or certname = "b" and certname = "c" }`},
	{`inventory { (certname = "a" or certname = "b") and certname = "c" }`,
		`inventory[certname] { (certname = "a" or certname = "b") and certname = "c" }`},
	{`inventory { (certname = "a" or certname = "b") or certname = "c" }`,
		`inventory[certname] { (certname = "a" or certname = "b") or certname = "c" }`},
	{`inventory { certname = "a" and (certname = "b" and certname = "c") }`,
		`inventory[certname] { certname = "a" and (certname = "b" and certname = "c") }`},
	{`inventory { ((certname = "a")) }`, `inventory[certname] { certname = "a" }`},
	{`inventory { !(certname = "a" and facts.x > 1) }`, `inventory[certname] { not (certname = "a" and facts.x > 1) }`},
	{`inventory { not not certname="a" }`, `inventory[certname] { not not certname = "a" }`},
	{`inventory { not(certname = "a" or facts.x<=1) and facts.y >= -2 }`,
		`inventory[certname] { not (certname = "a" or facts.x <= 1) and facts.y >= -2 }`},
	{`inventory { facts."my.key" = 'it\'s' }`, `inventory[certname] { facts."my.key" = "it's" }`},
	{`inventory { facts."ok".'with space' = "a\"b\\c\d" }`, `inventory[certname] { facts.ok."with space" = "a\"b\\c\\d" }`},
	{`inventory { facts."q\"uote" = "" }`, `inventory[certname] { facts."q\"uote" = "" }`},
	{`inventory { facts.a-b.c_d.not.and = 1 }`, `inventory[certname] { facts.a-b.c_d.not.and = 1 }`},
	{`inventory { facts.a = 1.50 }`, `inventory[certname] { facts.a = 1.5 }`},
	{`inventory { facts.a = 1e3 }`, `inventory[certname] { facts.a = 1000.0 }`},
	{`inventory { facts.a >= 2.5E+10 }`, `inventory[certname] { facts.a >= 2.5e+10 }`},
	{`inventory { facts.a < 99999999999999999999 }`, `inventory[certname] { facts.a < 1.0e+20 }`},
	{`inventory { facts.a = -0.0 }`, `inventory[certname] { facts.a = -0.0 }`},
	{`inventory { facts.a = TRUE }`, `inventory[certname] { facts.a = true }`},
	{`inventory { facts.a ~ "^web\d+$" }`, `inventory[certname] { facts.a ~ "^web\\d+$" }`},
	{`inventory { facts.a != 'x' }`, `inventory[certname] { facts.a != "x" }`},
}

func TestParseValid(t *testing.T) {
	for _, tc := range validQueries {
		t.Run(tc.in, func(t *testing.T) {
			q, err := Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if q.String() != tc.canonical {
				t.Errorf("String() = %q, want %q", q.String(), tc.canonical)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	deep := strings.Repeat("(", maxDepth+1) + `certname = "a"` + strings.Repeat(")", maxDepth+1)
	deepNot := strings.Repeat("not ", maxDepth+1) + `certname = "a"`
	tests := []struct {
		in  string
		pos int
		msg string // substring of Error.Msg
	}{
		{``, 0, "empty query"},
		{`   `, 3, "empty query"},
		{`[ "from", "nodes" ]`, 0, "AST"},
		{`facts { name = "x" }`, 0, `entity "facts" is not supported`},
		{`foo[certname] {}`, 0, `expected "inventory" or "nodes"`},
		{`"x"`, 0, `expected "inventory" or "nodes"`},
		{`inventory[facts] {}`, 10, "projection must be exactly [certname]"},
		{`inventory[certname, facts] {}`, 18, "projection must be exactly [certname]"},
		{`inventory[] {}`, 10, "projection must be exactly [certname]"},
		{`inventory[certname] `, 20, `expected "{"`},
		{`inventory[certname] { certname = "a"`, 36, `expected "}"`},
		{`inventory[certname] { (certname = "a" }`, 38, `expected ")"`},
		{`nodes[certname] { certname = "a" } extra`, 35, `unexpected "extra" after the end`},
		{`inventory[certname] { certname = "a" limit 10 }`, 37, "paging and grouping"},
		{`inventory { certname in ["a", "b"] }`, 21, `operator "in" is not supported`},
		{`inventory { facts.x is null }`, 20, `"is null"`},
		{`inventory { facts.x !~ "a" }`, 20, `"!~" is not supported`},
		{`inventory { facts.x ~> ["a"] }`, 20, `"~>" is not supported`},
		{`inventory { count() = 1 }`, 12, "functions"},
		{`inventory { resources { type = "Class" } }`, 12, "subqueries"},
		{`inventory { nodes[certname] { certname = "a" } }`, 12, "subqueries"},
		{`inventory { facts { name = "a" } }`, 12, "subqueries"},
		{`inventory { trusted.extensions.pp_role = "x" }`, 12, `unsupported field "trusted"`},
		{`inventory { facts = "x" }`, 18, `expected "." and a fact name`},
		{`inventory { facts. = "x" }`, 19, "expected a fact name"},
		{`inventory { facts.a[0] = 1 }`, 19, "array indexes"},
		{`inventory { facts.a = [1] }`, 22, "array values"},
		{`inventory { facts.a = }`, 22, "expected a value"},
		{`inventory { facts.a = null }`, 22, "expected a value"},
		{`inventory { facts.a "x" }`, 20, "expected a comparison operator"},
		{`inventory { facts.a == 1 }`, 21, "expected a value"},
		{`inventory { facts.a ~ 5 }`, 22, `"~" needs a quoted regular expression`},
		{`inventory { facts.a ~ "(" }`, 22, "invalid regular expression: error parsing regexp: missing closing )"},
		{"inventory { facts.a ~ \"\xff\" }", 22, "invalid regular expression"},
		{`inventory { facts.a < "5" }`, 22, `"<" needs a number`},
		{`inventory { facts.a >= true }`, 23, `">=" needs a number`},
		{`inventory { facts.a = "abc }`, 22, "unterminated string"},
		{`inventory { facts.a = "x" and certname = "unterminated }`, 41, "unterminated string"},
		{`inventory { facts.a = 1e999 }`, 22, "out of range"},
		{`inventory { facts.a = 1 and }`, 28, "expected a condition"},
		{`inventory { () }`, 13, "expected a condition"},
		{`inventory { facts.a = 1 or or }`, 27, "expected a condition"},
		{`inventory { not }`, 16, "expected a condition"},
		{`inventory { certname = "a" # }`, 27, `unexpected character '#'`},
		{`inventory { facts.a = 1 ) }`, 24, `expected "}"`},
		{`inventory { facts.a = 1 } }`, 26, `unexpected "}" after the end`},
		{`inventory { facts.a = -x }`, 22, `unexpected character '-'`},
		{`inventory { facts.a = 1 "x" `, 24, `expected "}"`},
		{`inventory { facts.a = 5abc }`, 23, `expected "}"`},
		{`inventory { facts.a = 1. }`, 23, `expected "}"`},
		{`inventory { certname.x = 1 }`, 20, "expected a comparison operator"},
		{`inventory { facts.a.1 = 1 }`, 20, "expected a fact name"},
		{`inventory { ` + deep + ` }`, 12 + maxDepth, "nested more than 100 levels"},
		{`inventory { ` + deepNot + ` }`, 12 + 4*maxDepth, "nested more than 100 levels"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			q, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", tc.in, q)
			}
			var qe *Error
			if !errors.As(err, &qe) {
				t.Fatalf("error %v (%T) is not a *query.Error", err, err)
			}
			if qe.Pos != tc.pos || !strings.Contains(qe.Msg, tc.msg) {
				t.Errorf("got position %d %q, want position %d containing %q", qe.Pos, qe.Msg, tc.pos, tc.msg)
			}
			if qe.Pos < 0 || qe.Pos > len(tc.in) {
				t.Errorf("position %d outside the query (length %d)", qe.Pos, len(tc.in))
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	_, err := Parse(`inventory[certname] { (certname = "a" }`)
	const want = `query error at position 38: expected ")"`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
}

func TestMaxDepthAccepted(t *testing.T) {
	parens := strings.Repeat("(", maxDepth) + `certname = "a"` + strings.Repeat(")", maxDepth)
	nots := strings.Repeat("not ", maxDepth) + `certname = "a"`
	for _, body := range []string{parens, nots} {
		q, err := Parse(`inventory { ` + body + ` }`)
		if err != nil {
			t.Fatalf("Parse at the depth limit: %v", err)
		}
		if !q.Match("a", nil) {
			t.Errorf("%s: does not match certname a", q)
		}
	}
}

// TestStringRoundTrip checks String() re-parses to the same canonical form and matches the
// same fixture nodes, for every valid and every evaluation query.
func TestStringRoundTrip(t *testing.T) {
	var inputs []string
	for _, v := range validQueries {
		inputs = append(inputs, v.in)
	}
	for _, e := range evalQueries {
		inputs = append(inputs, e.query)
	}
	nodes := fleet(t, false)
	for _, in := range inputs {
		t.Run(in, func(t *testing.T) {
			q, err := Parse(in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", in, err)
			}
			checkRoundTrip(t, q, nodes)
		})
	}
}

func checkRoundTrip(t *testing.T, q *Query, nodes []Candidate) {
	t.Helper()
	s := q.String()
	q2, err := Parse(s)
	if err != nil {
		t.Fatalf("canonical form %q does not re-parse: %v", s, err)
	}
	if s2 := q2.String(); s2 != s {
		t.Fatalf("canonical form not stable: %q then %q", s, s2)
	}
	for _, n := range nodes {
		if a, b := q.Match(n.Name, n.Facts), q2.Match(n.Name, n.Facts); a != b {
			t.Fatalf("%s: original matches %v, re-parsed %q matches %v", n.Name, a, s, b)
		}
	}
}
