package tasks

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// TypeSyntaxError is returned by ParseType for a malformed or unsupported type expression.
// Pos is the byte offset in Input where the problem was found.
type TypeSyntaxError struct {
	Input string
	Pos   int
	Msg   string
}

func (e *TypeSyntaxError) Error() string {
	return fmt.Sprintf("parse type %q: %s at %d", e.Input, e.Msg, e.Pos)
}

// maxTypeDepth bounds the nesting of type expressions.
const maxTypeDepth = 64

// ParseType parses a Puppet type expression as used for task parameters (reference §5.2):
// String, Integer, Float, Numeric, Boolean, Enum, Pattern, Optional, Variant, Array, Hash,
// Struct, Tuple, Data, Any, Undef, NotUndef, Sensitive, Scalar and ScalarData, with Puppet's
// parameters. Type aliases (e.g. Stdlib::Port) are not supported.
func ParseType(s string) (Type, error) {
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{input: s, toks: toks}
	n, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.unexpected(t)
	}
	b := builder{input: s}
	return b.build(n)
}

// ---- lexer ----

type tokKind int

const (
	tEOF tokKind = iota
	tTypeName
	tWord
	tString
	tInt
	tFloat
	tRegex
	tDefault
	tTrue
	tFalse
	tUndef
	tLBrack
	tRBrack
	tLBrace
	tRBrace
	tComma
	tArrow
)

type token struct {
	kind tokKind
	pos  int
	end  int
	str  string // tTypeName, tWord, tString: the name or decoded string; tRegex: the source
	i    int64
	f    float64
}

type lexer struct {
	input string
	pos   int
	toks  []token
}

func lex(s string) ([]token, error) {
	l := &lexer{input: s}
	for {
		t, err := l.next()
		if err != nil {
			return nil, err
		}
		l.toks = append(l.toks, t)
		if t.kind == tEOF {
			return l.toks, nil
		}
	}
}

