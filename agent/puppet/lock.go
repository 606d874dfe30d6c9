package puppet

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// disabledState reads Puppet's agent_disabled_lockfile (`puppet agent --disable [msg]` writes
// {"disabled_message": msg}). A lockfile that exists but cannot be read or parsed still means
// the agent is disabled, as Puppet treats it.
func disabledState(path string) (msg string, disabled bool) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false
	}
	var lock struct {
		Message string `json:"disabled_message"`
	}
	if err == nil && json.Unmarshal(data, &lock) == nil {
		msg = lock.Message
	}
	return msg, true
}

// lockHeld reports whether the run lockfile (agent_catalog_run_lockfile, a PID file) is held
// by a live Puppet run. Like Puppet's Pidlock, a lockfile without a valid PID, or whose
// process is gone or is not Puppet, is stale and does not count.
func lockHeld(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		// Present but unreadable: assume it is held.
		return !errors.Is(err, fs.ErrNotExist)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return false
	}
	return puppetProcessAlive(pid)
}
