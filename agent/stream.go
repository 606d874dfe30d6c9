package agent

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/baton-run/baton/shared/protocol"
)

// Live output (protocol.TypeOutput): while a task asked to stream runs under the supervisor,
// a streamer tails the transaction's stdout and stderr files (which the supervisor writes as
// the task does) and sends what they gained, at most one message per streamInterval and at
// most protocol.MaxOutputData bytes of data (counted JSON-encoded) per message, with sequence
// numbers from 1. Decisions:
//   - No acknowledgement: a message that could not be sent (no connection) is kept and sent
//     again, with the same sequence numbers, at the next tick; nothing new is read meanwhile,
//     so at most one message waits. A message lost after it was written leaves a gap; the
//     final result, sent after the last output message and unchanged by streaming, holds the
//     whole output.
//   - Streaming stops, not the task, past MaxOutputBytes per stream (where the supervisor's
//     files stop growing) and, when the task has ended, after one last message: a task that
//     wrote faster than the stream carries has the rest in its result only.
//   - A task run without the supervisor (an agent configured without one, the fleet
//     simulator's executor) does not stream: its output is not in files.

// streamInterval is the least time between two output messages of one task.
var streamInterval = protocol.OutputIntervalMS * time.Millisecond

// streamSendTimeout bounds one output message's send.
const streamSendTimeout = 5 * time.Second

// streamer tails one transaction's output files.
type streamer struct {
	a       *Agent
	txn     string
	streams [2]*tail
	seq     int64                  // last sequence number given out
	pending []protocol.OutputChunk // the message that could not be sent yet
	budget  func() int             // data bytes (JSON-encoded) one message may carry
	sendFn  func(protocol.Output) error
}

// tail follows one output file from the offset read so far.
type tail struct {
	name   string // protocol.StreamStdout or StreamStderr
	path   string
	f      *os.File
	off    int64 // bytes of the file streamed
	capped bool
	buf    []byte // read buffer, reused
}

// startStream starts streaming the output of the task running in dir (the transaction's
// directory) when p asks for it and the task runs under the supervisor. The returned stop
// (always non-nil) sends what the task wrote since the last message and returns once it is
// sent or given up: call it after the task ended and before its result is sent.
func (a *Agent) startStream(ctx context.Context, req Request, p protocol.TaskParams) (stop func()) {
	if !p.Stream || req.Dir == "" || !a.supervised() {
		return func() {}
	}
	s := &streamer{a: a, txn: req.TransactionID, budget: func() int { return protocol.MaxOutputData }}
	for i, name := range []string{protocol.StreamStdout, protocol.StreamStderr} {
		s.streams[i] = &tail{name: name, path: filepath.Join(req.Dir, name)}
	}
	sendCtx := context.WithoutCancel(ctx) // the last message goes out also when the task was killed
	s.sendFn = func(o protocol.Output) error {
		c, cancel := context.WithTimeout(sendCtx, streamSendTimeout)
		defer cancel()
		return a.sendData(c, protocol.TypeOutput, o)
	}
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(streamInterval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				s.flush(true)
				s.close()
				return
			case <-t.C:
				s.flush(false)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			<-done
		})
	}
}

// flush sends the message left over from the last tick, else one of what the files gained.
// last reads what a finished task left, holding back nothing.
func (s *streamer) flush(last bool) {
	if len(s.pending) == 0 {
		s.pending = s.read(last)
	}
	if len(s.pending) == 0 {
		return
	}
	if err := s.sendFn(protocol.Output{TransactionID: s.txn, Chunks: s.pending}); err != nil {
		if !errors.Is(err, ErrNotConnected) {
			s.a.log.Debug("send task output", "transaction_id", s.txn, "error", err)
		}
		return // sent again at the next tick (or lost with the last one: the result has it)
	}
	s.pending = nil
}

// read returns the chunks of one message: what the files gained since the last read, stdout
// first, up to the message's budget.
func (s *streamer) read(last bool) []protocol.OutputChunk {
	room := s.budget()
	var out []protocol.OutputChunk
	for _, t := range s.streams {
		if room <= 0 {
			break
		}
		data, err := t.next(room, last)
		if err != nil {
			s.a.log.Debug("read task output", "transaction_id", s.txn, "stream", t.name, "error", err)
		}
		if data == "" {
			continue
		}
		room -= encodedLen(data)
		s.seq++
		out = append(out, protocol.OutputChunk{Seq: s.seq, Stream: t.name, Data: data})
	}
	return out
}

// next returns up to room bytes (JSON-encoded) of what the file gained, as valid UTF-8: an
// incomplete sequence at the end is read again next time unless last; invalid bytes become
// U+FFFD.
func (t *tail) next(room int, last bool) (string, error) {
	if t.capped {
		return "", nil
	}
	if t.f == nil {
		f, err := openFile(t.path, os.O_RDONLY, 0)
		if err != nil {
			return "", nil // not created yet
		}
		t.f = f
	}
	if t.off >= MaxOutputBytes {
		t.capped = true // where the supervisor stops writing: streaming stops, the task does not
		return "", nil
	}
	// Only what the file gained is read, into a buffer kept from one read to the next: most
	// reads find little or nothing new, and a buffer of the message's whole budget for each
	// (64 KiB, twice per tick) was most of what an agent allocated per task.
	fi, err := t.f.Stat()
	if err != nil {
		return "", err
	}
	// Every byte encodes to at least one: room bytes of the file are enough.
	want := min(int64(room), min(fi.Size(), MaxOutputBytes)-t.off)
	if want <= 0 {
		return "", nil
	}
	if int64(cap(t.buf)) < want {
		t.buf = make([]byte, want)
	}
	buf := t.buf[:want]
	n, err := t.f.ReadAt(buf, t.off)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	data, used := fit(buf[:n], room, last)
	t.off += int64(used)
	return data, nil
}

func (s *streamer) close() {
	for _, t := range s.streams {
		if t.f != nil {
			t.f.Close()
		}
	}
}

// fit returns the longest prefix of raw whose text, JSON-encoded, takes at most room bytes,
// as valid UTF-8 (invalid bytes become U+FFFD), and how many bytes of raw it used. An
// incomplete UTF-8 sequence at the very end is left unused unless last.
func fit(raw []byte, room int, last bool) (string, int) {
	out := make([]byte, 0, min(len(raw), room))
	used, size := 0, 0
	for used < len(raw) {
		r, n := utf8.DecodeRune(raw[used:])
		if r == utf8.RuneError && n <= 1 {
			if !last && !utf8.FullRune(raw[used:]) {
				break // the rest of the sequence is still to be written
			}
			r, n = utf8.RuneError, 1
		}
		w := runeEncodedLen(r)
		if size+w > room {
			break
		}
		size += w
		out = utf8.AppendRune(out, r)
		used += n
	}
	return string(out), used
}

// encodedLen is the length of s JSON-encoded as encoding/json does (without the quotes).
func encodedLen(s string) int {
	n := 0
	for _, r := range s {
		n += runeEncodedLen(r)
	}
	return n
}

// runeEncodedLen is how many bytes encoding/json writes for r inside a string (with its
// default HTML escaping).
func runeEncodedLen(r rune) int {
	switch {
	case r == '"' || r == '\\' || r == '\n' || r == '\r' || r == '\t' || r == '\b' || r == '\f':
		return 2
	case r < 0x20 || r == '<' || r == '>' || r == '&' || r == '\u2028' || r == '\u2029':
		return 6
	case r == utf8.RuneError:
		return 3
	}
	return utf8.RuneLen(r)
}
