//go:build !unix

package agent

import (
	"os"
	"os/exec"
)

// Without unix process groups only the task's own process can be killed.
func setProcessGroup(*exec.Cmd) {}

func killProcessGroup(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// processAlive reports whether a process with that PID exists (start times are not known here).
func processAlive(pid int, _ uint64) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}
