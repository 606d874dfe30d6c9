package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// tmpfs is a small tmpfs mounted over a directory (the database's, a spool), which the
// full-disk faults fill and then free.
type tmpfs struct {
	path string
	mb   int
}

// mountTmpfs mounts a tmpfs of mb MiB on path (made if missing); it needs the right to mount
// (root, or CAP_SYS_ADMIN).
func mountTmpfs(path string, mb int) (*tmpfs, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("tmpfs %s: %w", path, err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm,mode=0700", mb), "tmpfs", path).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("mount tmpfs on %s: %v: %s", path, err, strings.TrimSpace(string(out)))
	}
	return &tmpfs{path: path, mb: mb}, nil
}

func (t *tmpfs) fillPath() string { return filepath.Join(t.path, ".baton-chaos-fill") }

// fill writes a file until the file system is full; it returns the bytes written.
func (t *tmpfs) fill() (int64, error) {
	f, err := os.OpenFile(t.fillPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("fill %s: %w", t.path, err)
	}
	defer f.Close()
	chunk := make([]byte, 256<<10)
	var n int64
	for {
		w, err := f.Write(chunk)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			// The last blocks: smaller writes until not even 512 bytes fit.
			for size := len(chunk) / 2; size >= 512; size /= 2 {
				for {
					w, err := f.Write(chunk[:size])
					n += int64(w)
					if err != nil {
						break
					}
				}
			}
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("fill %s: %w", t.path, err)
		}
	}
}

// free removes what fill wrote.
func (t *tmpfs) free() error {
	if err := os.Remove(t.fillPath()); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("free %s: %w", t.path, err)
	}
	return nil
}

// unmount lazily unmounts the tmpfs (processes may still hold files on it).
func (t *tmpfs) unmount() error {
	if out, err := exec.Command("umount", "-l", t.path).CombinedOutput(); err != nil {
		return fmt.Errorf("umount %s: %v: %s", t.path, err, strings.TrimSpace(string(out)))
	}
	return nil
}
