package query

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
)

// evalQueries are evaluated over the fixture fleet (fleet_test.go); want lists the matching
// certnames in sorted order.
var evalQueries = []struct {
	name  string
	query string
	want  []string
}{
	{"empty body", `inventory[certname] {}`, []string{"bare", "db1", "db2", "mac1", "nullish", "web1", "web2", "win1"}},
	{"nodes without projection", `nodes { certname = "win1" }`, []string{"win1"}},
	{"string equality", `inventory[certname] { facts.os.family = "Debian" }`, []string{"web1", "web2"}},
	{"string equality is case-sensitive", `inventory[certname] { facts.os.family = "debian" }`, nil},
	{"not equal includes missing facts", `inventory[certname] { facts.os.family != "Debian" }`,
		[]string{"bare", "db1", "db2", "mac1", "nullish", "win1"}},
	{"regex unanchored", `inventory[certname] { facts.role ~ "web" }`, []string{"web1", "web2"}},
	{"regex anchored", `inventory[certname] { facts.role ~ "^web$" }`, []string{"web1"}},
	{"regex skips null and missing", `inventory[certname] { facts.role ~ ".*" }`, []string{"db1", "db2", "web1", "web2", "win1"}},
	{"regex on certname", `inventory[certname] { certname ~ "^(web|db)[0-9]$" }`, []string{"db1", "db2", "web1", "web2"}},
	{"brief example", `inventory[certname] { facts.os.family = "Debian" and (facts.role ~ "web" or certname = "db1") }`,
		[]string{"web1", "web2"}},
	{"brief example RedHat", `inventory[certname] { facts.os.family = "RedHat" and (facts.role ~ "web" or certname = "db1") }`,
		[]string{"db1"}},
	{"and binds tighter than or", `inventory { certname = "db1" or facts.os.family = "Debian" and facts.role = "web" }`,
		[]string{"db1", "web1"}},
	{"parentheses override precedence", `inventory { (certname = "db1" or facts.os.family = "Debian") and facts.role = "web" }`,
		[]string{"web1"}},
	{"or chain", `inventory { certname = "bare" or certname = "mac1" or certname = "nope" }`, []string{"bare", "mac1"}},
	{"not binds tighter than and", `inventory { not facts.os.family = "Debian" and facts.is_virtual = true }`,
		[]string{"db2", "win1"}},
	{"not of a group", `inventory { not (facts.role ~ "^db" or facts.os.family = "Debian") }`,
		[]string{"bare", "mac1", "nullish", "win1"}},
	{"not includes missing", `inventory { not facts.role = "db" }`,
		[]string{"bare", "db2", "mac1", "nullish", "web1", "web2", "win1"}},
	{"double not", `inventory { not not facts.role = "db" }`, []string{"db1"}},
	{"bang", `inventory { !(facts.os.family = "Debian") }`, []string{"bare", "db1", "db2", "mac1", "nullish", "win1"}},
	{"keywords case-insensitive", `INVENTORY[CERTNAME] { FACTS.os.family = "Debian" AND NOT facts.role = "web" OR CertName = 'bare' }`,
		[]string{"bare", "web2"}},
	{"numeric ge", `inventory { facts.processors.count >= 8 }`, []string{"db1", "db2", "mac1", "web2"}},
	{"numeric range", `inventory { facts.processors.count > 4 and facts.processors.count < 16 }`, []string{"mac1", "web2"}},
	{"numeric le", `inventory { facts.processors.count <= 4 }`, []string{"web1", "win1"}},
	{"numeric gt skips null and missing", `inventory { facts.processors.count > 0 }`,
		[]string{"db1", "db2", "mac1", "web1", "web2", "win1"}},
	{"int literal equals float fact", `inventory { facts.processors.count = 4.0 }`, []string{"web1"}},
	{"string literal vs number fact", `inventory { facts.processors.count = "16" }`, []string{"db1", "db2"}},
	{"number literal vs numeric string fact", `inventory { facts.processors.count = 10 }`, []string{"mac1"}},
	{"string literal vs numeric string fact", `inventory { facts.processors.count = "10" }`, []string{"mac1"}},
	{"numeric string release", `inventory { facts.os.release.major = 12 }`, []string{"web1"}},
	{"numeric string ordering", `inventory { facts.os.release.major > 10 }`, []string{"mac1", "web1", "web2", "win1"}},
	{"numeric string 7", `inventory { facts.count_str = 7 and facts.count_str = 7.0 and facts.count_str < 10 }`, []string{"win1"}},
	{"strings compare as strings", `inventory { facts.count_str = "7.0" }`, nil},
	{"float fact", `inventory { facts.load < 1 and facts.load = 0.75 }`, []string{"web1"}},
	{"large integer", `inventory { facts.memory.total_bytes = 68719476736 }`, []string{"db1"}},
	{"boolean", `inventory { facts.is_virtual = true }`, []string{"db2", "web1", "win1"}},
	{"boolean keyword case", `inventory { facts.is_virtual = FALSE }`, []string{"db1", "web2"}},
	{"boolean is not a string", `inventory { facts.is_virtual = "true" }`, nil},
	{"boolean not equal", `inventory { facts.is_virtual != true }`, []string{"bare", "db1", "mac1", "nullish", "web2"}},
	{"regex on boolean", `inventory { facts.is_virtual ~ "^true$" }`, []string{"db2", "web1", "win1"}},
	{"regex on number", `inventory { facts.processors.count ~ "^1" }`, []string{"db1", "db2", "mac1"}},
	{"regex on float", `inventory { facts.load ~ "^0\.75$" }`, []string{"web1"}},
	{"path through a string", `inventory { facts.os.family ~ "." }`, []string{"db1", "db2", "mac1", "web1", "web2", "win1"}},
	{"string where an object is usual", `inventory { facts.os ~ "flat" }`, []string{"nullish"}},
	{"object is not equal", `inventory { facts.os != "flat-string" }`,
		[]string{"bare", "db1", "db2", "mac1", "web1", "web2", "win1"}},
	{"arrays never match", `inventory { facts.tags = "a" or facts.tags ~ "a" }`, nil},
	{"quoted key with dot", `inventory { facts."my.key" = "dotted" }`, []string{"web1"}},
	{"single-quoted key with space", `inventory { facts.'with space' = 'yes' }`, []string{"db2"}},
	{"escaped quotes", `inventory { facts.motd = "say \"hi\"" and facts.motd = 'say "hi"' }`, []string{"web2"}},
	{"escaped backslash", `inventory { facts.path = "C:\\Windows" }`, []string{"win1"}},
	{"regex with a literal backslash", `inventory { facts.path ~ "^C:\\\\" }`, []string{"win1"}},
	{"unknown escape kept for regex", `inventory { facts.path ~ "\w+$" and facts.path ~ '^\w:' }`, []string{"win1"}},
	{"missing fact", `inventory { facts.nope = "x" or facts.nope ~ "" or facts.nope < 1 }`, nil},
	{"missing fact not equal", `inventory { facts.nope.deeper != 1 }`,
		[]string{"bare", "db1", "db2", "mac1", "nullish", "web1", "web2", "win1"}},
}

