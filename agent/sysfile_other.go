//go:build !unix

package agent

import (
	"io"
	"os"
)

// Elsewhere the spool's files go through package os (see sysfile_unix.go).

func openFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(path, flag, perm)
}

func writeFileFlags(path string, b []byte, flag int, sync bool) error {
	f, err := os.OpenFile(path, flag|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	if werr == nil && sync {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	return werr
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func readFileCapped(path string, max int64) ([]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	if max < 0 {
		b, err := io.ReadAll(f)
		return b, 0, err
	}
	b, err := io.ReadAll(io.LimitReader(f, max))
	if err != nil {
		return nil, 0, err
	}
	if int64(len(b)) == max {
		if fi, err := f.Stat(); err == nil && fi.Size() > max {
			return b, fi.Size(), nil
		}
	}
	return b, 0, nil
}

func renameFile(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }
