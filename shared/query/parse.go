package query

import (
	"fmt"
	"regexp"
	"strings"
)

// maxDepth bounds the nesting of parentheses and not operators, so that a hostile query
// cannot exhaust the stack.
const maxDepth = 100

// pqlEntities are the PuppetDB entities; all but inventory and nodes are rejected with a
// specific message, at the top level and as (unsupported) subqueries.
var pqlEntities = map[string]bool{
	"facts": true, "reports": true, "catalogs": true, "packages": true,
	"package_inventory": true, "resources": true, "nodes": true, "environments": true,
	"factsets": true, "fact_paths": true, "fact_contents": true, "inventory": true,
	"edges": true, "events": true,
}

// Parse parses a scope query such as
//
//	inventory[certname] { facts.os.family = "Debian" and facts.processors.count >= 4 }
//
// Every error it returns is a *Error carrying the byte offset of the problem.
func Parse(s string) (*Query, error) {
	p := &parser{lex: lexer{src: s}}
	p.advance()
	q, err := p.query()
	if err != nil {
		return nil, err
	}
	return q, nil
}

type parser struct {
	lex lexer
	tok token
}

func (p *parser) advance() { p.tok = p.lex.next() }

// fail reports an error at the current token; a lexical error there takes precedence,
// since it is the real reason the expected token is missing.
func (p *parser) fail(format string, args ...any) *Error {
	if p.tok.kind == tokError {
		return &Error{Pos: p.tok.pos, Msg: p.tok.text}
	}
	return &Error{Pos: p.tok.pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) isKeyword(kw string) bool {
	return p.tok.kind == tokIdent && strings.EqualFold(p.tok.text, kw)
}

func (p *parser) expect(k tokKind, what string) *Error {
	if p.tok.kind != k {
		return p.fail("expected %s", what)
	}
	p.advance()
	return nil
}

func (p *parser) query() (*Query, *Error) {
	switch {
	case p.tok.kind == tokEOF:
		return nil, p.fail(`empty query: expected inventory[certname] { ... }`)
	case p.tok.kind == tokLBrack:
		return nil, p.fail("PuppetDB AST (JSON array) queries are not supported; use PQL such as inventory[certname] { ... }")
	case p.tok.kind != tokIdent:
		return nil, p.fail(`expected "inventory" or "nodes"`)
	}
	entity := strings.ToLower(p.tok.text)
	if entity != "inventory" && entity != "nodes" {
		if pqlEntities[entity] {
			return nil, p.fail("entity %q is not supported: only inventory and nodes", p.tok.text)
		}
		return nil, p.fail(`expected "inventory" or "nodes"`)
	}
	p.advance()
	if p.tok.kind == tokLBrack {
		p.advance()
		if !p.isKeyword("certname") {
			return nil, p.fail("the projection must be exactly [certname]")
		}
		p.advance()
		if p.tok.kind != tokRBrack {
			return nil, p.fail("the projection must be exactly [certname]")
		}
		p.advance()
	}
	if err := p.expect(tokLBrace, `"{"`); err != nil {
		return nil, err
	}
	q := &Query{entity: entity}
	if p.tok.kind != tokRBrace {
		where, err := p.or(0)
		if err != nil {
			return nil, err
		}
		q.where = where
		if p.tok.kind != tokRBrace {
			for _, kw := range []string{"limit", "offset", "order", "group"} {
				if p.isKeyword(kw) {
					return nil, p.fail("paging and grouping clauses (limit, offset, order by, group by) are not supported")
				}
			}
			return nil, p.fail(`expected "}"`)
		}
	}
	p.advance()
	if p.tok.kind != tokEOF {
		return nil, p.fail(`unexpected %s after the end of the query`, p.tok.describe())
	}
	return q, nil
}

func (p *parser) or(depth int) (expr, *Error) {
	x, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	list := orExpr{x}
	for p.isKeyword("or") {
		p.advance()
		y, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		list = append(list, y)
	}
	if len(list) == 1 {
		return x, nil
	}
	return list, nil
}

func (p *parser) and(depth int) (expr, *Error) {
	x, err := p.not(depth)
	if err != nil {
		return nil, err
	}
	list := andExpr{x}
	for p.isKeyword("and") {
		p.advance()
		y, err := p.not(depth)
		if err != nil {
			return nil, err
		}
		list = append(list, y)
	}
	if len(list) == 1 {
		return x, nil
	}
	return list, nil
}

func (p *parser) not(depth int) (expr, *Error) {
	switch {
	case p.isKeyword("not") || p.tok.kind == tokBang:
		if depth >= maxDepth {
			return nil, p.fail("query is nested more than %d levels deep", maxDepth)
		}
		p.advance()
		x, err := p.not(depth + 1)
		if err != nil {
			return nil, err
		}
		return notExpr{x}, nil
	case p.tok.kind == tokLParen:
		if depth >= maxDepth {
			return nil, p.fail("query is nested more than %d levels deep", maxDepth)
		}
		p.advance()
		x, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if err := p.expect(tokRParen, `")"`); err != nil {
			return nil, err
		}
		return x, nil
	}
	return p.comparison()
}

func (p *parser) comparison() (expr, *Error) {
	pth, err := p.path()
	if err != nil {
		return nil, err
	}
	if p.tok.kind == tokIdent {
		switch strings.ToLower(p.tok.text) {
		case "in":
			return nil, p.fail(`operator "in" is not supported`)
		case "is":
			return nil, p.fail(`"is null" and "is not null" are not supported`)
		}
	}
	if p.tok.kind != tokOp {
		return nil, p.fail("expected a comparison operator (= != ~ < <= > >=)")
	}
	o := op(p.tok.text)
	switch o {
	case "!~":
		return nil, p.fail(`operator "!~" is not supported: write not (path ~ "regex")`)
	case "~>":
		return nil, p.fail(`operator "~>" is not supported`)
	}
	p.advance()
	litPos := p.tok.pos
	lit, err := p.literal()
	if err != nil {
		return nil, err
	}
	c := cmpExpr{path: pth, op: o, lit: lit}
	switch o {
	case opRe:
		if lit.kind != litString {
			return nil, &Error{Pos: litPos, Msg: `operator "~" needs a quoted regular expression`}
		}
		re, rerr := regexp.Compile(lit.s)
		if rerr != nil {
			return nil, &Error{Pos: litPos, Msg: "invalid regular expression: " + rerr.Error()}
		}
		c.re = re
	case opLt, opLe, opGt, opGe:
		if lit.kind != litNumber {
			return nil, &Error{Pos: litPos, Msg: fmt.Sprintf("operator %q needs a number", o)}
		}
	}
	return c, nil
}

func (p *parser) path() (path, *Error) {
	if p.tok.kind != tokIdent || p.isKeyword("and") || p.isKeyword("or") {
		return path{}, p.fail("expected a condition such as certname = \"web1\" or facts.os.family = \"Debian\"")
	}
	start := p.tok
	name := strings.ToLower(start.text)
	p.advance()
	switch {
	case name == "certname":
		return path{}, nil
	case name == "facts" && p.tok.kind == tokDot:
		segs := []string{}
		for p.tok.kind == tokDot {
			p.advance()
			if p.tok.kind != tokIdent && p.tok.kind != tokString {
				return path{}, p.fail("expected a fact name after \".\"")
			}
			segs = append(segs, p.tok.text)
			p.advance()
		}
		if p.tok.kind == tokLBrack {
			return path{}, p.fail("array indexes in fact paths are not supported")
		}
		return path{facts: segs}, nil
	case p.tok.kind == tokLParen:
		return path{}, &Error{Pos: start.pos, Msg: fmt.Sprintf("functions such as %s() are not supported", start.text)}
	case pqlEntities[name] && (p.tok.kind == tokLBrace || p.tok.kind == tokLBrack):
		return path{}, &Error{Pos: start.pos, Msg: "subqueries are not supported"}
	case name == "facts":
		return path{}, p.fail(`expected "." and a fact name after facts`)
	}
	return path{}, &Error{Pos: start.pos, Msg: fmt.Sprintf("unsupported field %q: only certname and facts.<name> are supported", start.text)}
}

func (p *parser) literal() (literal, *Error) {
	t := p.tok
	switch t.kind {
	case tokString:
		p.advance()
		return literal{kind: litString, s: t.text}, nil
	case tokNumber:
		n, err := parseNumber(t.text)
		if err != nil {
			return literal{}, p.fail("number %s is out of range", t.text)
		}
		p.advance()
		return literal{kind: litNumber, n: n}, nil
	case tokIdent:
		switch strings.ToLower(t.text) {
		case "true":
			p.advance()
			return literal{kind: litBool, b: true}, nil
		case "false":
			p.advance()
			return literal{kind: litBool, b: false}, nil
		}
	case tokLBrack:
		return literal{}, p.fail("array values are not supported")
	}
	return literal{}, p.fail("expected a value (a quoted string, a number, true or false)")
}