func TestSelect(t *testing.T) {
	for _, useNumber := range []bool{false, true} {
		nodes := fleet(t, useNumber)
		for _, tc := range evalQueries {
			name := tc.name + "/float64"
			if useNumber {
				name = tc.name + "/json.Number"
			}
			t.Run(name, func(t *testing.T) {
				q, err := Parse(tc.query)
				if err != nil {
					t.Fatalf("Parse(%q): %v", tc.query, err)
				}
				got := Select(q, nodes)
				if len(got) != len(tc.want) || (len(got) > 0 && !slices.Equal(got, tc.want)) {
					t.Errorf("Select(%s) = %v, want %v", q, got, tc.want)
				}
			})
		}
	}
}

func TestSelectSortsAndDeduplicates(t *testing.T) {
	nodes := []Candidate{{Name: "c"}, {Name: "a"}, {Name: "b"}, {Name: "a"}}
	if got := Select(nil, nodes); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("Select(nil) = %v, want [a b c]", got)
	}
	q, err := Parse(`inventory { certname != "b" }`)
	if err != nil {
		t.Fatal(err)
	}
	if got := Select(q, nodes); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("Select = %v, want [a c]", got)
	}
	if got := Select(q, nil); got == nil || len(got) != 0 {
		t.Errorf("Select over no nodes = %#v, want an empty non-nil slice", got)
	}
}

