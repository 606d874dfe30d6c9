package puppet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/baton-run/baton/shared/puppetrun"
)

// Input, Result and DeployOptions are the run contract shared with the control plane
// (shared/puppetrun); the aliases let the agent use this package alone.
type (
	Input         = puppetrun.Input
	Result        = puppetrun.Result
	DeployOptions = puppetrun.DeployOptions
)

// FlagsFromOptions maps PE deploy keys to `puppet agent` flags (puppetrun.Flags).
func FlagsFromOptions(o DeployOptions) ([]string, error) { return puppetrun.Flags(o) }

// ValidateFlags checks run flags against pxp-module-puppet's allow-list
// (puppetrun.ValidateFlags). Its errors wrap puppetrun.ErrInvalidFlags; Run reports them as
// error_type invalid_json.
func ValidateFlags(flags []string) error { return puppetrun.ValidateFlags(flags) }

// Modes of Config.Mode.
const (
	// ModeAgent runs `puppet agent --onetime` against the node's Puppet server (the default).
	ModeAgent = "agent"
	// ModeApply runs `puppet apply` on a local manifest (masterless nodes).
	ModeApply = "apply"
)

// DefaultLockWait is how long Run waits for another Puppet run to finish before retrying.
const DefaultLockWait = 10 * time.Minute

// lockPoll is how often Run looks at the run lockfile while waiting (pxp-module-puppet: 0.1 s).
const lockPoll = 100 * time.Millisecond

// ErrInvalidConfig is wrapped by Config.Validate errors.
var ErrInvalidConfig = errors.New("invalid puppet run config")

