//go:build unix

package agent

import (
	"errors"
	"os/exec"
	"syscall"
)

func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killProcessGroup sends SIGKILL to the process group led by pid; a group that is already
// gone is not an error.
func killProcessGroup(pid int) error {
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// processAlive reports whether the process pid still runs and is the one that started at
// start (clock ticks since boot, from procStart; 0: not checked). A zombie does not run.
func processAlive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	got, zombie, err := procStart(pid)
	if errors.Is(err, errors.ErrUnsupported) {
		return true
	}
	return err == nil && !zombie && (start == 0 || got == start)
}
