//go:build unix

package agent

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

// echoScript prints what it got on stdin and in PT_* variables as one JSON object.
const echoScript = `stdin=$(cat)
printf '{"stdin":%s,"message":"%s","count":"%s","task":"%s"}\n' "${stdin:-null}" "$PT_message" "$PT_count" "$PT__task"`

func TestTaskRunInputMethods(t *testing.T) {
	ts := newTestServer(t)
	startAgent(t, testConfig(t, ts))
	file := ts.addFile("echo.sh", script(echoScript))
	input := mustJSON(t, map[string]any{"message": "hello world", "count": 3})
	wantStdin := map[string]any{"_task": "demo::echo", "count": float64(3), "message": "hello world"}

	tests := []struct {
		method    string
		wantStdin bool
		wantEnv   bool
	}{
		{"stdin", true, false},
		{"environment", false, true},
		{"both", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			res := ts.runTask(t, "txn-input-"+tt.method, protocol.TaskParams{
				Task: "demo::echo", Input: input, Files: []protocol.TaskFile{file},
				Metadata: mustJSON(t, map[string]any{"input_method": tt.method}),
			})
			if res.Exitcode != 0 || res.Stderr != "" {
				t.Fatalf("exit %d stderr %q", res.Exitcode, res.Stderr)
			}
			var out struct {
				Stdin   map[string]any `json:"stdin"`
				Message string         `json:"message"`
				Count   string         `json:"count"`
				Task    string         `json:"task"`
			}
			if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
				t.Fatalf("stdout %q: %v", res.Stdout, err)
			}
			if got := out.Stdin != nil; got != tt.wantStdin {
				t.Errorf("stdin JSON present = %v, want %v (%q)", got, tt.wantStdin, res.Stdout)
			}
			if tt.wantStdin {
				for k, v := range wantStdin {
					if out.Stdin[k] != v {
						t.Errorf("stdin[%s] = %v, want %v", k, out.Stdin[k], v)
					}
				}
			}
			wantMsg, wantCount, wantTask := "", "", ""
			if tt.wantEnv {
				wantMsg, wantCount, wantTask = "hello world", "3", "demo::echo"
			}
			if out.Message != wantMsg || out.Count != wantCount || out.Task != wantTask {
				t.Errorf("env: message %q count %q task %q; want %q %q %q",
					out.Message, out.Count, out.Task, wantMsg, wantCount, wantTask)
			}
		})
	}
}

func TestTaskRunExitCodeAndOutput(t *testing.T) {
	ts := newTestServer(t)
	startAgent(t, testConfig(t, ts))
	tests := []struct {
		name       string
		body       string
		wantExit   int
		wantStdout string
		wantStderr string
	}{
		{"json stdout", `echo '{"answer":42}'`, 0, "{\"answer\":42}\n", ""},
		{"plain stdout and stderr", "echo partial; echo oops >&2; exit 3", 3, "partial\n", "oops\n"},
		{"no output", "exit 0", 0, "", ""},
		{"scratch files cannot touch the spool", `echo '{"description":"forged"}' > error.json; touch acked result.json; basename "$(pwd)"`, 0, "work\n", ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := ts.addFile("t"+strconv.Itoa(i)+".sh", script(tt.body))
			res := ts.runTask(t, "txn-exit-"+strconv.Itoa(i), protocol.TaskParams{
				Task: "demo", Files: []protocol.TaskFile{file},
			})
			if res.Exitcode != tt.wantExit || res.Stdout != tt.wantStdout || res.Stderr != tt.wantStderr {
				t.Errorf("got exit %d stdout %q stderr %q; want %d %q %q",
					res.Exitcode, res.Stdout, res.Stderr, tt.wantExit, tt.wantStdout, tt.wantStderr)
			}
			if res.TimedOut || res.Canceled {
				t.Errorf("timed_out/canceled set: %+v", res)
			}
		})
	}
}