// Config is the node's local Puppet run configuration. Nothing in it comes from the server.
type Config struct {
	// PuppetBin is the puppet executable, a path or a name looked up in PATH; default "puppet".
	PuppetBin string
	// Mode is ModeAgent (default) or ModeApply.
	Mode string
	// Manifest is the manifest `puppet apply` runs (required in apply mode).
	Manifest string
	// ModulePath, when set, is passed to `puppet apply` as --modulepath.
	ModulePath string
	// ExtraArgs are Puppet settings added to every puppet command, including the --configprint
	// call (e.g. --confdir/--vardir for an isolated Puppet). They must be valid for both
	// `puppet agent` and `puppet apply`, and come after the run's flags, so they win.
	ExtraArgs []string
	// LockWait bounds the wait for another Puppet run's lock; default DefaultLockWait.
	LockWait time.Duration
	// Env is puppet's whole environment; nil inherits the agent's.
	Env []string
	// TimeoutCause is the context cause (besides context.DeadlineExceeded) that means the run
	// timed out rather than was cancelled; the agent sets its own timeout error here.
	TimeoutCause error
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	switch c.Mode {
	case "", ModeAgent:
		if c.Manifest != "" || c.ModulePath != "" {
			return fmt.Errorf("%w: manifest and module path apply only to mode %q", ErrInvalidConfig, ModeApply)
		}
	case ModeApply:
		if c.Manifest == "" {
			return fmt.Errorf("%w: mode %q needs a manifest", ErrInvalidConfig, ModeApply)
		}
	default:
		return fmt.Errorf("%w: unknown mode %q (want %q or %q)", ErrInvalidConfig, c.Mode, ModeAgent, ModeApply)
	}
	if c.LockWait < 0 {
		return fmt.Errorf("%w: negative lock wait %s", ErrInvalidConfig, c.LockWait)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.PuppetBin == "" {
		c.PuppetBin = "puppet"
	}
	if c.Mode == "" {
		c.Mode = ModeAgent
	}
	if c.LockWait == 0 {
		c.LockWait = DefaultLockWait
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// jobIDRE is what a job id passed to --job-id may look like (the flag-item pattern).
var jobIDRE = regexp.MustCompile(`\A[a-zA-Z0-9_:,.\-]+\z`)

// Run performs one Puppet run as pxp-module-puppet does and reports it. It never returns an
// error: every failure is a Result with error_type and error set (see puppetrun.Result).
//
// Agent mode runs `<bin> agent <flags> <ExtraArgs> --onetime --no-daemonize --verbose
// [--job-id <job>]`; after a non-zero exit a disabled agent gives agent_disabled, and a run
// lock held by another Puppet run is waited for (LockWait) and the run retried once, then
// agent_locked. Apply mode runs `<bin> apply <flags> <ExtraArgs> --detailed-exitcodes
// [--modulepath <dir>] <manifest>`; because puppet apply ignores the agent's locks, Run checks
// them before starting. The flags pluginsync, splay, use_cached_catalog, usecacheonfailure and
// waitforcert concern fetching a catalog from a server and are dropped in apply mode, and so
// is the job id. Exit code 2 of puppet apply (changes applied) is reported as 0.
//
// The result is read from last_run_report.yaml: a report not rewritten by the run gives
// no_last_run_report (status "failed" when puppet exited with a failure), an unreadable one
// invalid_last_run_report, and a failing exit code agent_exit_non_zero. The last Error lines
// of puppet's output are appended to error. When ctx ends (or in.Timeout elapses) puppet's
// process group and all its descendants are killed and the result has Canceled or TimedOut
// set (TimedOut when ctx's cause is context.DeadlineExceeded or Config.TimeoutCause).
func Run(ctx context.Context, cfg Config, in Input) Result {
	if err := cfg.Validate(); err != nil {
		return failure(-1, puppetrun.ErrorAgentFailedToStart, err.Error())
	}
	r := runner{cfg: cfg.withDefaults()}
	r.log = r.cfg.Logger.With("component", "puppet", "mode", r.cfg.Mode)
	if err := checkInput(in); err != nil {
		return failure(-1, puppetrun.ErrorInvalidJSON, err.Error())
	}
	if in.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(in.Timeout)*time.Second)
		defer cancel()
	}
	res := r.run(ctx, in)
	res.Noop = puppetrun.NoopFlags{Noop: slices.Contains(in.Flags, "--noop"), NoNoop: slices.Contains(in.Flags, "--no-noop")}
	return res
}

func checkInput(in Input) error {
	if err := ValidateFlags(in.Flags); err != nil {
		return err
	}
	if in.Job != "" && (!jobIDRE.MatchString(in.Job) || strings.HasPrefix(in.Job, "-")) {
		return fmt.Errorf("%w: job id %q has characters that are not allowed", puppetrun.ErrInvalidFlags, in.Job)
	}
	if in.Timeout < 0 {
		return fmt.Errorf("%w: negative timeout %d", puppetrun.ErrInvalidFlags, in.Timeout)
	}
	return nil
}

// failure is pxp-module-puppet's error result: every string field "unknown", no metrics.
func failure(exitcode int, errorType, msg string) Result {
	return Result{Time: "unknown", TransactionUUID: "unknown", Environment: "unknown", Status: "unknown",
		Exitcode: exitcode, Version: 1, ErrorType: errorType, Error: msg}
}

type runner struct {
	cfg Config
	log *slog.Logger
}

// paths are the files Puppet itself reports through --configprint.
type paths struct {
	report, disabledLock, runLock string
}

const (
	msgWaitingForLock = "another puppet run holds the run lock; waiting"
	msgRetrying       = "retrying the puppet run"
)

var (
	disabledOutputRE = regexp.MustCompile(`(?s)administratively disabled.*?Use 'puppet agent --enable' to re-enable`)
	runningOutputRE  = regexp.MustCompile(`Run of Puppet configuration client already in progress`)
)

func (r *runner) run(ctx context.Context, in Input) Result {
	bin, err := exec.LookPath(r.cfg.PuppetBin)
	if err != nil {
		return failure(-1, puppetrun.ErrorNoPuppetBin, fmt.Sprintf("Puppet executable '%s' does not exist", r.cfg.PuppetBin))
	}
	p, err := r.configPrint(ctx, bin)
	if err != nil {
		if ctx.Err() != nil {
			return r.stopped(ctx, -1)
		}
		return failure(-1, puppetrun.ErrorNoLastRunReport, "could not find the location of the last run report: "+err.Error())
	}
	if r.cfg.Mode == ModeApply {
		// puppet apply neither honours nor takes the agent's locks: check them first.
		if msg, disabled := disabledState(p.disabledLock); disabled {
			return failure(-1, puppetrun.ErrorAgentDisabled, disabledError(msg))
		}
		if lockHeld(p.runLock) && !r.waitForLock(ctx, p.runLock) {
			if ctx.Err() != nil {
				return r.stopped(ctx, -1)
			}
			return failure(-1, puppetrun.ErrorAgentLocked, "Puppet agent is already performing a run")
		}
	}
	args := r.command(in)
	for attempt := 1; ; attempt++ {
		before, _ := os.Stat(p.report)
		out, exit, err := r.execute(ctx, bin, args)
		if err != nil {
			return failure(-1, puppetrun.ErrorAgentFailedToStart, "Failed to start Puppet: "+err.Error())
		}
		if ctx.Err() != nil && exit == -1 {
			return r.stopped(ctx, exit)
		}
		if r.cfg.Mode == ModeAgent && exit != 0 {
			if msg, disabled := disabledState(p.disabledLock); disabled || disabledOutputRE.Match(out) {
				return failure(exit, puppetrun.ErrorAgentDisabled, disabledError(msg))
			}
			if lockHeld(p.runLock) || runningOutputRE.Match(out) {
				if attempt > 1 {
					return failure(exit, puppetrun.ErrorAgentLocked, "Puppet agent is already performing a run")
				}
				r.waitForLock(ctx, p.runLock)
				if ctx.Err() != nil {
					return r.stopped(ctx, -1)
				}
				r.log.Info(msgRetrying)
				continue
			}
		}
		return r.fromReport(p.report, before, exit, out)
	}
}

// command is the puppet command line of the run (without the executable).
func (r *runner) command(in Input) []string {
	if r.cfg.Mode == ModeApply {
		args := append([]string{"apply"}, applyFlags(in.Flags)...)
		args = append(args, r.cfg.ExtraArgs...)
		args = append(args, "--detailed-exitcodes")
		if r.cfg.ModulePath != "" {
			args = append(args, "--modulepath", r.cfg.ModulePath)
		}
		return append(args, r.cfg.Manifest)
	}
	args := append([]string{"agent"}, in.Flags...)
	args = append(args, r.cfg.ExtraArgs...)
	args = append(args, "--onetime", "--no-daemonize", "--verbose")
	if in.Job != "" {
		args = append(args, "--job-id", in.Job)
	}
	return args
}

// agentOnlyFlags configure how `puppet agent` gets its catalog from a server; they mean
// nothing to puppet apply (splay would even make it sleep), so apply mode drops them.
var agentOnlyFlags = []string{"pluginsync", "splay", "use_cached_catalog", "usecacheonfailure", "waitforcert"}

// applyFlags drops agentOnlyFlags (and the value of --waitforcert) from validated flags.
func applyFlags(flags []string) []string {
	var out []string
	for i := 0; i < len(flags); i++ {
		name := strings.TrimPrefix(strings.TrimPrefix(flags[i], "--"), "no-")
		if !slices.Contains(agentOnlyFlags, name) {
			out = append(out, flags[i])
			continue
		}
		if flags[i] == "--waitforcert" {
			i++ // its value
		}
	}
	return out
}

// configPrint asks puppet where its report and lockfiles are. It asks the subcommand that
// will run (`puppet apply --configprint` in apply mode), since agent and apply read different
// puppet.conf sections and the paths must be the ones the run uses.
func (r *runner) configPrint(ctx context.Context, bin string) (paths, error) {
	args := append([]string{r.cfg.Mode}, r.cfg.ExtraArgs...)
	args = append(args, "--configprint", "lastrunreport,agent_disabled_lockfile,agent_catalog_run_lockfile")
	out, exit, err := r.execute(ctx, bin, args)
	if err != nil {
		return paths{}, fmt.Errorf("start puppet --configprint: %w", err)
	}
	if exit != 0 {
		return paths{}, fmt.Errorf("puppet --configprint exited with %d: %s", exit, summarize(out))
	}
	var p paths
	for line := range strings.Lines(string(out)) {
		key, value, ok := strings.Cut(strings.TrimSpace(line), " = ")
		if !ok {
			continue
		}
		switch key {
		case "lastrunreport":
			p.report = value
		case "agent_disabled_lockfile":
			p.disabledLock = value
		case "agent_catalog_run_lockfile":
			p.runLock = value
		}
	}
	if p.report == "" || p.disabledLock == "" || p.runLock == "" {
		return paths{}, fmt.Errorf("unexpected puppet --configprint output: %s", summarize(out))
	}
	return p, nil
}

// outputLimit is how much of puppet's combined output Run keeps (the end of it).
const outputLimit = 64 << 10

// execute runs puppet in its own process group and returns the tail of its combined output
// and its exit code (-1 when killed by a signal). err is set only when it could not start.
// When ctx ends the process tree is killed (killProcessTree).
func (r *runner) execute(ctx context.Context, bin string, args []string) ([]byte, int, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = r.cfg.Env
	out := &tailBuffer{limit: outputLimit}
	cmd.Stdout, cmd.Stderr = out, out
	setProcessGroup(cmd)
	cmd.Cancel = func() error { return killProcessTree(cmd.Process.Pid) }
	// A process that keeps puppet's output pipe open must not hold the run forever.
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	r.log.Debug("running puppet", "args", args)
	err := cmd.Run()
	if cmd.ProcessState == nil {
		return nil, -1, err
	}
	exit := cmd.ProcessState.ExitCode()
	r.log.Debug("puppet finished", "args", args, "exitcode", exit, "duration", time.Since(start))
	return out.Bytes(), exit, nil
}

// waitForLock polls the run lockfile until no live Puppet run holds it, for at most
// LockWait; it reports whether the lock was released.
func (r *runner) waitForLock(ctx context.Context, path string) bool {
	r.log.Info(msgWaitingForLock, "lockfile", path, "max_wait", r.cfg.LockWait)
	deadline := time.NewTimer(r.cfg.LockWait)
	defer deadline.Stop()
	tick := time.NewTicker(lockPoll)
	defer tick.Stop()
	for lockHeld(path) {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-tick.C:
		}
	}
	return true
}