func (l *lexer) errAt(pos int, format string, args ...any) error {
	return &TypeSyntaxError{Input: l.input, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isWordChar(c byte) bool {
	return isLower(c) || isUpper(c) || isDigit(c) || c == '_'
}

var punctuation = map[byte]tokKind{'[': tLBrack, ']': tRBrack, '{': tLBrace, '}': tRBrace, ',': tComma}

var doubleQuoteEscapes = map[byte]string{'n': "\n", 't': "\t", 'r': "\r", 's': " ", '"': "\"", '\'': "'", '\\': "\\", '$': "$"}

func (l *lexer) next() (token, error) {
	s := l.input
	for l.pos < len(s) && strings.IndexByte(" \t\r\n", s[l.pos]) >= 0 {
		l.pos++
	}
	start := l.pos
	if l.pos >= len(s) {
		return token{kind: tEOF, pos: start, end: start}, nil
	}
	c := s[l.pos]
	if k, ok := punctuation[c]; ok {
		l.pos++
		return token{kind: k, pos: start, end: l.pos}, nil
	}
	switch {
	case c == '=' && strings.HasPrefix(s[l.pos:], "=>"):
		l.pos += 2
		return token{kind: tArrow, pos: start, end: l.pos}, nil
	case c == '\'' || c == '"':
		return l.quoted(c)
	case c == '/':
		return l.regex()
	case isDigit(c) || c == '-':
		return l.number()
	case isUpper(c) || (c == ':' && strings.HasPrefix(s[l.pos:], "::") && l.pos+2 < len(s) && isUpper(s[l.pos+2])):
		return l.name(true)
	case isLower(c) || c == '_' || c == ':':
		return l.name(false)
	}
	r, _ := utf8.DecodeRuneInString(s[l.pos:])
	return token{}, l.errAt(start, "unexpected character %q", r)
}

// name lexes a type name (Foo::Bar) or a bareword (foo, foo::bar, no-op).
func (l *lexer) name(typeName bool) (token, error) {
	s, start := l.input, l.pos
	for {
		if strings.HasPrefix(s[l.pos:], "::") {
			l.pos += 2
		}
		if l.pos >= len(s) {
			return token{}, l.errAt(start, "malformed name %q", s[start:l.pos])
		}
		c := s[l.pos]
		if typeName && !isUpper(c) || !typeName && !isLower(c) && c != '_' {
			return token{}, l.errAt(start, "malformed name %q", s[start:l.pos+1])
		}
		for l.pos < len(s) && (isWordChar(s[l.pos]) || !typeName && s[l.pos] == '-') {
			l.pos++
		}
		for !typeName && s[l.pos-1] == '-' {
			l.pos--
		}
		if !strings.HasPrefix(s[l.pos:], "::") {
			break
		}
	}
	text := s[start:l.pos]
	t := token{kind: tWord, pos: start, end: l.pos, str: text}
	if typeName {
		t.kind = tTypeName
		return t, nil
	}
	switch text {
	case "default":
		t.kind = tDefault
	case "true":
		t.kind = tTrue
	case "false":
		t.kind = tFalse
	case "undef":
		t.kind = tUndef
	}
	return t, nil
}

func (l *lexer) number() (token, error) {
	s, start := l.input, l.pos
	if s[l.pos] == '-' {
		l.pos++
		if l.pos >= len(s) || !isDigit(s[l.pos]) {
			return token{}, l.errAt(start, "unexpected character '-'")
		}
	}
	digits := l.pos
	base := 10
	isFloat := false
	switch {
	case strings.HasPrefix(s[l.pos:], "0x") || strings.HasPrefix(s[l.pos:], "0X"):
		base = 16
		l.pos += 2
		digits = l.pos
		for l.pos < len(s) && strings.IndexByte("0123456789abcdefABCDEF", s[l.pos]) >= 0 {
			l.pos++
		}
	default:
		for l.pos < len(s) && isDigit(s[l.pos]) {
			l.pos++
		}
		if l.pos+1 < len(s) && s[l.pos] == '.' && isDigit(s[l.pos+1]) {
			isFloat = true
			l.pos++
			for l.pos < len(s) && isDigit(s[l.pos]) {
				l.pos++
			}
		}
		if l.pos < len(s) && (s[l.pos] == 'e' || s[l.pos] == 'E') {
			p := l.pos + 1
			if p < len(s) && (s[p] == '+' || s[p] == '-') {
				p++
			}
			if p < len(s) && isDigit(s[p]) {
				isFloat = true
				l.pos = p
				for l.pos < len(s) && isDigit(s[l.pos]) {
					l.pos++
				}
			}
		}
		if !isFloat && l.pos-digits > 1 && s[digits] == '0' {
			base = 8
			digits++
		}
	}
	if l.pos < len(s) && (isWordChar(s[l.pos]) || s[l.pos] == '.') || l.pos == digits {
		end := l.pos
		for end < len(s) && (isWordChar(s[end]) || s[end] == '.') {
			end++
		}
		return token{}, l.errAt(start, "malformed number %q", s[start:end])
	}
	text := s[start:l.pos]
	if isFloat {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsInf(f, 0) {
			return token{}, l.errAt(start, "malformed number %q", text)
		}
		return token{kind: tFloat, pos: start, end: l.pos, f: f}, nil
	}
	mag := s[digits:l.pos]
	if s[start] == '-' {
		mag = "-" + mag
	}
	i, err := strconv.ParseInt(mag, base, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return token{}, l.errAt(start, "integer %s is out of the 64-bit range", text)
		}
		return token{}, l.errAt(start, "malformed number %q", text)
	}
	return token{kind: tInt, pos: start, end: l.pos, i: i}, nil
}

// quoted lexes a single- or double-quoted Puppet string. Interpolation is not supported.
func (l *lexer) quoted(q byte) (token, error) {
	s, start := l.input, l.pos
	l.pos++
	var b strings.Builder
	for {
		if l.pos >= len(s) {
			return token{}, l.errAt(start, "unterminated string")
		}
		c := s[l.pos]
		switch {
		case c == q:
			l.pos++
			return token{kind: tString, pos: start, end: l.pos, str: b.String()}, nil
		case c == '\\' && l.pos+1 < len(s):
			e := s[l.pos+1]
			l.pos += 2
			if q == '\'' {
				if e == '\\' || e == '\'' {
					b.WriteByte(e)
				} else {
					b.WriteByte('\\')
					b.WriteByte(e)
				}
				continue
			}
			if err := l.doubleEscape(e, &b); err != nil {
				return token{}, err
			}
		case c == '$' && q == '"':
			return token{}, l.errAt(l.pos, "string interpolation is not supported")
		default:
			b.WriteByte(c)
			l.pos++
		}
	}
}

func (l *lexer) doubleEscape(e byte, b *strings.Builder) error {
	if r, ok := doubleQuoteEscapes[e]; ok {
		b.WriteString(r)
		return nil
	}
	if e != 'u' {
		b.WriteByte('\\')
		b.WriteByte(e)
		return nil
	}
	s, at := l.input, l.pos-2
	var hex string
	if strings.HasPrefix(s[l.pos:], "{") {
		end := strings.IndexByte(s[l.pos:], '}')
		if end < 0 {
			return l.errAt(at, "malformed unicode escape")
		}
		hex = s[l.pos+1 : l.pos+end]
		l.pos += end + 1
	} else {
		if l.pos+4 > len(s) {
			return l.errAt(at, "malformed unicode escape")
		}
		hex = s[l.pos : l.pos+4]
		l.pos += 4
	}
	cp, err := strconv.ParseUint(hex, 16, 32)
	if err != nil || hex == "" || len(hex) > 6 || !utf8.ValidRune(rune(cp)) {
		return l.errAt(at, "malformed unicode escape")
	}
	b.WriteRune(rune(cp))
	return nil
}

// regex lexes /.../; a backslash escapes the next character (so \/ does not end it).
func (l *lexer) regex() (token, error) {
	s, start := l.input, l.pos
	l.pos++
	for {
		if l.pos >= len(s) || s[l.pos] == '\n' {
			return token{}, l.errAt(start, "unterminated regular expression")
		}
		switch s[l.pos] {
		case '\\':
			if l.pos+1 >= len(s) || s[l.pos+1] == '\n' {
				return token{}, l.errAt(start, "unterminated regular expression")
			}
			l.pos += 2
		case '/':
			l.pos++
			return token{kind: tRegex, pos: start, end: l.pos, str: s[start+1 : l.pos-1]}, nil
		default:
			l.pos++
		}
	}
}

// ---- parser: a generic expression tree ----

type node struct {
	tok     token
	params  []node // tTypeName with brackets
	bracket bool   // tTypeName followed by [...]
	entries []entry
	end     int // byte offset just past the expression
}

type entry struct {
	key, value node
}

type parser struct {
	input string
	toks  []token
	i     int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) errAt(pos int, format string, args ...any) error {
	return &TypeSyntaxError{Input: p.input, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) unexpected(t token) error {
	if t.kind == tEOF {
		return p.errAt(t.pos, "unexpected end of input")
	}
	return p.errAt(t.pos, "unexpected token %q", p.input[t.pos:t.end])
}

func (p *parser) expect(k tokKind) (token, error) {
	t := p.next()
	if t.kind != k {
		return t, p.unexpected(t)
	}
	return t, nil
}

func (p *parser) expr(depth int) (node, error) {
	t := p.next()
	if depth > maxTypeDepth {
		return node{}, p.errAt(t.pos, "type is nested too deeply")
	}
	switch t.kind {
	case tTypeName:
		n := node{tok: t, end: t.end}
		if p.peek().kind != tLBrack {
			return n, nil
		}
		p.next()
		n.bracket = true
		for {
			if len(n.params) > 0 && p.peek().kind == tRBrack {
				n.end = p.next().end
				return n, nil
			}
			arg, err := p.expr(depth + 1)
			if err != nil {
				return node{}, err
			}
			n.params = append(n.params, arg)
			switch sep := p.next(); sep.kind {
			case tRBrack:
				n.end = sep.end
				return n, nil
			case tComma:
			default:
				return node{}, p.unexpected(sep)
			}
		}
	case tLBrace:
		n := node{tok: t}
		for {
			if p.peek().kind == tRBrace {
				n.end = p.next().end
				return n, nil
			}
			k, err := p.expr(depth + 1)
			if err != nil {
				return node{}, err
			}
			if _, err := p.expect(tArrow); err != nil {
				return node{}, err
			}
			v, err := p.expr(depth + 1)
			if err != nil {
				return node{}, err
			}
			n.entries = append(n.entries, entry{k, v})
			switch sep := p.next(); sep.kind {
			case tRBrace:
				n.end = sep.end
				return n, nil
			case tComma:
			default:
				return node{}, p.unexpected(sep)
			}
		}
	case tString, tInt, tFloat, tRegex, tWord, tDefault, tTrue, tFalse, tUndef:
		return node{tok: t, end: t.end}, nil
	}
	return node{}, p.unexpected(t)
}

// ---- builder: expression tree to Type ----

type builder struct {
	input string
}

func (b *builder) errAt(n node, format string, args ...any) error {
	return &TypeSyntaxError{Input: b.input, Pos: n.tok.pos, Msg: fmt.Sprintf(format, args...)}
}

func (b *builder) text(n node) string {
	t := b.input[n.tok.pos:n.end]
	if len(t) > 40 {
		t = t[:40] + "..."
	}
	return t
}

func (b *builder) build(n node) (Type, error) {
	if n.tok.kind != tTypeName {
		return nil, b.errAt(n, "expected a type, got %q", b.text(n))
	}
	name, ps := n.tok.str, n.params
	noParams := func(t Type) (Type, error) {
		if n.bracket {
			return nil, b.errAt(n, "%s does not take parameters", name)
		}
		return t, nil
	}
	switch name {
	case "Any":
		return noParams(anyType{})
	case "Undef":
		return noParams(undefType{})
	case "Boolean":
		return noParams(booleanType{})
	case "Data":
		return noParams(dataType{})
	case "Numeric":
		return noParams(numericType{})
	case "Scalar":
		return noParams(scalarType{})
	case "ScalarData":
		return noParams(scalarType{data: true})
	case "String":
		if len(ps) > 2 {
			return nil, b.errAt(n, "String takes at most 2 parameters, got %d", len(ps))
		}
		r, err := b.sizeParams(n, ps)
		if err != nil {
			return nil, err
		}
		return &stringType{size: r}, nil
	case "Integer":
		return b.integer(n)
	case "Float":
		return b.float(n)
	case "Enum":
		return b.enum(n)
	case "Pattern":
		return b.pattern(n)
	case "Optional", "NotUndef", "Sensitive":
		inner, err := b.contained(n)
		if err != nil {
			return nil, err
		}
		switch name {
		case "Optional":
			return &optionalType{inner: inner}, nil
		case "NotUndef":
			return &notUndefType{inner: inner}, nil
		default:
			return &sensitiveType{inner: inner}, nil
		}
	case "Variant":
		if len(ps) == 0 {
			return nil, b.errAt(n, "Variant requires at least 1 parameter")
		}
		ts, err := b.types(ps)
		if err != nil {
			return nil, err
		}
		return &variantType{types: ts}, nil
	case "Array":
		return b.array(n)
	case "Hash":
		return b.hash(n)
	case "Struct":
		return b.structType(n)
	case "Tuple":
		return b.tuple(n)
	}
	return nil, b.errAt(n, "unknown type %q", name)
}

func (b *builder) types(ns []node) ([]Type, error) {
	out := make([]Type, 0, len(ns))
	for _, n := range ns {
		t, err := b.build(n)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// isRangeParam reports whether n is an integer or default (a size or bound parameter).
func isRangeParam(n node) bool {
	return n.tok.kind == tInt || n.tok.kind == tDefault
}

// sizeParams reads up to two size parameters (min, max; integers >= 0 or default).
func (b *builder) sizeParams(owner node, ps []node) (sizeRange, error) {
	r := anySize
	for i, p := range ps {
		switch {
		case p.tok.kind == tDefault:
		case p.tok.kind == tInt && p.tok.i >= 0:
			if i == 0 {
				r.min = p.tok.i
			} else {
				r.max = p.tok.i
			}
		case p.tok.kind == tInt:
			return r, b.errAt(p, "size must not be negative")
		default:
			return r, b.errAt(p, "expected an integer size or default, got %q", b.text(p))
		}
	}
	if r.max >= 0 && r.min > r.max {
		return r, b.errAt(owner, "%s: minimum size %d is greater than maximum size %d", owner.tok.str, r.min, r.max)
	}
	return r, nil
}

func (b *builder) integer(n node) (Type, error) {
	ps := n.params
	if len(ps) > 2 {
		return nil, b.errAt(n, "Integer takes at most 2 parameters, got %d", len(ps))
	}
	var bs [2]bound
	for i, p := range ps {
		switch p.tok.kind {
		case tDefault:
		case tInt:
			bs[i] = bound{v: p.tok.i, set: true}
		default:
			return nil, b.errAt(p, "expected an integer or default, got %q", b.text(p))
		}
	}
	if bs[0].set && bs[1].set && bs[0].v > bs[1].v {
		return nil, b.errAt(n, "Integer: minimum %d is greater than maximum %d", bs[0].v, bs[1].v)
	}
	return &integerType{lo: bs[0], hi: bs[1]}, nil
}

func (b *builder) float(n node) (Type, error) {
	ps := n.params
	if len(ps) > 2 {
		return nil, b.errAt(n, "Float takes at most 2 parameters, got %d", len(ps))
	}
	var bs [2]floatBound
	for i, p := range ps {
		switch p.tok.kind {
		case tDefault:
		case tInt:
			bs[i] = floatBound{v: float64(p.tok.i), set: true}
		case tFloat:
			bs[i] = floatBound{v: p.tok.f, set: true}
		default:
			return nil, b.errAt(p, "expected a number or default, got %q", b.text(p))
		}
	}
	if bs[0].set && bs[1].set && bs[0].v > bs[1].v {
		return nil, b.errAt(n, "Float: minimum %s is greater than maximum %s", formatFloat(bs[0].v), formatFloat(bs[1].v))
	}
	return &floatType{lo: bs[0], hi: bs[1]}, nil
}

func (b *builder) enum(n node) (Type, error) {
	t := &enumType{}
	if !n.bracket {
		return t, nil
	}
	for i, p := range n.params {
		switch p.tok.kind {
		case tString, tWord:
			t.values = append(t.values, p.tok.str)
		case tTrue, tFalse:
			if i != len(n.params)-1 {
				return nil, b.errAt(p, "Enum: the case-insensitive flag must be the last parameter")
			}
			t.caseInsensitive = p.tok.kind == tTrue
		default:
			return nil, b.errAt(p, "Enum: expected a string, got %q", b.text(p))
		}
	}
	if len(t.values) == 0 {
		return nil, b.errAt(n, "Enum requires at least 1 value")
	}
	return t, nil
}

func (b *builder) pattern(n node) (Type, error) {
	t := &patternType{}
	for _, p := range n.params {
		var src string
		switch p.tok.kind {
		case tRegex:
			src = p.tok.str
		case tString:
			src = regexLiteralSource(p.tok.str)
		default:
			return nil, b.errAt(p, "Pattern: expected a regular expression or string, got %q", b.text(p))
		}
		re, err := compileRubyRegexp(src)
		if err != nil {
			return nil, b.errAt(p, "Pattern: %v", err)
		}
		t.sources = append(t.sources, src)
		t.res = append(t.res, re)
	}
	return t, nil
}

// regexLiteralSource escapes a regexp given as a string so it can be written between
// slashes: unescaped slashes get a backslash and newlines become \n.
func regexLiteralSource(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			if s[i+1] == '\n' {
				b.WriteString(`\n`)
			} else {
				b.WriteByte(c)
				b.WriteByte(s[i+1])
			}
			i++
		case c == '\\':
			b.WriteString(`\\`)
		case c == '/':
			b.WriteString(`\/`)
		case c == '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// contained reads the single optional parameter of Optional, NotUndef and Sensitive. A string
// parameter (Optional['x']) means Enum['x'], as in Puppet.
func (b *builder) contained(n node) (Type, error) {
	if !n.bracket {
		return anyType{}, nil
	}
	if len(n.params) != 1 {
		return nil, b.errAt(n, "%s takes 1 parameter, got %d", n.tok.str, len(n.params))
	}
	p := n.params[0]
	if p.tok.kind == tString {
		return &enumType{values: []string{p.tok.str}}, nil
	}
	return b.build(p)
}

func (b *builder) array(n node) (Type, error) {
	ps := n.params
	if !n.bracket {
		return &arrayType{elem: anyType{}, size: anySize}, nil
	}
	if len(ps) > 3 {
		return nil, b.errAt(n, "Array takes at most 3 parameters, got %d", len(ps))
	}
	elem, err := b.build(ps[0])
	if err != nil {
		return nil, err
	}
	size, err := b.sizeParams(n, ps[1:])
	if err != nil {
		return nil, err
	}
	return &arrayType{elem: elem, size: size}, nil
}

func (b *builder) hash(n node) (Type, error) {
	ps := n.params
	if !n.bracket {
		return &hashType{key: anyType{}, value: anyType{}, size: anySize}, nil
	}
	if len(ps) < 2 || len(ps) > 4 {
		return nil, b.errAt(n, "Hash takes 2 to 4 parameters, got %d", len(ps))
	}
	kv, err := b.types(ps[:2])
	if err != nil {
		return nil, err
	}
	size, err := b.sizeParams(n, ps[2:])
	if err != nil {
		return nil, err
	}
	return &hashType{key: kv[0], value: kv[1], size: size}, nil
}

func (b *builder) structType(n node) (Type, error) {
	if len(n.params) != 1 || n.params[0].tok.kind != tLBrace {
		return nil, b.errAt(n, "Struct takes 1 parameter, a hash of member names to types")
	}
	t := &structType{}
	for _, e := range n.params[0].entries {
		mem := structMember{}
		k := e.key
		if k.tok.kind == tTypeName && (k.tok.str == "Optional" || k.tok.str == "NotUndef") {
			if len(k.params) != 1 {
				return nil, b.errAt(k, "Struct: %s key takes 1 parameter", k.tok.str)
			}
			mem.mode = keyOptional
			if k.tok.str == "NotUndef" {
				mem.mode = keyNotUndef
			}
			k = k.params[0]
		}
		if k.tok.kind != tString && k.tok.kind != tWord {
			return nil, b.errAt(k, "Struct: expected a string key, got %q", b.text(k))
		}
		mem.key = k.tok.str
		if mem.key == "" {
			return nil, b.errAt(k, "Struct: key must not be empty")
		}
		for _, prev := range t.members {
			if prev.key == mem.key {
				return nil, b.errAt(k, "Struct: duplicate key '%s'", mem.key)
			}
		}
		v, err := b.build(e.value)
		if err != nil {
			return nil, err
		}
		mem.value = v
		t.members = append(t.members, mem)
	}
	return t, nil
}

func (b *builder) tuple(n node) (Type, error) {
	ps := n.params
	if len(ps) == 0 {
		return nil, b.errAt(n, "Tuple requires at least 1 type")
	}
	nsize := 0
	if len(ps) >= 2 && isRangeParam(ps[len(ps)-2]) {
		nsize = 2
	} else if isRangeParam(ps[len(ps)-1]) {
		nsize = 1
	}
	typeNodes := ps[:len(ps)-nsize]
	if len(typeNodes) == 0 {
		return nil, b.errAt(n, "Tuple requires at least 1 type")
	}
	ts, err := b.types(typeNodes)
	if err != nil {
		return nil, err
	}
	t := &tupleType{types: ts, size: sizeRange{int64(len(ts)), int64(len(ts))}}
	if nsize > 0 {
		size, err := b.sizeParams(n, ps[len(ps)-nsize:])
		if err != nil {
			return nil, err
		}
		t.size, t.sized = size, true
	}
	return t, nil
}