func TestTaskRunMultiFileInstallDir(t *testing.T) {
	ts := newTestServer(t)
	startAgent(t, testConfig(t, ts))
	body := `set -e
. "$PT__installdir/mymod/files/lib.sh"
test "$0" = "$PT__installdir/mymod/tasks/init.sh"
printf '{"installdir":"%s","greeting":"%s","a":"%s","b":"%s"}\n' "$PT__installdir" "$(greet)" \
  "$(cat "$PT__installdir/mymod/lib/a.txt")" "$(cat "$PT__installdir/mymod/lib/sub/b.txt")"`
	files := []protocol.TaskFile{
		ts.addFile("init.sh", script(body)),
		ts.addFile("mymod/files/lib.sh", []byte("greet() { echo hi; }\n")),
		ts.addFile("mymod/lib/a.txt", []byte("A")),
		ts.addFile("mymod/lib/sub/b.txt", []byte("B")),
		ts.addFile("mymod/files/unused.txt", []byte("not needed")),
	}
	meta := mustJSON(t, map[string]any{
		"files": []string{"mymod/lib/"},
		"implementations": []map[string]any{
			{"name": "init.ps1", "requirements": []string{"powershell"}},
			{"name": "init.sh", "requirements": []string{"shell"}, "files": []string{"mymod/files/lib.sh"}},
		},
	})
	res := ts.runTask(t, "txn-multi", protocol.TaskParams{Task: "mymod::hello", Files: files, Metadata: meta})
	if res.Exitcode != 0 {
		t.Fatalf("exit %d stdout %q stderr %q", res.Exitcode, res.Stdout, res.Stderr)
	}
	var out map[string]string
	if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
		t.Fatalf("stdout %q: %v", res.Stdout, err)
	}
	if out["greeting"] != "hi" || out["a"] != "A" || out["b"] != "B" {
		t.Errorf("got %v", out)
	}
	if !strings.HasSuffix(out["installdir"], filepath.Join("txn-multi", "install")) {
		t.Errorf("installdir %q is not inside the transaction's spool dir", out["installdir"])
	}
	if fileExists(out["installdir"]) {
		t.Errorf("install dir %s left behind after the run", out["installdir"])
	}
	if n := ts.downloadCount(files[4]); n != 0 {
		t.Errorf("unused file downloaded %d times", n)
	}

	t.Run("missing dependency", func(t *testing.T) {
		meta := mustJSON(t, map[string]any{"files": []string{"mymod/files/absent.sh"}})
		from := ts.frameCount()
		ts.runRequest(t, "txn-multi-missing", protocol.TaskParams{Task: "mymod::hello", Files: files[:2], Metadata: meta})
		f, _ := ts.waitFrame(t, from, "rpc error", isOutcome("txn-multi-missing"))
		if e := rpcError(t, f); !strings.Contains(e.Description, "'mymod/files/absent.sh' file requested as additional task dependency not found") {
			t.Errorf("description %q", e.Description)
		}
	})
}

func TestTaskRunNoMatchingImplementation(t *testing.T) {
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	cfg.Features = []string{"shell", "puppet-agent"} // as detected on a node with Puppet
	startAgent(t, cfg)
	file := ts.addFile("init.ps1", []byte("Write-Output hi"))
	meta := mustJSON(t, map[string]any{"implementations": []map[string]any{
		{"name": "init.ps1", "requirements": []string{"powershell"}},
	}})
	from := ts.frameCount()
	req := ts.runRequest(t, "txn-noimpl", protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}, Metadata: meta})
	f, _ := ts.waitFrame(t, from, "rpc error", isOutcome("txn-noimpl"))
	e := rpcError(t, f)
	if e.ID != req.ID || !strings.Contains(e.Description, "no implementations match supported features: shell, puppet-agent") {
		t.Errorf("got %+v (request id %s)", e, req.ID)
	}
	if n := ts.downloadCount(file); n != 0 {
		t.Errorf("file downloaded %d times for a task that cannot run", n)
	}
}

