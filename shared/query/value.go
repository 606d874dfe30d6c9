package query

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
)

// number is a numeric value: an exact int64 when the source was an integer that fits,
// otherwise a float64.
type number struct {
	isInt bool
	i     int64
	f     float64
}

func (n number) float() float64 {
	if n.isInt {
		return float64(n.i)
	}
	return n.f
}

// compareNumbers returns -1, 0 or 1; ok is false when either side is NaN. Two integers
// compare exactly, anything else compares as float64.
func compareNumbers(a, b number) (c int, ok bool) {
	if a.isInt && b.isInt {
		switch {
		case a.i < b.i:
			return -1, true
		case a.i > b.i:
			return 1, true
		}
		return 0, true
	}
	x, y := a.float(), b.float()
	switch {
	case math.IsNaN(x) || math.IsNaN(y):
		return 0, false
	case x < y:
		return -1, true
	case x > y:
		return 1, true
	}
	return 0, true
}

var errNotNumber = errors.New("not a number")

// parseNumber parses text in the query's number syntax
// (-?digits(.digits)?([eE][+-]?digits)?). Integers that overflow int64 become floats;
// floats outside the float64 range are an error.
func parseNumber(s string) (number, error) {
	if s == "" || scanNumber(s) != len(s) {
		return number{}, errNotNumber
	}
	isInt := true
	for i := 0; i < len(s); i++ {
		if s[i] == '.' || s[i] == 'e' || s[i] == 'E' {
			isInt = false
			break
		}
	}
	if isInt {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return number{isInt: true, i: i}, nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return number{}, err
	}
	return number{f: f}, nil
}

// formatFloat writes f so that it lexes back as a float (always with a "." before any
// exponent), which also keeps it valid PuppetDB PQL.
func formatFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	dot, exp := -1, -1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '.':
			dot = i
		case 'e':
			exp = i
		}
	}
	switch {
	case dot >= 0:
		return s
	case exp >= 0:
		return s[:exp] + ".0" + s[exp:]
	}
	return s + ".0"
}

// asNumber returns v as a number: Go numeric types and json.Number directly, and strings
// when they are written in the query's number syntax ("7", "-2.5").
func asNumber(v any) (number, bool) {
	switch x := v.(type) {
	case float64:
		return number{f: x}, true
	case float32:
		return number{f: float64(x)}, true
	case int:
		return number{isInt: true, i: int64(x)}, true
	case int8:
		return number{isInt: true, i: int64(x)}, true
	case int16:
		return number{isInt: true, i: int64(x)}, true
	case int32:
		return number{isInt: true, i: int64(x)}, true
	case int64:
		return number{isInt: true, i: x}, true
	case uint:
		return fromUint(uint64(x)), true
	case uint8:
		return number{isInt: true, i: int64(x)}, true
	case uint16:
		return number{isInt: true, i: int64(x)}, true
	case uint32:
		return number{isInt: true, i: int64(x)}, true
	case uint64:
		return fromUint(x), true
	case json.Number:
		n, err := parseNumber(string(x))
		return n, err == nil
	case string:
		n, err := parseNumber(x)
		return n, err == nil
	}
	return number{}, false
}

func fromUint(u uint64) number {
	if u > math.MaxInt64 {
		return number{f: float64(u)}
	}
	return number{isInt: true, i: int64(u)}
}

// isNumeric reports whether v is a number type (not a string that looks like one).
func isNumeric(v any) bool {
	switch v.(type) {
	case float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, json.Number:
		return true
	}
	return false
}

// scalarString is the string form of a scalar for ~: strings as is, booleans as true/false,
// numbers in plain decimal. Objects, arrays and null have none.
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case json.Number:
		return string(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case float32:
		return strconv.FormatFloat(float64(x), 'f', -1, 32), true
	case uint:
		return strconv.FormatUint(uint64(x), 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	}
	if !isNumeric(v) {
		return "", false
	}
	n, _ := asNumber(v) // the remaining numeric types are integers that fit int64
	return strconv.FormatInt(n.i, 10), true
}
