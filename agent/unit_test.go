package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

func TestConfigValidate(t *testing.T) {
	good := Config{Server: "wss://baton.example.com/pcp", Name: "n", Secret: "s", CacheDir: "/c", SpoolDir: "/s"}
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"valid", func(*Config) {}, ""},
		{"ws is fine", func(c *Config) { c.Server = "ws://127.0.0.1:8080/pcp" }, ""},
		{"no server", func(c *Config) { c.Server = "" }, "server URL is required"},
		{"http scheme", func(c *Config) { c.Server = "https://x/pcp" }, "scheme must be ws or wss"},
		{"no host", func(c *Config) { c.Server = "ws:///pcp" }, "has no host"},
		{"no name", func(c *Config) { c.Name = "" }, "name is required"},
		{"no secret", func(c *Config) { c.Secret = "" }, "exactly one of secret and private key is required"},
		{"secret and key", func(c *Config) { c.PrivateKey = make([]byte, 64) }, "exactly one of secret and private key is required"},
		{"short key", func(c *Config) { c.Secret, c.PrivateKey = "", make([]byte, 10) }, "private key has the wrong size"},
		{"no dirs", func(c *Config) { c.CacheDir, c.SpoolDir = "", "" }, "cache dir is required"},
		{"negative", func(c *Config) { c.PingInterval = -1 }, "durations must not be negative"},
		{"negative backoff", func(c *Config) { c.DownloadBackoff = []time.Duration{-1} }, "download backoff must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mod(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				if _, err := New(c); err != nil {
					t.Fatalf("New() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
			}
			if _, err := New(c); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Server: "ws://h/pcp", Name: "n", Secret: "s", CacheDir: "/c", SpoolDir: "/s"}.withDefaults()
	if c.PingInterval != DefaultPingInterval || c.MaxBackoff != DefaultMaxBackoff || c.SpoolPurgeTTL != DefaultSpoolPurgeTTL ||
		len(c.DownloadBackoff) != 4 || c.Facts == nil || c.HTTPClient == nil || c.Logger == nil {
		t.Errorf("defaults not applied: %+v", c)
	}
	// Features are detected (in the background): what DetectPlatform finds on this machine.
	plat, err := c.platform.get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := DetectPlatform(t.Context(), "").Features; strings.Join(plat.features, ",") != strings.Join(want, ",") || c.Features != nil {
		t.Errorf("features %v (config %v), want the detected %v", plat.features, c.Features, want)
	}
}

func TestFileURL(t *testing.T) {
	base, err := httpBase("wss://baton.example.com:8443/pcp")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		uri     protocol.FileURI
		want    string
		wantErr bool
	}{
		{"server path", protocol.FileURI{Path: "/files/x.sh"}, "https://baton.example.com:8443/files/x.sh", false},
		{"server path with params", protocol.FileURI{Path: "/puppet/v3/file_content/tasks/echo/init", Params: map[string]string{"environment": "production", "a b": "c&d"}},
			"https://baton.example.com:8443/puppet/v3/file_content/tasks/echo/init?a+b=c%26d&environment=production", false},
		{"presigned URL kept byte for byte", protocol.FileURI{Path: "https://bucket.s3.amazonaws.com/k?X-Amz-Signature=ab%2Fc&X-Amz-Date=1"},
			"https://bucket.s3.amazonaws.com/k?X-Amz-Signature=ab%2Fc&X-Amz-Date=1", false},
		{"presigned URL plus params", protocol.FileURI{Path: "http://s3.local/k?sig=1", Params: map[string]string{"v": "2"}},
			"http://s3.local/k?sig=1&v=2", false},
		{"relative path", protocol.FileURI{Path: "files/x"}, "", true},
		{"scheme-relative", protocol.FileURI{Path: "//evil.example.com/x"}, "", true},
		{"other scheme", protocol.FileURI{Path: "file:///etc/passwd"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := fileURL(base, tt.uri)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %s, want an error", u)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.String() != tt.want {
				t.Errorf("got %s, want %s", u, tt.want)
			}
		})
	}
	if b, _ := httpBase("ws://127.0.0.1:9/pcp"); b.String() != (&url.URL{Scheme: "http", Host: "127.0.0.1:9"}).String() {
		t.Errorf("ws base %s", b)
	}
}

