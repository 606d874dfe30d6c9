package query

import "fmt"

type tokKind int

const (
	tokEOF    tokKind = iota
	tokError          // a lexical error; text holds the message
	tokIdent          // [A-Za-z_][A-Za-z0-9_-]*; keywords are identifiers too
	tokString         // quoted string; text holds the unescaped value
	tokNumber         // -?digits(.digits)?([eE][+-]?digits)?; text holds the literal
	tokOp             // = != ~ < <= > >= and the unsupported !~ ~>
	tokBang           // ! (PQL's spelling of not)
	tokLBrack
	tokRBrack
	tokLBrace
	tokRBrace
	tokLParen
	tokRParen
	tokDot
	tokComma
)

type token struct {
	kind tokKind
	pos  int
	text string
}

// describe names a token for error messages.
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of query"
	case tokString:
		return fmt.Sprintf("string %q", t.text)
	case tokNumber:
		return "number " + t.text
	default:
		return fmt.Sprintf("%q", t.text)
	}
}

// lexer produces tokens on demand, so the first error in reading order is the one reported.
type lexer struct {
	src string
	pos int
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isIdentStart(c byte) bool {
	return c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '-' }

// isIdent reports whether s can be written as a bare path segment.
func isIdent(s string) bool {
	if s == "" || !isIdentStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isIdentChar(s[i]) {
			return false
		}
	}
	return true
}

func (l *lexer) next() token {
	for l.pos < len(l.src) && isSpace(l.src[l.pos]) {
		l.pos++
	}
	start := l.pos
	if start >= len(l.src) {
		return token{kind: tokEOF, pos: start}
	}
	c := l.src[start]
	single := func(k tokKind) token {
		l.pos++
		return token{kind: k, pos: start, text: l.src[start:l.pos]}
	}
	switch {
	case isIdentStart(c):
		l.pos++
		for l.pos < len(l.src) && isIdentChar(l.src[l.pos]) {
			l.pos++
		}
		return token{kind: tokIdent, pos: start, text: l.src[start:l.pos]}
	case isDigit(c) || (c == '-' && start+1 < len(l.src) && isDigit(l.src[start+1])):
		n := scanNumber(l.src[start:])
		l.pos += n
		return token{kind: tokNumber, pos: start, text: l.src[start:l.pos]}
	case c == '"' || c == '\'':
		return l.lexString(c)
	case c == '[':
		return single(tokLBrack)
	case c == ']':
		return single(tokRBrack)
	case c == '{':
		return single(tokLBrace)
	case c == '}':
		return single(tokRBrace)
	case c == '(':
		return single(tokLParen)
	case c == ')':
		return single(tokRParen)
	case c == '.':
		return single(tokDot)
	case c == ',':
		return single(tokComma)
	case c == '=':
		return single(tokOp)
	case c == '!' || c == '<' || c == '>' || c == '~':
		if start+1 < len(l.src) {
			two := l.src[start : start+2]
			switch two {
			case "!=", "!~", "<=", ">=", "~>":
				l.pos += 2
				return token{kind: tokOp, pos: start, text: two}
			}
		}
		if c == '!' {
			return single(tokBang)
		}
		return single(tokOp)
	}
	l.pos++
	return token{kind: tokError, pos: start, text: fmt.Sprintf("unexpected character %q", c)}
}

// scanNumber returns the length of the longest prefix of s matching
// -?digits(.digits)?([eE][+-]?digits)?. A "." or exponent marker not followed by digits is
// left for the parser to reject.
func scanNumber(s string) int {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func(j int) int {
		k := j
		for k < len(s) && isDigit(s[k]) {
			k++
		}
		return k
	}
	i = digits(i)
	if i+1 < len(s) && s[i] == '.' && isDigit(s[i+1]) {
		i = digits(i + 1)
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && isDigit(s[j]) {
			i = digits(j)
		}
	}
	return i
}

// lexString reads a string quoted with q. The escapes \" \' and \\ stand for the escaped
// character; any other backslash is kept as is, so "\d+" is the regular expression \d+.
func (l *lexer) lexString(q byte) token {
	start := l.pos
	var buf []byte
	for i := start + 1; i < len(l.src); i++ {
		c := l.src[i]
		switch {
		case c == q:
			l.pos = i + 1
			return token{kind: tokString, pos: start, text: string(buf)}
		case c == '\\' && i+1 < len(l.src) && (l.src[i+1] == '"' || l.src[i+1] == '\'' || l.src[i+1] == '\\'):
			buf = append(buf, l.src[i+1])
			i++
		default:
			buf = append(buf, c)
		}
	}
	l.pos = len(l.src)
	return token{kind: tokError, pos: start, text: "unterminated string"}
}
