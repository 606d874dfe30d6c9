package puppet

// These tests run the real puppet (Debian's puppet-agent 7). Every run is isolated: confdir,
// vardir, codedir, logdir, rundir, ssldir and publicdir live under t.TempDir(), so nothing
// touches /etc/puppet or /var. Agent-mode runs get a throwaway CA and certificate and a
// server address nobody listens on, so they fail at catalog retrieval, as a node whose server
// is down does. They are skipped when puppet is not on PATH unless BATON_REQUIRE_PUPPET is set.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/puppetrun"
)

func requirePuppet(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("puppet"); err != nil {
		if os.Getenv("BATON_REQUIRE_PUPPET") != "" {
			t.Fatalf("BATON_REQUIRE_PUPPET is set but puppet is not on PATH: %v", err)
		}
		t.Skip("puppet is not on PATH (set BATON_REQUIRE_PUPPET=1 to fail instead)")
	}
}

// sandbox is an isolated Puppet: its own directories, manifest and logger.
type sandbox struct {
	dir string
	cfg Config
	log *logRecorder
}

func newSandbox(t *testing.T, mode string) *sandbox {
	t.Helper()
	requirePuppet(t)
	dir := t.TempDir()
	var extra []string
	for _, d := range []string{"confdir", "vardir", "codedir", "logdir", "rundir", "ssldir", "publicdir"} {
		extra = append(extra, "--"+d, filepath.Join(dir, d))
	}
	rec := &logRecorder{t: t}
	sb := &sandbox{dir: dir, log: rec, cfg: Config{Mode: mode, ExtraArgs: extra,
		Logger: slog.New(rec).With("test", t.Name())}}
	if mode == ModeApply {
		sb.cfg.Manifest = filepath.Join(dir, "site.pp")
	}
	return sb
}

func (s *sandbox) path(name string) string { return filepath.Join(s.dir, name) }

