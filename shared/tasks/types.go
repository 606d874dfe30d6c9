package tasks

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Type is a parsed Puppet data type (the "type" of a task parameter, reference §5.2).
// Validate checks a value as decoded by encoding/json (with or without UseNumber): nil, bool,
// string, json.Number, float64, []any and map[string]any. String returns the canonical form,
// which ParseType accepts and maps to an equal Type.
type Type interface {
	Validate(v any) error
	String() string

	// check returns nil when v is an instance of the type.
	check(v any, c checkCtx) *mismatch
	// acceptsUndef reports whether nil (JSON null, or an absent parameter) is an instance.
	acceptsUndef() bool
	// shortName is the type's name for "expects a/an X value" messages (Puppet's short_name).
	shortName() string
}

// ValueError is the error Type.Validate returns: Path locates the offending part of the
// value ("entry 'port'", "index 2"), Msg says what was wrong with it.
type ValueError struct {
	Path []string
	Msg  string
}

func (e *ValueError) Error() string {
	if len(e.Path) == 0 {
		return e.Msg
	}
	return strings.Join(e.Path, " ") + " " + e.Msg
}

// redactedValue replaces values in messages about sensitive values.
const redactedValue = "[value redacted]"

type checkCtx struct {
	hide bool // do not echo values (inside Sensitive, or for sensitive parameters)
}

func (c checkCtx) show(s string) string {
	if c.hide {
		return redactedValue
	}
	return s
}

type mismatchKind int

const (
	mmType    mismatchKind = iota // the value is not of the expected kind
	mmPattern                     // a string did not match an Enum or Pattern
	mmOther                       // any other constraint (range, size, keys); msg says it all
)

type mismatch struct {
	path    []string
	kind    mismatchKind
	shallow bool     // the value's basic kind is not accepted at all (used to merge Variant alternatives)
	names   []string // mmType: the expected type names; also kept for shallow mmPattern
	pattern string   // mmPattern: the Enum/Pattern type that did not match
	undefOK bool     // mmPattern: an undef value would also have been accepted
	actual  string   // label of the actual value, or the quoted string
	msg     string   // mmOther
}

func (m *mismatch) render() string {
	switch m.kind {
	case mmPattern:
		pfx := ""
		if m.undefOK {
			pfx = "an undef value or "
		}
		return fmt.Sprintf("expects %sa match for %s, got %s", pfx, m.pattern, m.actual)
	case mmType:
		names := uniq(m.names)
		switch len(names) {
		case 1:
			return fmt.Sprintf("expects %s %s value, got %s", aAn(names[0]), names[0], m.actual)
		case 2:
			return fmt.Sprintf("expects a value of type %s or %s, got %s", names[0], names[1], m.actual)
		default:
			return fmt.Sprintf("expects a value of type %s, or %s, got %s",
				strings.Join(names[:len(names)-1], ", "), names[len(names)-1], m.actual)
		}
	default:
		return m.msg
	}
}

func (m *mismatch) err() error {
	return &ValueError{Path: m.path, Msg: m.render()}
}

// at prefixes the mismatch's path with elem.
func (m *mismatch) at(elem string) *mismatch {
	if m == nil {
		return nil
	}
	m.path = append([]string{elem}, m.path...)
	return m
}

