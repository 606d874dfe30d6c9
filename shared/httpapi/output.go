package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/orchestrator"
)

// Live task output:
//
//	GET /baton/v1/jobs/{id}/nodes/{node}/output?after=SEQ[&limit=N][&wait=10s]
//	→ {"chunks": [{"seq": N, "stream": "stdout", "data": "..."}], "next": N, "done": false}
//
// next is the seq of the last chunk returned (or after, when none was): ask again with
// after=next. done is true once the node has finished and no chunk will come after next.
// wait (at most 25 s) holds the answer until there is a chunk or the output is done: long
// polling, one request per burst of output instead of one per interval.
//
// Follow mode (Accept: text/event-stream, or ?follow=true) answers with server-sent events:
// `event: chunk` per chunk (id: its seq; data: the chunk as JSON) and `event: done` at the end
// (data: {"next": N}); a stream starts after Last-Event-ID when the client sends one (it
// reconnects), else after `after`. One response lasts at most FollowFor, then ends with a
// `retry` hint and the client reconnects: under API Gateway's 29-second limit, which buffers
// a Lambda's answer whole (on AWS, poll with after= and wait= instead). Who may view the job
// may read its output (jobs:view).

// OutputPath is the route of a node's live output.
const OutputPath = "/baton/v1/jobs/{id}/nodes/{node}/output"

// FollowFor bounds one follow-mode response.
var FollowFor = orchestrator.MaxWait

// followRetryMS is the reconnection delay a follow-mode stream suggests when it ends.
const followRetryMS = 500

// OutputReader is what the output endpoint needs from the control plane (the orchestrator
// implements it).
type OutputReader interface {
	Output(ctx context.Context, jobID int64, node string, after int64, limit int) (orchestrator.OutputPage, error)
	WaitOutput(ctx context.Context, jobID int64, node string, after int64, limit int, d time.Duration) (orchestrator.OutputPage, error)
}

// chunkView is a chunk as the API shows it.
type chunkView struct {
	Seq    int64  `json:"seq"`
	Stream string `json:"stream"`
	Data   string `json:"data"`
}

type outputView struct {
	Chunks []chunkView `json:"chunks"`
	Next   int64       `json:"next"`
	Done   bool        `json:"done"`
}

func newOutputView(p orchestrator.OutputPage) outputView {
	v := outputView{Chunks: make([]chunkView, 0, len(p.Chunks)), Next: p.Next, Done: p.Done}
	for _, c := range p.Chunks {
		v.Chunks = append(v.Chunks, chunkView{Seq: c.Seq, Stream: c.Stream, Data: c.Data})
	}
	return v
}

// followKey carries a follow-mode request's followWriter to the handler.
type followKey struct{}

// followWriter is the response writer of an output request: once the handler has streamed
// events on it, what the JSON wrapper writes afterwards is dropped.
type followWriter struct {
	http.ResponseWriter
	streamed bool
}

func (f *followWriter) WriteHeader(code int) {
	if !f.streamed {
		f.ResponseWriter.WriteHeader(code)
	}
}

func (f *followWriter) Write(b []byte) (int, error) {
	if f.streamed {
		return len(b), nil
	}
	return f.ResponseWriter.Write(b)
}

func (f *followWriter) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// outputRoutes registers the output endpoint: through handle (authentication, jobs:view,
// errors), with the response writer passed along for follow mode.
func (a *API) outputRoutes() {
	inner := http.NewServeMux()
	outer := a.mux
	a.mux = inner
	a.handle("GET "+OutputPath, auth.ActionJobsView, a.jobOutput)
	a.mux = outer
	outer.HandleFunc("GET "+OutputPath, func(w http.ResponseWriter, r *http.Request) {
		fw := &followWriter{ResponseWriter: w}
		inner.ServeHTTP(fw, r.WithContext(context.WithValue(r.Context(), followKey{}, fw)))
	})
}

func (a *API) jobOutput(r *http.Request, _ principal) (any, int, error) {
	reader, ok := a.orch.(OutputReader)
	if !ok {
		return nil, 0, &apiError{status: http.StatusNotFound, body: errorBody{Kind: "puppetlabs.orchestrator/not-found",
			Msg: "Live output is not available here", Details: map[string]any{}}}
	}
	id, err := jobID(r)
	if err != nil {
		return nil, 0, err
	}
	node := r.PathValue("node")
	q := r.URL.Query()
	afterInt, err := intParam(r, "after", 0, 0)
	if err != nil {
		return nil, 0, err
	}
	after := int64(afterInt)
	limit, err := intParam(r, "limit", 0, 0)
	if err != nil {
		return nil, 0, err
	}
	var wait time.Duration
	if w := q.Get("wait"); w != "" {
		if wait, err = time.ParseDuration(w); err != nil || wait < 0 {
			return nil, 0, validation("wait must be a duration like 10s (at most %s), got %q", orchestrator.MaxWait, w)
		}
	}
	follow := q.Get("follow") == "true" || acceptsEventStream(r)
	if follow {
		if last := r.Header.Get("Last-Event-ID"); last != "" {
			n, err := strconv.ParseInt(last, 10, 64)
			if err != nil || n < 0 {
				return nil, 0, validation("Last-Event-ID must be a chunk's seq, got %q", last)
			}
			after = n
		}
	}
	// The first page also tells an unknown job or node, answered as JSON in both modes.
	page, err := reader.Output(r.Context(), id, node, after, limit)
	if err != nil {
		return nil, 0, err
	}
	if !follow {
		if wait > 0 && len(page.Chunks) == 0 && !page.Done {
			if page, err = reader.WaitOutput(r.Context(), id, node, after, limit, wait); err != nil {
				return nil, 0, err
			}
		}
		return newOutputView(page), http.StatusOK, nil
	}
	fw, _ := r.Context().Value(followKey{}).(*followWriter)
	if fw == nil {
		return nil, 0, fmt.Errorf("output follow mode: no response writer")
	}
	a.follow(r, fw, reader, id, node, limit, page)
	return nil, http.StatusOK, nil
}

func acceptsEventStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(mt), "text/event-stream") {
				return true
			}
		}
	}
	return false
}

// follow writes server-sent events from page on, until the output is done, FollowFor has
// passed or the client went away.
func (a *API) follow(r *http.Request, fw *followWriter, reader OutputReader, id int64, node string, limit int, page orchestrator.OutputPage) {
	w := fw.ResponseWriter
	fw.streamed = true
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream, not an answer: the server's write timeout does not apply
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	end := a.clock().Add(FollowFor)
	for {
		for _, c := range page.Chunks {
			b, _ := json.Marshal(chunkView{Seq: c.Seq, Stream: c.Stream, Data: c.Data})
			fmt.Fprintf(w, "id: %d\nevent: chunk\ndata: %s\n\n", c.Seq, b)
		}
		if page.Done {
			fmt.Fprintf(w, "event: done\ndata: {\"next\":%d}\n\n", page.Next)
			_ = rc.Flush()
			return
		}
		left := end.Sub(a.clock())
		if left <= 0 || ctx.Err() != nil {
			fmt.Fprintf(w, "retry: %d\n\n", followRetryMS)
			_ = rc.Flush()
			return
		}
		if len(page.Chunks) == 0 {
			fmt.Fprint(w, ": waiting\n\n") // a comment: proxies see the stream is alive
		}
		if err := rc.Flush(); err != nil {
			return
		}
		next, err := reader.WaitOutput(ctx, id, node, page.Next, limit, min(left, 10*time.Second))
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("follow output", "job_id", id, "node", node, "err", err)
			}
			return
		}
		page = next
	}
}