// stateFile is a file in Puppet's statedir ($vardir/state), where --configprint puts the
// report and the lockfiles.
func (s *sandbox) stateFile(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(s.dir, "vardir", "state")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

func (s *sandbox) writeManifest(t *testing.T, src string) {
	t.Helper()
	if err := os.WriteFile(s.cfg.Manifest, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (s *sandbox) run(t *testing.T, ctx context.Context, in Input) Result {
	t.Helper()
	start := time.Now()
	res := Run(ctx, s.cfg, in)
	t.Logf("Run(%q) took %s: %+v", in.Flags, time.Since(start).Round(time.Millisecond), res)
	return res
}

// agentIdentity gives an agent-mode sandbox a CA and a signed certificate (so the agent gets
// past its SSL set-up) and a server port that refuses connections.
func (s *sandbox) agentIdentity(t *testing.T) {
	t.Helper()
	const certname = "baton-test"
	ssl := filepath.Join(s.dir, "ssldir")
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Baton test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: certname},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"certs/ca.pem":                      {Type: "CERTIFICATE", Bytes: caDER},
		"certs/" + certname + ".pem":        {Type: "CERTIFICATE", Bytes: der},
		"private_keys/" + certname + ".pem": {Type: "PRIVATE KEY", Bytes: pkcs8},
	} {
		p := filepath.Join(ssl, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	s.cfg.ExtraArgs = append(s.cfg.ExtraArgs, "--certname", certname, "--server", "127.0.0.1",
		"--serverport", strconv.Itoa(port), "--certificate_revocation", "false")
}

// logRecorder is a slog.Handler that writes to the test log and lets a test wait for a message.
type logRecorder struct {
	t       *testing.T
	mu      sync.Mutex
	msgs    []string
	waiters map[string]chan struct{}
	attrs   []slog.Attr
	parent  *logRecorder
}

func (h *logRecorder) root() *logRecorder {
	if h.parent != nil {
		return h.parent.root()
	}
	return h
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	root := h.root()
	root.t.Log(b.String())
	root.mu.Lock()
	defer root.mu.Unlock()
	root.msgs = append(root.msgs, r.Message)
	if ch, ok := root.waiters[r.Message]; ok {
		close(ch)
		delete(root.waiters, r.Message)
	}
	return nil
}

func (h *logRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logRecorder{parent: h, attrs: append(append([]slog.Attr{}, h.attrs...), attrs...)}
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// await returns a channel closed when msg is logged.
func (h *logRecorder) await(msg string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.waiters == nil {
		h.waiters = map[string]chan struct{}{}
	}
	ch := make(chan struct{})
	h.waiters[msg] = ch
	return ch
}

func (h *logRecorder) logged(msg string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.msgs {
		if m == msg {
			return true
		}
	}
	return false
}

var uuidRE = regexp.MustCompile(`\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\z`)

func fileManifest(path string) string {
	return fmt.Sprintf("file { '%s': ensure => file, content => \"managed by baton\\n\" }\n", path)
}

func TestApplyRun(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, ModeApply)
	target := sb.path("hello.txt")
	sb.writeManifest(t, fileManifest(target))
	flags, err := FlagsFromOptions(DeployOptions{Environment: "production", EnforceEnvironment: true, Evaltrace: true})
	if err != nil {
		t.Fatal(err)
	}
	// --splay would make puppet apply sleep for up to 30 minutes: apply mode must drop it.
	in := Input{Flags: append(flags, "--splay", "--waitforcert", "0", "--usecacheonfailure"), Job: "42", Timeout: 60}
	ctx := context.Background()

	first := sb.run(t, ctx, in)
	if first.ErrorType != "" || first.Status != "changed" || first.Exitcode != 0 || first.Version != 1 {
		t.Fatalf("first run = %+v, want changed without error", first)
	}
	if first.Metrics == nil || first.Metrics.Changed != 1 || first.Metrics.OutOfSync != 1 || first.Metrics.Failed != 0 || first.Metrics.Total < 1 {
		t.Errorf("first run metrics = %+v", first.Metrics)
	}
	if !uuidRE.MatchString(first.TransactionUUID) || first.Environment != "production" || first.ConfigurationVersion == "" ||
		first.Time == "unknown" || first.NoopPending || first.Noop != (puppetrun.NoopFlags{}) || !first.Succeeded() {
		t.Errorf("first run = %+v", first)
	}
	if data, err := os.ReadFile(target); err != nil || string(data) != "managed by baton\n" {
		t.Fatalf("target after first run: %q, %v", data, err)
	}

	second := sb.run(t, ctx, in)
	if second.ErrorType != "" || second.Status != "unchanged" || second.Exitcode != 0 {
		t.Fatalf("second run = %+v, want unchanged", second)
	}
	if second.Metrics == nil || second.Metrics.Changed != 0 || second.Metrics.OutOfSync != 0 || second.Metrics.Total != first.Metrics.Total {
		t.Errorf("second run metrics = %+v", second.Metrics)
	}
	if !uuidRE.MatchString(second.TransactionUUID) || second.TransactionUUID == first.TransactionUUID {
		t.Errorf("second run transaction_uuid %q (first %q)", second.TransactionUUID, first.TransactionUUID)
	}
}

func TestApplyOutcomes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		manifest func(dir string) string
		options  DeployOptions
		check    func(t *testing.T, dir string, r Result)
	}{
		{"noop on a fresh target", func(dir string) string { return fileManifest(filepath.Join(dir, "noop.txt")) }, DeployOptions{Noop: true},
			func(t *testing.T, dir string, r Result) {
				if r.ErrorType != "" || r.Status != "unchanged" || !r.NoopPending || r.Exitcode != 0 || !r.Noop.Noop || r.Noop.NoNoop {
					t.Errorf("noop run = %+v, want unchanged with noop_pending", r)
				}
				if r.Metrics == nil || r.Metrics.OutOfSync != 1 || r.Metrics.Changed != 0 {
					t.Errorf("noop run metrics = %+v", r.Metrics)
				}
				if _, err := os.Stat(filepath.Join(dir, "noop.txt")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a noop run created its target: %v", err)
				}
			}},
		{"syntax error", func(string) string { return "file { 'x': ensure => \n" }, DeployOptions{},
			func(t *testing.T, _ string, r Result) {
				// puppet apply writes no report when the manifest does not compile.
				if r.Status != "failed" || r.ErrorType != puppetrun.ErrorNoLastRunReport || r.Exitcode != 1 ||
					!strings.Contains(r.Error, "Syntax error") || r.Succeeded() {
					t.Errorf("syntax error run = %+v", r)
				}
			}},
		{"resource failure", func(dir string) string { return fileManifest(filepath.Join(dir, "missing", "dir", "x.txt")) }, DeployOptions{NoNoop: true},
			func(t *testing.T, _ string, r Result) {
				if r.Status != "failed" || r.ErrorType != puppetrun.ErrorAgentExitNonZero || r.Exitcode != 4 ||
					!strings.Contains(r.Error, "Could not set 'file' on ensure") || !r.Noop.NoNoop || !uuidRE.MatchString(r.TransactionUUID) {
					t.Errorf("failed run = %+v", r)
				}
				if r.Metrics == nil || r.Metrics.Failed != 1 {
					t.Errorf("failed run metrics = %+v", r.Metrics)
				}
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sb := newSandbox(t, ModeApply)
			sb.writeManifest(t, c.manifest(sb.dir))
			flags, err := FlagsFromOptions(c.options)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, sb.dir, sb.run(t, context.Background(), Input{Flags: flags}))
		})
	}
}

