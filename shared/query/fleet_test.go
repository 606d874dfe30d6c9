package query

import (
	"bytes"
	"encoding/json"
	"testing"
)

// fleetJSON is the fixture inventory: eight nodes with nested facts of every JSON type, some
// facts missing, null or of an unexpected shape.
const fleetJSON = `{
  "web1":    {"os": {"family": "Debian", "release": {"major": "12"}}, "role": "web",
              "processors": {"count": 4}, "is_virtual": true, "my.key": "dotted", "load": 0.75},
  "web2":    {"os": {"family": "Debian", "release": {"major": "11"}}, "role": "webserver",
              "processors": {"count": 8}, "is_virtual": false, "tags": ["a", "b"],
              "motd": "say \"hi\""},
  "db1":     {"os": {"family": "RedHat", "release": {"major": "9"}}, "role": "db",
              "processors": {"count": 16}, "is_virtual": false,
              "memory": {"total_bytes": 68719476736}},
  "db2":     {"os": {"family": "RedHat", "release": {"major": "8"}}, "role": "db-replica",
              "processors": {"count": 16}, "is_virtual": true, "with space": "yes"},
  "win1":    {"os": {"family": "windows", "release": {"major": "2019"}}, "role": "app",
              "processors": {"count": 2}, "is_virtual": true, "count_str": "7",
              "path": "C:\\Windows"},
  "mac1":    {"os": {"family": "Darwin", "release": {"major": "23"}},
              "processors": {"count": "10"}},
  "bare":    {},
  "nullish": {"role": null, "os": "flat-string", "processors": {"count": null}}
}`

// fleet decodes the fixture; useNumber selects json.Number instead of float64 for numbers.
func fleet(t testing.TB, useNumber bool) []Candidate {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(fleetJSON)))
	if useNumber {
		dec.UseNumber()
	}
	var m map[string]map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode fleet: %v", err)
	}
	out := make([]Candidate, 0, len(m))
	for name, facts := range m {
		out = append(out, Candidate{Name: name, Facts: facts})
	}
	return out
}
