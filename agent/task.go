package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/baton-run/baton/shared/protocol"
	"github.com/baton-run/baton/shared/tasks"
)

// maxVerifyAttempts bounds how often a run starts over after a file failed its pre-execution
// SHA-256 check (each time the bad cache entry is removed and downloaded again).
const maxVerifyAttempts = 3

// validateTaskParams checks `task run` params before anything is spooled.
func validateTaskParams(raw json.RawMessage) error {
	var p protocol.TaskParams
	if err := json.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("params: %w", err)
	}
	if err := p.Validate(); err != nil {
		return err
	}
	if _, _, err := tasks.SplitTaskName(p.Task); err != nil {
		return err
	}
	if err := checkInputObject(p.Input); err != nil {
		return err
	}
	if len(p.Metadata) > 0 && string(p.Metadata) != "null" {
		if _, err := tasks.ParseMetadata(p.Metadata); err != nil {
			return err
		}
	}
	if p.Timeout < 0 {
		return errors.New("timeout must not be negative")
	}
	for _, f := range p.Files {
		if !sha256RE.MatchString(f.SHA256) {
			return fmt.Errorf("file %q: sha256 must be 64 hexadecimal digits", f.Filename)
		}
		if !safeRelPath(f.Filename) {
			return fmt.Errorf("file %q: filename must be a relative path inside the task's install directory", f.Filename)
		}
	}
	return nil
}

