package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

// Run runs the conformance suite. newStore must return a fresh, empty store for each call and
// release it with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("Jobs", func(t *testing.T) { runJobs(t, newStore) })
	t.Run("JobNodes", func(t *testing.T) { runJobNodes(t, newStore) })
	t.Run("Events", func(t *testing.T) { runEvents(t, newStore) })
	t.Run("Following", func(t *testing.T) { runFollowing(t, newStore) })
	t.Run("Idempotency", func(t *testing.T) { runIdempotency(t, newStore) })
	t.Run("Inventory", func(t *testing.T) { runInventory(t, newStore) })
	t.Run("Groups", func(t *testing.T) { runGroups(t, newStore) })
	t.Run("Tokens", func(t *testing.T) { runTokens(t, newStore) })
	t.Run("Roles", func(t *testing.T) { runRoles(t, newStore) })
	t.Run("Users", func(t *testing.T) { runUsers(t, newStore) })
	t.Run("Nonces", func(t *testing.T) { runNonces(t, newStore) })
	t.Run("Usage", func(t *testing.T) { runUsage(t, newStore) })
	t.Run("Concurrency", func(t *testing.T) { runConcurrency(t, newStore) })
	t.Run("Progress", func(t *testing.T) { runProgress(t, newStore) })
	t.Run("Claims", func(t *testing.T) { runClaims(t, newStore) })
	t.Run("NodeState", func(t *testing.T) { runNodeState(t, newStore) })
	t.Run("Leases", func(t *testing.T) { runLeases(t, newStore) })
	t.Run("Output", func(t *testing.T) { runOutput(t, newStore) })
}

// zone is a non-UTC location for fixtures: a backend may return times in any location, so
// every comparison is by instant.
var zone = time.FixedZone("UTC+2", 2*60*60)

// base is the fixtures' reference time, at whole seconds: the contract asks backends to keep
// timestamps at second precision or better.
var base = time.Date(2024, time.March, 1, 12, 0, 0, 0, zone)

// at returns base plus s seconds.
func at(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }

// ptr returns a pointer to a copy of v.
func ptr[T any](v T) *T { return &v }

// newJob returns a job fixture with every field set; i varies the values.
func newJob(i int, nodes int) jobs.Job {
	return jobs.Job{
		Type:        jobs.TypeTask,
		State:       jobs.StateNew,
		Environment: "production",
		Description: fmt.Sprintf("job fixture %d", i),
		Task:        "package::install",
		Owner:       jobs.Owner{ID: fmt.Sprintf("id-%d", i), Login: fmt.Sprintf("user%d", i)},
		Options:     json.RawMessage(fmt.Sprintf(`{"task":"package::install","params":{"name":"pkg%d"},"noop":false}`, i)),
		Payload:     []byte{0x00, 0xff, byte(i), '\n', 0x7f},
		Concurrency: 2,
		Timeout:     300,
		MaxErrors:   -1,
		NodeCount:   nodes,
		CreatedAt:   at(i),
		UpdatedAt:   at(i),
		Status: []jobs.StatusEntry{
			{State: jobs.StateNew, EnterTime: at(i), ExitTime: nil},
		},
	}
}

// newNodes returns node fixtures named names, all new.
func newNodes(names ...string) []jobs.Node {
	out := make([]jobs.Node, len(names))
	for i, name := range names {
		out[i] = jobs.Node{Name: name, State: jobs.NodeNew}
	}
	return out
}

// newEvent returns an event fixture about node.
func newEvent(typ, node string, s int) jobs.Event {
	return jobs.Event{
		Type:      typ,
		Timestamp: at(s),
		Node:      node,
		Detail:    json.RawMessage(fmt.Sprintf(`{"node":%q,"seq":%d}`, node, s)),
		Message:   fmt.Sprintf("%s on %s", typ, node),
	}
}

// normTime drops the location and monotonic reading so that equal instants compare equal.
func normTime(tm time.Time) time.Time { return tm.UTC().Round(0) }

func normTimePtr(tm *time.Time) *time.Time {
	if tm == nil {
		return nil
	}
	return ptr(normTime(*tm))
}

