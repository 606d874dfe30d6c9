package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/store"
)

const outputPath = "/baton/v1/jobs/1/nodes/web1/output"

func putChunks(t *testing.T, s *stack, seqs ...int64) {
	t.Helper()
	var cs []store.OutputChunk
	for _, seq := range seqs {
		cs = append(cs, store.OutputChunk{Seq: seq, Stream: map[bool]string{true: "stdout", false: "stderr"}[seq%2 == 1], Data: "line " + string(rune('0'+seq)) + "\n"})
	}
	if err := s.store.PutOutput(context.Background(), 1, "web1", cs); err != nil {
		t.Fatal(err)
	}
}

// finish ends web1's record in job 1 and moves the clock past the output's grace.
func finish(t *testing.T, s *stack) {
	t.Helper()
	ctx := context.Background()
	n, err := s.store.GetJobNode(ctx, 1, "web1")
	if err != nil {
		t.Fatal(err)
	}
	now := s.orchClock.Now()
	n.State, n.FinishedAt = jobs.NodeFinished, &now
	if _, err := s.store.UpdateJobNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	s.orchClock.Advance(orchestrator.DefaultOutputGrace)
}

type outputBody struct {
	Chunks []struct {
		Seq    int64  `json:"seq"`
		Stream string `json:"stream"`
		Data   string `json:"data"`
	} `json:"chunks"`
	Next int64 `json:"next"`
	Done bool  `json:"done"`
}

func getOutput(t *testing.T, s *stack, query string) outputBody {
	t.Helper()
	r := s.get(outputPath + query)
	if r.status != http.StatusOK {
		t.Fatalf("GET output%s: status %d: %s", query, r.status, r.body)
	}
	var b outputBody
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("output body %s: %v", r.body, err)
	}
	if b.Chunks == nil {
		t.Fatalf("output body %s: chunks is not a list", r.body)
	}
	return b
}

func bodySeqs(b outputBody) []int64 {
	out := []int64{}
	for _, c := range b.Chunks {
		out = append(out, c.Seq)
	}
	return out
}

func TestOutputEndpoint(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.enroll("web1")
	s.seedJob()
	if b := getOutput(t, s, ""); len(b.Chunks) != 0 || b.Next != 0 || b.Done {
		t.Fatalf("no output yet: %+v", b)
	}
	putChunks(t, s, 1, 2, 4)
	b := getOutput(t, s, "?after=0")
	if got := bodySeqs(b); !reflect.DeepEqual(got, []int64{1, 2}) || b.Next != 2 || b.Done {
		t.Fatalf("running with 3 missing: seqs %v next %d done %v", got, b.Next, b.Done)
	}
	if c := b.Chunks[0]; c.Stream != "stdout" || c.Data != "line 1\n" || b.Chunks[1].Stream != "stderr" {
		t.Fatalf("chunk 1 %+v, chunk 2 %+v", c, b.Chunks[1])
	}
	if b := getOutput(t, s, "?after=1&limit=1"); !reflect.DeepEqual(bodySeqs(b), []int64{2}) || b.Next != 2 {
		t.Fatalf("after 1, limit 1: %+v", b)
	}

	// wait= holds the answer until a chunk comes.
	got := make(chan outputBody, 1)
	go func() { got <- getOutput(t, s, "?after=2&wait=20s") }()
	putChunks(t, s, 3)
	select {
	case b := <-got:
		if !reflect.DeepEqual(bodySeqs(b), []int64{3, 4}) || b.Next != 4 {
			t.Fatalf("after 2, waited: %+v", b)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("wait= did not return when the chunk came")
	}

	finish(t, s)
	if b := getOutput(t, s, "?after=4"); len(b.Chunks) != 0 || b.Next != 4 || !b.Done {
		t.Fatalf("finished: %+v", b)
	}

	for _, tc := range []struct {
		path   string
		status int
		kind   string
	}{
		{"/baton/v1/jobs/9/nodes/web1/output", http.StatusNotFound, orchestrator.KindUnknownJob},
		{"/baton/v1/jobs/1/nodes/web9/output", http.StatusNotFound, orchestrator.KindUnknownNode},
		{"/baton/v1/jobs/x/nodes/web1/output", http.StatusBadRequest, orchestrator.KindValidation},
		{outputPath + "?after=-1", http.StatusBadRequest, orchestrator.KindValidation},
		{outputPath + "?wait=forever", http.StatusBadRequest, orchestrator.KindValidation},
	} {
		wantError(t, s.get(tc.path), tc.status, tc.kind)
	}
	// Unauthenticated, and a user who may not view jobs.
	wantError(t, s.do(request{method: http.MethodGet, path: outputPath, header: map[string]string{"X-Authentication": ""}}),
		http.StatusUnauthorized, "puppetlabs.rbac/user-unauthenticated")
	alice, err := s.auth.IssueToken(context.Background(), "alice", "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, s.do(request{method: http.MethodGet, path: outputPath, header: map[string]string{"X-Authentication": alice}}),
		http.StatusForbidden, orchestrator.KindNotPermitted)
}

type sseEvent struct{ id, event, data string }

// readEvents reads server-sent events from an output follow request until the stream ends.
func readEvents(t *testing.T, s *stack, header map[string]string, query string, each func(sseEvent)) []sseEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+outputPath+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Authentication", s.token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("follow: status %d, Content-Type %q", resp.StatusCode, ct)
	}
	var events []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.event != "" {
				events = append(events, cur)
				if each != nil {
					each(cur)
				}
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("the stream did not end; events so far: %+v", events)
	}
	return events
}