func TestTaskInputIsNeverStoredOrLogged(t *testing.T) {
	ts := newTestServer(t)
	ta := startAgent(t, testConfig(t, ts))
	const secret = "hunter2-very-secret"
	file := ts.addFile("echo.sh", script(`cat >/dev/null; echo done`))
	res := ts.runTask(t, "txn-secret", protocol.TaskParams{
		Task: "demo", Files: []protocol.TaskFile{file}, Input: mustJSON(t, map[string]any{"password": secret}),
	})
	if res.Exitcode != 0 {
		t.Fatalf("exit %d", res.Exitcode)
	}
	err := filepath.WalkDir(ta.cfg.SpoolDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), secret) {
			t.Errorf("%s contains the task input", p)
		}
		if fi, _ := d.Info(); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ta.logs.String(), secret) {
		t.Error("the logs contain the task input")
	}
	b, err := os.ReadFile(filepath.Join(ta.cfg.SpoolDir, "txn-secret", "metadata"))
	if err != nil {
		t.Fatal(err)
	}
	meta, started, err := parseMetadata(b)
	if err != nil || !started || meta.RequestParams != "{}" || strings.Contains(string(b), secret) {
		t.Errorf("metadata %s (%v)", b, err)
	}
	// As the spool reads it: finished (the status is the outcome file's).
	if st, err := (&spool{dir: ta.cfg.SpoolDir}).load("txn-secret"); err != nil || st.meta.Status != statusSuccess || st.meta.RequestParams != "{}" {
		t.Errorf("loaded %+v (%v)", st.meta, err)
	}
}

func TestRepeatedRequestRunsOnce(t *testing.T) {
	ts := newTestServer(t)
	startAgent(t, testConfig(t, ts))
	dir := t.TempDir()
	marker, release := filepath.Join(dir, "runs"), filepath.Join(dir, "release")
	file := ts.addFile("once.sh", script(`echo run >> "$PT_marker"
while [ ! -f "$PT_release" ]; do sleep 0.02; done
echo finished`))
	p := protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file},
		Input: mustJSON(t, map[string]string{"marker": marker, "release": release})}
	const txn = "txn-once"
	provisional := isTxn(protocol.TypeProvisionalResponse, txn)
	responses := isTxn(protocol.TypeNonBlockingResponse, txn)

	ts.runRequest(t, txn, p)
	waitUntil(t, "the task to start", func() bool { return lines(t, marker) == 1 })
	from := ts.frameCount()
	ts.runRequest(t, txn, p) // while running
	ts.waitFrame(t, from, "second provisional response", provisional)

	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, _ := ts.waitFrame(t, 0, "result", responses)
	if res := taskResults(t, f); res.Stdout != "finished\n" {
		t.Fatalf("stdout %q", res.Stdout)
	}

	// Finished but not acknowledged: a repeat gets the provisional response and the result again.
	from = ts.frameCount()
	ts.runRequest(t, txn, p)
	ts.waitFrame(t, from, "provisional response after finish", provisional)
	ts.waitFrame(t, from, "result sent again", responses)

	// Acknowledged: a repeat gets only the provisional response.
	ts.send(t, protocol.TypeResultAck, protocol.ResultAck{TransactionID: txn})
	from = ts.frameCount()
	ts.runRequest(t, txn, p)
	ts.waitFrame(t, from, "provisional response after ack", provisional)
	ts.statusQuery(t, txn) // answered after any resend would have been sent
	if n := ts.count(responses); n != 2 {
		t.Errorf("result sent %d times, want 2", n)
	}
	if n := lines(t, marker); n != 1 {
		t.Errorf("task ran %d times, want 1", n)
	}
}

func TestTamperedCacheFileIsNotExecuted(t *testing.T) {
	ts := newTestServer(t)
	ta := startAgent(t, testConfig(t, ts))
	dir := t.TempDir()
	good, tampered := filepath.Join(dir, "good"), filepath.Join(dir, "tampered")
	file := ts.addFile("task.sh", script(`echo good >> "$PT_good"`))
	p := protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file},
		Input: mustJSON(t, map[string]string{"good": good, "tampered": tampered})}

	if res := ts.runTask(t, "txn-tamper-1", p); res.Exitcode != 0 {
		t.Fatalf("first run: %+v", res)
	}
	cached := filepath.Join(ta.cfg.CacheDir, file.SHA256, "task.sh")
	fi, err := os.Stat(cached)
	if err != nil {
		t.Fatalf("cache entry: %v", err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("cached executable mode %v, want 0700", fi.Mode().Perm())
	}
	if err := os.WriteFile(cached, script(`echo evil > "$PT_tampered"`), 0o700); err != nil {
		t.Fatal(err)
	}

	if res := ts.runTask(t, "txn-tamper-2", p); res.Exitcode != 0 {
		t.Fatalf("second run: %+v", res)
	}
	if fileExists(tampered) {
		t.Fatal("the tampered cache file was executed")
	}
	if n := lines(t, good); n != 2 {
		t.Errorf("good task ran %d times, want 2", n)
	}
	if n := ts.downloadCount(file); n != 2 {
		t.Errorf("downloads = %d, want 2 (the tampered entry must be fetched again)", n)
	}
	if b, _ := os.ReadFile(cached); sha256Hex(b) != file.SHA256 {
		t.Error("cache entry still does not match its SHA-256")
	}

	// A third run uses the (now good) cache without downloading.
	if res := ts.runTask(t, "txn-tamper-3", p); res.Exitcode != 0 {
		t.Fatalf("third run: %+v", res)
	}
	if n := ts.downloadCount(file); n != 2 {
		t.Errorf("downloads = %d after a cached run, want 2", n)
	}
}

