package tasks

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ---- Ruby regexp to Go ----

// compileRubyRegexp compiles a Ruby (Onigmo) regexp source as Puppet would use it, translated
// to Go's RE2 syntax: ^ and $ match at line boundaries (Ruby's default), \A \z \Z \h \H are
// translated, the inline flag m (Ruby: dot matches newline) becomes s. Constructs RE2 lacks
// (lookaround, backreferences, possessive quantifiers, the x flag) are reported as errors.
func compileRubyRegexp(src string) (*regexp.Regexp, error) {
	goSrc, err := translateRubyRegexp(src)
	if err != nil {
		return nil, err
	}
	re, err := regexp.Compile("(?m)" + goSrc)
	if err != nil {
		return nil, fmt.Errorf("unsupported regular expression /%s/: %w", src, err)
	}
	return re, nil
}

func translateRubyRegexp(src string) (string, error) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '\\':
			if i+1 >= len(src) {
				return "", fmt.Errorf("regular expression /%s/ ends with a backslash", src)
			}
			e := src[i+1]
			i++
			switch e {
			case 'h':
				if inClass {
					b.WriteString(`0-9a-fA-F`)
				} else {
					b.WriteString(`[0-9a-fA-F]`)
				}
			case 'H':
				if inClass {
					return "", fmt.Errorf("\\H inside a character class is not supported in /%s/", src)
				}
				b.WriteString(`[^0-9a-fA-F]`)
			case 'Z':
				if inClass {
					return "", fmt.Errorf("\\Z inside a character class is not supported in /%s/", src)
				}
				// Only matching is needed, so consuming the final newline is equivalent.
				b.WriteString(`(?:\n?\z)`)
			case 'e':
				b.WriteString(`\x1B`)
			case 'u':
				hex, n, err := rubyUnicodeEscape(src[i+1:])
				if err != nil {
					return "", fmt.Errorf("%v in /%s/", err, src)
				}
				b.WriteString(`\x{` + hex + `}`)
				i += n
			case 'G', 'K', 'R', 'X', 'k', 'g', '1', '2', '3', '4', '5', '6', '7', '8', '9':
				return "", fmt.Errorf("\\%c is not supported in /%s/", e, src)
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
		case inClass:
			if c == '[' && !strings.HasPrefix(src[i:], "[:") {
				return "", fmt.Errorf("nested character classes are not supported in /%s/", src)
			}
			if c == '&' && strings.HasPrefix(src[i:], "&&") {
				return "", fmt.Errorf("character class intersection is not supported in /%s/", src)
			}
			if c == '[' { // POSIX class [:alpha:]
				end := strings.Index(src[i:], ":]")
				if end < 0 {
					return "", fmt.Errorf("malformed POSIX class in /%s/", src)
				}
				b.WriteString(src[i : i+end+2])
				i += end + 1
				continue
			}
			if c == ']' {
				inClass = false
			}
			b.WriteByte(c)
		case c == '[':
			inClass = true
			b.WriteByte(c)
			// A leading ^ and a leading ] are literal parts of the class.
			if i+1 < len(src) && src[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			if i+1 < len(src) && src[i+1] == ']' {
				b.WriteString(`\]`)
				i++
			}
		case c == '(' && strings.HasPrefix(src[i:], "(?"):
			n, repl, err := rubyGroupFlags(src[i:])
			if err != nil {
				return "", fmt.Errorf("%v in /%s/", err, src)
			}
			b.WriteString(repl)
			i += n - 1
		default:
			b.WriteByte(c)
		}
	}
	if inClass {
		return "", fmt.Errorf("unterminated character class in /%s/", src)
	}
	return b.String(), nil
}

// rubyUnicodeEscape reads the hex digits after \u: XXXX or {X...}. It returns the digits and
// how many bytes of s they took.
func rubyUnicodeEscape(s string) (string, int, error) {
	if strings.HasPrefix(s, "{") {
		end := strings.IndexByte(s, '}')
		if end < 2 || end > 7 {
			return "", 0, errors.New("malformed \\u escape")
		}
		hex := s[1:end]
		if _, err := strconv.ParseUint(hex, 16, 32); err != nil {
			return "", 0, errors.New("malformed \\u escape")
		}
		return hex, end + 1, nil
	}
	if len(s) < 4 {
		return "", 0, errors.New("malformed \\u escape")
	}
	if _, err := strconv.ParseUint(s[:4], 16, 32); err != nil {
		return "", 0, errors.New("malformed \\u escape")
	}
	return s[:4], 4, nil
}

// rubyGroupFlags translates the start of a (? group: (?:, (?<name>, and inline flags
// (?imx-imx) / (?imx-imx:, where Ruby's m is RE2's s. It returns how many bytes of s it
// consumed and the replacement.
func rubyGroupFlags(s string) (int, string, error) {
	rest := s[2:]
	switch {
	case strings.HasPrefix(rest, ":"):
		return 3, "(?:", nil
	case strings.HasPrefix(rest, "<=") || strings.HasPrefix(rest, "<!") ||
		strings.HasPrefix(rest, "=") || strings.HasPrefix(rest, "!"):
		return 0, "", errors.New("lookaround is not supported")
	case strings.HasPrefix(rest, ">"):
		return 0, "", errors.New("atomic groups are not supported")
	case strings.HasPrefix(rest, "#"):
		return 0, "", errors.New("comment groups are not supported")
	case strings.HasPrefix(rest, "<") || strings.HasPrefix(rest, "P<"):
		return 2, "(?", nil // named group: RE2 accepts (?<name> and (?P<name>
	}
	var out strings.Builder
	out.WriteString("(?")
	for i := 0; i < len(rest); i++ {
		switch c := rest[i]; c {
		case 'i', '-':
			out.WriteByte(c)
		case 'm':
			out.WriteByte('s')
		case 'x':
			return 0, "", errors.New("the x (extended) flag is not supported")
		case ')', ':':
			out.WriteByte(c)
			return 2 + i + 1, out.String(), nil
		default:
			return 0, "", fmt.Errorf("unsupported group syntax %q", s[:min(len(s), 2+i+1)])
		}
	}
	return 0, "", errors.New("unterminated group")
}