func TestApplyHonoursAgentLocks(t *testing.T) {
	t.Parallel()
	t.Run("disabled", func(t *testing.T) {
		t.Parallel()
		sb := newSandbox(t, ModeApply)
		target := sb.path("hello.txt")
		sb.writeManifest(t, fileManifest(target))
		if err := os.WriteFile(sb.stateFile(t, "agent_disabled.lock"), []byte(`{"disabled_message":"maintenance window"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		r := sb.run(t, context.Background(), Input{Flags: []string{}})
		if r.ErrorType != puppetrun.ErrorAgentDisabled || r.Error != "Puppet agent is disabled: maintenance window" ||
			r.Exitcode != -1 || r.Status != "unknown" {
			t.Errorf("run = %+v, want agent_disabled", r)
		}
		if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("puppet ran although the agent is disabled: %v", err)
		}
	})
	t.Run("locked", func(t *testing.T) {
		t.Parallel()
		sb := newSandbox(t, ModeApply)
		target := sb.path("hello.txt")
		sb.writeManifest(t, fileManifest(target))
		holder := startLockHolder(t)
		if err := os.WriteFile(sb.stateFile(t, "agent_catalog_run.lock"), []byte(strconv.Itoa(holder.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
		sb.cfg.LockWait = 300 * time.Millisecond
		r := sb.run(t, context.Background(), Input{Flags: []string{}})
		if r.ErrorType != puppetrun.ErrorAgentLocked || r.Exitcode != -1 || !sb.log.logged(msgWaitingForLock) {
			t.Errorf("run = %+v, want agent_locked after waiting", r)
		}
		if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("puppet ran although another run holds the lock: %v", err)
		}
	})
}

func TestAgentRun(t *testing.T) {
	t.Parallel()
	t.Run("disabled", func(t *testing.T) {
		t.Parallel()
		sb := newSandbox(t, ModeAgent)
		sb.agentIdentity(t)
		if err := os.WriteFile(sb.stateFile(t, "agent_disabled.lock"), []byte(`{"disabled_message":"maintenance window"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		r := sb.run(t, context.Background(), Input{Flags: []string{"--noop"}, Job: "76"})
		if r.ErrorType != puppetrun.ErrorAgentDisabled || r.Error != "Puppet agent is disabled: maintenance window" ||
			r.Exitcode != 1 || r.Status != "unknown" || !r.Noop.Noop {
			t.Errorf("run = %+v, want agent_disabled from puppet agent's exit", r)
		}
	})
	t.Run("lock released while waiting", func(t *testing.T) {
		t.Parallel()
		sb := newSandbox(t, ModeAgent)
		sb.agentIdentity(t)
		holder := startLockHolder(t)
		lock := sb.stateFile(t, "agent_catalog_run.lock")
		if err := os.WriteFile(lock, []byte(strconv.Itoa(holder.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
		sb.cfg.LockWait = time.Minute
		waiting := sb.log.await(msgWaitingForLock)
		released := make(chan error, 1)
		go func() {
			<-waiting
			// The other run ends: its process exits and its lockfile goes.
			_ = holder.Process.Kill()
			released <- os.Remove(lock)
		}()
		r := sb.run(t, context.Background(), Input{Flags: []string{}, Job: "77"})
		select {
		case err := <-released:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run returned without waiting for the lock")
		}
		// The retry ran: it could not reach the server, so the agent wrote a failed report.
		if !sb.log.logged(msgRetrying) || r.ErrorType != puppetrun.ErrorAgentExitNonZero || r.Status != "failed" ||
			r.Exitcode != 1 || !uuidRE.MatchString(r.TransactionUUID) || r.Environment != "production" ||
			!strings.Contains(r.Error, "Could not retrieve catalog") {
			t.Errorf("run = %+v, want the retried run's failed report", r)
		}
		report, err := os.ReadFile(sb.stateFile(t, "last_run_report.yaml"))
		if err != nil || !strings.Contains(string(report), "job_id: '77'") || !strings.Contains(string(report), r.TransactionUUID) {
			t.Errorf("the report does not carry --job-id 77 and the result's transaction: %v", err)
		}
	})
	t.Run("still locked after waiting", func(t *testing.T) {
		t.Parallel()
		sb := newSandbox(t, ModeAgent)
		sb.agentIdentity(t)
		holder := startLockHolder(t)
		if err := os.WriteFile(sb.stateFile(t, "agent_catalog_run.lock"), []byte(strconv.Itoa(holder.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
		sb.cfg.LockWait = 300 * time.Millisecond
		r := sb.run(t, context.Background(), Input{Flags: []string{}})
		if r.ErrorType != puppetrun.ErrorAgentLocked || r.Exitcode != 1 || !sb.log.logged(msgRetrying) {
			t.Errorf("run = %+v, want agent_locked after one retry", r)
		}
	})
}

var errTestTimeout = errors.New("test transaction timed out")

func TestStop(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name         string
		stop         func(cancel context.CancelCauseFunc) // ends ctx once the exec runs; nil: in.Timeout does
		timeout      int
		wantTimedOut bool
	}{
		{"cancelled", func(cancel context.CancelCauseFunc) { cancel(errors.New("operator stopped the job")) }, 0, false},
		{"timeout cause", func(cancel context.CancelCauseFunc) { cancel(errTestTimeout) }, 0, true},
		{"input timeout", nil, 1, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sb := newSandbox(t, ModeApply)
			sb.cfg.TimeoutCause = errTestTimeout
			pidFile := sb.path("exec.pid")
			// Puppet starts exec commands with setsid, outside its process group.
			sb.writeManifest(t, fmt.Sprintf("exec { 'hold': command => 'echo $$ > %s; exec sleep 600', provider => shell }\n", pidFile))
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			done := make(chan Result, 1)
			start := time.Now()
			var running sync.WaitGroup
			running.Add(1)
			go func() {
				defer running.Done()
				done <- Run(ctx, sb.cfg, Input{Flags: []string{}, Timeout: c.timeout})
			}()
			// However the test ends, the run ends first: it logs through t.
			t.Cleanup(func() { cancel(errors.New("test ended")); running.Wait() })
			var execPID int
			if c.stop != nil {
				execPID = waitForPIDFile(t, pidFile, done)
				c.stop(cancel)
			}
			var r Result
			select {
			case r = <-done:
			case <-time.After(2 * time.Minute):
				t.Fatal("Run did not return after its context ended")
			}
			t.Logf("stopped after %s: %+v", time.Since(start).Round(time.Millisecond), r)
			if r.TimedOut != c.wantTimedOut || r.Canceled == c.wantTimedOut || r.ErrorType != puppetrun.ErrorAgentExitNonZero || r.Succeeded() {
				t.Errorf("run = %+v, want timed_out=%v", r, c.wantTimedOut)
			}
			if execPID != 0 {
				waitGone(t, execPID)
			}
		})
	}
}

// waitForPIDFile polls until the exec resource has written its PID.
func waitForPIDFile(t *testing.T, path string, done <-chan Result) int {
	t.Helper()
	// Generous: puppet apply starts Ruby and compiles a catalog, and these tests run in
	// parallel with each other on a machine that may be busy.
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case r := <-done:
			t.Fatalf("Run returned before the exec started: %+v", r)
		case <-time.After(50 * time.Millisecond):
		}
		data, err := os.ReadFile(path)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && perr == nil && pid > 0 {
			return pid
		}
	}
	t.Fatal("the exec resource did not start")
	return 0
}

// waitGone polls until pid has exited (a zombie left to an init that does not reap counts).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && strings.HasPrefix(strings.TrimSpace(string(stat[i+1:])), "Z") {
			return
		}
		<-tick.C
	}
	t.Errorf("the exec's process %d survived the stop", pid)
}