func TestTamperedMultiFileDependencyIsReplaced(t *testing.T) {
	ts := newTestServer(t)
	ta := startAgent(t, testConfig(t, ts))
	files := []protocol.TaskFile{
		ts.addFile("init.sh", script(`. "$PT__installdir/mymod/files/lib.sh"`)),
		ts.addFile("mymod/files/lib.sh", []byte("echo from-lib\n")),
	}
	p := protocol.TaskParams{Task: "mymod", Files: files, Metadata: mustJSON(t, map[string]any{"files": []string{"mymod/files/"}})}
	if res := ts.runTask(t, "txn-mtamper-1", p); res.Stdout != "from-lib\n" {
		t.Fatalf("first run: %+v", res)
	}
	cached := filepath.Join(ta.cfg.CacheDir, files[1].SHA256, "lib.sh")
	if err := os.WriteFile(cached, []byte("echo tampered\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := ts.runTask(t, "txn-mtamper-2", p); res.Stdout != "from-lib\n" {
		t.Fatalf("second run used tampered bytes: %+v", res)
	}
	if n := ts.downloadCount(files[1]); n != 2 {
		t.Errorf("lib downloads = %d, want 2", n)
	}
}

func TestDownloadSHAMismatchIsNotExecuted(t *testing.T) {
	ts := newTestServer(t)
	ta := startAgent(t, testConfig(t, ts))
	marker := filepath.Join(t.TempDir(), "ran")
	file := ts.addFile("init.sh", script(`echo evil > "$PT_marker"`))
	file.SHA256 = sha256Hex(script("echo the expected content")) // the server sends other bytes
	from := ts.frameCount()
	req := ts.runRequest(t, "txn-badsha", protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file},
		Input: mustJSON(t, map[string]string{"marker": marker})})
	f, _ := ts.waitFrame(t, from, "rpc error", isOutcome("txn-badsha"))
	e := rpcError(t, f)
	if e.ID != req.ID || !strings.Contains(e.Description, "The downloaded file init.sh has a SHA that differs from the provided SHA") {
		t.Errorf("got %+v", e)
	}
	if fileExists(marker) {
		t.Error("bytes with the wrong SHA-256 were executed")
	}
	if n := ts.downloadCount(file); n != 1+len(ta.cfg.DownloadBackoff) {
		t.Errorf("downloads = %d, want %d (one per attempt)", n, 1+len(ta.cfg.DownloadBackoff))
	}
	entries, _ := os.ReadDir(filepath.Join(ta.cfg.CacheDir, file.SHA256))
	if len(entries) != 0 {
		t.Errorf("cache dir holds %d entries after a failed download", len(entries))
	}
	if st := ts.statusQuery(t, "txn-badsha"); st.Status != StatusFailure || !strings.Contains(st.Stdout, "differs from the provided SHA") {
		t.Errorf("status %+v", st)
	}
}

func TestDownloadErrorsAreReported(t *testing.T) {
	ts := newTestServer(t)
	startAgent(t, testConfig(t, ts))
	file := protocol.TaskFile{Filename: "gone.sh", URI: protocol.FileURI{Path: "/files/gone.sh"}, SHA256: sha256Hex([]byte("x"))}
	from := ts.frameCount()
	ts.runRequest(t, "txn-404", protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}})
	f, _ := ts.waitFrame(t, from, "rpc error", isOutcome("txn-404"))
	if e := rpcError(t, f); !strings.Contains(e.Description, "Failed to download file with:") || !strings.Contains(e.Description, "HTTP 404") {
		t.Errorf("description %q", e.Description)
	}
}

