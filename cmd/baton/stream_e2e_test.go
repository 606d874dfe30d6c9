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
		var ref struct {
			Name string `json:"name"`
		}
		decodeJSON(t, "task run --no-wait", c.batonOK(t, "task", "run", "demo::ticker", "--nodes", "s2", "--no-wait", "--format", "json").stdout, &ref)
		cmd := exec.Command(filepath.Join(c.bin, "baton"), "job", "output", ref.Name, "s2", "--follow")
		cmd.Env = c.env
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		sc := bufio.NewScanner(stdout)
		n := 0
		for sc.Scan() {
			if !strings.HasPrefix(sc.Text(), "tick ") {
				continue
			}
			n++
			if n == 30 {
				// Thirty lines in: the task still runs (it prints 35, one a second).
				if _, st := jobState(t, c, ref.Name, "s2"); st != "running" {
					t.Fatalf("30 lines streamed and s2 is %s", st)
				}
			}
		}
		if err := cmd.Wait(); err != nil || n != 35 {
			t.Fatalf("job output --follow: %v, %d tick lines, want 35", err, n)
		}
	})
}
