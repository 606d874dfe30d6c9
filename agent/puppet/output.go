package puppet

import (
	"regexp"
	"slices"
	"strings"
	"sync"
)

// tailBuffer keeps the last limit bytes written to it.
type tailBuffer struct {
	mu    sync.Mutex
	limit int
	buf   []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*b.limit {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.limit:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf) > b.limit {
		return slices.Clone(b.buf[len(b.buf)-b.limit:])
	}
	return slices.Clone(b.buf)
}

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

const (
	maxSummaryLines = 3
	maxLineLen      = 400
)

// summarize picks what explains a failed run from puppet's output: its last few distinct
// "Error:" lines, or else the last line that is not a Ruby backtrace line. Facter's own
// errors are left out: they do not fail a run (a sandbox that hides /proc/1/environ makes
// facter log them on every run).
func summarize(out []byte) string {
	var errs []string
	last := ""
	for line := range strings.Lines(ansiRE.ReplaceAllString(string(out), "")) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "Error: Facter:") || strings.HasPrefix(line, "from ") {
			continue
		}
		if len(line) > maxLineLen {
			line = line[:maxLineLen] + "..."
		}
		last = line
		if strings.HasPrefix(line, "Error: ") && !slices.Contains(errs, line) {
			errs = append(errs, line)
		}
	}
	if len(errs) == 0 {
		return last
	}
	if len(errs) > maxSummaryLines {
		errs = errs[len(errs)-maxSummaryLines:]
	}
	return strings.Join(errs, "; ")
}
