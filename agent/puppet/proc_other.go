//go:build !unix

package puppet

import (
	"os"
	"os/exec"
)

// Without unix process groups only puppet's own process can be killed.
func setProcessGroup(*exec.Cmd) {}

func killProcessTree(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// puppetProcessAlive reports whether pid exists (FindProcess fails for a missing process on
// Windows); the process name is not checked.
func puppetProcessAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	_ = p.Release()
	return true
}
