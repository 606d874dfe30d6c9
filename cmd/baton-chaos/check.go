package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/baton-run/baton/shared/client"
)

// runKey names one node-run: a job (by the run id the suite gave it) on one node.
type runKey struct{ run, node string }

// ledger is what the task wrote: per node-run, how many times it started and completed.
type ledger struct {
	started, done map[runKey]int
	bad           []string // lines that do not belong in their file
}

// readLedger reads <dir>/<node>.started and <dir>/<node>.ledger.
func readLedger(dir string) (ledger, error) {
	l := ledger{started: map[runKey]int{}, done: map[runKey]int{}}
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		return l, fmt.Errorf("read ledger: %w", err)
	}
	for _, e := range entries {
		node, ext, _ := strings.Cut(e.Name(), ".")
		m := map[string]map[runKey]int{"started": l.started, "ledger": l.done}[ext]
		if m == nil {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return l, fmt.Errorf("read ledger: %w", err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) != 2 || fields[0] != node {
				l.bad = append(l.bad, fmt.Sprintf("%s: %q", e.Name(), sc.Text()))
				continue
			}
			m[runKey{run: fields[1], node: node}]++
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return l, fmt.Errorf("read ledger %s: %w", e.Name(), err)
		}
	}
	return l, nil
}

// verdict is the outcome of the checks over every node-run.
type verdict struct {
	jobs, jobsEnded                         int
	nodeRuns                                int
	states                                  map[string]int // node states as reported
	failedAsked, failedTimeout, failedOther int            // failed: the task's own exit code, a timeout, else
	unknownRan, unknownNotRan               int            // outcome unknown, ledger line present or not
	notRun                                  int            // reported not run (errored, skipped), no ledger line
	completed                               int            // ledger lines
	lost, twice, stuck, misreported         int
	problems                                []string
	notes                                   []string // outcome-unknown node-runs, for the post-mortem
	// others counts the outcomes other than finished and the task's own failure, by state,
	// error kind and message (node names and numbers left out).
	others map[string]int
	// durations of the jobs that ended, submission to end, sorted
	durations []time.Duration
}

var (
	nodeNameRE = regexp.MustCompile(`\bc\d+\b`)
	txnRE      = regexp.MustCompile(`\d+_[0-9a-f-]{36}`)
)

// outcomeClass names an outcome for the report: state, kind and message in general terms.
func outcomeClass(state, kind, msg string) string {
	msg = nodeNameRE.ReplaceAllString(txnRE.ReplaceAllString(msg, "TXN"), "NODE")
	if len(msg) > 120 {
		msg = msg[:120] + "…"
	}
	return fmt.Sprintf("%s %s: %s", state, kind, msg)
}

// notRunRE matches messages that say an action did not run.
var notRunRE = regexp.MustCompile(`(?i)not run|not running|did not connect|never started|not started|was not sent`)

const kindOutcomeUnknown = "baton/task-outcome-unknown"

