package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

type report struct {
	o     options
	start time.Time
	sim   []simResult
	real  []realResult
}

func newReport(o options) *report { return &report{o: o, start: time.Now().UTC()} }

// machine describes where the benchmark ran.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = fmt.Sprintf(", %d GiB RAM", kbField(string(b), "MemTotal:")>>30)
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	return fmt.Sprintf("%s, %d CPUs%s, Linux %s, %s", model, runtime.NumCPU(), mem, strings.TrimSpace(string(kernel)), runtime.Version())
}

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000)
	case d < 10*time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func mb(b int64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f MB", float64(b)/(1<<20))
}

func (r *report) markdown() string {
	var b strings.Builder
	cmd := "make bench"
	if r.o.quick {
		cmd = "make bench-ci"
	}
	fmt.Fprintf(&b, "## %s — `%s`\n\n", r.start.Format("2006-01-02 15:04 UTC"), cmd)
	fmt.Fprintf(&b, "Machine: %s. One `baton serve` (SQLite, TLS, default settings", machine())
	if r.o.taskConcurrency != 0 {
		fmt.Fprintf(&b, " but `--task-concurrency %d`", r.o.taskConcurrency)
	}
	fmt.Fprintf(&b, ") and the agents on the same machine, over loopback. Fan-outs run `bench::noop`; times are medians of %d runs after a warm-up run.\n\n", r.o.runs)
	if len(r.sim) > 0 {
		b.WriteString("Simulated agents (`baton-agent simulate`, no-op executor, one process):\n\n")
		b.WriteString("| measure |")
		for _, s := range r.sim {
			fmt.Fprintf(&b, " N = %d |", s.n)
		}
		b.WriteString("\n|---|")
		for range r.sim {
			b.WriteString("---|")
		}
		b.WriteString("\n")
		row := func(name string, f func(simResult) string) {
			fmt.Fprintf(&b, "| %s |", name)
			for _, s := range r.sim {
				fmt.Fprintf(&b, " %s |", f(s))
			}
			b.WriteString("\n")
		}
		row("fan-out, API: POST → job finished", func(s simResult) string { return ms(median(s.fanOut)) })
		row("fan-out, API: fastest / slowest run", func(s simResult) string {
			return ms(percentile(s.fanOut, 0)) + " / " + ms(percentile(s.fanOut, 100))
		})
		row("fan-out, CLI process (`baton task run --query`)", func(s simResult) string { return ms(median(s.cli)) })
		row("single-node round trip p50 / p99", func(s simResult) string { return ms(s.rttP50) + " / " + ms(s.rttP99) })
		row("jobs/s, 10 concurrent submitters on 1 node", func(s simResult) string {
			return fmt.Sprintf("%.0f (%d jobs, %d unfinished)", s.jobsPerSec, s.jobs, s.jobsUnfinished)
		})
		row("enrol N agents (bulk + each agent's key exchange)", func(s simResult) string { return ms(s.enrol) })
		row("enrol and connect N agents", func(s simResult) string { return ms(s.connect) })
		row("reconnect storm: all back after a server restart", func(s simResult) string {
			return fmt.Sprintf("%s (%d refused)", ms(s.storm), s.stormRefused)
		})
		row("server RSS, idle with N agents / peak in fan-outs", func(s simResult) string { return mb(s.serverIdleRSS) + " / " + mb(s.serverRSS) })
		row("server CPU-seconds per 1,000 node-runs", func(s simResult) string { return fmt.Sprintf("%.3f", s.cpuPer1000) })
		row("simulator CPU-seconds per 1,000 node-runs", func(s simResult) string { return fmt.Sprintf("%.3f", s.simCPU1000) })
		row("simulator memory per virtual agent", func(s simResult) string { return fmt.Sprintf("%d KB", s.simRSSPerAgent>>10) })
		row("API requests throttled (429)", func(s simResult) string { return fmt.Sprint(s.throttled) })
		b.WriteString("\n")
	}
	if len(r.real) > 0 {
		b.WriteString("Real agents (one `baton-agent` process per node, each run a `sh` process; the fleet's start: " +
			r.real[0].start + ", see cmd/baton-bench -real-start):\n\n")
		b.WriteString("| measure |")
		for _, s := range r.real {
			fmt.Fprintf(&b, " N = %d |", s.n)
		}
		b.WriteString("\n|---|")
		for range r.real {
			b.WriteString("---|")
		}
		b.WriteString("\n")
		row := func(name string, f func(realResult) string) {
			fmt.Fprintf(&b, "| %s |", name)
			for _, s := range r.real {
				fmt.Fprintf(&b, " %s |", f(s))
			}
			b.WriteString("\n")
		}
		row("fan-out, API: POST → job finished", func(s realResult) string { return ms(median(s.fanOut)) })
		row("fan-out, API: fastest / slowest run", func(s realResult) string {
			return ms(percentile(s.fanOut, 0)) + " / " + ms(percentile(s.fanOut, 100))
		})
		row("start, enrol, connect N agent processes until each reported its facts and features", func(s realResult) string { return ms(s.connect) })
		row("a node's start-up with facter and puppet: k agents at once, ready / no child left / CPU-s each", func(s realResult) string {
			if s.startup.k == 0 {
				return "-"
			}
			return fmt.Sprintf("k = %d: %s / %s / %.2f", s.startup.k, ms(s.startup.ready), ms(s.startup.quiet), s.startup.cpu.Seconds())
		})
		row("the same k restarted: a task ran on all / no child left / CPU-s each", func(s realResult) string {
			if s.restart.k == 0 {
				return "-"
			}
			return fmt.Sprintf("%s / %s / %.2f", ms(s.restart.ready), ms(s.restart.quiet), s.restart.cpu.Seconds())
		})
		row("idle RSS of one agent (median) / PSS", func(s realResult) string { return mb(s.agentRSS) + " / " + mb(s.agentPSS) })
		row("server RSS, idle with N agents", func(s realResult) string { return mb(s.serverIdleRSS) })
		row("server CPU-seconds per 1,000 node-runs", func(s realResult) string { return fmt.Sprintf("%.3f", s.cpuPer1000) })
		row("agents' CPU-seconds per 1,000 node-runs (with their supervisors and tasks)", func(s realResult) string { return fmt.Sprintf("%.3f", s.agentCPU1000) })
		b.WriteString("\n")
	}
	return b.String()
}

// write puts the report at the top of the results section of path, keeping earlier runs
// below it.
func (r *report) write(path string) error {
	const marker = "<!-- results: baton-bench writes below this line, newest first -->\n"
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	head, rest, found := strings.Cut(text, marker)
	if !found {
		head, rest = "# Benchmarks\n\nWritten by `make bench` (cmd/baton-bench).\n\n", text
	}
	return os.WriteFile(path, []byte(head+marker+"\n"+r.markdown()+rest), 0o644)
}
