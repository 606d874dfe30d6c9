package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-run/baton/agent"
)

// TestRunRefusesBadSettings covers the settings run rejects before it starts an agent.
func TestRunRefusesBadSettings(t *testing.T) {
	for _, k := range []string{"BATON_AGENT_CONFIG", "BATON_AGENT_SERVER", "BATON_AGENT_NAME", "BATON_AGENT_CREDENTIAL",
		"BATON_AGENT_CACHE_DIR", "BATON_AGENT_SPOOL_DIR", "BATON_AGENT_LOG_LEVEL"} {
		t.Setenv(k, "")
	}
	// The flag package prints usage to stderr for a bad flag; keep the test's output clean.
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = null
	t.Cleanup(func() {
		os.Stderr = stderr
		null.Close()
	})
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const cred = `{"name":"web1","secret":"s3cret","server":"ws://127.0.0.1:1/pcp"}`
	good := write("good.cred", cred, 0o600)
	open := write("open.cred", cred, 0o644)
	groupReadable := write("group.cred", cred, 0o640)
	noSecret := write("nosecret.cred", `{"name":"web1"}`, 0o600)
	notJSON := write("bad.cred", `name=web1`, 0o600)
	unknownField := write("unknown.json", `{"credential":"`+good+`","colour":"blue"}`, 0o600)
	noCredInConfig := write("nocred.json", `{"name":"web1"}`, 0o600)
	emptyArray := write("emptyarray.json", `{"credential":"`+good+`","interpreters":{"rb":[]}}`, 0o600)
	emptyPath := write("emptypath.json", `{"credential":"`+good+`","interpreters":{".rb":["","-r","puppet"]}}`, 0o600)
	notAPath := write("notapath.json", `{"credential":"`+good+`","interpreters":{"py":3}}`, 0o600)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no credential", nil, nil, "credential file is required"},
		{"missing credential file", []string{"--credential", filepath.Join(dir, "nope")}, nil, "read credential"},
		{"world-readable credential", []string{"--credential", open}, nil, "chmod 600"},
		{"group-readable credential", []string{"--credential", groupReadable}, nil, "chmod 600"},
		{"credential without a secret", []string{"--credential", noSecret}, nil, "needs a name and one of secret, enrollment_token, private_key"},
		{"credential that is not JSON", []string{"--credential", notJSON}, nil, notJSON},
		{"credential from the environment is checked too", nil, map[string]string{"BATON_AGENT_CREDENTIAL": open}, "chmod 600"},
		{"name that does not match the credential", []string{"--credential", good, "--name", "web2"}, nil, `"web2" does not match the credential's "web1"`},
		{"name from the environment", []string{"--credential", good}, map[string]string{"BATON_AGENT_NAME": "db1"}, `"db1" does not match`},
		{"bad log level", []string{"--credential", good, "--log-level", "chatty"}, nil, "log level"},
		{"missing config file", []string{"--config", filepath.Join(dir, "nope.json")}, nil, "config"},
		{"config with an unknown field", []string{"--config", unknownField}, nil, `unknown field "colour"`},
		{"config without a credential", []string{"--config", noCredInConfig}, nil, "credential file is required"},
		{"unknown flag", []string{"--bogus"}, nil, "flag provided but not defined"},
		{"interpreter without an extension", []string{"--credential", good, "--interpreters", "/usr/bin/ruby"}, nil, "want EXT=INTERPRETER"},
		{"interpreters from the environment are checked too", []string{"--credential", good}, map[string]string{"BATON_AGENT_INTERPRETERS": "tar.gz=/bin/x"}, "BATON_AGENT_INTERPRETERS"},
		{"config interpreter: empty array", []string{"--config", emptyArray}, nil, `interpreters: "rb": empty array`},
		{"config interpreter: empty path", []string{"--config", emptyPath}, nil, `interpreters: ".rb": empty interpreter path`},
		{"config interpreter: not a path or an array", []string{"--config", notAPath}, nil, `interpreters: "py": want an interpreter path or an array`},
		{"interpreters flag: JSON with an empty array", []string{"--credential", good, "--interpreters", `{"rb":[]}`}, nil, "--interpreters: interpreters: \"rb\": empty array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := append([]string{"--cache-dir", filepath.Join(dir, "cache"), "--spool-dir", filepath.Join(dir, "spool")}, tc.args...)
			err := run(args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
			if _, statErr := os.Stat(filepath.Join(dir, "spool")); !os.IsNotExist(statErr) {
				t.Errorf("run(%q) created the spool directory before refusing to start", tc.args)
			}
		})
	}
}

// TestFaultHookSpec covers BATON_AGENT_FAULT's forms (the hook itself kills the process, so
// only its choice of points is exercised here, with probability 0).
func TestFaultHookSpec(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		spec    string
		wantErr string
		hook    bool
	}{
		{"", "", false},
		{agent.FaultTaskStarted, "", true},
		{agent.FaultSpoolCreated + ":0.25", "", true},
		{"any:0", "", true},
		{"any:1.5", "probability must be a number from 0 to 1", false},
		{"spool-created:x", "probability must be a number from 0 to 1", false},
		{"nowhere", "unknown fault point", false},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			h, err := faultHook(tc.spec, log)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("faultHook(%q) = %v, want an error containing %q", tc.spec, err, tc.wantErr)
				}
				return
			}
			if err != nil || (h != nil) != tc.hook {
				t.Fatalf("faultHook(%q) = hook %v, %v", tc.spec, h != nil, err)
			}
		})
	}
	// With probability 0 the hook never fires, at any point.
	h, _ := faultHook("any:0", log)
	for _, p := range agent.FaultPoints {
		h(p)
	}
}
