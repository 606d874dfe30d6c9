package tasks

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
)

type numKind int

const (
	numNone numKind = iota
	numInt
	numFloat
)

// number is a JSON-ish numeric value classified the way Puppet sees it.
type number struct {
	kind     numKind
	i        int64   // numInt (unless overflow), or numFloat when integral
	f        float64 // the value as a float
	integral bool    // numFloat only: a float64 with an integral value in the int64 range
	overflow bool    // numInt only: the integer does not fit in 64 bits
	text     string  // the value as written, for messages
}

// classify recognises json.Number (an integer when it has no fraction or exponent, else a
// Float), float64 (a Float; Integer types also accept it when it is integral) and Go's integer
// and float32 types.
func classify(v any) number {
	switch v := v.(type) {
	case json.Number:
		s := string(v)
		if !strings.ContainsAny(s, ".eE") {
			i, err := strconv.ParseInt(s, 10, 64)
			if err == nil {
				return number{kind: numInt, i: i, f: float64(i), text: s}
			}
			if errors.Is(err, strconv.ErrRange) {
				f, _ := strconv.ParseFloat(s, 64)
				return number{kind: numInt, overflow: true, f: f, text: s}
			}
			return number{}
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return number{}
		}
		return number{kind: numFloat, f: f, text: s}
	case float64:
		return floatNumber(v)
	case float32:
		return floatNumber(float64(v))
	case int:
		return intNumber(int64(v))
	case int8:
		return intNumber(int64(v))
	case int16:
		return intNumber(int64(v))
	case int32:
		return intNumber(int64(v))
	case int64:
		return intNumber(v)
	case uint8:
		return intNumber(int64(v))
	case uint16:
		return intNumber(int64(v))
	case uint32:
		return intNumber(int64(v))
	case uint:
		return uintNumber(uint64(v))
	case uint64:
		return uintNumber(v)
	}
	return number{}
}

func intNumber(i int64) number {
	return number{kind: numInt, i: i, f: float64(i), text: strconv.FormatInt(i, 10)}
}

func uintNumber(u uint64) number {
	if u > math.MaxInt64 {
		return number{kind: numInt, overflow: true, f: float64(u), text: strconv.FormatUint(u, 10)}
	}
	return intNumber(int64(u))
}

func floatNumber(f float64) number {
	n := number{kind: numFloat, f: f, text: strconv.FormatFloat(f, 'g', -1, 64)}
	// -2^63 is representable exactly; 2^63 is not an int64.
	if f == math.Trunc(f) && f >= -(1<<63) && f < (1<<63) {
		n.integral, n.i = true, int64(f)
	}
	return n
}
