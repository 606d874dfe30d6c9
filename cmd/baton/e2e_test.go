package main

// End-to-end tests of the real binaries: `go build` makes baton and baton-agent once per test
// binary run, then the tests start `baton serve` and three agents as subprocesses and drive
// them with the baton CLI, the way scripts/demo.sh does.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/auth"
)

// binaries are built once, on first use, and removed by TestMain.
var binaries struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
	os.Exit(code)
}

// buildBinaries builds ./cmd/baton and ./cmd/baton-agent (with -race when this test binary
// has it) and returns the directory holding them.
func buildBinaries(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the real binaries; skipped with -short")
	}
	if runtime.GOOS == "windows" {
		t.Skip("the end-to-end test stops processes with SIGTERM")
	}
	binaries.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			binaries.err = fmt.Errorf("find the go command: %w", err)
			return
		}
		root, err := filepath.Abs(filepath.Join("..", ".."))
		if err != nil {
			binaries.err = err
			return
		}
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
			binaries.err = fmt.Errorf("module root: %w", err)
			return
		}
		dir, err := os.MkdirTemp("", "baton-e2e-bin-")
		if err != nil {
			binaries.err = err
			return
		}
		binaries.dir = dir
		args := []string{"build", "-o", dir + string(filepath.Separator)}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/baton", "./cmd/baton-agent")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goTool, args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binaries.err = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	})
	if binaries.err != nil {
		t.Fatal(binaries.err)
	}
	return binaries.dir
}

// syncBuffer is a bytes.Buffer a subprocess writes to while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a long-running subprocess (baton serve or baton-agent).
type proc struct {
	name   string
	cmd    *exec.Cmd
	output *syncBuffer // stdout and stderr
	done   chan struct{}
	err    error // set when done is closed

	stopOnce sync.Once
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to 10s for the process to end, then kills it. It returns the
// process's exit error (nil for exit status 0); later calls return the same.
func (p *proc) stop() error {
	p.stopOnce.Do(func() {
		if !p.exited() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			p.err = fmt.Errorf("%s did not stop within 10s of SIGTERM and was killed: %w", p.name, p.err)
		}
	})
	return p.err
}

// cluster is one `baton serve` with its config directory, data and modules.
type cluster struct {
	bin       string
	root      string // per-test temporary directory
	env       []string
	dataDir   string
	modules   string
	stateFile string // where serve records itself for the CLI
	server    *proc
	agents    map[string]*proc
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	bin := buildBinaries(t)
	root := t.TempDir()
	c := &cluster{bin: bin, root: root, dataDir: filepath.Join(root, "data"), modules: filepath.Join(root, "modules"),
		agents: map[string]*proc{}}
	home, config := filepath.Join(root, "home"), filepath.Join(root, "config")
	// A -race binary sleeps for GORACE's atexit_sleep_ms (1s by default) on exit.
	gorace := "atexit_sleep_ms=0"
	for _, k := range os.Environ() {
		name, val, _ := strings.Cut(k, "=")
		switch {
		case strings.HasPrefix(name, "BATON_") || name == "HOME" || name == "XDG_CONFIG_HOME":
		case name == "GORACE":
			gorace = strings.TrimSpace(val + " " + gorace)
		default:
			c.env = append(c.env, k)
		}
	}
	c.env = append(c.env, "HOME="+home, "XDG_CONFIG_HOME="+config, "GORACE="+gorace)
	// os.UserConfigDir ignores XDG_CONFIG_HOME on macOS.
	c.stateFile = filepath.Join(config, "baton", "local.json")
	if runtime.GOOS == "darwin" {
		c.stateFile = filepath.Join(home, "Library", "Application Support", "baton", "local.json")
	}
	if err := os.CopyFS(c.modules, os.DirFS(filepath.Join("..", "..", "examples", "modules"))); err != nil {
		t.Fatal(err)
	}
	return c
}

// start runs a binary of the cluster in the background and stops it when the test ends,
// reporting a non-zero exit status or a data race it printed.
func (c *cluster) start(t *testing.T, name, binary string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(filepath.Join(c.bin, binary), args...), output: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = c.env
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("%s: %v\n%s", name, err, p.output.String())
		}
		if strings.Contains(p.output.String(), "DATA RACE") {
			t.Errorf("%s reported a data race:\n%s", name, p.output.String())
		}
	})
	return p
}

// serve starts `baton serve` and waits until it has recorded itself for the CLI.
func (c *cluster) serve(t *testing.T) {
	t.Helper()
	c.server = c.start(t, "baton serve", "baton", "serve", "--listen", "127.0.0.1:0", "--data", c.dataDir,
		"--modules", c.modules, "--connect-timeout", "3s", "--log-level", "warn")
	eventually(t, "baton serve to write "+c.stateFile, 20*time.Second, func() bool {
		if c.server.exited() {
			t.Fatalf("baton serve exited early: %v\n%s", c.server.err, c.server.output.String())
		}
		var st localState
		b, err := os.ReadFile(c.stateFile)
		return err == nil && json.Unmarshal(b, &st) == nil && st.URL != ""
	})
}

