package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/baton-run/baton/shared/auth"
)

// agentProc is one baton-agent process, kept running across kills with the same credential,
// spool and cache.
type agentProc struct {
	*keeper
	name, dir, logPath string
	spool              string
	hook               bool // run with BATON_AGENT_FAULT
}

// startAgents enrols names with the server and starts an agent for each; agent i's spool is
// spools[name] when given (a tmpfs mount), else a directory of its own.
func startAgents(ctx context.Context, cfg *config, srv *server, dir, agentURL string, names []string, hooks map[string]bool, spools map[string]string) ([]*agentProc, error) {
	list, err := srv.api.EnrollNodes(ctx, names, "1h")
	if err != nil {
		return nil, fmt.Errorf("enrol agents: %w", err)
	}
	var out []*agentProc
	for _, e := range list {
		a := &agentProc{name: e.Name, dir: filepath.Join(dir, "agents", e.Name), hook: hooks[e.Name]}
		a.logPath = filepath.Join(a.dir, "agent.log")
		a.spool = filepath.Join(a.dir, "spool")
		if s, ok := spools[e.Name]; ok {
			a.spool = s
		}
		if err := os.MkdirAll(a.dir, 0o700); err != nil {
			return out, fmt.Errorf("agent %s: %w", e.Name, err)
		}
		cred := filepath.Join(a.dir, "credential.json")
		// The agent connects through the proxy; it enrols directly with the server's API.
		if err := auth.WriteCredential(cred, auth.Credential{Name: e.Name, EnrollmentToken: e.EnrollmentToken,
			Server: agentURL, API: srv.url()}); err != nil {
			return out, fmt.Errorf("agent %s: %w", e.Name, err)
		}
		env := []string{"BATON_AGENT_NAME=" + e.Name} // chaos::ledger reads it too
		if a.hook {
			env = append(env, "BATON_AGENT_FAULT="+cfg.hookSpec)
		}
		args := []string{"--credential", cred, "--cache-dir", filepath.Join(a.dir, "cache"), "--spool-dir", a.spool,
			"--log-level", "info"}
		bin := filepath.Join(cfg.bin, "baton-agent")
		a.keeper = newKeeper("agent "+e.Name, cfg.log, func() (*proc, error) { return startProc(a.logPath, env, bin, args...) }, nil)
		if err := a.start(ctx); err != nil {
			return out, err
		}
		out = append(out, a)
	}
	return out, nil
}

// waitConnected polls the inventory until every name is connected.
func waitConnected(ctx context.Context, srv *server, names []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		nodes, err := srv.api.Inventory(ctx)
		if err == nil {
			connected := map[string]bool{}
			for _, n := range nodes {
				if n.Connected {
					connected[n.Name] = true
				}
			}
			missing := 0
			for _, n := range names {
				if !connected[n] {
					missing++
				}
			}
			if missing == 0 {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%d of %d agents not connected after %s", missing, len(names), timeout)
			}
		} else if time.Now().After(deadline) {
			return fmt.Errorf("inventory: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

var faultPointRE = regexp.MustCompile(`BATON_AGENT_FAULT: killing the agent at a fault point.*point=(\S+)`)

// hookKills counts, per fault point, the times the agent killed itself (from its log).
func (a *agentProc) hookKills() map[string]int {
	out := map[string]int{}
	for _, l := range grepFile(a.logPath, "BATON_AGENT_FAULT: killing") {
		if m := faultPointRE.FindStringSubmatch(l); m != nil {
			out[m[1]]++
		}
	}
	return out
}
