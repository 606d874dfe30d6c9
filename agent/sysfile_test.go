//go:build unix

package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadFileCapped(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("0123456789"), 700) // past the first buffer (512) more than once
	cases := []struct {
		name     string
		content  []byte
		max      int64
		want     []byte
		wantSize int64
	}{
		{"empty", nil, 100, []byte{}, 0},
		{"under the cap", []byte("hello"), 100, []byte("hello"), 0},
		{"exactly the cap", []byte("hello"), 5, []byte("hello"), 0},
		{"over the cap", []byte("hello world"), 5, []byte("hello"), 11},
		{"large, no cap", big, -1, big, 0},
		{"large, capped past a buffer", big, 1000, big[:1000], int64(len(big))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
			if err := os.WriteFile(p, c.content, 0o600); err != nil {
				t.Fatal(err)
			}
			got, size, err := readFileCapped(p, c.max)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.want) || size != c.wantSize {
				t.Errorf("got %d bytes (size %d), want %d bytes (size %d)", len(got), size, len(c.want), c.wantSize)
			}
		})
	}
	if _, _, err := readFileCapped(filepath.Join(dir, "missing"), 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	if b, err := readFile(filepath.Join(dir, "large,_no_cap")); err != nil || !bytes.Equal(b, big) {
		t.Errorf("readFile: %d bytes, %v", len(b), err)
	}
}

