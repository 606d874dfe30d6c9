package orchestrator_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/protocol"
	"github.com/baton-run/baton/shared/store"
)

// startStreamed submits a job on web1 (with stream as asked), dispatches it and returns the
// job and the task request's transaction and params.
func startStreamed(t *testing.T, h *statusHarness, stream bool) (jobs.Job, string, protocol.TaskParams) {
	t.Helper()
	job, req := h.start(orchestrator.TaskRequest{Task: "demo::noop", Stream: stream,
		Common: orchestrator.Common{Scope: orchestrator.Scope{Nodes: []string{"web1"}}}})
	var p protocol.TaskParams
	if err := json.Unmarshal(req.Params, &p); err != nil {
		t.Fatal(err)
	}
	return job, req.TransactionID, p
}

func outputMsg(txn string, from int64, data ...string) protocol.Output {
	o := protocol.Output{TransactionID: txn}
	for i, d := range data {
		o.Chunks = append(o.Chunks, protocol.OutputChunk{Seq: from + int64(i), Stream: protocol.StreamStdout, Data: d})
	}
	return o
}

func pageSeqs(p orchestrator.OutputPage) []int64 {
	out := []int64{}
	for _, c := range p.Chunks {
		out = append(out, c.Seq)
	}
	return out
}

func TestStreamRequested(t *testing.T) {
	tests := []struct {
		name      string
		all, asks bool
		want      bool
	}{
		{"job asks", false, true, true},
		{"job does not ask", false, false, false},
		{"every task streams (baton serve)", true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []orchestrator.Option
			if tt.all {
				opts = append(opts, orchestrator.WithStreamAll())
			}
			h := newStatusHarness(t, []string{"web1"}, opts...)
			_, _, p := startStreamed(t, h, tt.asks)
			if p.Stream != tt.want {
				t.Fatalf("task params stream = %v, want %v", p.Stream, tt.want)
			}
		})
	}
}

func TestOutputStoredAndRead(t *testing.T) {
	h := newStatusHarness(t, []string{"web1", "web2"})
	job, txn, _ := startStreamed(t, h, true)
	ctx := t.Context()

	// Out of order, duplicated, with a gap: what is read while the node runs is the run
	// without gaps.
	for _, o := range []protocol.Output{outputMsg(txn, 1, "a\n", "b\n"), outputMsg(txn, 4, "d\n"), outputMsg(txn, 1, "a\n", "b\n")} {
		if err := h.answer("web1", protocol.TypeOutput, o); err != nil {
			t.Fatalf("output: %v", err)
		}
	}
	page, err := h.orch.Output(ctx, job.ID, "web1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := pageSeqs(page); !reflect.DeepEqual(got, []int64{1, 2}) || page.Next != 2 || page.Done {
		t.Fatalf("running, with chunk 3 missing: seqs %v next %d done %v; want [1 2] next 2 not done", got, page.Next, page.Done)
	}
	if page, _ = h.orch.Output(ctx, job.ID, "web1", 2, 0); len(page.Chunks) != 0 || page.Next != 2 {
		t.Fatalf("after 2 with 3 missing: %v next %d, want nothing, next 2", pageSeqs(page), page.Next)
	}
	if err := h.answer("web1", protocol.TypeOutput, outputMsg(txn, 3, "c\n")); err != nil {
		t.Fatal(err)
	}
	page, _ = h.orch.Output(ctx, job.ID, "web1", 1, 0)
	if got := pageSeqs(page); !reflect.DeepEqual(got, []int64{2, 3, 4}) || page.Next != 4 {
		t.Fatalf("after 1, gap filled: %v next %d", got, page.Next)
	}
	if page, _ = h.orch.Output(ctx, job.ID, "web1", 0, 2); !reflect.DeepEqual(pageSeqs(page), []int64{1, 2}) || page.Done {
		t.Fatalf("limit 2: %v done %v", pageSeqs(page), page.Done)
	}
	// A gap that never fills: chunk 6 of 5-7 is lost.
	if err := h.answer("web1", protocol.TypeOutput, outputMsg(txn, 5, "e\n")); err != nil {
		t.Fatal(err)
	}
	if err := h.answer("web1", protocol.TypeOutput, outputMsg(txn, 7, "g\n")); err != nil {
		t.Fatal(err)
	}

	// The result ends the node; the output is done once the grace has passed, and then the
	// chunks after the gap are read too.
	res, _ := json.Marshal(protocol.TaskResults{Exitcode: 0, Stdout: "a\nb\nc\nd\ne\nf\ng\n"})
	if err := h.answer("web1", protocol.TypeNonBlockingResponse, protocol.NonBlockingResponse{TransactionID: txn, Results: res}); err != nil {
		t.Fatal(err)
	}
	if page, _ = h.orch.Output(ctx, job.ID, "web1", 4, 0); !reflect.DeepEqual(pageSeqs(page), []int64{5}) || page.Done {
		t.Fatalf("just finished: %v done %v, want [5] not done (the grace)", pageSeqs(page), page.Done)
	}
	h.clock.Add(orchestrator.DefaultOutputGrace)
	page, _ = h.orch.Output(ctx, job.ID, "web1", 4, 0)
	if !reflect.DeepEqual(pageSeqs(page), []int64{5, 7}) || page.Next != 7 || !page.Done {
		t.Fatalf("finished: %v next %d done %v, want [5 7] next 7 done", pageSeqs(page), page.Next, page.Done)
	}
	if page, _ = h.orch.Output(ctx, job.ID, "web1", 7, 0); len(page.Chunks) != 0 || !page.Done || page.Next != 7 {
		t.Fatalf("after the last: %v next %d done %v", pageSeqs(page), page.Next, page.Done)
	}
	if page, _ = h.orch.Output(ctx, job.ID, "web1", 0, 3); page.Done {
		t.Fatalf("a full page of a finished node is not done: more may follow")
	}
	// The result is what the agent said, whatever the chunks.
	if n := h.node(job.ID, "web1"); n.State != jobs.NodeFinished || !json.Valid(n.Result) {
		t.Fatalf("node %s %s", n.State, n.Result)
	}
}

