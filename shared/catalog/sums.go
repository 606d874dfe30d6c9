package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"
)

// sumCache remembers the SHA-256 of each path while its size and mtime stay the same.
type sumCache struct {
	mu sync.Mutex
	m  map[string]sumEntry
}

type sumEntry struct {
	size  int64
	mtime time.Time
	sum   string
}

func newSumCache() *sumCache { return &sumCache{m: map[string]sumEntry{}} }

// sum returns the SHA-256 of the file at path whose FileInfo is fi, reading r (the open file)
// only when the cache has nothing for this (path, size, mtime).
func (c *sumCache) sum(path string, fi fs.FileInfo, r io.Reader) (string, error) {
	c.mu.Lock()
	e, ok := c.m[path]
	c.mu.Unlock()
	if ok && e.size == fi.Size() && e.mtime.Equal(fi.ModTime()) {
		return e.sum, nil
	}
	h := sha256.New()
	if _, err := io.CopyN(h, r, fi.Size()); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	c.mu.Lock()
	c.m[path] = sumEntry{size: fi.Size(), mtime: fi.ModTime(), sum: sum}
	c.mu.Unlock()
	return sum, nil
}

// openRef opens a task file through its module's root and describes it. The file is
// positioned at 0; the caller closes it.
func (c *Local) openRef(rs *rootSet, ref fileRef) (*os.File, File, error) {
	f, file, _, err := c.openRefInfo(rs, ref)
	return f, file, err
}

// openRefInfo is openRef that also returns the opened file's FileInfo.
func (c *Local) openRefInfo(rs *rootSet, ref fileRef) (*os.File, File, fs.FileInfo, error) {
	root, err := rs.get(ref.module)
	if err != nil {
		return nil, File{}, nil, fmt.Errorf("open %s: %w", ref.filename, err)
	}
	f, err := root.Open(ref.rel)
	if err != nil {
		return nil, File{}, nil, fmt.Errorf("open %s: %w", ref.filename, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, File{}, nil, fmt.Errorf("stat %s: %w", ref.filename, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, File{}, nil, fmt.Errorf("open %s: not a regular file", ref.filename)
	}
	p := rs.path(ref)
	sum, err := c.sums.sum(p, fi, f)
	if err != nil {
		f.Close()
		return nil, File{}, nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, File{}, nil, fmt.Errorf("seek %s: %w", ref.filename, err)
	}
	return f, File{Filename: ref.filename, Path: p, SHA256: sum, SizeBytes: fi.Size()}, fi, nil
}
