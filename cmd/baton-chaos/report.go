package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// faultReport is what was injected, and how the processes ended besides.
type faultReport struct {
	injected     map[string]int // by fault name
	hookPoints   map[string]int // agent self-kills by fault point
	dupToServer  int64
	dupToAgent   int64
	proxyConns   int64
	agentCrashes []string // ends of agents that were neither ours nor the hook's
	serverExits  []string // ends of baton serve that were not ours
	skipped      []string // faults not run, and why
	probe        string   // the job on every node after the faults
}

// printReport writes the verdict and the faults as a table, then the problems found.
func printReport(w io.Writer, cfg *config, v verdict, f faultReport, elapsed time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "baton-chaos: seed %d, %d agents, %s\n", cfg.seed, cfg.agents, elapsed.Round(time.Second))
	row := func(k string, val any) { fmt.Fprintf(tw, "  %s\t%v\n", k, val) }
	row("jobs (ended)", fmt.Sprintf("%d (%d)", v.jobs, v.jobsEnded))
	row("job duration p50 / p90 / max", fmt.Sprintf("%s / %s / %s", pct(v.durations, 50), pct(v.durations, 90), pct(v.durations, 100)))
	row("node-runs", fmt.Sprintf("%d (asked %d)", v.nodeRuns, cfg.nodeRuns))
	row("completed (ledger lines)", v.completed)
	row("finished", v.states["finished"])
	row("failed", fmt.Sprintf("%d (task's own exit code %d, timed out %d, other %d)", v.states["failed"], v.failedAsked, v.failedTimeout, v.failedOther))
	row("errored", v.states["errored"])
	row("skipped / stopped", fmt.Sprintf("%d / %d", v.states["skipped"], v.states["stopped"]))
	row("reported not run, not run", v.notRun)
	row("outcome unknown (ran / not)", fmt.Sprintf("%d (%d / %d)", v.unknownRan+v.unknownNotRan, v.unknownRan, v.unknownNotRan))
	fmt.Fprintln(tw, "  faults:")
	for _, name := range allFaults {
		val := fmt.Sprint(f.injected[name])
		switch name {
		case faultAgentHook:
			val = fmt.Sprintf("%d %s", sum(f.hookPoints), points(f.hookPoints))
		case faultDup:
			val = fmt.Sprintf("%d windows, %d frames to the server, %d to agents", f.injected[name], f.dupToServer, f.dupToAgent)
		}
		if !cfg.on(name) {
			val = "off"
		}
		row("  "+name, val)
	}
	row("  proxied connections", f.proxyConns)
	row("probe after the faults", f.probe)
	row("agent ends not injected", len(f.agentCrashes))
	row("baton serve ends not injected", len(f.serverExits))
	fmt.Fprintln(tw, "  checks:")
	row("  lost", v.lost)
	row("  run twice", v.twice)
	row("  stuck", v.stuck)
	row("  misreported", v.misreported)
	tw.Flush()
	var classes []string
	for c := range v.others {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	for _, c := range classes {
		fmt.Fprintf(w, "outcome %4d × %s\n", v.others[c], c)
	}
	for _, n := range v.notes {
		fmt.Fprintln(w, n)
	}
	for _, s := range f.skipped {
		fmt.Fprintf(w, "skipped: %s\n", s)
	}
	for _, s := range f.agentCrashes {
		fmt.Fprintf(w, "agent end not injected: %s\n", s)
	}
	for _, s := range f.serverExits {
		fmt.Fprintf(w, "baton serve end not injected: %s\n", s)
	}
	const most = 50
	for i, p := range v.problems {
		if i == most {
			fmt.Fprintf(w, "... and %d more problems\n", len(v.problems)-most)
			break
		}
		fmt.Fprintln(w, p)
	}
	verdict := "PASS"
	if !v.ok(cfg.nodeRuns) {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "%s: %d node-runs; lost %d, run twice %d, stuck %d, misreported %d\n", verdict, v.nodeRuns, v.lost, v.twice, v.stuck, v.misreported)
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func points(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("(")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, m[k])
	}
	b.WriteString(")")
	return b.String()
}

// pct returns the p-th percentile of sorted durations, rounded for the report.
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)].Round(100 * time.Millisecond)
}
