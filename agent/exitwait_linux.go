package agent

import (
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// awaitExit returns once the child process pid, not yet waited for, has exited (or at once
// where that cannot be watched): the caller's Wait then only reaps it. It waits in Go's
// network poller on a pidfd (Linux 5.3 and later) instead of in a blocking wait system call,
// because a goroutine blocked in a system call keeps the runtime's sysmon thread polling
// every 20 µs to 10 ms for as long as the task runs — in every agent's supervisor at once,
// on the same cores as the tasks.
func awaitExit(pid int) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return
	}
	if err := syscall.SetNonblock(fd, true); err != nil { // a non-blocking descriptor is polled
		syscall.Close(fd)
		return
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Read(func(fd uintptr) bool { return exited(fd) })
}

// exited reports whether the process behind pidfd has exited (true too when that cannot be
// told: the caller's Wait decides), leaving it to be reaped.
func exited(pidfd uintptr) bool {
	var info [16]uint64 // siginfo_t: 128 bytes, aligned
	_, _, errno := syscall.RawSyscall6(syscall.SYS_WAITID, unix.P_PIDFD, pidfd, uintptr(unsafe.Pointer(&info)),
		unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, 0, 0)
	if errno != 0 {
		return true
	}
	// si_pid follows si_signo, si_errno and si_code, aligned to a pointer; it stays 0 while
	// the process runs.
	off := uintptr(12)
	if unsafe.Sizeof(uintptr(0)) == 8 {
		off = 16
	}
	return *(*int32)(unsafe.Add(unsafe.Pointer(&info), off)) != 0
}