// startAgent runs baton-agent for a node with a credential file.
func (c *cluster) startAgent(t *testing.T, name, credential string) {
	t.Helper()
	dir := filepath.Join(c.root, "agents", name)
	c.agents[name] = c.start(t, "baton-agent "+name, "baton-agent", "--credential", credential,
		"--cache-dir", filepath.Join(dir, "cache"), "--spool-dir", filepath.Join(dir, "spool"), "--log-level", "warn")
}

func (c *cluster) state(t *testing.T) servedState {
	t.Helper()
	var st servedState
	b, err := os.ReadFile(c.stateFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("%s: %v", c.stateFile, err)
	}
	return st
}

// certFingerprint is the SHA-256 of the DER of the first certificate in a PEM file.
func certFingerprint(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s is not PEM", path)
	}
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:])
}

// result is what one CLI call did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs a binary of the cluster to completion with extra environment variables.
func (c *cluster) runEnv(t *testing.T, extraEnv []string, binary string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, binary), args...)
	cmd.Env = append(append([]string{}, c.env...), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s %s: timed out\n%s", binary, strings.Join(args, " "), r)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %s: %v", binary, strings.Join(args, " "), err)
	}
	if strings.Contains(r.stderr, "DATA RACE") {
		t.Errorf("%s %s reported a data race:\n%s", binary, strings.Join(args, " "), r.stderr)
	}
	return r
}

// baton runs the CLI and returns its result.
func (c *cluster) baton(t *testing.T, args ...string) result {
	t.Helper()
	return c.runEnv(t, nil, "baton", args...)
}

// batonOK runs the CLI and fails the test unless it exits 0.
func (c *cluster) batonOK(t *testing.T, args ...string) result {
	t.Helper()
	r := c.baton(t, args...)
	if r.code != 0 {
		t.Fatalf("baton %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// eventually polls cond every 50ms until it holds or timeout passes.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

func decodeJSON(t *testing.T, what, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("%s is not JSON: %v\n%s", what, err, s)
	}
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Errorf("%s has mode %v, want %v", path, got, want)
	}
}

// tableRows maps the first column of a table's rows to their columns.
func tableRows(out string) map[string][]string {
	rows := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rows[f[0]] = f
		}
	}
	return rows
}

type boltItem struct {
	Target string          `json:"target"`
	Action string          `json:"action"`
	Object string          `json:"object"`
	Status string          `json:"status"`
	State  string          `json:"state"`
	Value  json.RawMessage `json:"value"`
}

type boltOutput struct {
	Job         string     `json:"job"`
	State       string     `json:"state"`
	Items       []boltItem `json:"items"`
	TargetCount int        `json:"target_count"`
}

var nodeNames = []string{"web1", "web2", "db1"}

