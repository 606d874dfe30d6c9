package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

// SHAMismatchError says a downloaded file's SHA-256 differs from the one the request gave.
type SHAMismatchError struct{ File string }

func (e *SHAMismatchError) Error() string {
	return fmt.Sprintf("The downloaded file %s has a SHA that differs from the provided SHA", e.File)
}

// DownloadError says a task file could not be downloaded after all retries; Err is the last
// attempt's error (a *SHAMismatchError when the bytes did not match).
type DownloadError struct {
	File string
	Err  error
}

func (e *DownloadError) Error() string { return "Failed to download file with: " + e.Err.Error() }
func (e *DownloadError) Unwrap() error { return e.Err }

var sha256RE = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// fileCache keeps task files as <dir>/<sha256>/<basename>, downloading what is missing and
// checking the SHA-256 of every file on every use.
type fileCache struct {
	dir     string
	client  *http.Client
	base    *url.URL
	backoff []time.Duration
	timeout time.Duration
	// maxBytes caps a file whose request declares no size (Config.MaxDownloadBytes).
	maxBytes int64
	log      *slog.Logger
}

// TooLargeError says a download was longer than the file's declared size_bytes, or than
// Config.MaxDownloadBytes for a file that declares none; nothing of it is kept.
type TooLargeError struct {
	File     string
	Limit    int64
	Declared bool
}

func (e *TooLargeError) Error() string {
	if e.Declared {
		return fmt.Sprintf("The downloaded file %s is larger than its declared size of %d bytes", e.File, e.Limit)
	}
	return fmt.Sprintf("The downloaded file %s declares no size and is larger than the agent's limit of %d bytes", e.File, e.Limit)
}

func (c *fileCache) path(f protocol.TaskFile) string {
	return filepath.Join(c.dir, strings.ToLower(f.SHA256), path.Base(f.Filename))
}

// get returns the path of a cached copy of f whose SHA-256 has just been checked, downloading
// it (again) when it is missing or its content no longer matches. Executable files are
// made 0700, others 0600.
func (c *fileCache) get(ctx context.Context, f protocol.TaskFile, executable bool) (string, error) {
	p := c.path(f)
	mode := os.FileMode(0o600)
	if executable {
		mode = 0o700
	}
	ok, err := fileHasSHA256(p, f.SHA256)
	switch {
	case ok:
		var fi os.FileInfo
		if executable {
			fi, _ = os.Stat(p)
		}
		return p, c.use(f, p, fi, executable)
	case err == nil:
		c.log.Warn("cached file does not match its SHA-256; removing it and downloading again",
			"file", f.Filename, "sha256", f.SHA256)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("remove tampered cache entry %s: %w", f.Filename, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("check cached %s: %w", f.Filename, err)
	}
	if err := c.download(ctx, f, p, mode); err != nil {
		return "", err
	}
	return p, nil
}

// getUnchecked is get for a caller that checks the file's SHA-256 itself right before using
// it (prepareFiles): a cached copy is returned without being read, and a mismatch is the
// caller's to find (it evicts the entry and asks again). A missing copy is downloaded, and
// checked, as get does.
func (c *fileCache) getUnchecked(ctx context.Context, f protocol.TaskFile, executable bool) (string, error) {
	p := c.path(f)
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return c.get(ctx, f, executable)
	}
	return p, c.use(f, p, fi, executable)
}

// use marks cache entry p (of f) as recently used and, for an executable, makes sure it has
// the exec bit; fi is its FileInfo when known.
func (c *fileCache) use(f protocol.TaskFile, p string, fi os.FileInfo, executable bool) error {
	now := time.Now()
	_ = os.Chtimes(filepath.Dir(p), now, now) // mark the entry as recently used
	// Only ever add the exec bit: another transaction may be running this file.
	if executable && (fi == nil || fi.Mode().Perm()&0o100 == 0) {
		if err := os.Chmod(p, 0o700); err != nil {
			return fmt.Errorf("cache %s: %w", f.Filename, err)
		}
	}
	return nil
}

// purge removes cache entries (sha256 directories) not used since cutoff.
func (c *fileCache) purge(cutoff time.Time) (int, error) {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return 0, fmt.Errorf("read cache %s: %w", c.dir, err)
	}
	n := 0
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || !sha256RE.MatchString(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil || !fi.ModTime().Before(cutoff) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(c.dir, e.Name())); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("purge cache: %w", err)
	}
	return n, nil
}

