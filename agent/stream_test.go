//go:build unix

package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/baton-run/baton/shared/protocol"
)

// outputFrames returns the output messages of txn received so far, in order, with the index
// of each frame.
func outputFrames(t *testing.T, ts *testServer, txn string) ([]protocol.Output, []int) {
	t.Helper()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var outs []protocol.Output
	var idx []int
	for i, f := range ts.frames {
		if f.env.MessageType != protocol.TypeOutput || txnOf(f) != txn {
			continue
		}
		var o protocol.Output
		if err := protocol.DecodeData(f.env, &o); err != nil {
			t.Fatalf("output frame %d: %v", i, err)
		}
		outs = append(outs, o)
		idx = append(idx, i)
	}
	return outs, idx
}

// joined concatenates the data of the chunks of stream.
func joined(outs []protocol.Output, stream string) string {
	var b strings.Builder
	for _, o := range outs {
		for _, c := range o.Chunks {
			if c.Stream == stream {
				b.WriteString(c.Data)
			}
		}
	}
	return b.String()
}

// TestTaskOutputStreams: a task that prints lines over time (each after the test let it go
// on) has its output streamed while it runs, in order, with sequence numbers from 1 and no
// gap, all before its result — which is what it would be without streaming.
func TestTaskOutputStreams(t *testing.T) {
	ts := newTestServer(t)
	startAgent(t, testConfig(t, ts))
	gate := t.TempDir()
	file := ts.addFile("talk.sh", script(`for i in 1 2 3; do
  echo "line $i"; echo "warn $i" >&2
  while [ ! -e "$PT_gate/$i" ]; do sleep 0.02; done
done
echo done`))
	const txn = "txn-stream"
	params := protocol.TaskParams{Task: "demo::talk", Input: mustJSON(t, map[string]any{"gate": gate}), Files: []protocol.TaskFile{file},
		Metadata: mustJSON(t, map[string]any{"input_method": "environment"}), Stream: true}
	ts.runRequest(t, txn, params)
	for i := 1; i <= 3; i++ {
		want := fmt.Sprintf("line %d\n", i)
		waitUntil(t, "streamed "+strings.TrimSpace(want), func() bool {
			outs, _ := outputFrames(t, ts, txn)
			return strings.Contains(joined(outs, protocol.StreamStdout), want) &&
				strings.Contains(joined(outs, protocol.StreamStderr), fmt.Sprintf("warn %d\n", i))
		})
		if n := ts.count(isOutcome(txn)); n != 0 {
			t.Fatalf("the task sent its outcome while held at step %d", i)
		}
		if err := os.WriteFile(filepath.Join(gate, fmt.Sprint(i)), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, outcomeAt := ts.waitFrame(t, 0, "outcome of "+txn, isOutcome(txn))
	res := taskResults(t, f)
	if res.Exitcode != 0 || res.Stdout != "line 1\nline 2\nline 3\ndone\n" || res.Stderr != "warn 1\nwarn 2\nwarn 3\n" {
		t.Fatalf("result %+v: not the task's whole output", res)
	}
	outs, idx := outputFrames(t, ts, txn)
	var seq int64
	for i, o := range outs {
		if idx[i] > outcomeAt {
			t.Errorf("output frame %d came after the outcome (frame %d)", idx[i], outcomeAt)
		}
		for _, c := range o.Chunks {
			seq++
			if c.Seq != seq {
				t.Fatalf("chunk seq %d, want %d (frames: %s)", c.Seq, seq, ts.dump())
			}
		}
	}
	if got := joined(outs, protocol.StreamStdout); got != res.Stdout {
		t.Errorf("streamed stdout %q, result's %q", got, res.Stdout)
	}
	if got := joined(outs, protocol.StreamStderr); got != res.Stderr {
		t.Errorf("streamed stderr %q, result's %q", got, res.Stderr)
	}
	if len(outs) < 3 {
		t.Errorf("%d output messages for output written at 3 moments", len(outs))
	}

	// Not asked: nothing streamed, the same result.
	params.Stream = false
	for i := 1; i <= 3; i++ {
		_ = os.WriteFile(filepath.Join(gate, fmt.Sprint(i)), nil, 0o600)
	}
	if res2 := ts.runTask(t, "txn-no-stream", params); !reflect.DeepEqual(res2, res) {
		t.Errorf("result without streaming %+v, with %+v", res2, res)
	}
	if outs, _ := outputFrames(t, ts, "txn-no-stream"); len(outs) != 0 {
		t.Errorf("%d output messages for a task that did not ask to stream", len(outs))
	}
}

// TestStreamerResendsWhatItCouldNotSend: a message that could not be sent goes again, with
// the same sequence numbers, before anything new.
func TestStreamerResendsWhatItCouldNotSend(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "stdout")
	if err := os.WriteFile(out, []byte("one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var sent []protocol.Output
	fail := true
	s := &streamer{a: &Agent{log: slog.New(slog.DiscardHandler)}, txn: "t1", budget: func() int { return protocol.MaxOutputData },
		sendFn: func(o protocol.Output) error {
			if fail {
				return ErrNotConnected
			}
			sent = append(sent, o)
			return nil
		}}
	s.streams[0] = &tail{name: protocol.StreamStdout, path: out}
	s.streams[1] = &tail{name: protocol.StreamStderr, path: filepath.Join(dir, "stderr")}
	defer s.close()
	s.flush(false)
	appendFile(t, out, "two\n")
	s.flush(false) // still not connected: nothing new is read
	fail = false
	s.flush(false)
	s.flush(false)
	s.flush(true)
	want := []protocol.Output{
		{TransactionID: "t1", Chunks: []protocol.OutputChunk{{Seq: 1, Stream: "stdout", Data: "one\n"}}},
		{TransactionID: "t1", Chunks: []protocol.OutputChunk{{Seq: 2, Stream: "stdout", Data: "two\n"}}},
	}
	if !reflect.DeepEqual(sent, want) {
		t.Fatalf("sent %+v, want %+v", sent, want)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.WriteString(f, s); err != nil {
		t.Fatal(err)
	}
}

// TestStreamerMessageBudget: a burst of output goes out one budget's worth a message, cut at
// character boundaries, with an incomplete UTF-8 sequence kept for its end.
func TestStreamerMessageBudget(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "stdout")
	text := strings.Repeat("ab<é\n", 10)                                  // '<' encodes to 6 bytes, 'é' is 2
	if err := os.WriteFile(out, []byte(text+"\xc3"), 0o600); err != nil { // and the first byte of an 'é'
		t.Fatal(err)
	}
	var sent []protocol.Output
	s := &streamer{a: &Agent{log: slog.New(slog.DiscardHandler)}, txn: "t1", budget: func() int { return 25 },
		sendFn: func(o protocol.Output) error {
			if err := o.Validate(); err != nil {
				return err
			}
			b, _ := json.Marshal(o.Chunks[0].Data)
			if len(b)-2 > 25 {
				return errors.New("over budget")
			}
			sent = append(sent, o)
			return nil
		}}
	s.streams[0] = &tail{name: protocol.StreamStdout, path: out}
	s.streams[1] = &tail{name: protocol.StreamStderr, path: filepath.Join(dir, "stderr")}
	defer s.close()
	for range 40 {
		s.flush(false)
	}
	if got := joined(sent, protocol.StreamStdout); got != text {
		t.Fatalf("streamed %q, want %q (the incomplete character held back)", got, text)
	}
	appendFile(t, out, "\xa9!")
	s.flush(true)
	if got := joined(sent, protocol.StreamStdout); got != text+"é!" {
		t.Fatalf("after the rest of the character: %q", got)
	}
}

func TestFit(t *testing.T) {
	tests := []struct {
		name     string
		raw      string
		room     int
		last     bool
		want     string
		wantUsed int
	}{
		{"fits", "hello\n", 100, false, "hello\n", 6},
		{"cut by room", "hello", 3, false, "hel", 3},
		{"escapes count", "a<b", 6, false, "a", 1},
		{"newline counts 2", "a\nb", 3, false, "a\n", 2},
		{"multi-byte not split", "aé", 2, false, "a", 1},
		{"incomplete at end waits", "a\xc3", 10, false, "a", 1},
		{"incomplete at end, last", "a\xc3", 10, true, "a\uFFFD", 2},
		{"invalid in the middle", "a\xffb", 10, false, "a\uFFFDb", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, used := fit([]byte(tt.raw), tt.room, tt.last)
			if got != tt.want || used != tt.wantUsed {
				t.Fatalf("fit(%q, %d, %v) = %q, %d; want %q, %d", tt.raw, tt.room, tt.last, got, used, tt.want, tt.wantUsed)
			}
		})
	}
}