func uniq(s []string) []string {
	var out []string
	for _, x := range s {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func aAn(s string) string {
	if s != "" && strings.ContainsRune("AEIOU", rune(s[0])) {
		return "an"
	}
	return "a"
}

func typeMismatch(t Type, v any) *mismatch {
	return &mismatch{kind: mmType, shallow: true, names: []string{t.shortName()}, actual: label(v)}
}

func otherMismatch(format string, args ...any) *mismatch {
	return &mismatch{kind: mmOther, msg: fmt.Sprintf(format, args...)}
}

func validate(t Type, v any, c checkCtx) error {
	if m := t.check(v, c); m != nil {
		return m.err()
	}
	return nil
}

// label names the Puppet type of a JSON value for messages.
func label(v any) string {
	switch v.(type) {
	case nil:
		return "Undef"
	case bool:
		return "Boolean"
	case string:
		return "String"
	case []any:
		return "Array"
	case map[string]any:
		return "Hash"
	}
	switch n := classify(v); n.kind {
	case numInt:
		return "Integer"
	case numFloat:
		return "Float"
	}
	return "Runtime"
}

// ---- range helpers ----

// bound is an optional integer limit; set is false for "default" (unbounded).
type bound struct {
	v   int64
	set bool
}

func intRangeText(lo, hi bound) string {
	switch {
	case lo.set && hi.set && lo.v == hi.v:
		return "of " + strconv.FormatInt(lo.v, 10)
	case lo.set && hi.set:
		return fmt.Sprintf("between %d and %d", lo.v, hi.v)
	case lo.set:
		return fmt.Sprintf("of at least %d", lo.v)
	default:
		return fmt.Sprintf("of at most %d", hi.v)
	}
}

// sizeRange is a size constraint of String, Array, Hash and Tuple (max < 0 means unlimited).
type sizeRange struct {
	min, max int64
}

var anySize = sizeRange{0, -1}

func (r sizeRange) contains(n int) bool {
	return int64(n) >= r.min && (r.max < 0 || int64(n) <= r.max)
}

func (r sizeRange) unlimited() bool { return r.min == 0 && r.max < 0 }

// text is Puppet's range_to_s.
func (r sizeRange) text() string {
	switch {
	case r.min == r.max:
		return strconv.FormatInt(r.min, 10)
	case r.min == 0 && r.max < 0:
		return "unlimited"
	case r.min == 0:
		return fmt.Sprintf("at most %d", r.max)
	case r.max < 0:
		return fmt.Sprintf("at least %d", r.min)
	default:
		return fmt.Sprintf("between %d and %d", r.min, r.max)
	}
}

// params renders the size as type parameters: "" when unlimited, else "min" or "min, max".
func (r sizeRange) params() string {
	switch {
	case r.unlimited():
		return ""
	case r.max < 0:
		return strconv.FormatInt(r.min, 10)
	default:
		return fmt.Sprintf("%d, %d", r.min, r.max)
	}
}

func sizeMismatch(r sizeRange, n int) *mismatch {
	return otherMismatch("expects size to be %s, got %d", r.text(), n)
}

// ---- scalar types ----

// Validate methods: every type checks with a fresh context (values are shown in messages).

func (t anyType) Validate(v any) error        { return validate(t, v, checkCtx{}) }
func (t undefType) Validate(v any) error      { return validate(t, v, checkCtx{}) }
func (t booleanType) Validate(v any) error    { return validate(t, v, checkCtx{}) }
func (t dataType) Validate(v any) error       { return validate(t, v, checkCtx{}) }
func (t scalarType) Validate(v any) error     { return validate(t, v, checkCtx{}) }
func (t numericType) Validate(v any) error    { return validate(t, v, checkCtx{}) }
func (t *stringType) Validate(v any) error    { return validate(t, v, checkCtx{}) }
func (t *integerType) Validate(v any) error   { return validate(t, v, checkCtx{}) }
func (t *floatType) Validate(v any) error     { return validate(t, v, checkCtx{}) }
func (t *enumType) Validate(v any) error      { return validate(t, v, checkCtx{}) }
func (t *patternType) Validate(v any) error   { return validate(t, v, checkCtx{}) }
func (t *optionalType) Validate(v any) error  { return validate(t, v, checkCtx{}) }
func (t *notUndefType) Validate(v any) error  { return validate(t, v, checkCtx{}) }
func (t *sensitiveType) Validate(v any) error { return validate(t, v, checkCtx{}) }
func (t *variantType) Validate(v any) error   { return validate(t, v, checkCtx{}) }
func (t *arrayType) Validate(v any) error     { return validate(t, v, checkCtx{}) }
func (t *hashType) Validate(v any) error      { return validate(t, v, checkCtx{}) }
func (t *structType) Validate(v any) error    { return validate(t, v, checkCtx{}) }
func (t *tupleType) Validate(v any) error     { return validate(t, v, checkCtx{}) }

type anyType struct{}

func (anyType) String() string                { return "Any" }
func (anyType) check(any, checkCtx) *mismatch { return nil }
func (anyType) acceptsUndef() bool            { return true }
func (anyType) shortName() string             { return "Any" }

type undefType struct{}

func (undefType) String() string     { return "Undef" }
func (undefType) acceptsUndef() bool { return true }
func (undefType) shortName() string  { return "Undef" }

func (undefType) check(v any, _ checkCtx) *mismatch {
	if v == nil {
		return nil
	}
	return typeMismatch(undefType{}, v)
}

type booleanType struct{}

func (booleanType) String() string     { return "Boolean" }
func (booleanType) acceptsUndef() bool { return false }
func (booleanType) shortName() string  { return "Boolean" }

func (booleanType) check(v any, _ checkCtx) *mismatch {
	if _, ok := v.(bool); ok {
		return nil
	}
	return typeMismatch(booleanType{}, v)
}

// dataType is Puppet's Data: Variant[ScalarData, Undef, Hash[String, Data], Array[Data]].
type dataType struct{}

func (dataType) String() string     { return "Data" }
func (dataType) acceptsUndef() bool { return true }
func (dataType) shortName() string  { return "Data" }

func (dataType) check(v any, _ checkCtx) *mismatch {
	if isData(v, 0) {
		return nil
	}
	return typeMismatch(dataType{}, v)
}

func isData(v any, depth int) bool {
	if depth > maxValueDepth {
		return false
	}
	switch v := v.(type) {
	case nil, bool, string:
		return true
	case []any:
		for _, e := range v {
			if !isData(e, depth+1) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, e := range v {
			if !isData(e, depth+1) {
				return false
			}
		}
		return true
	}
	n := classify(v)
	return n.kind != numNone && !math.IsNaN(n.f) && !math.IsInf(n.f, 0)
}

// maxValueDepth bounds recursion over values that were not produced by encoding/json.
const maxValueDepth = 10000

// scalarType is Scalar (data bool false) or ScalarData (data true); for JSON values both
// accept exactly strings, numbers and booleans.
type scalarType struct{ data bool }

func (t scalarType) String() string    { return t.name() }
func (scalarType) acceptsUndef() bool  { return false }
func (t scalarType) shortName() string { return t.name() }

func (t scalarType) name() string {
	if t.data {
		return "ScalarData"
	}
	return "Scalar"
}

func (t scalarType) check(v any, _ checkCtx) *mismatch {
	switch v.(type) {
	case string, bool:
		return nil
	}
	if classify(v).kind != numNone {
		return nil
	}
	return typeMismatch(t, v)
}

type numericType struct{}

func (numericType) String() string     { return "Numeric" }
func (numericType) acceptsUndef() bool { return false }
func (numericType) shortName() string  { return "Numeric" }

func (numericType) check(v any, _ checkCtx) *mismatch {
	if classify(v).kind != numNone {
		return nil
	}
	return typeMismatch(numericType{}, v)
}

type stringType struct {
	size sizeRange
}

func (*stringType) acceptsUndef() bool { return false }
func (*stringType) shortName() string  { return "String" }

func (t *stringType) String() string {
	if p := t.size.params(); p != "" {
		return "String[" + p + "]"
	}
	return "String"
}

func (t *stringType) check(v any, c checkCtx) *mismatch {
	s, ok := v.(string)
	if !ok {
		return typeMismatch(t, v)
	}
	if n := utf8.RuneCountInString(s); !t.size.contains(n) {
		if c.hide {
			return otherMismatch("expects a %s value, got %s", t, redactedValue)
		}
		return otherMismatch("expects a %s value, got a String of length %d", t, n)
	}
	return nil
}

type integerType struct {
	lo, hi bound
}

func (*integerType) acceptsUndef() bool { return false }
func (*integerType) shortName() string  { return "Integer" }

func (t *integerType) String() string {
	switch {
	case t.lo.set && t.hi.set:
		return fmt.Sprintf("Integer[%d, %d]", t.lo.v, t.hi.v)
	case t.lo.set:
		return fmt.Sprintf("Integer[%d]", t.lo.v)
	case t.hi.set:
		return fmt.Sprintf("Integer[default, %d]", t.hi.v)
	default:
		return "Integer"
	}
}

func (t *integerType) check(v any, c checkCtx) *mismatch {
	n := classify(v)
	var i int64
	switch {
	case n.kind == numInt && !n.overflow:
		i = n.i
	case n.kind == numInt:
		return otherMismatch("expects an Integer value in the 64-bit range, got %s", c.show(n.text))
	case n.kind == numFloat && n.integral:
		i = n.i
	default:
		return typeMismatch(t, v)
	}
	if (t.lo.set && i < t.lo.v) || (t.hi.set && i > t.hi.v) {
		return otherMismatch("expects a value %s, got %s", intRangeText(t.lo, t.hi), c.show(strconv.FormatInt(i, 10)))
	}
	return nil
}

type floatBound struct {
	v   float64
	set bool
}

type floatType struct {
	lo, hi floatBound
}

func (*floatType) acceptsUndef() bool { return false }
func (*floatType) shortName() string  { return "Float" }

func formatFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEnI") {
		s += ".0"
	}
	return s
}

func (t *floatType) String() string {
	switch {
	case t.lo.set && t.hi.set:
		return fmt.Sprintf("Float[%s, %s]", formatFloat(t.lo.v), formatFloat(t.hi.v))
	case t.lo.set:
		return fmt.Sprintf("Float[%s]", formatFloat(t.lo.v))
	case t.hi.set:
		return fmt.Sprintf("Float[default, %s]", formatFloat(t.hi.v))
	default:
		return "Float"
	}
}

func (t *floatType) check(v any, c checkCtx) *mismatch {
	n := classify(v)
	if n.kind != numFloat {
		return typeMismatch(t, v)
	}
	if (t.lo.set && n.f < t.lo.v) || (t.hi.set && n.f > t.hi.v) || math.IsNaN(n.f) {
		var r string
		switch {
		case t.lo.set && t.hi.set:
			r = fmt.Sprintf("between %s and %s", formatFloat(t.lo.v), formatFloat(t.hi.v))
		case t.lo.set:
			r = "of at least " + formatFloat(t.lo.v)
		case t.hi.set:
			r = "of at most " + formatFloat(t.hi.v)
		default:
			r = "that is a number"
		}
		return otherMismatch("expects a value %s, got %s", r, c.show(n.text))
	}
	return nil
}

// enumType matches strings equal to one of values (caseInsensitive: Enum[..., true]).
// With no values it matches any string, like Puppet's bare Enum.
type enumType struct {
	values          []string
	caseInsensitive bool
}

func (*enumType) acceptsUndef() bool { return false }
func (*enumType) shortName() string  { return "Enum" }

func (t *enumType) String() string {
	if len(t.values) == 0 {
		return "Enum"
	}
	parts := make([]string, 0, len(t.values)+1)
	for _, v := range t.values {
		parts = append(parts, quote(v))
	}
	if t.caseInsensitive {
		parts = append(parts, "true")
	}
	return "Enum[" + strings.Join(parts, ", ") + "]"
}

func (t *enumType) check(v any, c checkCtx) *mismatch {
	s, ok := v.(string)
	if !ok {
		return &mismatch{kind: mmPattern, shallow: true, names: []string{"Enum"}, pattern: t.String(), actual: label(v)}
	}
	if len(t.values) == 0 {
		return nil
	}
	for _, e := range t.values {
		if e == s || (t.caseInsensitive && strings.EqualFold(e, s)) {
			return nil
		}
	}
	return &mismatch{kind: mmPattern, names: []string{"Enum"}, pattern: t.String(), actual: c.show(quote(s))}
}

// patternType matches strings in which any of the regexps matches (anywhere, as Puppet does).
type patternType struct {
	sources []string // as written between slashes in the canonical form
	res     []*regexp.Regexp
}

func (*patternType) acceptsUndef() bool { return false }
func (*patternType) shortName() string  { return "Pattern" }

func (t *patternType) String() string {
	if len(t.sources) == 0 {
		return "Pattern"
	}
	parts := make([]string, len(t.sources))
	for i, s := range t.sources {
		parts[i] = "/" + s + "/"
	}
	return "Pattern[" + strings.Join(parts, ", ") + "]"
}

func (t *patternType) check(v any, c checkCtx) *mismatch {
	s, ok := v.(string)
	if !ok {
		return &mismatch{kind: mmPattern, shallow: true, names: []string{"Pattern"}, pattern: t.String(), actual: label(v)}
	}
	if len(t.res) == 0 {
		return nil
	}
	for _, re := range t.res {
		if re.MatchString(s) {
			return nil
		}
	}
	return &mismatch{kind: mmPattern, names: []string{"Pattern"}, pattern: t.String(), actual: c.show(quote(s))}
}

// ---- wrappers ----

// optionalType is Optional[T]; inner is anyType{} for a bare Optional.
type optionalType struct{ inner Type }

func (*optionalType) acceptsUndef() bool  { return true }
func (t *optionalType) shortName() string { return containedName("Optional", t.inner) }

func (t *optionalType) String() string { return wrapperString("Optional", t.inner) }

func (t *optionalType) check(v any, c checkCtx) *mismatch {
	if v == nil {
		return nil
	}
	m := t.inner.check(v, c)
	if m == nil || len(m.path) > 0 {
		return m
	}
	switch m.kind {
	case mmType:
		m.names = append([]string{"Undef"}, m.names...)
	case mmPattern:
		m.undefOK = true
		m.names = append([]string{"Undef"}, m.names...)
	}
	return m
}

// containedName is Puppet's short_name for Optional/NotUndef/Sensitive: "Optional[String]".
func containedName(name string, inner Type) string {
	if inner == nil {
		return name
	}
	if _, ok := inner.(anyType); ok {
		return name
	}
	return name + "[" + inner.shortName() + "]"
}

func wrapperString(name string, inner Type) string {
	if _, ok := inner.(anyType); ok {
		return name
	}
	return name + "[" + inner.String() + "]"
}

// notUndefType is NotUndef[T]; inner is anyType{} for a bare NotUndef.
type notUndefType struct{ inner Type }

func (*notUndefType) acceptsUndef() bool  { return false }
func (t *notUndefType) shortName() string { return containedName("NotUndef", t.inner) }

func (t *notUndefType) String() string { return wrapperString("NotUndef", t.inner) }

func (t *notUndefType) check(v any, c checkCtx) *mismatch {
	if v == nil {
		return typeMismatch(t, v)
	}
	return t.inner.check(v, c)
}

// sensitiveType is Sensitive[T]: the (plain JSON) value is checked against T without
// echoing it in messages. inner is anyType{} for a bare Sensitive.
type sensitiveType struct{ inner Type }

func (t *sensitiveType) acceptsUndef() bool { return t.inner.acceptsUndef() }
func (t *sensitiveType) shortName() string  { return containedName("Sensitive", t.inner) }

func (t *sensitiveType) String() string { return wrapperString("Sensitive", t.inner) }

func (t *sensitiveType) check(v any, _ checkCtx) *mismatch {
	return t.inner.check(v, checkCtx{hide: true})
}

type variantType struct{ types []Type }

func (t *variantType) acceptsUndef() bool { return slices.ContainsFunc(t.types, Type.acceptsUndef) }
func (*variantType) shortName() string    { return "Variant" }

func (t *variantType) String() string {
	return "Variant[" + joinTypes(t.types) + "]"
}

func joinTypes(ts []Type) string {
	parts := make([]string, len(ts))
	for i, x := range ts {
		parts[i] = x.String()
	}
	return strings.Join(parts, ", ")
}

func (t *variantType) check(v any, c checkCtx) *mismatch {
	var all []*mismatch
	for _, alt := range t.types {
		m := alt.check(v, c)
		if m == nil {
			return nil
		}
		all = append(all, m)
	}
	var deep []*mismatch
	for _, m := range all {
		if !m.shallow {
			deep = append(deep, m)
		}
	}
	if len(deep) == 0 {
		merged := &mismatch{kind: mmType, shallow: true, actual: label(v)}
		for _, m := range all {
			merged.names = append(merged.names, m.names...)
		}
		return merged
	}
	if len(deep) > 1 {
		var pats []string
		for _, m := range deep {
			if m.kind != mmPattern || len(m.path) > 0 {
				return deep[0]
			}
			pats = append(pats, m.pattern)
		}
		return &mismatch{kind: mmPattern, names: []string{"Variant"}, pattern: "Variant[" + strings.Join(pats, ", ") + "]", actual: deep[0].actual}
	}
	return deep[0]
}

// ---- collections ----

type arrayType struct {
	elem Type
	size sizeRange
}

func (*arrayType) acceptsUndef() bool { return false }
func (*arrayType) shortName() string  { return "Array" }

func (t *arrayType) String() string {
	_, anyElem := t.elem.(anyType)
	switch {
	case anyElem && t.size.unlimited():
		return "Array"
	case t.size.unlimited():
		return "Array[" + t.elem.String() + "]"
	default:
		return "Array[" + t.elem.String() + ", " + t.size.params() + "]"
	}
}

func (t *arrayType) check(v any, c checkCtx) *mismatch {
	a, ok := v.([]any)
	if !ok {
		return typeMismatch(t, v)
	}
	if !t.size.contains(len(a)) {
		return sizeMismatch(t.size, len(a))
	}
	for i, e := range a {
		if m := t.elem.check(e, c); m != nil {
			return m.at(fmt.Sprintf("index %d", i))
		}
	}
	return nil
}

type hashType struct {
	key, value Type
	size       sizeRange
}

func (*hashType) acceptsUndef() bool { return false }
func (*hashType) shortName() string  { return "Hash" }

func (t *hashType) String() string {
	_, anyKey := t.key.(anyType)
	_, anyValue := t.value.(anyType)
	switch {
	case anyKey && anyValue && t.size.unlimited():
		return "Hash"
	case t.size.unlimited():
		return "Hash[" + t.key.String() + ", " + t.value.String() + "]"
	default:
		return "Hash[" + t.key.String() + ", " + t.value.String() + ", " + t.size.params() + "]"
	}
}

func (t *hashType) check(v any, c checkCtx) *mismatch {
	h, ok := v.(map[string]any)
	if !ok {
		return typeMismatch(t, v)
	}
	if !t.size.contains(len(h)) {
		return sizeMismatch(t.size, len(h))
	}
	for _, k := range sortedKeys(h) {
		if m := t.key.check(k, c); m != nil {
			return m.at(fmt.Sprintf("key of entry '%s'", c.show(k)))
		}
		if m := t.value.check(h[k], c); m != nil {
			return m.at(fmt.Sprintf("entry '%s'", c.show(k)))
		}
	}
	return nil
}

func sortedKeys(h map[string]any) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// keyMode says whether a Struct member may be absent.
type keyMode int

const (
	keyPlain    keyMode = iota // required unless the value type accepts undef
	keyOptional                // Optional['k']: may be absent
	keyNotUndef                // NotUndef['k']: must be present
)

type structMember struct {
	key   string
	mode  keyMode
	value Type
}

// optional reports whether the member may be absent (Puppet makes a plain key optional when
// its value type accepts undef).
func (m structMember) optional() bool {
	switch m.mode {
	case keyOptional:
		return true
	case keyNotUndef:
		return false
	default:
		return m.value.acceptsUndef()
	}
}

type structType struct{ members []structMember }

func (*structType) acceptsUndef() bool { return false }
func (*structType) shortName() string  { return "Struct" }

func (t *structType) String() string {
	parts := make([]string, len(t.members))
	for i, m := range t.members {
		k := quote(m.key)
		switch {
		case m.mode == keyOptional && !m.value.acceptsUndef():
			k = "Optional[" + k + "]"
		case m.mode == keyNotUndef && m.value.acceptsUndef():
			k = "NotUndef[" + k + "]"
		}
		parts[i] = k + " => " + m.value.String()
	}
	return "Struct[{" + strings.Join(parts, ", ") + "}]"
}

func (t *structType) check(v any, c checkCtx) *mismatch {
	h, ok := v.(map[string]any)
	if !ok {
		return typeMismatch(t, v)
	}
	for _, mem := range t.members {
		val, present := h[mem.key]
		if !present {
			if mem.optional() {
				continue
			}
			return otherMismatch("expects a value for key '%s'", mem.key)
		}
		if m := mem.value.check(val, c); m != nil {
			return m.at(fmt.Sprintf("entry '%s'", mem.key))
		}
	}
	for _, k := range sortedKeys(h) {
		if !slices.ContainsFunc(t.members, func(m structMember) bool { return m.key == k }) {
			return otherMismatch("unrecognized key '%s'", c.show(k))
		}
	}
	return nil
}

// tupleType is Tuple[T1, ..., Tn, min, max]; elements past n are checked against Tn.
type tupleType struct {
	types []Type
	size  sizeRange
	sized bool // size given explicitly (otherwise it is exactly len(types))
}

func (*tupleType) acceptsUndef() bool { return false }
func (*tupleType) shortName() string  { return "Tuple" }

func (t *tupleType) String() string {
	s := "Tuple[" + joinTypes(t.types)
	if t.sized {
		if t.size.max < 0 {
			s += fmt.Sprintf(", %d", t.size.min)
		} else {
			s += fmt.Sprintf(", %d, %d", t.size.min, t.size.max)
		}
	}
	return s + "]"
}

func (t *tupleType) check(v any, c checkCtx) *mismatch {
	a, ok := v.([]any)
	if !ok {
		return typeMismatch(t, v)
	}
	if !t.size.contains(len(a)) {
		return sizeMismatch(t.size, len(a))
	}
	for i, e := range a {
		et := t.types[min(i, len(t.types)-1)]
		if m := et.check(e, c); m != nil {
			return m.at(fmt.Sprintf("index %d", i))
		}
	}
	return nil
}

// quote renders s as a single-quoted Puppet string.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