// spawnScript starts a child sleep in the task's process group, records its pid, and waits.
const spawnScript = `sleep 300 &
echo $! > "$PT_childpid.tmp"
mv "$PT_childpid.tmp" "$PT_childpid"
wait`

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	ts := newTestServer(t)
	startAgent(t, testConfig(t, ts))
	childpid := filepath.Join(t.TempDir(), "child")
	file := ts.addFile("spawn.sh", script(spawnScript))
	res := ts.runTask(t, "txn-timeout", protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}, Timeout: 1,
		Input: mustJSON(t, map[string]string{"childpid": childpid})})
	if !res.TimedOut || res.Canceled || res.Exitcode != -1 {
		t.Errorf("results %+v, want timed_out and exitcode -1", res)
	}
	pid := readPID(t, childpid)
	waitUntil(t, "the child process to die", func() bool { return processGone(pid) })
}

func TestCancelKillsProcessGroup(t *testing.T) {
	ts := newTestServer(t)
	startAgent(t, testConfig(t, ts))
	childpid := filepath.Join(t.TempDir(), "child")
	file := ts.addFile("spawn.sh", script(spawnScript))
	from := ts.frameCount()
	ts.runRequest(t, "txn-cancel", protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file},
		Input: mustJSON(t, map[string]string{"childpid": childpid})})
	waitUntil(t, "the child to start", func() bool { return fileExists(childpid) })
	if st := ts.statusQuery(t, "txn-cancel"); st.Status != StatusRunning {
		t.Errorf("status while running: %+v", st)
	}
	ts.send(t, protocol.TypeCancel, protocol.Cancel{TransactionID: "txn-cancel"})
	f, _ := ts.waitFrame(t, from, "result", isOutcome("txn-cancel"))
	if res := taskResults(t, f); !res.Canceled || res.TimedOut || res.Exitcode != -1 {
		t.Errorf("results %+v, want canceled and exitcode -1", res)
	}
	pid := readPID(t, childpid)
	waitUntil(t, "the child process to die", func() bool { return processGone(pid) })
}

func TestStatusQuery(t *testing.T) {
	ts := newTestServer(t)
	startAgent(t, testConfig(t, ts))
	release := filepath.Join(t.TempDir(), "release")
	slow := ts.addFile("slow.sh", script(`while [ ! -f "$PT_release" ]; do sleep 0.02; done; echo out; echo err >&2`))
	failing := ts.addFile("fail.sh", script(`echo bad; exit 4`))

	if st := ts.statusQuery(t, "txn-never-seen"); st.Status != StatusUnknown || st.Exitcode != nil ||
		!strings.Contains(st.Stdout, "found no results directory") {
		t.Errorf("unknown txn: %+v", st)
	}

	from := ts.frameCount()
	ts.runRequest(t, "txn-status", protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{slow},
		Input: mustJSON(t, map[string]string{"release": release})})
	ts.waitFrame(t, from, "provisional", isTxn(protocol.TypeProvisionalResponse, "txn-status"))
	if st := ts.statusQuery(t, "txn-status"); st.Status != StatusRunning || st.Exitcode != nil {
		t.Errorf("running txn: %+v", st)
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ts.waitFrame(t, from, "result", isOutcome("txn-status"))
	st := ts.statusQuery(t, "txn-status")
	if st.Status != StatusSuccess || st.Exitcode == nil || *st.Exitcode != 0 || st.Stdout != "out\n" || st.Stderr != "err\n" {
		t.Errorf("finished txn: %+v", st)
	}

	ts.runTask(t, "txn-status-fail", protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{failing}})
	st = ts.statusQuery(t, "txn-status-fail")
	if st.Status != StatusFailure || st.Exitcode == nil || *st.Exitcode != 4 || st.Stdout != "bad\n" {
		t.Errorf("failed txn: %+v", st)
	}
}

func TestNotifyOutcomeFalse(t *testing.T) {
	ts := newTestServer(t)
	startAgent(t, testConfig(t, ts))
	file := ts.addFile("quiet.sh", script("echo quiet"))
	params := mustJSON(t, protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}})
	ts.send(t, protocol.TypeNonBlockingRequest, protocol.NonBlockingRequest{
		TransactionID: "txn-quiet", Module: protocol.ModuleTask, Action: protocol.ActionRun, Params: params,
	})
	var st protocol.StatusResults
	waitUntil(t, "the task to finish", func() bool {
		st = ts.statusQuery(t, "txn-quiet")
		return st.Status == StatusSuccess
	})
	if st.Stdout != "quiet\n" {
		t.Errorf("status %+v", st)
	}
	if n := ts.count(isOutcome("txn-quiet")); n != 0 {
		t.Errorf("outcome sent %d times although notify_outcome is false", n)
	}
}