// check compares what the server reported of every node-run of runs with the ledger.
func check(runs []*jobRun, l ledger) verdict {
	v := verdict{states: map[string]int{}, others: map[string]int{}}
	problem := func(counter *int, format string, args ...any) {
		*counter++
		v.problems = append(v.problems, fmt.Sprintf(format, args...))
	}
	known := map[runKey]bool{}
	for _, r := range runs {
		v.jobs++
		byNode := map[string]int{}
		for i, n := range r.results {
			byNode[n.Name] = i
		}
		jobStuck := r.job != "" && r.ended.IsZero()
		if !jobStuck && r.job != "" {
			v.jobsEnded++
			v.durations = append(v.durations, r.ended.Sub(r.submitted))
		}
		for _, node := range r.nodes {
			k := runKey{run: r.runID, node: node}
			known[k] = true
			v.nodeRuns++
			done, started := l.done[k], l.started[k]
			v.completed += done
			id := fmt.Sprintf("%s (job %s) on %s", r.runID, r.job, node)
			if done > 1 || started > 1 {
				problem(&v.twice, "run twice: %s: started %d times, completed %d times", id, started, done)
			}
			i, ok := byNode[node]
			if !ok {
				why := "missing from the job's nodes"
				if r.results == nil {
					why = fmt.Sprint(r.err)
				}
				problem(&v.lost, "lost: %s: no result (%s); ledger: started %d, completed %d", id, why, started, done)
				continue
			}
			n := r.results[i]
			v.states[n.State]++
			kind, msg, exit := resultError(n.Result)
			switch n.State {
			case "new", "ready", "running":
				problem(&v.stuck, "stuck: %s: still %s at the end (job %s: %v)", id, n.State, r.final.State, r.err)
				continue
			}
			if len(n.Result) == 0 || string(n.Result) == "null" {
				problem(&v.lost, "lost: %s: %s with no result", id, n.State)
			}
			if n.State != "finished" && !(n.State == "failed" && r.exitCode != 0 && exit == r.exitCode) {
				v.others[outcomeClass(n.State, kind, msg)]++
			}
			if kind == kindOutcomeUnknown {
				v.notes = append(v.notes, fmt.Sprintf("outcome unknown: %s: ledger: started %d, completed %d; events: %s", id, started, done, nodeEvents(r.events, node)))
				if done > 0 {
					v.unknownRan++
				} else {
					v.unknownNotRan++
				}
				continue
			}
			claimsNotRun := n.State == "errored" || n.State == "skipped" || notRunRE.MatchString(msg)
			completedAsReported := n.State == "finished" || n.State == "failed" && r.exitCode != 0 && exit == r.exitCode
			switch {
			case claimsNotRun && done > 0:
				problem(&v.misreported, "misreported: %s: reported %s (%s: %s), but the task completed (ledger)", id, n.State, kind, msg)
			case claimsNotRun && started > 0:
				problem(&v.misreported, "misreported: %s: reported %s (%s: %s), but the task started (ledger)", id, n.State, kind, msg)
			case completedAsReported && done == 0:
				problem(&v.misreported, "misreported: %s: reported %s, but the task never completed (no ledger line)", id, n.State)
			case n.State == "finished" && r.exitCode != 0:
				problem(&v.misreported, "misreported: %s: reported finished, but the task exits %d", id, r.exitCode)
			case completedAsReported && !resultNames(n.Result, r.runID, node):
				problem(&v.misreported, "misreported: %s: the result is another run's: %s", id, n.Result)
			}
			switch {
			case n.State == "failed" && completedAsReported:
				v.failedAsked++
			case n.State == "failed" && kind == "puppetlabs.tasks/task-timeout":
				v.failedTimeout++
			case n.State == "failed":
				v.failedOther++
			case claimsNotRun && done == 0 && started == 0:
				v.notRun++
			}
		}
		if jobStuck {
			problem(&v.stuck, "stuck: job %s (%s) did not end within its bound: %s %v (%v)", r.job, r.runID, r.final.State, r.final.NodeStates, r.err)
		}
	}
	slices.Sort(v.durations)
	var orphans []runKey
	for k := range l.done {
		if !known[k] {
			orphans = append(orphans, k)
		}
	}
	for k := range l.started {
		if !known[k] && l.done[k] == 0 {
			orphans = append(orphans, k)
		}
	}
	sort.Slice(orphans, func(i, j int) bool { return orphans[i].run+orphans[i].node < orphans[j].run+orphans[j].node })
	for _, k := range orphans {
		problem(&v.lost, "lost: %s on %s ran (ledger) but is no node-run of any job", k.run, k.node)
	}
	for _, b := range l.bad {
		problem(&v.misreported, "ledger line out of place: %s", b)
	}
	return v
}

// resultError returns the _error of a node's result: its kind, message and details.exit_code
// (-1 when absent).
func resultError(raw json.RawMessage) (kind, msg string, exit int) {
	var r struct {
		Error *struct {
			Kind    string         `json:"kind"`
			Msg     string         `json:"msg"`
			Details map[string]any `json:"details"`
		} `json:"_error"`
	}
	exit = -1
	if json.Unmarshal(raw, &r) != nil || r.Error == nil {
		return "", "", exit
	}
	if e, ok := r.Error.Details["exit_code"].(float64); ok {
		exit = int(e)
	}
	return r.Error.Kind, r.Error.Msg, exit
}

// resultNames reports whether a chaos::ledger result names run and node.
func resultNames(raw json.RawMessage, run, node string) bool {
	var r struct {
		Node  string `json:"node"`
		RunID string `json:"run_id"`
	}
	return json.Unmarshal(raw, &r) == nil && r.Node == node && r.RunID == run
}

// ok reports whether the four counts are zero and enough node-runs ran.
func (v verdict) ok(want int) bool {
	return v.lost == 0 && v.twice == 0 && v.stuck == 0 && v.misreported == 0 && v.nodeRuns >= want
}

// nodeEvents summarises a job's events about node: type and time, in order.
func nodeEvents(evs []client.Event, node string) string {
	var out []string
	for _, e := range evs {
		if n, _ := e.Details["node"].(string); n == node {
			out = append(out, fmt.Sprintf("%s %s %q", e.Timestamp.Format("15:04:05.000"), e.Type, e.Message))
		}
	}
	return strings.Join(out, "; ")
}
