package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// OutputChunk is one piece of a node's live task output.
type OutputChunk struct {
	Seq    int64  `json:"seq"`
	Stream string `json:"stream"` // stdout or stderr
	Data   string `json:"data"`
}

// Output is a page of a node's live output (GET /baton/v1/jobs/{id}/nodes/{node}/output).
type Output struct {
	Chunks []OutputChunk `json:"chunks"`
	// Next is the seq to ask after next time.
	Next int64 `json:"next"`
	// Done says the node has finished and no chunk will come after Next.
	Done bool `json:"done"`
}

// JobOutput returns node's output in job name after seq after; with wait > 0 the server holds
// the answer (up to 25 s) until there is a chunk or the output is done.
func (c *Client) JobOutput(ctx context.Context, name, node string, after int64, wait time.Duration) (Output, error) {
	q := url.Values{"after": {strconv.FormatInt(after, 10)}}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var o Output
	err := c.do(ctx, http.MethodGet, "/baton/v1/jobs/"+url.PathEscape(name)+"/nodes/"+url.PathEscape(node)+"/output?"+q.Encode(), nil, &o)
	return o, err
}

// followWait is how long one request of FollowOutput waits for output: under the API's
// 25-second bound and the client's own timeout.
const followWait = 20 * time.Second

// FollowOutput calls each with every chunk of node's output in job name after seq after, in
// order, until the output is done (then it returns the last seq seen) or ctx ends. It long
// polls (after=, wait=), which works the same behind API Gateway (AWS) and on baton serve.
func (c *Client) FollowOutput(ctx context.Context, name, node string, after int64, each func(OutputChunk) error) (int64, error) {
	for {
		o, err := c.JobOutput(ctx, name, node, after, followWait)
		if err != nil {
			if ctx.Err() != nil {
				return after, ctx.Err()
			}
			return after, fmt.Errorf("output of %s in job %s: %w", node, name, err)
		}
		for _, ch := range o.Chunks {
			if err := each(ch); err != nil {
				return after, err
			}
			after = ch.Seq
		}
		after = max(after, o.Next)
		if o.Done {
			return after, nil
		}
	}
}