// evict removes f's cache entry (after its content was found not to match).
func (c *fileCache) evict(f protocol.TaskFile) {
	if err := os.Remove(c.path(f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.log.Warn("remove cache entry", "file", f.Filename, "error", err)
	}
}

// download fetches f into dest, retrying on failure with the configured backoff.
func (c *fileCache) download(ctx context.Context, f protocol.TaskFile, dest string, mode os.FileMode) error {
	var err error
	for attempt := 0; ; attempt++ {
		err = c.downloadOnce(ctx, f, dest, mode)
		if err == nil {
			return nil
		}
		var tooLarge *TooLargeError
		if attempt >= len(c.backoff) || ctx.Err() != nil || errors.As(err, &tooLarge) {
			break
		}
		c.log.Warn("download failed; retrying", "file", f.Filename, "attempt", attempt+1, "error", err)
		t := time.NewTimer(c.backoff[attempt])
		select {
		case <-ctx.Done():
			t.Stop()
			return &DownloadError{File: f.Filename, Err: context.Cause(ctx)}
		case <-t.C:
		}
	}
	return &DownloadError{File: f.Filename, Err: err}
}

func (c *fileCache) downloadOnce(ctx context.Context, f protocol.TaskFile, dest string, mode os.FileMode) error {
	u, err := fileURL(c.base, f.URI)
	if err != nil {
		return fmt.Errorf("file %s: %w", f.Filename, err)
	}
	shown := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String() // no signed query
	dctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(dctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("download %s: %w", shown, err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the URL may carry a signature: never put it in an error
		}
		return fmt.Errorf("download %s: %w", shown, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download %s: HTTP %d", shown, resp.StatusCode)
	}
	dir := filepath.Dir(dest)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("download %s: %w", f.Filename, err)
	}
	tmp, err := os.CreateTemp(dir, "temp_file_*")
	if err != nil {
		return fmt.Errorf("download %s: %w", f.Filename, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	limit, declared := f.SizeBytes, f.SizeBytes > 0
	if !declared {
		limit = c.maxBytes
	}
	if resp.ContentLength > limit {
		tmp.Close()
		return &TooLargeError{File: f.Filename, Limit: limit, Declared: declared}
	}
	h := sha256.New()
	// One byte more than the limit is read, to tell a file of exactly the limit from a longer one.
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(resp.Body, limit+1))
	if err == nil && n > limit {
		tmp.Close()
		return &TooLargeError{File: f.Filename, Limit: limit, Declared: declared}
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download %s: %w", shown, err)
	}
	if !strings.EqualFold(hex.EncodeToString(h.Sum(nil)), f.SHA256) {
		return &SHAMismatchError{File: f.Filename}
	}
	src := tmp.Name()
	if mode&0o111 != 0 {
		// The downloaded file was open for writing while other tasks were being started: a
		// process forked meanwhile may still hold it open, and running it would fail with
		// ETXTBSY. What runs is a copy written while no fork can happen (copyVerified).
		src = tmp.Name() + ".x"
		defer os.Remove(src) // a no-op once renamed
		if ok, err := copyVerified(tmp.Name(), src, f.SHA256, mode); err != nil || !ok {
			if err == nil {
				err = errors.New("the copy does not have the file's SHA-256")
			}
			return fmt.Errorf("download %s: %w", f.Filename, err)
		}
	} else if err := os.Chmod(src, mode); err != nil {
		return fmt.Errorf("download %s: %w", f.Filename, err)
	}
	if err := os.Rename(src, dest); err != nil {
		return fmt.Errorf("download %s: %w", f.Filename, err)
	}
	c.log.Info("downloaded task file", "file", f.Filename, "url", shown)
	return nil
}

// fileURL resolves a file's uri: an absolute http(s) path is used as is (a presigned URL);
// otherwise the path is taken on the server's own host. Params are added as query parameters.
func fileURL(base *url.URL, uri protocol.FileURI) (*url.URL, error) {
	var u *url.URL
	lower := strings.ToLower(uri.Path)
	switch {
	case strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://"):
		p, err := url.Parse(uri.Path)
		if err != nil {
			return nil, errors.New("uri.path is not a valid URL")
		}
		u = p
	case strings.HasPrefix(uri.Path, "/") && !strings.HasPrefix(uri.Path, "//"):
		ref, err := url.Parse(uri.Path)
		if err != nil {
			return nil, errors.New("uri.path is not a valid URL path")
		}
		u = base.ResolveReference(ref)
	default:
		return nil, fmt.Errorf("uri.path %q must be an absolute path or an http(s) URL", uri.Path)
	}
	if u.Host == "" {
		return nil, errors.New("uri.path has no host")
	}
	if len(uri.Params) > 0 {
		q := url.Values{}
		for k, v := range uri.Params {
			q.Set(k, v)
		}
		// Keep an existing (possibly signed) query byte for byte and append the params.
		if u.RawQuery != "" {
			u.RawQuery += "&" + q.Encode()
		} else {
			u.RawQuery = q.Encode()
		}
	}
	return u, nil
}

// fileHasSHA256 reports whether the file at p has the given SHA-256. The error wraps
// fs.ErrNotExist when there is no such file.
func fileHasSHA256(p, want string) (bool, error) {
	f, err := openFile(p, os.O_RDONLY, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, fmt.Errorf("hash %s: %w", p, err)
	}
	return strings.EqualFold(hex.EncodeToString(h.Sum(nil)), want), nil
}

// copyVerified copies src to dst (mode perm), failing if the copied bytes do not have sha.
func copyVerified(src, dst, sha string, perm os.FileMode) (bool, error) {
	in, err := os.Open(src)
	if err != nil {
		return false, fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return false, fmt.Errorf("copy to %s: %w", dst, err)
	}
	if perm&0o111 != 0 {
		// An executable is never open for writing while a process is forked: a child would
		// inherit the descriptor until its exec, and running the file meanwhile would fail
		// with ETXTBSY. syscall.ForkLock is what os/exec holds while it forks.
		syscall.ForkLock.RLock()
		defer syscall.ForkLock.RUnlock()
	}
	_ = os.Remove(dst) // a new inode: a process may still run the old file
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return false, fmt.Errorf("copy to %s: %w", dst, err)
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, h), in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("copy to %s: %w", dst, err)
	}
	return strings.EqualFold(hex.EncodeToString(h.Sum(nil)), sha), nil
}
