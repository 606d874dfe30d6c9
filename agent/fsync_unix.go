//go:build unix && !darwin

package agent

import "syscall"

// fsyncFD flushes the file open on fd to disk.
func fsyncFD(fd int) error {
	return ignoringEINTR(func() error { return syscall.Fsync(fd) })
}