func checkInputObject(in json.RawMessage) error {
	if len(in) == 0 || string(in) == "null" {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(in, &obj); err != nil {
		return errors.New("input must be a JSON object")
	}
	return nil
}

// safeRelPath accepts slash-separated relative paths that stay inside their root.
func safeRelPath(p string) bool {
	if p == "" || strings.Contains(p, "\\") || strings.ContainsRune(p, 0) {
		return false
	}
	return filepath.IsLocal(filepath.FromSlash(p)) && path.Clean(p) == p
}

// taskPlan is what a `task run` needs: the implementation and every file it uses.
type taskPlan struct {
	impl   tasks.Implementation
	exe    protocol.TaskFile
	extras []protocol.TaskFile
	module string
}

func planTask(p protocol.TaskParams, agentFeatures []string) (taskPlan, error) {
	var meta tasks.Metadata
	var extra struct {
		Features []string `json:"features"`
	}
	if len(p.Metadata) > 0 && string(p.Metadata) != "null" {
		var err error
		if meta, err = tasks.ParseMetadata(p.Metadata); err != nil {
			return taskPlan{}, err
		}
		_ = json.Unmarshal(p.Metadata, &extra) // pxp-agent also reads metadata.features
	}
	module, _, err := tasks.SplitTaskName(p.Task)
	if err != nil {
		return taskPlan{}, err
	}
	byName := map[string]protocol.TaskFile{}
	names := make([]string, 0, len(p.Files))
	for _, f := range p.Files {
		byName[f.Filename] = f
		names = append(names, f.Filename)
	}
	features := append(append([]string{}, agentFeatures...), extra.Features...)
	impl, err := tasks.SelectImplementation(meta, features, names)
	if err != nil {
		return taskPlan{}, err
	}
	plan := taskPlan{impl: impl, exe: byName[impl.Name], module: module}
	seen := map[string]bool{}
	for _, want := range tasks.ExtraFiles(meta, impl) {
		var matched []protocol.TaskFile
		if strings.HasSuffix(want, "/") {
			for _, f := range p.Files {
				if strings.HasPrefix(f.Filename, want) {
					matched = append(matched, f)
				}
			}
		} else if f, ok := byName[want]; ok {
			matched = append(matched, f)
		}
		if len(matched) == 0 {
			return taskPlan{}, fmt.Errorf("'%s' file requested as additional task dependency not found", want)
		}
		for _, f := range matched {
			if !seen[f.Filename] {
				seen[f.Filename] = true
				plan.extras = append(plan.extras, f)
			}
		}
	}
	sort.Slice(plan.extras, func(i, j int) bool { return plan.extras[i].Filename < plan.extras[j].Filename })
	return plan, nil
}

// runTask is the built-in `task run` handler (reference §4.8).
func (a *Agent) runTask(ctx context.Context, req Request) (json.RawMessage, error) {
	var p protocol.TaskParams
	if err := json.Unmarshal(req.Params, &p); err != nil {
		return nil, fmt.Errorf("task params: %w", err)
	}
	plat, err := a.cfg.platform.get(ctx)
	if err != nil {
		return nil, err
	}
	plan, err := planTask(p, plat.features)
	if err != nil {
		return nil, err
	}
	exe, installDir, err := a.prepareFiles(ctx, plan, req.Dir)
	if installDir != "" {
		defer func() {
			if err := os.RemoveAll(installDir); err != nil {
				a.log.Warn("remove task install dir", "transaction_id", req.TransactionID, "error", err)
			}
		}()
	}
	if err != nil {
		if cause := context.Cause(ctx); ctx.Err() != nil && !errors.Is(cause, ErrAgentStopped) {
			// Timed out or cancelled while downloading: report it like a killed run.
			return json.Marshal(endedEarly(ctx, protocol.TaskResults{}))
		}
		return nil, err
	}

	input := map[string]json.RawMessage{}
	if len(p.Input) > 0 && string(p.Input) != "null" {
		if err := json.Unmarshal(p.Input, &input); err != nil {
			return nil, errors.New("input must be a JSON object")
		}
	}
	input["_task"], _ = json.Marshal(p.Task)
	if installDir != "" {
		input["_installdir"], _ = json.Marshal(installDir)
	}
	// The task runs in a scratch directory of its own, so that nothing it writes can touch
	// the transaction's bookkeeping files.
	workDir := filepath.Join(req.Dir, "work")
	if err := os.Mkdir(workDir, 0o700); err != nil && !os.IsExist(err) {
		return nil, fmt.Errorf("create task work dir: %w", err)
	}
	defer func() {
		if err := emptyDir(workDir); err != nil {
			a.log.Warn("empty task work dir", "transaction_id", req.TransactionID, "error", err)
		}
	}()
	// With an interpreter for the file's extension (Config.Interpreters) the task starts as
	// `interpreter args... file`, else directly (shebang); never through a shell.
	prog, args := taskCommand(exe, plat.interpreters)
	cmd := Command{Path: prog, Args: args, Dir: workDir}
	switch plan.impl.InputMethod {
	case tasks.InputStdin, tasks.InputBoth, tasks.InputPowershell:
		if cmd.Stdin, err = json.Marshal(input); err != nil {
			return nil, fmt.Errorf("encode task input: %w", err)
		}
	}
	if plan.impl.InputMethod == tasks.InputEnvironment || plan.impl.InputMethod == tasks.InputBoth {
		cmd.Env = taskEnv(input)
	}
	a.log.Info("running task", "transaction_id", req.TransactionID, "task", p.Task,
		"file", plan.exe.Filename, "input_method", plan.impl.InputMethod, "interpreter", interpreterOf(prog, args))
	stopStream := a.startStream(ctx, req, p) // live output, when asked for (stream.go)
	var res protocol.TaskResults
	switch {
	case req.Dir != "" && a.supervised():
		if res, err = a.runUnderSupervisor(ctx, req.Dir, cmd); errors.Is(err, errTaskNotStarted) {
			return nil, err
		}
	case req.Dir != "":
		// The task is the agent's own child: after a restart of the agent it can still be
		// found (and waited for) by its PID, though its outcome is then unknown.
		if err := writeStarted(req.Dir); err != nil {
			return nil, err
		}
		cmd.OnStart = func(pid int) {
			start, _, _ := procStart(pid)
			if err := writeJSONAtomic(filepath.Join(req.Dir, pidFile), pidRecord{PID: pid, Start: start}, true); err != nil {
				a.log.Warn("record task PID", "transaction_id", req.TransactionID, "error", err)
			}
			if a.cfg.FaultHook != nil {
				a.cfg.FaultHook(FaultTaskStarted)
			}
		}
		res, err = RunCommand(ctx, cmd)
	default:
		res, err = RunCommand(ctx, cmd)
	}
	stopStream()
	if err != nil {
		a.log.Warn("task did not start", "transaction_id", req.TransactionID, "error", err)
	}
	if errors.Is(context.Cause(ctx), ErrAgentStopped) {
		return nil, ErrAgentStopped
	}
	if p.ResultUpload != nil {
		return a.offloadLarge(ctx, req.TransactionID, p.ResultUpload, res)
	}
	return json.Marshal(res)
}

// prepareFiles makes every file of the plan available and checks, immediately before the
// run, that each one still has its SHA-256; a file that does not is removed from the cache
// and downloaded again. It returns the executable's path and, for a multi-file task, the
// install directory (inside the transaction's directory).
func (a *Agent) prepareFiles(ctx context.Context, plan taskPlan, txnDir string) (exe, installDir string, err error) {
	multi := len(plan.extras) > 0
	if multi {
		installDir = filepath.Join(txnDir, "install")
	}
	for attempt := 1; ; attempt++ {
		exe, err = a.stageFiles(ctx, plan, installDir)
		if err != nil {
			return "", installDir, err
		}
		// The check right before execution: the exact bytes that will run (for a multi-file
		// task the installed copies, and the cache entries they came from).
		bad, err := a.verifyStaged(plan, exe, installDir)
		if err != nil {
			return "", installDir, err
		}
		if bad == nil {
			return exe, installDir, nil
		}
		a.log.Warn("task file changed after it was checked; removing it and downloading again",
			"file", bad.Filename, "sha256", bad.SHA256)
		a.cache.evict(*bad)
		if attempt >= maxVerifyAttempts {
			return "", installDir, fmt.Errorf("file %s kept failing its SHA-256 check before execution", bad.Filename)
		}
	}
}

// stageFiles fetches the plan's files into the cache and, for a multi-file task, installs
// them: extras at <installDir>/<filename>, the executable at <installDir>/<module>/tasks/<file>.
func (a *Agent) stageFiles(ctx context.Context, plan taskPlan, installDir string) (string, error) {
	if installDir == "" {
		// The file runs from the cache: verifyStaged checks it right after.
		return a.cache.getUnchecked(ctx, plan.exe, true)
	}
	exeCache, err := a.cache.get(ctx, plan.exe, false)
	if err != nil {
		return "", err
	}
	if err := os.RemoveAll(installDir); err != nil {
		return "", fmt.Errorf("reset install dir: %w", err)
	}
	for _, f := range plan.extras {
		src, err := a.cache.get(ctx, f, false)
		if err != nil {
			return "", err
		}
		if _, err := copyVerified(src, filepath.Join(installDir, filepath.FromSlash(f.Filename)), f.SHA256, 0o600); err != nil {
			return "", err
		}
	}
	exe := filepath.Join(installDir, plan.module, "tasks", path.Base(plan.exe.Filename))
	if _, err := copyVerified(exeCache, exe, plan.exe.SHA256, 0o700); err != nil {
		return "", err
	}
	return exe, nil
}

// verifyStaged recomputes the SHA-256 of every file about to be used and returns the first
// one that does not match (nil when all do).
func (a *Agent) verifyStaged(plan taskPlan, exe, installDir string) (*protocol.TaskFile, error) {
	type check struct {
		f    protocol.TaskFile
		path string
	}
	checks := []check{{plan.exe, a.cache.path(plan.exe)}}
	if installDir != "" {
		checks = append(checks, check{plan.exe, exe})
		for _, f := range plan.extras {
			checks = append(checks,
				check{f, a.cache.path(f)},
				check{f, filepath.Join(installDir, filepath.FromSlash(f.Filename))})
		}
	}
	for _, c := range checks {
		ok, err := fileHasSHA256(c.path, c.f.SHA256)
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("verify %s: %w", c.f.Filename, err)
		}
		if !ok {
			f := c.f
			return &f, nil
		}
	}
	return nil, nil
}

// taskEnv renders input as PT_<key> variables: strings raw, everything else as JSON.
// Keys that cannot be environment variable names are skipped.
func taskEnv(input map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(input))
	for k := range input {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	env := make([]string, 0, len(keys))
	for _, k := range keys {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			continue
		}
		v := input[k]
		var s string
		if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
			s = string(compactJSON(v))
		}
		if strings.ContainsRune(s, 0) {
			continue
		}
		env = append(env, "PT_"+k+"="+s)
	}
	return env
}

func compactJSON(v json.RawMessage) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return v
	}
	return b.Bytes()
}

// emptyDir removes what dir holds and keeps dir itself (the spool's purge removes it with its
// transaction): most tasks leave their work directory empty, and then nothing is removed — a
// removal would make each new file of the next tasks cost more to create (ext4 passes over
// the inodes freed in the last minute).
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