// normJSON compacts JSON so that a backend may re-encode it; empty becomes nil.
func normJSON(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return raw
	}
	return buf.Bytes()
}

func normBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func normJob(j jobs.Job) jobs.Job {
	j.Options = normJSON(j.Options)
	j.Payload = normBytes(j.Payload)
	j.CreatedAt = normTime(j.CreatedAt)
	j.UpdatedAt = normTime(j.UpdatedAt)
	j.FinishedAt = normTimePtr(j.FinishedAt)
	if len(j.Status) == 0 {
		j.Status = nil
	} else {
		st := make([]jobs.StatusEntry, len(j.Status))
		for i, e := range j.Status {
			st[i] = jobs.StatusEntry{State: e.State, EnterTime: normTime(e.EnterTime), ExitTime: normTimePtr(e.ExitTime)}
		}
		j.Status = st
	}
	return j
}

func normNode(n jobs.Node) jobs.Node {
	n.ReadyAt = normTimePtr(n.ReadyAt)
	n.StartedAt = normTimePtr(n.StartedAt)
	n.FinishedAt = normTimePtr(n.FinishedAt)
	n.DueAt = normTimePtr(n.DueAt)
	n.Result = normJSON(n.Result)
	return n
}

func normEvent(e jobs.Event) jobs.Event {
	e.Timestamp = normTime(e.Timestamp)
	e.Detail = normJSON(e.Detail)
	return e
}

func normInv(n inventory.Node) inventory.Node {
	n.Facts = normJSON(n.Facts)
	n.ConnectedAt = normTimePtr(n.ConnectedAt)
	n.CreatedAt = normTime(n.CreatedAt)
	return n
}

func normGroup(g inventory.Group) inventory.Group {
	if len(g.Nodes) == 0 {
		g.Nodes = nil
	}
	g.CreatedAt = normTime(g.CreatedAt)
	return g
}

func normToken(tk store.Token) store.Token {
	tk.CreatedAt = normTime(tk.CreatedAt)
	tk.ExpiresAt = normTimePtr(tk.ExpiresAt)
	return tk
}

func normSlice[T any](s []T, norm func(T) T) []T {
	if len(s) == 0 {
		return nil
	}
	out := make([]T, len(s))
	for i, v := range s {
		out[i] = norm(v)
	}
	return out
}

// show renders v for a failure message; JSON shows raw messages and pointers readably.
func show(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

// equal fails t unless got and want are equal after norm.
func equal[T any](t *testing.T, what string, got, want T, norm func(T) T) {
	t.Helper()
	g, w := norm(got), norm(want)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got: %s\nwant: %s", what, show(g), show(w))
	}
}

func equalJob(t *testing.T, what string, got, want jobs.Job) {
	t.Helper()
	equal(t, what, got, want, normJob)
}

func equalNode(t *testing.T, what string, got, want jobs.Node) {
	t.Helper()
	equal(t, what, got, want, normNode)
}

func equalNodes(t *testing.T, what string, got, want []jobs.Node) {
	t.Helper()
	equal(t, what, got, want, func(s []jobs.Node) []jobs.Node { return normSlice(s, normNode) })
}

func equalEvents(t *testing.T, what string, got, want []jobs.Event) {
	t.Helper()
	equal(t, what, got, want, func(s []jobs.Event) []jobs.Event { return normSlice(s, normEvent) })
}

// mustErrIs fails t unless err matches target.
func mustErrIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error = %v, want errors.Is(err, %v)", what, err, target)
	}
}

// must fails t on err.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// jobIDs returns the ids of js.
func jobIDs(js []jobs.Job) []int64 {
	ids := make([]int64, len(js))
	for i, j := range js {
		ids[i] = j.ID
	}
	return ids
}

// eventIDs returns the ids of evs.
func eventIDs(evs []jobs.Event) []int64 {
	ids := make([]int64, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}

// seq returns from, from+1, ..., to (empty when to < from).
func seq(from, to int64) []int64 {
	out := []int64{}
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// equalIDs fails t unless got and want hold the same ids in the same order.
func equalIDs(t *testing.T, what string, got, want []int64) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: ids = %v, want %v", what, got, want)
	}
}
