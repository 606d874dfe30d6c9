package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"

	"sync"
	"time"

	"github.com/baton-run/baton/shared/client"
)

// cmdJobOutput prints a node's live output: stdout chunks to stdout, stderr chunks to stderr.
// Without --follow it prints what is stored now; with it, it goes on until the node has
// finished and its output is all read.
func cmdJobOutput(args []string) error {
	fs, cf := newClientFlagSet("job output")
	follow := fs.Bool("follow", false, "keep printing output as it comes, until the node has finished")
	after := fs.Int64("after", 0, "start after this chunk (seq)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError("job output needs a job id and a node name")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	show := func(ch client.OutputChunk) error {
		w := io.Writer(os.Stdout)
		if ch.Stream == "stderr" {
			w = os.Stderr
		}
		_, err := io.WriteString(w, ch.Data)
		return err
	}
	if *follow {
		_, err := c.FollowOutput(ctx, pos[0], pos[1], *after, show)
		return err
	}
	next := *after
	for {
		o, err := c.JobOutput(ctx, pos[0], pos[1], next, 0)
		if err != nil {
			return err
		}
		for _, ch := range o.Chunks {
			if err := show(ch); err != nil {
				return err
			}
		}
		if len(o.Chunks) == 0 || o.Done {
			return nil
		}
		next = o.Next
	}
}

// maxStreamedNodes bounds the nodes `task run --stream` follows (one request in flight each).
const maxStreamedNodes = 64

// lineStreamer prints nodes' output line by line, each line prefixed by its node (bolt
// --stream style: "[web1] line"): stdout lines to out, stderr lines to errOut. A line is
// printed once complete; what is left when a node's output is done is printed as a line.
type lineStreamer struct {
	mu          sync.Mutex
	out, errOut io.Writer
	partial     map[string]*bytes.Buffer // node + "\x00" + stream → unfinished line
}

func newLineStreamer(out, errOut io.Writer) *lineStreamer {
	return &lineStreamer{out: out, errOut: errOut, partial: map[string]*bytes.Buffer{}}
}

func (l *lineStreamer) chunk(node string, ch client.OutputChunk) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := node + "\x00" + ch.Stream
	buf := l.partial[key]
	if buf == nil {
		buf = &bytes.Buffer{}
		l.partial[key] = buf
	}
	buf.WriteString(ch.Data)
	for {
		line, err := buf.ReadBytes('\n')
		if err != nil { // no newline: keep the start of the line
			rest := append([]byte(nil), line...)
			buf.Reset()
			buf.Write(rest)
			return
		}
		l.print(node, ch.Stream, line)
	}
}

// end prints what is left of node's unfinished lines.
func (l *lineStreamer) end(node string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, stream := range []string{"stdout", "stderr"} {
		if buf := l.partial[node+"\x00"+stream]; buf != nil && buf.Len() > 0 {
			l.print(node, stream, append(buf.Bytes(), '\n'))
			buf.Reset()
		}
	}
}

func (l *lineStreamer) print(node, stream string, line []byte) {
	w := l.out
	if stream == "stderr" {
		w = l.errOut
	}
	fmt.Fprintf(w, "[%s] %s", node, line)
}

// streamJob follows the live output of the job's nodes (the first maxStreamedNodes) until
// each is done or ctx ends; wait() returns once every follower has stopped.
func streamJob(ctx context.Context, c *client.Client, job string, l *lineStreamer) (wait func(grace time.Duration)) {
	var wg sync.WaitGroup
	stop := make(chan struct{})
	nodes, err := c.JobNodes(ctx, job)
	if err != nil {
		fmt.Fprintf(os.Stderr, "live output: %v\n", err)
		return func(time.Duration) {}
	}
	if len(nodes) > maxStreamedNodes {
		fmt.Fprintf(os.Stderr, "live output of the first %d of %d nodes (see `baton job output %s NODE`)\n", maxStreamedNodes, len(nodes), job)
		nodes = nodes[:maxStreamedNodes]
	}
	fctx, cancel := context.WithCancel(ctx)
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.FollowOutput(fctx, job, n.Name, 0, func(ch client.OutputChunk) error {
				l.chunk(n.Name, ch)
				return nil
			})
			l.end(n.Name)
			if err != nil && fctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "live output of %s: %v\n", n.Name, err)
			}
		}()
	}
	go func() {
		wg.Wait()
		close(stop)
	}()
	return func(grace time.Duration) {
		// The job has ended: its nodes' output ends within the server's grace; past ours,
		// the node table shows the results.
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-stop:
		case <-t.C:
			cancel()
			<-stop
		}
		cancel()
	}
}

// streamGrace is how long `task run --stream` waits, once the job has ended, for the rest
// of its nodes' output (the server says done 2 s after a node finished).
const streamGrace = 10 * time.Second
