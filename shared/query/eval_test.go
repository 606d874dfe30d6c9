package query

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"testing"
)

// mapIndex is an Index over decoded candidates, with the semantics a store's index has.
type mapIndex struct {
	nodes      []Candidate
	namesCalls int
	paths      [][]string
}

func (m *mapIndex) NodeNames(context.Context) ([]string, error) {
	m.namesCalls++
	out := make([]string, 0, len(m.nodes))
	for _, n := range m.nodes {
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out, nil
}

func (m *mapIndex) FactValues(_ context.Context, p []string) (map[string]any, error) {
	m.paths = append(m.paths, p)
	out := map[string]any{}
	for _, n := range m.nodes {
		v, ok := path{facts: p}.resolve(n.Name, n.Facts)
		if !ok {
			continue
		}
		switch v.(type) {
		case string, bool, float64, json.Number:
			out[n.Name] = v
		}
	}
	return out, nil
}

// TestEvalMatchesSelect checks that evaluating through an index gives exactly what Select
// gives over the same nodes, for every query of the evaluation table, with numbers decoded
// either way.
func TestEvalMatchesSelect(t *testing.T) {
	for _, useNumber := range []bool{false, true} {
		nodes := fleet(t, useNumber)
		for _, tt := range evalQueries {
			t.Run(fmt.Sprintf("%s/json.Number=%v", tt.name, useNumber), func(t *testing.T) {
				q, err := Parse(tt.query)
				if err != nil {
					t.Fatalf("parse %q: %v", tt.query, err)
				}
				idx := &mapIndex{nodes: nodes}
				got, err := q.Eval(t.Context(), idx)
				if err != nil {
					t.Fatal(err)
				}
				want := Select(q, nodes)
				if !slices.Equal(got, want) {
					t.Fatalf("Eval(%q) = %v, Select = %v", tt.query, got, want)
				}
			})
		}
	}
}

// TestEvalReadsOnlyWhatItNeeds checks that a query of facts reads only its paths, and the
// node names only when it must.
func TestEvalReadsOnlyWhatItNeeds(t *testing.T) {
	nodes := fleet(t, true)
	tests := []struct {
		query     string
		paths     int
		needNames bool
	}{
		{`inventory { facts.os.family = "Debian" and facts.role ~ "web" }`, 2, false},
		{`inventory { facts.os.family = "Debian" or facts.os.family = "RedHat" }`, 2, false},
		{`inventory { facts.role != "db" }`, 1, true},
		{`inventory { not facts.is_virtual = true }`, 1, true},
		{`inventory { certname ~ "^web" }`, 0, true},
		{`inventory {}`, 0, true},
	}
	for _, tt := range tests {
		q, err := Parse(tt.query)
		if err != nil {
			t.Fatal(err)
		}
		idx := &mapIndex{nodes: nodes}
		if _, err := q.Eval(t.Context(), idx); err != nil {
			t.Fatal(err)
		}
		if len(idx.paths) != tt.paths || (idx.namesCalls > 0) != tt.needNames || idx.namesCalls > 1 {
			t.Errorf("%s: read %d paths and the names %d times; want %d paths, names needed %v (at most once)",
				tt.query, len(idx.paths), idx.namesCalls, tt.paths, tt.needNames)
		}
	}
}