func TestCLIEndToEnd(t *testing.T) {
	c := newCluster(t)
	c.serve(t)
	st := c.state(t)
	serverURL, err := url.Parse(st.URL)
	if err != nil || serverURL.Scheme != "https" || serverURL.Host == "" {
		t.Fatalf("local state URL %q: %v", st.URL, err)
	}

	t.Run("serve makes a self-signed certificate and records its fingerprint", func(t *testing.T) {
		certFile := filepath.Join(c.dataDir, "tls.crt")
		checkMode(t, certFile, 0o644)
		checkMode(t, filepath.Join(c.dataDir, "tls.key"), 0o600)
		if got := certFingerprint(t, certFile); st.TLSFingerprint != got || st.TLSCertFile != certFile {
			t.Errorf("local state records %s (%s); %s has fingerprint %s", st.TLSFingerprint, st.TLSCertFile, certFile, got)
		}
		// The state file is written before the banner is printed: wait for the banner.
		eventually(t, "baton serve to print the agents' wss:// URL and the fingerprint", 20*time.Second, func() bool {
			out := c.server.output.String()
			return strings.Contains(out, "wss://"+serverURL.Host+"/pcp") && strings.Contains(out, st.TLSFingerprint)
		})
	})

	t.Run("admin token is private and recorded for the CLI", func(t *testing.T) {
		token := filepath.Join(c.dataDir, "admin.token")
		checkMode(t, token, 0o600)
		checkMode(t, c.stateFile, 0o600)
		if st.TokenFile != token {
			t.Errorf("local state token_file = %q, want %q", st.TokenFile, token)
		}
		if b, err := os.ReadFile(token); err != nil || len(strings.TrimSpace(string(b))) < 16 {
			t.Errorf("admin token %q: %v", b, err)
		}
	})

	creds := map[string]string{}
	for _, n := range nodeNames {
		creds[n] = filepath.Join(c.root, n+".cred")
		r := c.batonOK(t, "node", "add", n, "--out", creds[n])
		if !strings.Contains(r.stderr, "baton-agent --credential "+creds[n]) {
			t.Errorf("node add %s does not say how to start the agent:\n%s", n, r)
		}
	}
	t.Run("node add writes a private credential", func(t *testing.T) {
		for _, n := range nodeNames {
			checkMode(t, creds[n], 0o600)
			var cred struct {
				Name, Secret, Server string
				Fingerprint          string `json:"tls_fingerprint"`
				EnrollmentToken      string `json:"enrollment_token"`
				PrivateKey           string `json:"private_key"`
			}
			b, err := os.ReadFile(creds[n])
			if err != nil {
				t.Fatal(err)
			}
			decodeJSON(t, creds[n], string(b), &cred)
			if want := "wss://" + serverURL.Host + "/pcp"; cred.Name != n || cred.Secret != "" || len(cred.EnrollmentToken) < 16 || cred.PrivateKey != "" || cred.Server != want {
				t.Errorf("credential %s = %+v, want name %s, a one-time enrolment token and server %s", creds[n], cred, n, want)
			}
			if cred.Fingerprint != st.TLSFingerprint {
				t.Errorf("credential %s pins %q, want the server's %s", creds[n], cred.Fingerprint, st.TLSFingerprint)
			}
		}
	})

	for _, n := range nodeNames {
		c.startAgent(t, n, creds[n])
	}
	t.Cleanup(func() {
		// Each agent enrolled on its first start: the one-time token is used up and replaced
		// by the agent's own private key, still mode 0600.
		for _, n := range nodeNames {
			var cred struct {
				Secret          string `json:"secret"`
				EnrollmentToken string `json:"enrollment_token"`
				PrivateKey      string `json:"private_key"`
			}
			b, err := os.ReadFile(creds[n])
			if err != nil {
				t.Error(err)
				continue
			}
			decodeJSON(t, creds[n], string(b), &cred)
			if cred.Secret != "" || cred.EnrollmentToken != "" || len(cred.PrivateKey) < 80 {
				t.Errorf("credential %s after enrolment: %s", creds[n], b)
			}
			checkMode(t, creds[n], 0o600)
		}
	})
	eventually(t, "three agents to connect", 20*time.Second, func() bool {
		for _, p := range c.agents {
			if p.exited() {
				t.Fatalf("%s exited: %v\n%s", p.name, p.err, p.output.String())
			}
		}
		r := c.batonOK(t, "node", "list", "--format", "json")
		var nodes []struct {
			Name      string `json:"name"`
			Connected bool   `json:"connected"`
		}
		decodeJSON(t, "node list", r.stdout, &nodes)
		connected := 0
		for _, n := range nodes {
			if n.Connected {
				connected++
			}
		}
		return connected == len(nodeNames)
	})

	t.Run("node list table", func(t *testing.T) {
		rows := tableRows(c.batonOK(t, "node", "list").stdout)
		for _, n := range nodeNames {
			if r := rows[n]; len(r) < 2 || r[1] != "true" {
				t.Errorf("node list row for %s = %v", n, r)
			}
		}
	})

	t.Run("node show prints facts", func(t *testing.T) {
		type node struct {
			Name      string `json:"name"`
			Connected bool   `json:"connected"`
			Facts     struct {
				OS struct {
					Family string `json:"family"`
				} `json:"os"`
				Networking struct {
					Hostname string `json:"hostname"`
				} `json:"networking"`
			} `json:"facts"`
		}
		// An agent sends its facts just after it connects.
		eventually(t, "web1's facts", time.Minute, func() bool {
			r := c.batonOK(t, "node", "show", "web1")
			var n node
			decodeJSON(t, "node show", r.stdout, &n)
			if n.Name != "web1" || !n.Connected {
				t.Fatalf("node show web1:\n%s", r.stdout)
			}
			return n.Facts.OS.Family != "" && n.Facts.Networking.Hostname != ""
		})
	})

	t.Run("task list", func(t *testing.T) {
		rows := tableRows(c.batonOK(t, "task", "list").stdout)
		for _, task := range []string{"demo::hello", "demo::fail", "demo::sleep", "demo::sysinfo", "demo::multi", "demo::secret"} {
			if _, ok := rows[task]; !ok {
				t.Errorf("task list has no %s", task)
			}
		}
		if r := rows["demo::hello"]; !strings.Contains(strings.Join(r, " "), "Greets someone") {
			t.Errorf("demo::hello row = %v", r)
		}
	})

	t.Run("task show prints metadata and files with sha256", func(t *testing.T) {
		r := c.batonOK(t, "task", "show", "demo::hello")
		var task struct {
			Name     string `json:"name"`
			Metadata struct {
				Description string                    `json:"description"`
				Parameters  map[string]map[string]any `json:"parameters"`
			} `json:"metadata"`
			Files []struct {
				Filename  string `json:"filename"`
				SHA256    string `json:"sha256"`
				SizeBytes int64  `json:"size_bytes"`
			} `json:"files"`
		}
		decodeJSON(t, "task show", r.stdout, &task)
		if task.Name != "demo::hello" || !strings.HasPrefix(task.Metadata.Description, "Greets someone") || task.Metadata.Parameters["name"] == nil {
			t.Errorf("task show demo::hello:\n%s", r.stdout)
		}
		b, err := os.ReadFile(filepath.Join(c.modules, "demo", "tasks", "hello.sh"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if len(task.Files) != 1 || task.Files[0].Filename != "hello.sh" || task.Files[0].SHA256 != hex.EncodeToString(sum[:]) ||
			task.Files[0].SizeBytes != int64(len(b)) {
			t.Errorf("files = %+v, want hello.sh with sha256 %x and size %d", task.Files, sum, len(b))
		}
	})

	t.Run("task run prints a table and live progress", func(t *testing.T) {
		r := c.batonOK(t, "task", "run", "demo::hello", "--nodes", "web1,web2,db1", "name=Baton")
		rows := tableRows(r.stdout)
		for _, n := range nodeNames {
			row := rows[n]
			if len(row) < 4 || row[1] != "finished" || !strings.Contains(strings.Join(row, " "), `"greeting":"hello Baton"`) {
				t.Errorf("row for %s = %v\n%s", n, row, r)
			}
		}
		if !regexp.MustCompile(`(?m)^Job \d+ finished: 3 finished$`).MatchString(r.stdout) {
			t.Errorf("no job summary line:\n%s", r.stdout)
		}
		if !strings.Contains(r.stderr, "Started job ") || !strings.Contains(r.stderr, "demo::hello on web1, web2, db1") {
			t.Errorf("no start line on stderr:\n%s", r.stderr)
		}
		for _, ev := range []string{"node_running", "node_finished", "job_finished"} {
			if !strings.Contains(r.stderr, ev) {
				t.Errorf("stderr has no %s progress line:\n%s", ev, r.stderr)
			}
		}
	})

	t.Run("k=v parameters follow the declared type", func(t *testing.T) {
		r := c.batonOK(t, "task", "run", "demo::hello", "--nodes", "web2", "--format", "json", "name=123", "loud=true")
		var out boltOutput
		decodeJSON(t, "task run --format json", r.stdout, &out)
		var v struct{ Greeting string }
		if len(out.Items) != 1 || json.Unmarshal(out.Items[0].Value, &v) != nil || v.Greeting != "HELLO 123" {
			t.Errorf("name=123 loud=true:\n%s", r)
		}
	})

	t.Run("task run --format json", func(t *testing.T) {
		r := c.batonOK(t, "task", "run", "demo::hello", "--nodes", "web1,web2,db1", "--format", "json", "--params", `{"name":"X"}`)
		if r.stderr != "" {
			t.Errorf("json output wrote progress to stderr:\n%s", r.stderr)
		}
		var out boltOutput
		decodeJSON(t, "task run --format json", r.stdout, &out)
		if out.State != "finished" || out.TargetCount != 3 || len(out.Items) != 3 || out.Job == "" {
			t.Fatalf("json output:\n%s", r.stdout)
		}
		seen := map[string]bool{}
		for _, it := range out.Items {
			seen[it.Target] = true
			var v struct{ Greeting string }
			if it.Status != "success" || it.State != "finished" || it.Action != "task" || it.Object != "demo::hello" ||
				json.Unmarshal(it.Value, &v) != nil || v.Greeting != "hello X" {
				t.Errorf("item %+v (value %s)", it, it.Value)
			}
		}
		for _, n := range nodeNames {
			if !seen[n] {
				t.Errorf("no item for %s", n)
			}
		}
	})

	t.Run("a failing task exits 1", func(t *testing.T) {
		r := c.baton(t, "task", "run", "demo::fail", "--nodes", "web1")
		if r.code != 1 {
			t.Fatalf("want exit 1: %s", r)
		}
		row := tableRows(r.stdout)["web1"]
		if len(row) < 2 || row[1] != "failed" || !strings.Contains(strings.Join(row, " "), "exit code 3") {
			t.Errorf("row for web1 = %v\n%s", row, r)
		}
		r = c.baton(t, "task", "run", "demo::fail", "--nodes", "web1", "--format", "json")
		var out boltOutput
		decodeJSON(t, "task run --format json", r.stdout, &out)
		if r.code != 1 || len(out.Items) != 1 || out.Items[0].Status != "failure" || !strings.Contains(string(out.Items[0].Value), "task-error") {
			t.Errorf("json failure: %s", r)
		}
	})

	t.Run("--query selects nodes", func(t *testing.T) {
		r := c.batonOK(t, "task", "run", "demo::hello", "--query", `inventory[certname] { certname ~ "^web" }`, "--format", "json")
		var out boltOutput
		decodeJSON(t, "task run --query", r.stdout, &out)
		targets := map[string]string{}
		for _, it := range out.Items {
			targets[it.Target] = it.Status
		}
		if len(targets) != 2 || targets["web1"] != "success" || targets["web2"] != "success" {
			t.Errorf("--query matched %v:\n%s", targets, r)
		}
		r = c.baton(t, "task", "run", "demo::hello", "--query", `inventory[certname] { certname = "nosuch" }`)
		if r.code != 1 || !strings.Contains(r.stderr, "matches no nodes") {
			t.Errorf("query matching nothing: %s", r)
		}
	})

	t.Run("offline and unknown nodes error and the run exits 1", func(t *testing.T) {
		c.batonOK(t, "node", "add", "offline", "--out", filepath.Join(c.root, "offline.cred"))
		r := c.baton(t, "task", "run", "demo::hello", "--nodes", "web1,offline,ghost")
		if r.code != 1 {
			t.Fatalf("want exit 1: %s", r)
		}
		rows := tableRows(r.stdout)
		for node, want := range map[string]string{"web1": "hello world", "offline": "did not connect within 3s", "ghost": "not enrolled"} {
			wantState := "errored"
			if node == "web1" {
				wantState = "finished"
			}
			if row := rows[node]; len(row) < 2 || row[1] != wantState || !strings.Contains(strings.Join(row, " "), want) {
				t.Errorf("row for %s = %v, want %s and %q", node, row, wantState, want)
			}
		}
		if !strings.Contains(r.stdout, "1 finished") || !strings.Contains(r.stdout, "2 errored") {
			t.Errorf("summary:\n%s", r.stdout)
		}
	})

	t.Run("--no-wait then job show, events and list", func(t *testing.T) {
		r := c.batonOK(t, "task", "run", "demo::hello", "--nodes", "db1", "--no-wait", "name=later")
		if !regexp.MustCompile(`^\d+\n$`).MatchString(r.stdout) {
			t.Fatalf("--no-wait stdout is not just a job id: %q", r.stdout)
		}
		id := strings.TrimSpace(r.stdout)
		eventually(t, "job "+id+" to finish", 20*time.Second, func() bool {
			var out struct {
				Job struct {
					Name, State string
				} `json:"job"`
				Nodes []struct{ Name, State string } `json:"nodes"`
			}
			decodeJSON(t, "job show --format json", c.batonOK(t, "job", "show", id, "--format", "json").stdout, &out)
			if out.Job.Name != id || len(out.Nodes) != 1 || out.Nodes[0].Name != "db1" {
				t.Fatalf("job show %s --format json: %+v", id, out)
			}
			return out.Job.State == "finished"
		})
		show := c.batonOK(t, "job", "show", id).stdout
		if !strings.HasPrefix(show, "Job "+id+" (task demo::hello) finished") || !strings.Contains(show, `"greeting":"hello later"`) {
			t.Errorf("job show %s:\n%s", id, show)
		}
		if row := tableRows(show)["db1"]; len(row) < 2 || row[1] != "finished" {
			t.Errorf("job show %s has no finished row for db1:\n%s", id, show)
		}
		events := c.batonOK(t, "job", "events", id).stdout
		for _, ev := range []string{"node_running", "node_finished", "job_finished"} {
			if !strings.Contains(events, ev) {
				t.Errorf("job events %s has no %s:\n%s", id, ev, events)
			}
		}
		if later := c.batonOK(t, "job", "events", id, "--start", "3").stdout; strings.Contains(later, "node_running") || !strings.Contains(later, "job_finished") {
			t.Errorf("job events %s --start 3:\n%s", id, later)
		}
		list := c.batonOK(t, "job", "list").stdout
		row := tableRows(list)[id]
		if len(row) < 3 || row[1] != "task" || row[2] != "finished" || row[len(row)-1] != "demo::hello" {
			t.Errorf("job list row for %s = %v\n%s", id, row, list)
		}
		if !strings.HasPrefix(list, "JOB ") {
			t.Errorf("job list has no header:\n%s", list)
		}
	})

	t.Run("node groups", func(t *testing.T) {
		if r := c.batonOK(t, "group", "add", "webs", "--query", `inventory[certname] { certname ~ "^web" }`, "--description", "web servers"); r.stdout != "Group webs created\n" {
			t.Errorf("group add: %s", r)
		}
		c.batonOK(t, "group", "add", "dbs", "--nodes", "db1")
		rows := tableRows(c.batonOK(t, "group", "list").stdout)
		if r := rows["webs"]; len(r) < 2 || !strings.Contains(strings.Join(r, " "), "web servers") {
			t.Errorf("group list row for webs = %v", r)
		}
		if r := rows["dbs"]; len(r) < 2 || r[1] != "db1" {
			t.Errorf("group list row for dbs = %v", r)
		}
		var g struct {
			Name, Query string
			Nodes       []string
		}
		decodeJSON(t, "group show", c.batonOK(t, "group", "show", "dbs").stdout, &g)
		if g.Name != "dbs" || len(g.Nodes) != 1 || g.Nodes[0] != "db1" || g.Query != "" {
			t.Errorf("group show dbs = %+v", g)
		}
		r := c.batonOK(t, "task", "run", "demo::hello", "--node-group", "webs", "--format", "json")
		var out boltOutput
		decodeJSON(t, "task run --node-group", r.stdout, &out)
		targets := map[string]string{}
		for _, it := range out.Items {
			targets[it.Target] = it.Status
		}
		if len(targets) != 2 || targets["web1"] != "success" || targets["web2"] != "success" {
			t.Errorf("--node-group webs ran on %v", targets)
		}
		if r := c.batonOK(t, "group", "rm", "webs"); r.stdout != "Group webs removed\n" {
			t.Errorf("group rm: %s", r)
		}
		if r := c.baton(t, "group", "show", "webs"); r.code != 1 {
			t.Errorf("group show after rm: %s", r)
		}
		if _, ok := tableRows(c.batonOK(t, "group", "list").stdout)["webs"]; ok {
			t.Error("group list still has webs after rm")
		}
	})

	t.Run("job stop --force ends a running task and events --follow returns", func(t *testing.T) {
		r := c.batonOK(t, "task", "run", "demo::sleep", "--nodes", "db1", "--no-wait", "seconds=600")
		id := strings.TrimSpace(r.stdout)
		eventually(t, "job "+id+" to run", 20*time.Second, func() bool {
			var out struct {
				Nodes []struct{ State string } `json:"nodes"`
			}
			decodeJSON(t, "job show --format json", c.batonOK(t, "job", "show", id, "--format", "json").stdout, &out)
			return len(out.Nodes) == 1 && out.Nodes[0].State == "running"
		})
		start := time.Now()
		if r := c.batonOK(t, "job", "stop", id, "--force"); !strings.HasPrefix(r.stdout, "Job "+id+" ") {
			t.Errorf("job stop: %s", r)
		}
		follow := c.batonOK(t, "job", "events", id, "--follow").stdout
		if !strings.Contains(follow, "node_running") || !regexp.MustCompile(`job_(finished|aborted)`).MatchString(follow) {
			t.Errorf("job events --follow:\n%s", follow)
		}
		// The task would sleep 600 s: the stop ended it, not the task's own end.
		if d := time.Since(start); d > 2*time.Minute {
			t.Errorf("a forced stop took %s", d)
		}
		var out struct {
			Job   struct{ State string }   `json:"job"`
			Nodes []struct{ State string } `json:"nodes"`
		}
		decodeJSON(t, "job show --format json", c.batonOK(t, "job", "show", id, "--format", "json").stdout, &out)
		if out.Job.State != "stopped" || len(out.Nodes) != 1 || out.Nodes[0].State != "stopped" {
			t.Errorf("after job stop --force: job %s, nodes %+v", out.Job.State, out.Nodes)
		}
		if r := c.baton(t, "job", "stop", "99999"); r.code != 1 {
			t.Errorf("job stop of an unknown job: %s", r)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			args   []string
			code   int
			stderr string
		}{
			{"no arguments", nil, 2, ""},
			{"unknown command", []string{"bogus"}, 2, `unknown command "bogus"`},
			{"unknown subcommand", []string{"task", "bogus"}, 2, `unknown subcommand "bogus"`},
			{"missing subcommand", []string{"job"}, 2, "missing subcommand"},
			{"unknown flag", []string{"task", "list", "--bogus"}, 2, "flag provided but not defined"},
			{"task run without nodes", []string{"task", "run", "demo::hello"}, 2, "exactly one of --nodes, --query or --node-group"},
			{"task run without task", []string{"task", "run", "--nodes", "web1"}, 2, "needs a task name"},
			{"nodes and query", []string{"task", "run", "demo::hello", "--nodes", "web1", "--query", "nodes[certname] {}"}, 2, "exactly one of --nodes"},
			{"group without members", []string{"group", "add", "g"}, 2, "usage: baton group add"},
			{"unknown group", []string{"task", "run", "demo::hello", "--node-group", "nosuch"}, 1, "nosuch"},
			{"bad query", []string{"task", "run", "demo::hello", "--query", "inventory[certname] { certname = }"}, 1, "query"},
			{"bad format", []string{"task", "run", "demo::hello", "--nodes", "web1", "--format", "yaml"}, 2, "--format"},
			{"params not an object", []string{"task", "run", "demo::hello", "--nodes", "web1", "--params", "[1]"}, 2, "--params must be one JSON object"},
			{"params and k=v", []string{"task", "run", "demo::hello", "--nodes", "web1", "--params", "{}", "name=x"}, 2, "not both"},
			{"bad timeout", []string{"task", "run", "demo::hello", "--nodes", "web1", "--timeout", "1.5s"}, 2, "--timeout"},
			{"node add without --out", []string{"node", "add", "web9"}, 2, "--out FILE"},
			{"unknown task", []string{"task", "run", "demo::nope", "--nodes", "web1"}, 1, "Unknown task demo::nope"},
			{"unknown task with k=v", []string{"task", "run", "demo::nope", "--nodes", "web1", "a=b"}, 1, "demo::nope"},
			{"invalid parameter", []string{"task", "run", "demo::hello", "--nodes", "web1", "--params", `{"name":""}`}, 1, "name"},
			{"unknown job", []string{"job", "show", "99999"}, 1, "99999"},
			{"unknown node", []string{"node", "show", "nosuch"}, 1, "nosuch"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := c.baton(t, tc.args...)
				if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
					t.Errorf("baton %s: want exit %d and %q on stderr, got %s", strings.Join(tc.args, " "), tc.code, tc.stderr, r)
				}
				if tc.code == 2 && tc.args == nil && !strings.Contains(r.stderr, "Usage:") {
					t.Errorf("no usage text: %s", r)
				}
			})
		}
	})

	t.Run("wrong token", func(t *testing.T) {
		bad := filepath.Join(c.root, "bad.token")
		if err := os.WriteFile(bad, []byte("not-a-token\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for name, r := range map[string]result{
			"--token-file":     c.baton(t, "task", "list", "--token-file", bad),
			"BATON_TOKEN_FILE": c.runEnv(t, []string{"BATON_TOKEN_FILE=" + bad}, "baton", "job", "list"),
		} {
			if r.code != 1 || !strings.Contains(strings.ToLower(r.stderr), "authentication") {
				t.Errorf("%s with a wrong token: want exit 1 mentioning authentication, got %s", name, r)
			}
		}
		r := c.baton(t, "task", "list", "--token-file", filepath.Join(c.root, "missing.token"))
		if r.code != 1 || !strings.Contains(r.stderr, "no API token") {
			t.Errorf("missing token file: %s", r)
		}
	})

	t.Run("the CLI checks the server's certificate", func(t *testing.T) {
		// Without the local state the CLI knows no pin: the system's CAs refuse the certificate.
		noState := []string{"XDG_CONFIG_HOME=" + filepath.Join(c.root, "no-config"), "BATON_SERVER=" + st.URL,
			"BATON_TOKEN_FILE=" + st.TokenFile}
		r := c.runEnv(t, noState, "baton", "node", "list")
		if r.code != 1 || !strings.Contains(r.stderr, "certificate") {
			t.Errorf("without a pin: want exit 1 about the certificate, got %s", r)
		}
		r = c.runEnv(t, append(noState, "BATON_TLS_FINGERPRINT="+st.TLSFingerprint), "baton", "node", "list")
		if r.code != 0 {
			t.Errorf("with BATON_TLS_FINGERPRINT: %s", r)
		}
		other := strings.Repeat("0", 64)
		r = c.runEnv(t, append(noState, "BATON_TLS_FINGERPRINT="+other), "baton", "node", "list")
		if r.code != 1 || !strings.Contains(r.stderr, "not the expected "+other) {
			t.Errorf("pinning another certificate: want exit 1 naming the pin, got %s", r)
		}
		cred := filepath.Join(c.root, "remote.cred")
		r = c.runEnv(t, noState, "baton", "node", "add", "remote1", "--out", cred, "--tls-fingerprint", strings.ToUpper(st.TLSFingerprint))
		if r.code != 0 {
			t.Fatalf("node add --tls-fingerprint: %s", r)
		}
		if got, err := auth.ReadCredential(cred); err != nil || got.Fingerprint != st.TLSFingerprint {
			t.Errorf("node add --tls-fingerprint wrote %+v, %v; want fingerprint %s", got, err, st.TLSFingerprint)
		}
		r = c.runEnv(t, noState, "baton", "node", "add", "remote2", "--out", filepath.Join(c.root, "remote2.cred"), "--ca-file", st.TLSCertFile)
		if r.code != 0 || !strings.Contains(r.stderr, "--ca-file "+st.TLSCertFile) {
			t.Errorf("node add --ca-file: want success and a hint to start the agent with the CA file, got %s", r)
		}
	})

	t.Run("baton-agent refuses ws:// to a host that is not loopback", func(t *testing.T) {
		// The agent checks its settings before it dials: nothing is sent to 10.1.2.3.
		cred := filepath.Join(c.root, "lan.cred")
		if err := auth.WriteCredential(cred, auth.Credential{Name: "lan1", Secret: "s3cret", Server: "ws://10.1.2.3:8143/pcp"}); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(c.root, "lan")
		r := c.runEnv(t, nil, "baton-agent", "--credential", cred, "--cache-dir", filepath.Join(dir, "cache"), "--spool-dir", filepath.Join(dir, "spool"))
		if r.code != 1 || !strings.Contains(r.stderr, "--insecure") {
			t.Errorf("want exit 1 mentioning --insecure, got %s", r)
		}
	})

	t.Run("baton-agent refuses a credential others can read", func(t *testing.T) {
		b, err := os.ReadFile(creds["web1"])
		if err != nil {
			t.Fatal(err)
		}
		open := filepath.Join(c.root, "open.cred")
		if err := os.WriteFile(open, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(open, 0o644); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(c.root, "refused")
		r := c.runEnv(t, nil, "baton-agent", "--credential", open, "--cache-dir", filepath.Join(dir, "cache"), "--spool-dir", filepath.Join(dir, "spool"))
		if r.code != 1 || !strings.Contains(r.stderr, "chmod 600") {
			t.Errorf("want exit 1 mentioning chmod 600, got %s", r)
		}
		r = c.runEnv(t, nil, "baton-agent", "--credential", creds["web1"], "--name", "web2", "--cache-dir", filepath.Join(dir, "cache"), "--spool-dir", filepath.Join(dir, "spool"))
		if r.code != 1 || !strings.Contains(r.stderr, "does not match") {
			t.Errorf("name mismatch: want exit 1, got %s", r)
		}
		r = c.runEnv(t, nil, "baton-agent")
		if r.code != 1 || !strings.Contains(r.stderr, "credential file is required") {
			t.Errorf("no credential: want exit 1, got %s", r)
		}
	})

	t.Run("SIGTERM stops everything cleanly and a restart keeps the jobs", func(t *testing.T) {
		for _, n := range nodeNames {
			if err := c.agents[n].stop(); err != nil {
				t.Errorf("baton-agent %s on SIGTERM: %v\n%s", n, err, c.agents[n].output.String())
			}
		}
		if err := c.server.stop(); err != nil {
			t.Fatalf("baton serve on SIGTERM: %v\n%s", err, c.server.output.String())
		}
		if out := c.server.output.String(); !strings.Contains(out, "baton: shutting down") {
			t.Errorf("baton serve did not say it was shutting down:\n%s", out)
		}
		tokenBefore, err := os.ReadFile(filepath.Join(c.dataDir, "admin.token"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(c.stateFile); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("baton serve left %s behind after it stopped (%v)", c.stateFile, err)
		}
		c.serve(t)
		if after := c.state(t); after.TLSFingerprint != st.TLSFingerprint {
			t.Errorf("the certificate changed across a restart: %s, then %s", st.TLSFingerprint, after.TLSFingerprint)
		}
		if tokenAfter, err := os.ReadFile(filepath.Join(c.dataDir, "admin.token")); err != nil || !bytes.Equal(tokenBefore, tokenAfter) {
			t.Errorf("the admin token changed across a restart (%v)", err)
		}
		if show := c.batonOK(t, "job", "show", "1").stdout; !strings.HasPrefix(show, "Job 1 (task demo::hello) finished — 3 finished") {
			t.Errorf("job 1 after restart:\n%s", show)
		}
		rows := tableRows(c.batonOK(t, "node", "list").stdout)
		for _, n := range nodeNames {
			if r := rows[n]; len(r) < 2 || r[1] != "false" {
				t.Errorf("after restart without agents, node list row for %s = %v", n, r)
			}
		}
	})
}

// TestServeRefusesBadSettings checks that `baton serve` fails at once, without recording
// itself for the CLI, when it cannot start.
func TestServeRefusesBadSettings(t *testing.T) {
	c := newCluster(t)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"bad log level", []string{"--log-level", "loud"}, 2, "--log-level"},
		{"bad listen address", []string{"--listen", "127.0.0.1:99999"}, 1, "99999"},
		{"missing modules", []string{"--modules", filepath.Join(c.root, "nope")}, 1, "nope"},
		{"certificate without key", []string{"--tls-cert", filepath.Join(c.root, "x.crt")}, 1, "--tls-key"},
		{"missing certificate", []string{"--tls-cert", filepath.Join(c.root, "x.crt"), "--tls-key", filepath.Join(c.root, "x.key")}, 1, "x.crt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data", filepath.Join(c.root, "data-"+strings.ReplaceAll(tc.name, " ", "-")),
				"--modules", c.modules}, tc.args...)
			r := c.baton(t, args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("baton %s: want exit %d and %q on stderr, got %s", strings.Join(args, " "), tc.code, tc.stderr, r)
			}
			if _, err := os.Stat(c.stateFile); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a server that did not start wrote %s (%v)", c.stateFile, err)
			}
		})
	}
}
