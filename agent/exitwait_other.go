//go:build !linux

package agent

// awaitExit returns at once: the caller's Wait waits (see exitwait_linux.go).
func awaitExit(pid int) {}