func TestOutputFollow(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.enroll("web1")
	s.seedJob()
	putChunks(t, s, 1, 2)
	// Resumed after chunk 1 (Last-Event-ID); chunk 3 comes while following, then the node
	// finishes: the stream ends with done.
	step := 0
	events := readEvents(t, s, map[string]string{"Accept": "text/event-stream", "Last-Event-ID": "1"}, "", func(e sseEvent) {
		step++
		switch step {
		case 1:
			putChunks(t, s, 3)
		case 2:
			finish(t, s)
		}
	})
	var ids []string
	for _, e := range events {
		ids = append(ids, e.event+":"+e.id)
	}
	if want := []string{"chunk:2", "chunk:3", "done:"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("events %v, want %v", ids, want)
	}
	var c struct {
		Seq    int64  `json:"seq"`
		Stream string `json:"stream"`
		Data   string `json:"data"`
	}
	if err := json.Unmarshal([]byte(events[1].data), &c); err != nil || c.Seq != 3 || c.Stream != "stdout" || c.Data != "line 3\n" {
		t.Fatalf("chunk event data %q: %+v %v", events[1].data, c, err)
	}
	if events[2].data != `{"next":3}` {
		t.Fatalf("done event data %q", events[2].data)
	}
	// ?follow=true works without the Accept header; a finished node's stream is all of it.
	events = readEvents(t, s, nil, "?follow=true", nil)
	if len(events) != 4 || events[3].event != "done" {
		t.Fatalf("follow of a finished node: %+v", events)
	}
	// An unknown node is a JSON error even in follow mode.
	r := s.do(request{method: http.MethodGet, path: "/baton/v1/jobs/1/nodes/web9/output", header: map[string]string{"Accept": "text/event-stream"}})
	wantError(t, r, http.StatusNotFound, orchestrator.KindUnknownNode)
}

func TestTaskCommandStreamField(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.enroll("web1")
	s.submit(`{"task":"demo::hello","scope":{"nodes":["web1"]},"stream":true}`)
	wantError(t, s.post(v1+"/command/task", `{"task":"demo::hello","scope":{"nodes":["web1"]},"stream":"yes"}`),
		http.StatusBadRequest, orchestrator.KindValidation)
}