// stopped is the result of a run ended by ctx.
func (r *runner) stopped(ctx context.Context, exit int) Result {
	cause := context.Cause(ctx)
	res := failure(exit, puppetrun.ErrorAgentExitNonZero, "")
	if errors.Is(cause, context.DeadlineExceeded) || (r.cfg.TimeoutCause != nil && errors.Is(cause, r.cfg.TimeoutCause)) {
		res.TimedOut = true
		res.Error = "The Puppet run timed out and was killed"
	} else {
		res.Canceled = true
		res.Error = "The Puppet run was stopped: " + cause.Error()
	}
	r.log.Info("puppet run ended early", "cause", cause)
	return res
}

// failedExit reports whether puppet's exit code means the run failed; --detailed-exitcodes
// (apply mode) exits 2 when changes were applied.
func (r *runner) failedExit(exit int) bool {
	return exit != 0 && !(r.cfg.Mode == ModeApply && exit == 2)
}

// fromReport builds the result of a finished run from last_run_report.yaml.
func (r *runner) fromReport(path string, before os.FileInfo, exit int, out []byte) Result {
	failed := r.failedExit(exit)
	code := exit
	if !failed {
		code = 0
	}
	detail := ""
	if failed {
		detail = summarize(out)
		r.log.Debug("puppet run failed", "exitcode", exit, "output", string(out))
	}
	withDetail := func(msg string) string {
		if detail == "" {
			return msg
		}
		return msg + ": " + detail
	}
	after, err := os.Stat(path)
	if err != nil || !rewritten(before, after) {
		res := failure(code, puppetrun.ErrorNoLastRunReport, withDetail("The Puppet run failed in an unexpected way"))
		if failed {
			res.Status = "failed"
		}
		return res
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return failure(code, puppetrun.ErrorInvalidLastRunReport, fmt.Sprintf("%s could not be loaded: %v", path, err))
	}
	rep, err := parseReport(data)
	if err != nil {
		return failure(code, puppetrun.ErrorInvalidLastRunReport, fmt.Sprintf("%s could not be loaded: %v", path, err))
	}
	res := Result{Time: rep.time, TransactionUUID: rep.transactionUUID, Environment: rep.environment,
		Status: rep.status, Metrics: rep.metrics, Exitcode: code, Version: 1,
		NoopPending: rep.noopPending, ConfigurationVersion: rep.configurationVersion}
	if failed {
		res.ErrorType = puppetrun.ErrorAgentExitNonZero
		res.Error = withDetail(fmt.Sprintf("Puppet %s exited with a non 0 exitcode (%d)", r.cfg.Mode, exit))
	}
	return res
}

// rewritten reports whether the report file after the run is not the one seen before it.
func rewritten(before, after os.FileInfo) bool {
	if before == nil {
		return true
	}
	return !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size()
}

func disabledError(msg string) string {
	if msg == "" {
		return "Puppet agent is disabled"
	}
	return "Puppet agent is disabled: " + msg
}
