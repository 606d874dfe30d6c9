package query

import (
	"errors"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error is a *Error inside the input,
// and that every accepted query's String() re-parses to a stable form matching the same
// fixture nodes.
func FuzzParse(f *testing.F) {
	for _, v := range validQueries {
		f.Add(v.in)
	}
	for _, e := range evalQueries {
		f.Add(e.query)
	}
	f.Add(`inventory { facts.a ~ "(" }`)
	f.Add(`inventory[certname] { (certname = "a" }`)
	f.Add(`inventory { facts."x\\".'y\'' = "\d" }`)
	floatNodes, numberNodes := fleet(f, false), fleet(f, true)
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Parse(s)
		if err != nil {
			var qe *Error
			if !errors.As(err, &qe) {
				t.Fatalf("Parse(%q) error %v is %T, not *Error", s, err, err)
			}
			if qe.Pos < 0 || qe.Pos > len(s) {
				t.Fatalf("Parse(%q): position %d outside the input", s, qe.Pos)
			}
			return
		}
		checkRoundTrip(t, q, floatNodes)
		checkRoundTrip(t, q, numberNodes)
	})
}
