package agent

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// fsyncFD flushes the file open on fd to disk: fsync(2) only hands it to the drive on macOS,
// F_FULLFSYNC flushes it (as os.File.Sync does), where the file system has it.
func fsyncFD(fd int) error {
	err := ignoringEINTR(func() error {
		_, err := unix.FcntlInt(uintptr(fd), unix.F_FULLFSYNC, 0)
		return err
	})
	if err == syscall.ENOTSUP || err == syscall.ENOTTY || err == syscall.EINVAL {
		err = ignoringEINTR(func() error { return syscall.Fsync(fd) })
	}
	return err
}