func TestReadCappedNotesWhatItDropped(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(p, []byte("abcdefghij"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := readCapped(p, 4), "abcd\n[baton-agent: output truncated: 6 more bytes were dropped]\n"; got != want {
		t.Errorf("readCapped = %q, want %q", got, want)
	}
	if got := readCapped(p, 10); got != "abcdefghij" {
		t.Errorf("readCapped at the size = %q", got)
	}
	if got := readCapped(p+".missing", 10); got != "" {
		t.Errorf("readCapped of a missing file = %q", got)
	}
}

func TestWriteFileFlags(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := writeFileFlags(p, []byte("first, longer"), os.O_CREATE|os.O_EXCL, true); err != nil {
		t.Fatal(err)
	}
	if err := writeFileFlags(p, []byte("again"), os.O_CREATE|os.O_EXCL, false); !errors.Is(err, fs.ErrExist) {
		t.Errorf("O_EXCL on an existing file: %v, want fs.ErrExist", err)
	}
	if err := writeFileFlags(p, []byte("second"), os.O_CREATE|os.O_TRUNC, false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "second" {
		t.Errorf("after O_TRUNC: %q", b)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v; want 0600", fi.Mode(), err)
	}
	if err := writeFileFlags(filepath.Join(dir, "no", "such"), nil, os.O_CREATE, false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("in a missing directory: %v", err)
	}
}

func TestWriteFileAtomicLeavesOnlyTheFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "result.json")
	for _, content := range []string{`{"a":1}`, `{"b":2}`} {
		if err := writeFileAtomic(p, []byte(content), true); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != content {
			t.Errorf("content %q, want %q", b, content)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("entries %v, want the file alone", entries)
	}
	if err := writeFileAtomic(filepath.Join(dir, "gone", "x"), nil, false); err == nil {
		t.Error("a write into a missing directory succeeded")
	}
	// Over a directory, the rename fails and the temporary file goes.
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(sub, "inside"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(sub, []byte("x"), false); err == nil {
		t.Error("replacing a directory succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("entries %v after a failed write, want result.json and sub", entries)
	}
}

func TestOpenFileIsBlockingAndCloseOnExec(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	f, err := openFile(p, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fl, fdfl int
	_ = rc.Control(func(fd uintptr) {
		fl, _ = fcntl(int(fd), syscall.F_GETFL)
		fdfl, _ = fcntl(int(fd), syscall.F_GETFD)
	})
	if fl&syscall.O_NONBLOCK != 0 || fdfl&syscall.FD_CLOEXEC == 0 {
		t.Errorf("flags %#x, descriptor flags %#x: want blocking and close-on-exec", fl, fdfl)
	}
	if _, err := f.WriteString("x"); err != nil {
		t.Fatal(err)
	}
}

func fcntl(fd, cmd int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), uintptr(cmd), 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// TestSpoolFinishAndAckWithoutReadingBack checks that a transaction this process created is
// finished from the metadata it created (its file is not read back: finishing succeeds, and
// writes the right metadata, over a file damaged meanwhile), that one it did not create is
// read, and that an acknowledgement needs only the outcome file.
func TestSpoolFinishAndAckWithoutReadingBack(t *testing.T) {
	sp := &spool{dir: t.TempDir()}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	end := start.Add(time.Minute)
	m := txnMetadata{Module: "task", Action: "run", RequestParams: "{}", TransactionID: "t1",
		RequestID: "r1", NotifyOutcome: true, Start: start, Status: statusRunning}
	if created, err := sp.create(m); err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	// Changed on disk meanwhile (by a test: nothing else writes it): finish must not read it.
	other := m
	other.RequestID = "other"
	b, _ := json.Marshal(other)
	if err := os.WriteFile(filepath.Join(sp.txnDir("t1"), metadataFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	results := json.RawMessage(`{"exitcode":0,"stdout":"x"}`)
	st, err := sp.finish("t1", results, "", end)
	if err != nil {
		t.Fatalf("finish read the metadata back: %v", err)
	}
	if st.meta.RequestID != "r1" || st.meta.Status != statusSuccess || !st.meta.End.Equal(end) {
		t.Errorf("finished state %+v", st.meta)
	}
	// The metadata is not written again: load takes the status and end from the outcome.
	loaded, err := sp.load("t1")
	if err != nil || loaded.meta.RequestID != "other" || loaded.meta.Status != statusSuccess ||
		loaded.meta.End == nil || !loaded.meta.End.Equal(end) || string(loaded.results) != string(results) {
		t.Errorf("loaded %+v, %v", loaded, err)
	}

	// Not created by this process (a fresh spool over the same directory): read.
	m2 := m
	m2.TransactionID, m2.RequestID = "t2", "r2"
	if created, err := sp.create(m2); err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	again := &spool{dir: sp.dir}
	if st, err := again.finish("t2", nil, "it broke", end); err != nil || st.meta.RequestID != "r2" || st.meta.Status != statusFailure {
		t.Errorf("finish of an earlier process's transaction: %+v, %v", st.meta, err)
	}
	if st, err := again.load("t2"); err != nil || st.errDesc != "it broke" || st.meta.Status != statusFailure ||
		st.meta.ExecutionError != "it broke" || st.meta.End == nil || !st.meta.End.Equal(end) {
		t.Errorf("loaded failure %+v, %v", st.meta, err)
	}
	if err := os.WriteFile(filepath.Join(sp.txnDir("t2"), metadataFile), []byte("{damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := again.finish("t2", nil, "again", end); err == nil {
		t.Error("finish of a damaged entry this process did not create succeeded")
	}

	// A task that ended before it started has its metadata synced by finish: a created task
	// whose metadata went missing cannot be finished.
	m4 := m
	m4.TransactionID = "t4"
	if _, err := sp.create(m4); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(sp.txnDir("t4"), metadataFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.finish("t4", nil, "download failed", end); err == nil {
		t.Error("a task that never started was finished without its metadata")
	}

	// Acknowledgements: the outcome file is linked, whatever the metadata.
	m3 := m
	m3.TransactionID = "t3"
	if _, err := sp.create(m3); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		txn     string
		wantErr string
	}{
		{"t3", "no outcome yet"},
		{"missing", "no such file"},
		{"../x", "file does not exist"},
		{"t1", ""},
		{"t1", ""}, // again: already acknowledged
		{"t2", ""},
	} {
		err := sp.ack(c.txn)
		if (c.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("ack(%s) = %v, want %q", c.txn, err, c.wantErr)
		}
	}
	for txn, outcome := range map[string]string{"t1": resultFile, "t2": errorFile} {
		a, err1 := os.Stat(filepath.Join(sp.txnDir(txn), ackedFile))
		o, err2 := os.Stat(filepath.Join(sp.txnDir(txn), outcome))
		if err1 != nil || err2 != nil || !os.SameFile(a, o) {
			t.Errorf("%s: the acknowledgement is not a link of %s (%v, %v)", txn, outcome, err1, err2)
		}
	}
	if st, err := sp.load("t1"); err != nil || !st.acked {
		t.Errorf("t1 after its acknowledgement: %+v, %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(sp.txnDir("t3"), ackedFile)); err == nil {
		t.Error("an unfinished transaction was marked acknowledged")
	}
}

// TestTaskStartIsALineOfTheMetadata checks that writeStarted records a task's start in its
// metadata (the file stays readable, and says started), and how parseMetadata reads what a
// crash may leave: a line cut short still says started; anything else after the object makes
// the entry unreadable (repaired into an unknown outcome, never "not run").
func TestTaskStartIsALineOfTheMetadata(t *testing.T) {
	sp := &spool{dir: t.TempDir()}
	m := txnMetadata{Module: "task", Action: "run", RequestParams: "{}", TransactionID: "t1", Status: statusRunning}
	if _, err := sp.create(m); err != nil {
		t.Fatal(err)
	}
	if st, err := sp.load("t1"); err != nil || st.started {
		t.Fatalf("before the start: %+v, %v", st, err)
	}
	if err := writeStarted(sp.txnDir("t1")); err != nil {
		t.Fatal(err)
	}
	if st, err := sp.load("t1"); err != nil || !st.started || st.meta.TransactionID != "t1" {
		t.Fatalf("after the start: %+v, %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(sp.txnDir("t1"), startedFile)); err == nil {
		t.Error("a started file was written besides the line")
	}
	// A directory without metadata (not the spool's) gets a file of its own.
	bare := t.TempDir()
	if err := writeStarted(bare); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(bare, startedFile)); err != nil {
		t.Errorf("no started file in a directory without metadata: %v", err)
	}
	if err := writeStarted(filepath.Join(sp.dir, "missing")); err == nil {
		t.Error("a start was recorded in a directory that does not exist")
	}

	obj := `{"module":"task","transaction_id":"t2"}`
	for _, c := range []struct {
		name, content string
		started, bad  bool
	}{
		{"accepted", obj, false, false},
		{"accepted, newline", obj + "\n", false, false},
		{"started", obj + "started 2026-12-06T05:00:00Z\n", true, false},
		{"start cut short", obj + "sta", true, false},
		{"start cut after the mark", obj + "started 2026", true, false},
		{"zeros after a crash", obj + "\x00\x00\x00", false, true},
		{"other data", obj + `{"x":1}`, false, true},
		{"damaged object", `{"module":"ta`, false, true},
	} {
		got, started, err := parseMetadata([]byte(c.content))
		if (err != nil) != c.bad || started != c.started || (!c.bad && got.TransactionID != "t2") {
			t.Errorf("%s: %+v started=%v err=%v; want started=%v bad=%v", c.name, got, started, err, c.started, c.bad)
		}
	}
}
