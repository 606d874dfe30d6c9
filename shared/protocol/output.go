package protocol

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// TypeOutput (a Baton extension, declared with the others in protocol.go) carries a running
// task's live output from the agent to the server. Data: Output.
//
// # Live output
//
// A server asks for it per request: the `task` `run` params carry "stream": true
// (TaskParams.Stream, a Baton extension field beside timeout and result_upload: params
// carry optional keys beyond task, input and files in pxp-agent's task schema too, such as
// input_method and features, and a Baton agent that predates it decodes params leniently and
// ignores it). While the task runs, the agent sends output messages:
//
//	{"transaction_id": "...", "chunks": [{"seq": 1, "stream": "stdout", "data": "line\n"}, ...]}
//
// Sequence numbers count the chunks of one transaction from 1, with no gap, across both
// streams (the order the agent read them in); within a message they increase by one. The
// agent coalesces: at most one message per OutputIntervalMS per task (but the last one, sent as
// soon as the task has ended), at most MaxOutputData bytes of data per message (counted
// JSON-encoded; a chunk is cut at a UTF-8 boundary), and it stops streaming — not the task —
// once it has streamed its output cap (the agent's MaxOutputBytes per stream). There is no acknowledgement: a message the agent could not send (no connection)
// is sent again with the next one, and a message lost on the way leaves a gap that the server
// tolerates. The final result (rpc_non_blocking_response) is sent after the last output
// message, is unchanged by streaming and stays authoritative: it holds the whole output.
// A server stores each (transaction, seq) once, so duplicates and reordering never change
// what it stores.
type Output struct {
	TransactionID string        `json:"transaction_id"`
	Chunks        []OutputChunk `json:"chunks"`
}

// OutputChunk is one piece of a task's output: Data is text (valid UTF-8) read from Stream.
type OutputChunk struct {
	Seq    int64  `json:"seq"`
	Stream string `json:"stream"`
	Data   string `json:"data"`
}

// Output streams.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// OutputIntervalMS and MaxOutputData shape the output messages of one task (see TypeOutput):
// at most one message per interval and at most MaxOutputData bytes of data in one message;
// the agent counts the data JSON-encoded, so that a message stays under API Gateway's 128 KB.
const (
	OutputIntervalMS = 250
	MaxOutputData    = 64 << 10
)

// MaxOutputChunks bounds the chunks of one message.
const MaxOutputChunks = 1024

// Validate checks an output message: a valid transaction id, 1 to MaxOutputChunks chunks of
// a known stream with seq >= 1 increasing by one, valid UTF-8, at most MaxOutputData bytes
// of data in all.
func (o Output) Validate() error {
	if err := checkTxn(o.TransactionID); err != nil {
		return err
	}
	if len(o.Chunks) == 0 {
		return errors.New("chunks needs at least one chunk")
	}
	if len(o.Chunks) > MaxOutputChunks {
		return fmt.Errorf("%d chunks, more than %d", len(o.Chunks), MaxOutputChunks)
	}
	total := 0
	for i, c := range o.Chunks {
		if c.Seq < 1 {
			return fmt.Errorf("chunk %d: seq must be >= 1", i)
		}
		if i > 0 && c.Seq != o.Chunks[i-1].Seq+1 {
			return fmt.Errorf("chunk %d: seq %d does not follow %d", i, c.Seq, o.Chunks[i-1].Seq)
		}
		if c.Stream != StreamStdout && c.Stream != StreamStderr {
			return fmt.Errorf("chunk %d: stream must be stdout or stderr", i)
		}
		if !utf8.ValidString(c.Data) {
			return fmt.Errorf("chunk %d: data is not valid UTF-8", i)
		}
		total += len(c.Data)
	}
	if total > MaxOutputData {
		return fmt.Errorf("%d bytes of data, more than %d", total, MaxOutputData)
	}
	return nil
}