func TestPlanTask(t *testing.T) {
	f := func(name string) protocol.TaskFile {
		return protocol.TaskFile{Filename: name, SHA256: strings.Repeat("a", 64), URI: protocol.FileURI{Path: "/f"}}
	}
	tests := []struct {
		name       string
		task       string
		files      []string
		meta       string
		wantExe    string
		wantMethod string
		wantExtras []string
		wantModule string
		wantErr    string
	}{
		{name: "single file, default input", task: "demo::x", files: []string{"x.sh"}, wantExe: "x.sh", wantMethod: "both", wantModule: "demo"},
		{name: "metadata input method", task: "demo", files: []string{"x.sh"}, meta: `{"input_method":"stdin"}`, wantExe: "x.sh", wantMethod: "stdin", wantModule: "demo"},
		{name: "metadata features extend agent features", task: "demo", files: []string{"a.py", "b.sh"},
			meta:    `{"features":["python"],"implementations":[{"name":"a.py","requirements":["python"]},{"name":"b.sh"}]}`,
			wantExe: "a.py", wantMethod: "both", wantModule: "demo"},
		{name: "directory expands", task: "m::t", files: []string{"t.sh", "m/lib/x", "m/lib/y/z", "m/files/other"},
			meta:    `{"files":["m/lib/"]}`,
			wantExe: "t.sh", wantMethod: "both", wantModule: "m", wantExtras: []string{"m/lib/x", "m/lib/y/z"}},
		{name: "missing dependency", task: "m", files: []string{"t.sh"}, meta: `{"files":["m/lib/"]}`,
			wantErr: "'m/lib/' file requested as additional task dependency not found"},
		{name: "implementation file missing", task: "m", files: []string{"t.sh"}, meta: `{"implementations":[{"name":"u.sh"}]}`,
			wantErr: "'u.sh' file requested by implementation not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := protocol.TaskParams{Task: tt.task}
			for _, n := range tt.files {
				p.Files = append(p.Files, f(n))
			}
			if tt.meta != "" {
				p.Metadata = json.RawMessage(tt.meta)
			}
			plan, err := planTask(p, []string{"shell", "puppet-agent"})
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var extras []string
			for _, e := range plan.extras {
				extras = append(extras, e.Filename)
			}
			if plan.exe.Filename != tt.wantExe || plan.impl.InputMethod != tt.wantMethod || plan.module != tt.wantModule ||
				strings.Join(extras, ",") != strings.Join(tt.wantExtras, ",") {
				t.Errorf("got exe %s method %s module %s extras %v", plan.exe.Filename, plan.impl.InputMethod, plan.module, extras)
			}
		})
	}
}

