package query

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Query is a parsed scope query. It is immutable and safe for concurrent use.
type Query struct {
	entity string // "inventory" or "nodes", as written (lower-cased)
	where  expr   // nil: the body was empty and every node matches
}

// Candidate is one node offered to Select: its certname and its facts as decoded by
// encoding/json (numbers may be float64 or json.Number).
type Candidate struct {
	Name  string
	Facts map[string]any
}

// Select returns the names of the nodes q matches, sorted and without duplicates. A nil q
// matches every node.
func Select(q *Query, nodes []Candidate) []string {
	out := make([]string, 0, len(nodes))
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		if seen[n.Name] || !q.Match(n.Name, n.Facts) {
			continue
		}
		seen[n.Name] = true
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out
}

// Match reports whether the node with this certname and facts satisfies the query. A nil q
// (like an empty body) matches every node. See the package documentation for the rules.
func (q *Query) Match(certname string, facts map[string]any) bool {
	if q == nil || q.where == nil {
		return true
	}
	return q.where.match(certname, facts)
}

// String returns the canonical form of the query: lower-case keywords, double-quoted strings,
// and only the parentheses the precedence needs (or < and < not). It parses back to a query
// that matches exactly the same nodes, and re-formats to the same string.
func (q *Query) String() string {
	if q == nil {
		return "inventory[certname] {}"
	}
	var b strings.Builder
	b.WriteString(q.entity)
	b.WriteString("[certname] {")
	if q.where != nil {
		b.WriteByte(' ')
		q.where.write(&b, ctxTop)
		b.WriteByte(' ')
	}
	b.WriteByte('}')
	return b.String()
}

// ctx is the syntactic position an expression is written in; it decides the parentheses.
type ctx int

const (
	ctxTop ctx = iota
	ctxOr
	ctxAnd
	ctxNot
)

type expr interface {
	match(certname string, facts map[string]any) bool
	write(b *strings.Builder, c ctx)
}

type orExpr []expr

func (e orExpr) match(certname string, facts map[string]any) bool {
	for _, x := range e {
		if x.match(certname, facts) {
			return true
		}
	}
	return false
}

func (e orExpr) write(b *strings.Builder, c ctx) {
	writeList(b, e, " or ", ctxOr, c != ctxTop)
}

type andExpr []expr

func (e andExpr) match(certname string, facts map[string]any) bool {
	for _, x := range e {
		if !x.match(certname, facts) {
			return false
		}
	}
	return true
}

func (e andExpr) write(b *strings.Builder, c ctx) {
	writeList(b, e, " and ", ctxAnd, c == ctxAnd || c == ctxNot)
}

func writeList(b *strings.Builder, xs []expr, sep string, inner ctx, paren bool) {
	if paren {
		b.WriteByte('(')
	}
	for i, x := range xs {
		if i > 0 {
			b.WriteString(sep)
		}
		x.write(b, inner)
	}
	if paren {
		b.WriteByte(')')
	}
}

type notExpr struct{ x expr }

func (e notExpr) match(certname string, facts map[string]any) bool {
	return !e.x.match(certname, facts)
}

func (e notExpr) write(b *strings.Builder, _ ctx) {
	b.WriteString("not ")
	e.x.write(b, ctxNot)
}

type op string

const (
	opEq op = "="
	opNe op = "!="
	opRe op = "~"
	opLt op = "<"
	opLe op = "<="
	opGt op = ">"
	opGe op = ">="
)

type litKind int

const (
	litString litKind = iota
	litNumber
	litBool
)

type literal struct {
	kind litKind
	s    string
	n    number
	b    bool
}

func (l literal) write(b *strings.Builder) {
	switch l.kind {
	case litString:
		writeQuoted(b, l.s)
	case litNumber:
		if l.n.isInt {
			b.WriteString(strconv.FormatInt(l.n.i, 10))
		} else {
			b.WriteString(formatFloat(l.n.f))
		}
	case litBool:
		b.WriteString(strconv.FormatBool(l.b))
	}
}

func writeQuoted(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
}

// path is certname (facts == nil) or facts.<segments>.
type path struct {
	facts []string
}

func (p path) write(b *strings.Builder) {
	if p.facts == nil {
		b.WriteString("certname")
		return
	}
	b.WriteString("facts")
	for _, s := range p.facts {
		b.WriteByte('.')
		if isIdent(s) {
			b.WriteString(s)
		} else {
			writeQuoted(b, s)
		}
	}
}

// resolve returns the value at the path; ok is false when it does not resolve (a missing
// key, a non-object on the way, or a JSON null).
func (p path) resolve(certname string, facts map[string]any) (any, bool) {
	if p.facts == nil {
		return certname, true
	}
	var cur any = facts
	for _, seg := range p.facts {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

type cmpExpr struct {
	path path
	op   op
	lit  literal
	re   *regexp.Regexp // compiled lit.s when op is ~
}

func (e cmpExpr) write(b *strings.Builder, _ ctx) {
	e.path.write(b)
	b.WriteByte(' ')
	b.WriteString(string(e.op))
	b.WriteByte(' ')
	e.lit.write(b)
}

func (e cmpExpr) match(certname string, facts map[string]any) bool {
	v, ok := e.path.resolve(certname, facts)
	switch e.op {
	case opEq:
		return ok && equal(v, e.lit)
	case opNe:
		return !ok || !equal(v, e.lit)
	case opRe:
		if !ok {
			return false
		}
		s, ok := scalarString(v)
		return ok && e.re.MatchString(s)
	}
	if !ok {
		return false
	}
	n, ok := asNumber(v)
	if !ok {
		return false
	}
	c, ok := compareNumbers(n, e.lit.n)
	if !ok {
		return false
	}
	switch e.op {
	case opLt:
		return c < 0
	case opLe:
		return c <= 0
	case opGt:
		return c > 0
	case opGe:
		return c >= 0
	}
	return false
}

// equal implements =: strings to strings, booleans to booleans, numbers numerically, and a
// number against a string that is written as a number numerically (either way round).
func equal(v any, l literal) bool {
	switch l.kind {
	case litBool:
		b, ok := v.(bool)
		return ok && b == l.b
	case litString:
		if s, ok := v.(string); ok {
			return s == l.s
		}
		if !isNumeric(v) {
			return false
		}
		ln, err := parseNumber(l.s)
		if err != nil {
			return false
		}
		return numbersEqual(v, ln)
	case litNumber:
		return numbersEqual(v, l.n)
	}
	return false
}

func numbersEqual(v any, n number) bool {
	if _, isBool := v.(bool); isBool {
		return false
	}
	vn, ok := asNumber(v)
	if !ok {
		return false
	}
	c, ok := compareNumbers(vn, n)
	return ok && c == 0
}