func TestSafeRelPath(t *testing.T) {
	for p, want := range map[string]bool{
		"init.sh": true, "mymod/files/lib.sh": true, "": false, "../x": false, "/etc/passwd": false,
		"a/../../x": false, "a/./b": false, "a\\b": false, "a//b": false,
	} {
		if got := safeRelPath(p); got != want {
			t.Errorf("safeRelPath(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestSpoolLifecycleAndPurge(t *testing.T) {
	for _, tc := range []struct {
		name   string
		spool  func(dir string) txnSpool
		exists func(sp txnSpool, dir, txn string) bool
	}{
		{"files", func(dir string) txnSpool { return &spool{dir: dir} },
			func(_ txnSpool, dir, txn string) bool { return fileExists(filepath.Join(dir, txn)) }},
		{"memory", func(string) txnSpool { return newMemSpool() },
			func(sp txnSpool, _, txn string) bool { _, err := sp.load(txn); return err == nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			sp := tc.spool(dir)
			spoolLifecycle(t, sp, func(txn string) bool { return tc.exists(sp, dir, txn) })
			if tc.name == "files" {
				if fi, err := os.Stat(filepath.Join(dir, "new-acked")); err != nil || fi.Mode().Perm() != 0o700 {
					t.Errorf("txn dir mode: %v %v", fi, err)
				}
			}
		})
	}
}

func spoolLifecycle(t *testing.T, sp txnSpool, exists func(txn string) bool) {
	now := time.Now().UTC()
	old := now.Add(-15 * 24 * time.Hour)
	mk := func(txn string, start time.Time) {
		t.Helper()
		created, err := sp.create(txnMetadata{Module: "task", Action: "run", RequestParams: "{}", TransactionID: txn,
			RequestID: "r-" + txn, NotifyOutcome: true, Start: start, Status: statusRunning})
		if err != nil || !created {
			t.Fatalf("create %s: %v %v", txn, created, err)
		}
	}
	mk("old-acked", old)
	mk("old-unacked", old)
	mk("old-running", old)
	mk("new-acked", now)
	mk("new-error", now)

	if created, err := sp.create(txnMetadata{TransactionID: "new-acked", Start: now}); err != nil || created {
		t.Fatalf("second create = %v, %v; want false, nil", created, err)
	}
	if _, err := sp.create(txnMetadata{TransactionID: "../escape", Start: now}); err == nil {
		t.Error("an invalid transaction id was accepted")
	}
	if err := sp.ack("old-running"); err == nil {
		t.Error("ack of an unfinished transaction succeeded")
	}
	results := json.RawMessage(`{"exitcode":0,"stdout":"x"}`)
	for _, txn := range []string{"old-acked", "old-unacked", "new-acked"} {
		if _, err := sp.finish(txn, results, "", now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sp.finish("new-error", nil, "it broke", now); err != nil {
		t.Fatal(err)
	}
	for _, txn := range []string{"old-acked", "new-acked"} {
		if err := sp.ack(txn); err != nil {
			t.Fatal(err)
		}
	}
	pending, err := sp.pending()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pending {
		names = append(names, p.meta.TransactionID)
	}
	if strings.Join(names, ",") != "old-unacked,new-error" {
		t.Errorf("pending = %v", names)
	}
	st, err := sp.load("new-error")
	if err != nil || st.errDesc != "it broke" || st.meta.Status != statusFailure {
		t.Errorf("error record %+v %v", st, err)
	}
	if st, err := sp.load("new-acked"); err != nil || !st.acked || string(st.results) != string(results) || st.meta.Status != statusSuccess {
		t.Errorf("acknowledged record %+v %v", st, err)
	}
	if _, err := sp.load("absent"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("load(absent) = %v, want ErrNotExist", err)
	}

	n, err := sp.purge(now.Add(-14 * 24 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("purged %d, want 2", n)
	}
	for txn, want := range map[string]bool{"old-acked": false, "old-unacked": false, "old-running": true, "new-acked": true, "new-error": true} {
		if got := exists(txn); got != want {
			t.Errorf("%s exists = %v, want %v", txn, got, want)
		}
	}
}

func TestCappedBuffer(t *testing.T) {
	b := &cappedBuffer{max: 5}
	for _, s := range []string{"abc", "def", "ghi"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if got := b.String(); !strings.HasPrefix(got, "abcde\n") || !strings.Contains(got, "4 more bytes were dropped") {
		t.Errorf("got %q", got)
	}
	small := &cappedBuffer{max: 10}
	_, _ = small.Write([]byte("ok"))
	if small.String() != "ok" {
		t.Errorf("got %q", small.String())
	}
}

func TestRunCommandStartFailure(t *testing.T) {
	res, err := RunCommand(context.Background(), Command{Path: filepath.Join(t.TempDir(), "missing")})
	if err == nil || res.Exitcode != 127 || !strings.Contains(res.Stderr, "failed to run") {
		t.Errorf("got %+v, %v", res, err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(ErrCanceled)
	res, err = RunCommand(ctx, Command{Path: "/bin/true"})
	if err != nil || !res.Canceled || res.Exitcode != -1 {
		t.Errorf("cancelled before start: %+v, %v", res, err)
	}
}

func TestBuiltinFacts(t *testing.T) {
	f := builtinFacts()
	host, _ := os.Hostname()
	short, _, _ := strings.Cut(host, ".")
	if f["hostname"] != short {
		t.Errorf("hostname %v, want %s", f["hostname"], short)
	}
	if fqdn, _ := f["fqdn"].(string); !strings.HasPrefix(fqdn, short) {
		t.Errorf("fqdn %v", f["fqdn"])
	}
	osf, _ := f["os"].(map[string]any)
	if osf["name"] == "" || osf["family"] == "" || osf["architecture"] == "" || osf["architecture"] != f["architecture"] {
		t.Errorf("os %v", osf)
	}
	if f["kernel"] == "" {
		t.Errorf("kernel %v", f["kernel"])
	}
	if runtime.GOOS == "linux" && (f["kernel"] != "Linux" || f["kernelrelease"] == "") {
		t.Errorf("kernel %v %v", f["kernel"], f["kernelrelease"])
	}
	if p, _ := f["processors"].(map[string]any); p["count"].(int) < 1 {
		t.Errorf("processors %v", f["processors"])
	}
	netf, _ := f["networking"].(map[string]any)
	if ifs, _ := netf["interfaces"].(map[string]any); len(ifs) == 0 || netf["hostname"] != short {
		t.Errorf("networking %v", netf)
	}
	if mem, ok := f["memory"].(map[string]any); runtime.GOOS == "linux" && (!ok || mem["system"].(map[string]any)["total_bytes"].(int64) <= 0) {
		t.Errorf("memory %v", f["memory"])
	}
	if _, err := json.Marshal(f); err != nil {
		t.Errorf("facts do not encode: %v", err)
	}
}

func TestFactsUsesFacterWhenPresent(t *testing.T) {
	if _, err := exec.LookPath("facter"); err != nil {
		t.Skip("facter is not on PATH")
	}
	f, err := Facts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, builtin := f["baton_facts_source"]; builtin {
		t.Error("got built-in facts although facter is on PATH")
	}
	if osf, _ := f["os"].(map[string]any); osf["family"] == nil {
		t.Errorf("facter os fact %v", f["os"])
	}
}

func TestParseOSRelease(t *testing.T) {
	p := filepath.Join(t.TempDir(), "os-release")
	content := "# comment\nNAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID='9.3'\n"
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	rel, err := parseOSRelease(p)
	if err != nil {
		t.Fatal(err)
	}
	if rel["NAME"] != "Rocky Linux" || rel["ID"] != "rocky" || rel["VERSION_ID"] != "9.3" || rel["ID_LIKE"] != "rhel centos fedora" {
		t.Errorf("got %v", rel)
	}
}

func TestOSNameFamily(t *testing.T) {
	tests := []struct{ id, like, name, family string }{
		{"debian", "", "Debian", "Debian"},
		{"ubuntu", "debian", "Ubuntu", "Debian"},
		{"linuxmint", "ubuntu debian", "LinuxMint", "Debian"},
		{"rhel", "fedora", "RedHat", "RedHat"},
		{"rocky", "rhel centos fedora", "Rocky", "RedHat"},
		{"amzn", "centos rhel fedora", "Amazon", "RedHat"},
		{"sles", "suse", "SLES", "Suse"},
		{"opensuse-leap", "suse opensuse", "OpenSuSE", "Suse"},
		{"alpine", "", "Alpine", "Alpine"},
		{"nixos", "", "Nixos", "Nixos"},
		{"", "", "Linux", "Linux"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			name, family := osNameFamily(tt.id, tt.like)
			if name != tt.name || family != tt.family {
				t.Errorf("got %s/%s, want %s/%s", name, family, tt.name, tt.family)
			}
		})
	}
}

// TestReadCapped checks how a supervised task's output files are read: the first max bytes
// are kept, and what more there is counted and noted, as cappedBuffer does for piped output.
func TestReadCapped(t *testing.T) {
	for _, tc := range []struct {
		name    string
		max     int64
		content string
		want    string
	}{
		{"empty", 10, "", ""},
		{"under the cap", 10, "ok", "ok"},
		{"exactly the cap", 4, "abcd", "abcd"},
		{"over the cap", 5, "abcdefghi", "abcde\n[baton-agent: output truncated: 4 more bytes were dropped]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if got := readCapped(path, tc.max); got != tc.want {
				t.Errorf("readCapped = %q, want %q", got, tc.want)
			}
		})
	}
	if got := readCapped(filepath.Join(t.TempDir(), "missing"), 10); got != "" {
		t.Errorf("readCapped of a missing file = %q, want empty", got)
	}
}

// TestReadParams checks the one decode of a request's params: an object (or null) passes
// and its "timeout" is read when it is a positive whole number of seconds; anything else
// is refused, and a timeout of another kind is no timeout.
func TestReadParams(t *testing.T) {
	for _, tc := range []struct {
		params  string
		timeout time.Duration
		bad     bool
	}{
		{"", 0, false},
		{"null", 0, false},
		{"{}", 0, false},
		{` { "message": "hi" } `, 0, false},
		{`{"timeout": 30}`, 30 * time.Second, false},
		{`{"timeout": "45"}`, 45 * time.Second, false},
		{`{"timeout": 0}`, 0, false},
		{`{"timeout": -3}`, 0, false},
		{`{"timeout": 1.5}`, 0, false},
		{`{"timeout": "soon"}`, 0, false},
		{`{"timeout": {"s": 1}}`, 0, false},
		{`[1, 2]`, 0, true},
		{`"params"`, 0, true},
		{`7`, 0, true},
		{`true`, 0, true},
	} {
		got, err := readParams(json.RawMessage(tc.params))
		if (err != nil) != tc.bad || got != tc.timeout {
			t.Errorf("readParams(%s) = %v, %v; want %v, error %v", tc.params, got, err, tc.timeout, tc.bad)
		}
	}
}

func TestCheckResults(t *testing.T) {
	for _, tc := range []struct {
		results string
		ok      bool
	}{
		{`{}`, true},
		{` {"exitcode": 0, "stdout": "{\"x\": [1]}"}`, true},
		{"\n\t{\"a\":null}\n", true},
		{``, false},
		{`null`, false},
		{`[{}]`, false},
		{`"{}"`, false},
		{`{"a": 1`, false},
		{`{"a": 1} {}`, false},
		{`{"a": 1}}`, false},
	} {
		if err := checkResults(json.RawMessage(tc.results)); (err == nil) != tc.ok {
			t.Errorf("checkResults(%q) = %v, want ok %v", tc.results, err, tc.ok)
		}
	}
}