func TestTaskEnv(t *testing.T) {
	got := taskEnv(map[string]json.RawMessage{
		"s": json.RawMessage(`"two words"`), "n": json.RawMessage(`3`), "a": json.RawMessage(`[1, 2, "3"]`),
		"o": json.RawMessage(`{"k": true}`), "bad=key": json.RawMessage(`"x"`), "null": json.RawMessage(`null`),
	})
	want := []string{`PT_a=[1,2,"3"]`, "PT_n=3", "PT_null=null", `PT_o={"k":true}`, "PT_s=two words"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestProvisionalResponseOnlyForSlowTransactions checks that a task that ends within
// ProvisionalDelay sends only its result, a slower one its provisional response after the
// delay, and that a negative delay sends it at once, as pxp-agent does. A no_ack request
// gets none of its own accord, only in answer to a repeat of it while it runs.
func TestProvisionalResponseOnlyForSlowTransactions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		delay  time.Duration
		sleep  string
		noAck  bool
		repeat bool // the request is sent again while the task runs
		want   int
	}{
		{"quick task", 5 * time.Second, "0", false, false, 0},
		{"slow task", 50 * time.Millisecond, "0.5", false, false, 1},
		{"at once", -1, "0", false, false, 1},
		{"slow task no_ack", 50 * time.Millisecond, "0.5", true, false, 0},
		{"at once no_ack", -1, "0", true, false, 0},
		{"slow task no_ack repeated", 50 * time.Millisecond, "0.5", true, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t)
			cfg := testConfig(t, ts)
			cfg.ProvisionalDelay = tc.delay
			startAgent(t, cfg)
			file := ts.addFile("s.sh", script(`sleep `+tc.sleep+`; echo done`))
			txn := "txn-" + strings.ReplaceAll(tc.name, " ", "-")
			params, err := json.Marshal(protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}})
			if err != nil {
				t.Fatal(err)
			}
			req := protocol.NonBlockingRequest{TransactionID: txn, NotifyOutcome: true, Module: protocol.ModuleTask,
				Action: protocol.ActionRun, Params: params, NoAck: tc.noAck}
			from := ts.frameCount()
			ts.send(t, protocol.TypeNonBlockingRequest, req)
			if tc.repeat {
				ts.send(t, protocol.TypeNonBlockingRequest, req)
			}
			ts.waitFrame(t, from, "outcome of "+txn, isOutcome(txn))
			ts.statusQuery(t, txn) // answered after anything sent before it
			if n := ts.count(isTxn(protocol.TypeProvisionalResponse, txn)); n != tc.want {
				t.Fatalf("%d provisional responses, want %d", n, tc.want)
			}
		})
	}
}

// TestDownloadsAreCappedBySize checks that a download stops at the file's declared
// size_bytes, and at Config.MaxDownloadBytes when it declares none, whether or not the
// server announces a Content-Length; nothing of such a file is cached or run.
func TestDownloadsAreCappedBySize(t *testing.T) {
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	cfg.MaxDownloadBytes = 1 << 10
	ta := startAgent(t, cfg)
	big := script(`echo ran > "$PT_marker"` + "\n#" + strings.Repeat("x", 4<<10))
	// A server that streams without a Content-Length (chunked), as a hostile one might.
	stream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i < len(big); i += 512 {
			_, _ = w.Write(big[i:min(i+512, len(big))])
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(stream.Close)
	for _, tc := range []struct {
		name string
		file func() protocol.TaskFile
		want string
	}{
		{"declared size smaller than the file", func() protocol.TaskFile {
			f := ts.addFile("declared.sh", big)
			f.SizeBytes = 100
			return f
		}, "The downloaded file declared.sh is larger than its declared size of 100 bytes"},
		{"no declared size, over the agent's limit", func() protocol.TaskFile {
			f := ts.addFile("undeclared.sh", big)
			f.SizeBytes = 0
			return f
		}, "The downloaded file undeclared.sh declares no size and is larger than the agent's limit of 1024 bytes"},
		{"no declared size, streamed without a length", func() protocol.TaskFile {
			return protocol.TaskFile{Filename: "streamed.sh", URI: protocol.FileURI{Path: stream.URL + "/streamed.sh"}, SHA256: sha256Hex(big)}
		}, "declares no size and is larger than the agent's limit of 1024 bytes"},
		{"declared size, streamed without a length", func() protocol.TaskFile {
			return protocol.TaskFile{Filename: "streamed2.sh", URI: protocol.FileURI{Path: stream.URL + "/streamed2.sh"}, SHA256: sha256Hex(big), SizeBytes: 2048}
		}, "is larger than its declared size of 2048 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := tc.file()
			marker := filepath.Join(t.TempDir(), "ran")
			txn := "txn-cap-" + file.Filename
			from := ts.frameCount()
			ts.runRequest(t, txn, protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file},
				Input: mustJSON(t, map[string]string{"marker": marker})})
			f, _ := ts.waitFrame(t, from, "rpc error", isOutcome(txn))
			if e := rpcError(t, f); !strings.Contains(e.Description, tc.want) {
				t.Errorf("description %q, want it to contain %q", e.Description, tc.want)
			}
			if fileExists(marker) {
				t.Error("a file over its size cap was executed")
			}
			if entries, _ := os.ReadDir(filepath.Join(ta.cfg.CacheDir, file.SHA256)); len(entries) != 0 {
				t.Errorf("cache holds %d entries after the refused download", len(entries))
			}
		})
	}
}
