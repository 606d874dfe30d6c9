package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process whose output is kept and watched line by line.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  []string
	subs []func(string)
	done chan struct{}
	err  error
}

// start runs bin with args (and env added to ours); its output goes to logFile too.
func start(name, logFile string, env []string, bin string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = io.MultiWriter(pw, log), io.MultiWriter(pw, log)
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.out = append(p.out, line)
			subs := append([]func(string){}, p.subs...)
			p.mu.Unlock()
			for _, s := range subs {
				s(line)
			}
		}
	}()
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

// waitLine waits for a line matching re (already printed or to come) and returns its submatches.
func (p *proc) waitLine(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	found := make(chan []string, 1)
	p.mu.Lock()
	for _, l := range p.out {
		if m := re.FindStringSubmatch(l); m != nil {
			p.mu.Unlock()
			return m, nil
		}
	}
	idx := len(p.subs)
	p.subs = append(p.subs, func(l string) {
		if m := re.FindStringSubmatch(l); m != nil {
			select {
			case found <- m:
			default:
			}
		}
	})
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.subs[idx] = func(string) {}
		p.mu.Unlock()
	}()
	select {
	case m := <-found:
		return m, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited (%v) before printing %q", p.name, p.err, re)
	case <-time.After(timeout):
		return nil, fmt.Errorf("%s did not print %q within %s", p.name, re, timeout)
	}
}

// lines is how many output lines there are so far.
func (p *proc) lines() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.out)
}

// waitAfter waits for a line, at index from or later, that matches re and satisfies ok, and
// returns its index.
func (p *proc) waitAfter(from int, re *regexp.Regexp, ok func([]string) bool, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		lines := p.out[min(from, len(p.out)):]
		p.mu.Unlock()
		for i, l := range lines {
			if m := re.FindStringSubmatch(l); m != nil && ok(m) {
				return from + i, nil
			}
		}
		from += len(lines)
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s did not print the line awaited (%q) within %s", p.name, re, timeout)
		}
		select {
		case <-p.done:
			return 0, fmt.Errorf("%s exited: %v", p.name, p.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// countLines counts the output lines containing s.
func (p *proc) countLines(s string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.out {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// stop asks the process to end (SIGTERM) and kills its group if it has not within a while.
func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// usage is a process's resource use read from /proc.
type usage struct {
	cpu time.Duration // user + system
	// childCPU is the user + system time of its children that have been waited for.
	childCPU time.Duration
	rss      int64 // bytes
	pss      int64 // bytes (0 where smaps_rollup is missing)
}

var clockTicks = 100.0 // sysconf(_SC_CLK_TCK) on Linux

// childrenByParent maps each running process's parent PID to its PIDs (from /proc).
func childrenByParent() map[int][]int {
	out := map[int][]int{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 > len(s) {
			continue
		}
		if f := strings.Fields(s[i+2:]); len(f) > 1 {
			if ppid, err := strconv.Atoi(f[1]); err == nil {
				out[ppid] = append(out[ppid], pid)
			}
		}
	}
	return out
}

func readUsage(pid int) (usage, error) {
	var u usage
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return u, err
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 22 {
		return u, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	u.cpu = time.Duration((ut + st) / clockTicks * float64(time.Second))
	cut, _ := strconv.ParseFloat(fields[13], 64)
	cst, _ := strconv.ParseFloat(fields[14], 64)
	u.childCPU = time.Duration((cut + cst) / clockTicks * float64(time.Second))
	if status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status")); err == nil {
		u.rss = kbField(string(status), "VmRSS:")
	}
	if smaps, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "smaps_rollup")); err == nil {
		u.pss = kbField(string(smaps), "Pss:")
	}
	return u, nil
}

func kbField(text, key string) int64 {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, key) {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// peakRSS samples a process's RSS until ctx ends and returns the highest seen.
func peakRSS(ctx context.Context, pid int) func() int64 {
	var (
		mu   sync.Mutex
		peak int64
	)
	go func() {
		t := time.NewTicker(25 * time.Millisecond)
		defer t.Stop()
		for {
			if u, err := readUsage(pid); err == nil {
				mu.Lock()
				peak = max(peak, u.rss)
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