// TestMatchGoValues covers fact values that do not come from encoding/json's default decoding.
func TestMatchGoValues(t *testing.T) {
	tests := []struct {
		query string
		facts map[string]any
		want  bool
	}{
		{`inventory { facts.n = 3 }`, map[string]any{"n": 3}, true},
		{`inventory { facts.n = 3 }`, map[string]any{"n": int8(3)}, true},
		{`inventory { facts.n > 2 }`, map[string]any{"n": uint16(3)}, true},
		{`inventory { facts.n = 3.5 }`, map[string]any{"n": float32(3.5)}, true},
		{`inventory { facts.n > 9223372036854775807 }`, map[string]any{"n": uint64(math.MaxUint64)}, true},
		{`inventory { facts.n ~ "^18446744073709551615$" }`, map[string]any{"n": uint64(math.MaxUint64)}, true},
		{`inventory { facts.n ~ "^-7$" }`, map[string]any{"n": int64(-7)}, true},
		{`inventory { facts.n = 9007199254740993 }`, map[string]any{"n": json.Number("9007199254740993")}, true},
		{`inventory { facts.n = 9007199254740992 }`, map[string]any{"n": json.Number("9007199254740993")}, false},
		{`inventory { facts.n ~ "e" }`, map[string]any{"n": json.Number("1e3")}, true},
		{`inventory { facts.n = 1000 }`, map[string]any{"n": json.Number("1e3")}, true},
		{`inventory { facts.n = 1 }`, map[string]any{"n": json.Number("bogus")}, false},
		{`inventory { facts.n = 1 }`, map[string]any{"n": true}, false},
		{`inventory { facts.n = "1" }`, map[string]any{"n": true}, false},
		{`inventory { facts.n = 1 }`, map[string]any{"n": math.NaN()}, false},
		{`inventory { facts.n != 1 }`, map[string]any{"n": math.NaN()}, true},
		{`inventory { facts.n < 1 }`, map[string]any{"n": math.Inf(-1)}, true},
		{`inventory { facts.n < 1 }`, map[string]any{"n": "Inf"}, false},
		{`inventory { facts.n < 1 }`, map[string]any{"n": "0x0"}, false},
		{`inventory { facts.n = 1 }`, map[string]any{"n": " 1"}, false},
		{`inventory { facts.n = "x" }`, nil, false},
		{`inventory { facts.n != "x" }`, nil, true},
		{`inventory { facts.a.b = 1 }`, map[string]any{"a": map[string]any{"b": 1.0}}, true},
		{`inventory { facts.a.b = 1 }`, map[string]any{"a": []any{1.0}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			q, err := Parse(tc.query)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := q.Match("node", tc.facts); got != tc.want {
				t.Errorf("Match(%v) = %v, want %v", tc.facts, got, tc.want)
			}
		})
	}
}

func TestNilQuery(t *testing.T) {
	var q *Query
	if !q.Match("x", nil) {
		t.Error("nil query does not match")
	}
	if s := q.String(); !strings.HasPrefix(s, "inventory[certname]") {
		t.Errorf("nil query String() = %q", s)
	}
}
