package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// streamCluster is a baton serve with agents s1 and s2 connected.
func streamCluster(t *testing.T) *cluster {
	t.Helper()
	c := newCluster(t)
	c.serve(t)
	names := []string{"s1", "s2"}
	for _, n := range names {
		cred := filepath.Join(c.root, n+".cred")
		c.batonOK(t, "node", "add", n, "--out", cred)
		c.startAgent(t, n, cred)
	}
	eventually(t, "agents to connect", 30*time.Second, func() bool {
		r := c.batonOK(t, "node", "list", "--format", "json")
		var nodes []struct {
			Name      string `json:"name"`
			Connected bool   `json:"connected"`
		}
		decodeJSON(t, "node list", r.stdout, &nodes)
		n := 0
		for _, node := range nodes {
			if node.Connected {
				n++
			}
		}
		return n == len(names)
	})
	return c
}

// jobState returns the state of job id and of its node node, as baton job show says.
func jobState(t *testing.T, c *cluster, id, node string) (job, nodeState string) {
	t.Helper()
	var show struct {
		Job struct {
			State string `json:"state"`
		} `json:"job"`
		Nodes []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"nodes"`
	}
	decodeJSON(t, "job show", c.batonOK(t, "job", "show", id, "--format", "json").stdout, &show)
	for _, n := range show.Nodes {
		if n.Name == node {
			nodeState = n.State
		}
	}
	return show.Job.State, nodeState
}

func tickLines(node string, n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf("[%s] tick %d of %d", node, i, n))
	}
	return out
}

// TestStreamEndToEnd: with the real binaries, a task that prints a line every 0.3 s shows its
// lines through `baton task run --stream` while the job still runs, each prefixed by its
// node and in order; `baton job output --follow` prints a node's output and ends when the
// node has ended; the result is the task's whole output either way.
func TestStreamEndToEnd(t *testing.T) {
	c := streamCluster(t)
	const lines = 10

	t.Run("task run --stream", func(t *testing.T) {
		cmd := exec.Command(filepath.Join(c.bin, "baton"), "task", "run", "demo::ticker", "--nodes", "s1,s2", "--stream",
			fmt.Sprintf("lines=%d", lines), "interval_ms=300")
		cmd.Env = c.env
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		stderr := &syncBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		got := make(chan string, 1000)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				got <- sc.Text()
			}
			close(got)
		}()
		var out []string
		deadline := time.After(90 * time.Second)
		sawLive := false
	read:
		for {
			select {
			case line, ok := <-got:
				if !ok {
					break read
				}
				out = append(out, line)
				if !sawLive && strings.HasPrefix(line, "[s") && strings.Contains(line, "tick 1 of") {
					// The first line is out: the job must still be running (the task prints
					// for 3 s more), so the line came live, not from the result at the end.
					m := regexp.MustCompile(`Started job (\d+)`).FindStringSubmatch(stderr.String())
					if m == nil {
						t.Fatalf("no job id on stderr before the first line:\n%s", stderr.String())
					}
					node := strings.TrimPrefix(strings.SplitN(line, "]", 2)[0], "[")
					jobSt, nodeSt := jobState(t, c, m[1], node)
					if jobSt != "running" || nodeSt != "running" {
						t.Fatalf("first streamed line %q seen when the job is %s and %s is %s", line, jobSt, node, nodeSt)
					}
					sawLive = true
				}
			case <-deadline:
				t.Fatalf("baton task run --stream did not end; stdout so far:\n%s\nstderr:\n%s", strings.Join(out, "\n"), stderr.String())
			}
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("baton task run --stream: %v\nstdout:\n%s\nstderr:\n%s", err, strings.Join(out, "\n"), stderr.String())
		}
		if !sawLive {
			t.Fatalf("no streamed line:\n%s", strings.Join(out, "\n"))
		}
		for _, node := range []string{"s1", "s2"} {
			var mine []string
			for _, l := range out {
				if strings.HasPrefix(l, "["+node+"] tick ") {
					mine = append(mine, l)
				}
			}
			if want := tickLines(node, lines); strings.Join(mine, "\n") != strings.Join(want, "\n") {
				t.Errorf("%s's streamed lines:\n%s\nwant:\n%s", node, strings.Join(mine, "\n"), strings.Join(want, "\n"))
			}
			// Lines on the task's stderr are streamed to the CLI's stderr, prefixed too.
			if !strings.Contains(stderr.String(), "["+node+"] tick 5: a fifth line, on stderr") {
				t.Errorf("%s's stderr line not streamed:\n%s", node, stderr.String())
			}
		}
		// The node table follows the streamed lines.
		table := strings.Join(out, "\n")
		last := fmt.Sprintf("] tick %d of %d", lines, lines)
		if i, j := strings.LastIndex(table, last), strings.Index(table, "NODE"); i < 0 || j < 0 || i > j {
			t.Errorf("the node table is not after the streamed lines:\n%s", table)
		}
	})

	t.Run("job output --follow", func(t *testing.T) {
		var ref struct {
			Name string `json:"name"`
		}
		decodeJSON(t, "task run --no-wait", c.batonOK(t, "task", "run", "demo::ticker", "--nodes", "s1", "--no-wait", "--format", "json",
			"lines=8", "interval_ms=300").stdout, &ref)
		r := c.batonOK(t, "job", "output", ref.Name, "s1", "--follow")
		// It ended once the node had: the node is finished now.
		if _, st := jobState(t, c, ref.Name, "s1"); st != "finished" {
			t.Fatalf("job output --follow ended while s1 is %s", st)
		}
		var want strings.Builder
		for i := 1; i <= 8; i++ {
			fmt.Fprintf(&want, "tick %d of 8\n", i)
		}
		want.WriteString(`{"ticks":8,"interval_ms":300}` + "\n")
		if r.stdout != want.String() {
			t.Errorf("job output --follow stdout:\n%s\nwant:\n%s", r.stdout, want.String())
		}
		if r.stderr != "tick 5: a fifth line, on stderr\n" {
			t.Errorf("job output --follow stderr %q", r.stderr)
		}
		// Without --follow, once finished: the same, at once.
		if again := c.batonOK(t, "job", "output", ref.Name, "s1"); again.stdout != r.stdout {
			t.Errorf("job output after the end:\n%s\nwant:\n%s", again.stdout, r.stdout)
		}
		// The result is the task's whole output, unchanged by streaming.
		show := c.batonOK(t, "job", "show", ref.Name, "--format", "json").stdout
		if !strings.Contains(show, `tick 8 of 8`) || !strings.Contains(show, `tick 1 of 8`) {
			t.Errorf("the node's result lacks the output:\n%s", show)
		}
	})

	t.Run("a 35 s task streams over its whole run", func(t *testing.T) {
		if os.Getenv("BATON_TEST_LONG") == "" {
			t.Skip("set BATON_TEST_LONG=1 to run demo::ticker's default 35 s (the issue's \"prints over 30 s\")")
		}
		// Both CLI paths at once, each over demo::ticker's default 35 lines at 1 s: baton task
		// run --stream on s1 and baton job output --follow on s2. Each must print line 30 while
		// its node still runs (so the lines come live, across the server's 25 s SSE cut and any
		// reconnect) and, at the end, every line exactly once and in order.
		lines := make(chan line, 1000)
		stream := startLines(t, c, lines, "task", "run", "demo::ticker", "--nodes", "s1", "--stream")
		var ref struct {
			Name string `json:"name"`
		}
		decodeJSON(t, "task run --no-wait", c.batonOK(t, "task", "run", "demo::ticker", "--nodes", "s2", "--no-wait", "--format", "json").stdout, &ref)
		follow := startLines(t, c, lines, "job", "output", ref.Name, "s2", "--follow")
		jobIDs := map[*lineCmd]func() string{
			stream: func() string {
				m := regexp.MustCompile(`Started job (\d+)`).FindStringSubmatch(stream.stderr.String())
				if m == nil {
					t.Fatalf("task run --stream printed no job id before its lines:\n%s", stream.stderr.String())
				}
				return m[1]
			},
			follow: func() string { return ref.Name },
		}
		readers := []struct {
			cmd    *lineCmd
			node   string
			prefix string
		}{{stream, "s1", "[s1] "}, {follow, "s2", ""}}
		ticks := map[*lineCmd][]string{}
		deadline := time.After(3 * time.Minute)
		for open := len(readers); open > 0; {
			select {
			case l := <-lines:
				if l.eof {
					open--
					continue
				}
				for _, r := range readers {
					if r.cmd != l.from || !strings.HasPrefix(l.text, r.prefix+"tick ") {
						continue
					}
					ticks[r.cmd] = append(ticks[r.cmd], l.text)
					if len(ticks[r.cmd]) == 30 {
						// Thirty lines in: the task still runs (it prints 35, one a second).
						if jobSt, st := jobState(t, c, jobIDs[r.cmd](), r.node); jobSt != "running" || st != "running" {
							t.Fatalf("baton %s: 30 lines printed and the job is %s, %s is %s", r.cmd.what, jobSt, r.node, st)
						}
					}
				}
			case <-deadline:
				t.Fatalf("not ended after 3 minutes; lines so far: %q and %q", ticks[stream], ticks[follow])
			}
		}
		for _, r := range readers {
			if err := r.cmd.cmd.Wait(); err != nil {
				t.Errorf("baton %s: %v\nstderr:\n%s", r.cmd.what, err, r.cmd.stderr.String())
			}
			var want []string
			for i := 1; i <= 35; i++ {
				want = append(want, fmt.Sprintf("%stick %d of 35", r.prefix, i))
			}
			if got := strings.Join(ticks[r.cmd], "\n"); got != strings.Join(want, "\n") {
				t.Errorf("baton %s printed:\n%s\nwant each of the 35 lines once, in order", r.cmd.what, got)
			}
		}
		if n := strings.Count(stream.stderr.String(), "[s1] tick 35: a fifth line, on stderr"); n != 1 {
			t.Errorf("task run --stream: the last stderr line printed %d times, want once:\n%s", n, stream.stderr.String())
		}
	})
}

// lineCmd is a CLI command whose stdout lines the test reads as they are printed.
type lineCmd struct {
	what   string
	cmd    *exec.Cmd
	stderr *syncBuffer
}

// line is one stdout line of a lineCmd, or (eof) the end of its output.
type line struct {
	from *lineCmd
	text string
	eof  bool
}

// startLines starts the baton CLI with args and sends its stdout lines to lines as they are
// printed, then an eof line.
func startLines(t *testing.T, c *cluster, lines chan<- line, args ...string) *lineCmd {
	t.Helper()
	lc := &lineCmd{what: strings.Join(args, " "), cmd: exec.Command(filepath.Join(c.bin, "baton"), args...), stderr: &syncBuffer{}}
	lc.cmd.Env = c.env
	lc.cmd.Stderr = lc.stderr
	stdout, err := lc.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := lc.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.cmd.Process.Kill() })
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- line{from: lc, text: sc.Text()}
		}
		lines <- line{from: lc, eof: true}
	}()
	return lc
}