func TestOutputRefused(t *testing.T) {
	h := newStatusHarness(t, []string{"web1", "web2"})
	job, txn, _ := startStreamed(t, h, true)
	tests := []struct {
		name string
		node string
		data any
		want error
	}{
		{"another node's transaction", "web2", outputMsg(txn, 1, "x"), orchestrator.ErrForbidden},
		{"an unknown transaction", "web1", outputMsg("nosuchtxn", 1, "x"), orchestrator.ErrForbidden},
		{"an unknown transaction of the job", "web1", outputMsg(jobs.TransactionID(job.ID, "nosuch"), 1, "x"), orchestrator.ErrForbidden},
		{"seq not contiguous", "web1", protocol.Output{TransactionID: txn, Chunks: []protocol.OutputChunk{{Seq: 1, Stream: "stdout", Data: "a"}, {Seq: 3, Stream: "stdout", Data: "b"}}}, protocol.ErrInvalid},
		{"no chunks", "web1", protocol.Output{TransactionID: txn, Chunks: []protocol.OutputChunk{}}, protocol.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := h.answer(tt.node, protocol.TypeOutput, tt.data); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	for _, node := range []string{"web1", "web2"} {
		if got, _ := h.st.ListOutput(t.Context(), job.ID, node, 0, 10); len(got) != 0 {
			t.Errorf("%s: %d chunks stored from refused messages", node, len(got))
		}
	}
	if _, err := h.orch.Output(t.Context(), job.ID, "web9", 0, 0); !isKind(err, orchestrator.KindUnknownNode) {
		t.Errorf("output of a node not in the job: %v", err)
	}
	if _, err := h.orch.Output(t.Context(), job.ID+100, "web1", 0, 0); !isKind(err, orchestrator.KindUnknownJob) {
		t.Errorf("output of an unknown job: %v", err)
	}
}

func isKind(err error, kind string) bool {
	e, ok := orchestrator.AsError(err)
	return ok && e.Kind == kind
}

func TestWaitOutput(t *testing.T) {
	h := newStatusHarness(t, []string{"web1"})
	job, txn, _ := startStreamed(t, h, true)
	got := make(chan orchestrator.OutputPage, 1)
	go func() {
		p, err := h.orch.WaitOutput(t.Context(), job.ID, "web1", 0, 0, 20*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- p
	}()
	if err := h.answer("web1", protocol.TypeOutput, outputMsg(txn, 1, "hello\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if want := []store.OutputChunk{{Seq: 1, Stream: "stdout", Data: "hello\n"}}; !reflect.DeepEqual(p.Chunks, want) {
			t.Fatalf("WaitOutput = %+v, want %+v", p.Chunks, want)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("WaitOutput did not return once a chunk was stored")
	}
}
