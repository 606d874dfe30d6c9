//go:build !unix

package agent

import (
	"context"
	"errors"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

// SupervisorCommand: see the unix build; there is no supervisor process elsewhere.
const SupervisorCommand = "supervise"

// RunSupervisor is not available on this platform.
func RunSupervisor() int { return 2 }

var errNoSupervisor = errors.New("the task supervisor is not available on this platform")

const supervisorIdle = 30 * time.Second

type supervisor struct{}

func newSupervisor([]string, time.Duration) *supervisor { return nil }

func (*supervisor) Close() error { return nil }

func (*supervisor) Spawns() (n, pid int) { return 0, 0 }

func (a *Agent) runDaemon(context.Context, string, Command) (protocol.TaskResults, error) {
	return protocol.TaskResults{}, errNoSupervisor
}
