//go:build !linux

package agent

import "errors"

// procStart is unknown without /proc: a process is then recognised by its PID alone.
func procStart(int) (uint64, bool, error) { return 0, false, errors.ErrUnsupported }
