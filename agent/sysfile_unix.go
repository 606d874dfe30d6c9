//go:build unix

package agent

import (
	"io"
	"os"
	"syscall"
)

// The spool's and the supervisor's small files are read and written with plain system calls:
// os.OpenFile tries to register every descriptor with Go's network poller (on Linux two fcntl
// pairs and an epoll_ctl that a regular file refuses: five calls beside the open), and
// os.Rename looks at the destination first. A task costs a few dozen of these, and on two
// cores shared by hundreds of agents every call also wakes the runtime's sysmon thread.

// openFile opens path with the given flags (close-on-exec always) and mode, as a blocking
// descriptor that is never put in the poller.
func openFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	fd, err := sysOpen(path, flag, perm)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

func sysOpen(path string, flag int, perm os.FileMode) (int, error) {
	for {
		fd, err := syscall.Open(path, flag|syscall.O_CLOEXEC, uint32(perm.Perm()))
		if err == nil {
			return fd, nil
		}
		if err != syscall.EINTR {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
	}
}

// writeFileFlags writes b to path, opened for writing with flag (O_CREATE, O_EXCL, O_TRUNC:
// as os.OpenFile takes them) and mode 0600, and with sync its content is on disk before it
// returns.
func writeFileFlags(path string, b []byte, flag int, sync bool) error {
	fd, err := sysOpen(path, flag|syscall.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	op, werr := "write", writeAll(fd, b)
	if werr == nil && sync {
		op, werr = "sync", fsyncFD(fd)
	}
	if cerr := syscall.Close(fd); werr == nil && cerr != nil {
		op, werr = "close", cerr
	}
	if werr != nil {
		return &os.PathError{Op: op, Path: path, Err: werr}
	}
	return nil
}

// syncFile syncs the file at path to disk.
func syncFile(path string) error {
	fd, err := sysOpen(path, syscall.O_RDONLY, 0)
	if err != nil {
		return err
	}
	err = fsyncFD(fd)
	syscall.Close(fd)
	if err != nil {
		return &os.PathError{Op: "sync", Path: path, Err: err}
	}
	return nil
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		b = b[n:]
	}
	return nil
}

// readFile reads the whole file at path, as os.ReadFile does.
func readFile(path string) ([]byte, error) {
	b, _, err := readFileCapped(path, -1)
	return b, err
}

// readFileCapped reads at most max bytes of the file at path (all of it when max < 0) and
// returns them with the file's size when it has more (0 otherwise).
func readFileCapped(path string, max int64) (b []byte, size int64, err error) {
	fd, err := sysOpen(path, syscall.O_RDONLY, 0)
	if err != nil {
		return nil, 0, err
	}
	defer syscall.Close(fd)
	b = make([]byte, 0, 512)
	for max < 0 || int64(len(b)) < max {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow
		}
		room := b[len(b):cap(b)]
		if max >= 0 && int64(len(room)) > max-int64(len(b)) {
			room = room[:max-int64(len(b))]
		}
		n, err := syscall.Read(fd, room)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, 0, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return b, 0, nil
		}
		b = b[:len(b)+n]
	}
	var st syscall.Stat_t
	if err := ignoringEINTR(func() error { return syscall.Fstat(fd, &st) }); err == nil && st.Size > max {
		return b, st.Size, nil
	}
	return b, 0, nil
}

// renameFile renames oldpath to newpath (rename(2): replacing a file, never a directory with
// entries).
func renameFile(oldpath, newpath string) error {
	if err := ignoringEINTR(func() error { return syscall.Rename(oldpath, newpath) }); err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != syscall.EINTR {
			return err
		}
	}
}
