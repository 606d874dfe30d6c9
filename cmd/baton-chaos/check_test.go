package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/client"
)

func TestCheck(t *testing.T) {
	res := func(state, result string) client.Node {
		return client.Node{Name: "c01", State: state, Result: json.RawMessage(result)}
	}
	ok := `{"node":"c01","run_id":"r1"}`
	tests := []struct {
		name            string
		exit            int
		node            *client.Node // nil: missing from the job
		started, done   int
		ended           bool
		lost, twice     int
		stuck, misrep   int
		unknown, notRun int
	}{
		{name: "finished, in the ledger", node: ptr(res("finished", ok)), started: 1, done: 1, ended: true},
		{name: "failed as asked", exit: 3, node: ptr(res("failed", `{"node":"c01","run_id":"r1","_error":{"kind":"puppetlabs.tasks/task-error","msg":"x","details":{"exit_code":3}}}`)), started: 1, done: 1, ended: true},
		{name: "finished, not in the ledger", node: ptr(res("finished", ok)), ended: true, misrep: 1},
		{name: "finished, another run's result", node: ptr(res("finished", `{"node":"c01","run_id":"r9"}`)), started: 1, done: 1, ended: true, misrep: 1},
		{name: "errored, but completed", node: ptr(res("errored", `{"_error":{"kind":"puppetlabs.orchestrator/node-unavailable","msg":"Node c01 did not connect"}}`)), started: 1, done: 1, ended: true, misrep: 1},
		{name: "failed claiming not run, but started", node: ptr(res("failed", `{"_error":{"kind":"k","msg":"task process is not running"}}`)), started: 1, ended: true, misrep: 1},
		{name: "errored, not run", node: ptr(res("errored", `{"_error":{"kind":"puppetlabs.orchestrator/node-unavailable","msg":"Node c01 did not connect"}}`)), ended: true, notRun: 1},
		{name: "outcome unknown, completed", node: ptr(res("failed", `{"_error":{"kind":"baton/task-outcome-unknown","msg":"the agent restarted while the task ran; outcome unknown"}}`)), started: 1, done: 1, ended: true, unknown: 1},
		{name: "run twice", node: ptr(res("finished", ok)), started: 2, done: 2, ended: true, twice: 1},
		{name: "still running", node: ptr(res("running", `null`)), started: 1, stuck: 2}, // the node and its job
		{name: "missing", started: 1, done: 1, ended: true, lost: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &jobRun{runID: "r1", job: "7", nodes: []string{"c01"}, exitCode: tt.exit, submitted: time.Unix(0, 0), results: []client.Node{}}
			if tt.node != nil {
				r.results = []client.Node{*tt.node}
			}
			if tt.ended {
				r.ended = time.Unix(5, 0)
			}
			l := ledger{started: map[runKey]int{}, done: map[runKey]int{}}
			k := runKey{run: "r1", node: "c01"}
			if tt.started > 0 {
				l.started[k] = tt.started
			}
			if tt.done > 0 {
				l.done[k] = tt.done
			}
			v := check([]*jobRun{r}, l)
			if v.lost != tt.lost || v.twice != tt.twice || v.stuck != tt.stuck || v.misreported != tt.misrep ||
				v.unknownRan+v.unknownNotRan != tt.unknown || v.notRun != tt.notRun {
				t.Errorf("lost %d twice %d stuck %d misreported %d unknown %d not run %d; want %d %d %d %d %d %d\n%v",
					v.lost, v.twice, v.stuck, v.misreported, v.unknownRan+v.unknownNotRan, v.notRun,
					tt.lost, tt.twice, tt.stuck, tt.misrep, tt.unknown, tt.notRun, v.problems)
			}
		})
	}
}

func TestCheckOrphanLedgerLine(t *testing.T) {
	l := ledger{started: map[runKey]int{{"r5", "c02"}: 1}, done: map[runKey]int{{"r5", "c02"}: 1}}
	if v := check(nil, l); v.lost != 1 {
		t.Errorf("lost = %d, want 1: %v", v.lost, v.problems)
	}
}

func TestReadLedger(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("c01.started", "c01 r1\nc01 r2\n")
	write("c01.ledger", "c01 r1\nc01 r1\nc02 r2\n")
	l, err := readLedger(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l.started[runKey{"r2", "c01"}] != 1 || l.done[runKey{"r1", "c01"}] != 2 || len(l.bad) != 1 {
		t.Errorf("ledger = %+v", l)
	}
}

func TestReadFrame(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		payload := bytes.Repeat([]byte{'x'}, n)
		var b bytes.Buffer
		b.WriteByte(0x82) // FIN, binary
		switch {
		case n < 126:
			b.WriteByte(0x80 | byte(n))
		case n < 1<<16:
			b.WriteByte(0x80 | 126)
			_ = binary.Write(&b, binary.BigEndian, uint16(n))
		default:
			b.WriteByte(0x80 | 127)
			_ = binary.Write(&b, binary.BigEndian, uint64(n))
		}
		b.Write([]byte{1, 2, 3, 4}) // mask key
		b.Write(payload)
		want := append([]byte(nil), b.Bytes()...)
		b.Write([]byte{0x81, 0x00}) // a second frame follows
		r := bufio.NewReader(&b)
		f, err := readFrame(r)
		if err != nil || !f.fin || f.opcode != 2 || !bytes.Equal(f.raw, want) {
			t.Fatalf("n=%d: frame %+v (len %d), err %v", n, f.opcode, len(f.raw), err)
		}
		if f, err := readFrame(r); err != nil || f.opcode != 1 || len(f.raw) != 2 {
			t.Fatalf("n=%d: second frame %+v, err %v", n, f, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }
