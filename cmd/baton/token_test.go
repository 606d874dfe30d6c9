package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-run/baton/shared/local"
)

// TestReadTokenFileRefusesOpenFiles: like the agent with its credential, the CLI refuses a
// token file that others can read or write.
func TestReadTokenFileRefusesOpenFiles(t *testing.T) {
	cases := []struct {
		mode    os.FileMode
		wantErr string
	}{
		{0o600, ""},
		{0o400, ""},
		{0o640, "chmod 600"},
		{0o644, "chmod 600"},
		{0o604, "chmod 600"},
		{0o620, "chmod 600"},
	}
	for _, tc := range cases {
		t.Run(tc.mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "api.token")
			if err := os.WriteFile(path, []byte("s3cret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			token, err := readTokenFile(path)
			if tc.wantErr == "" {
				if err != nil || token != "s3cret" {
					t.Errorf("readTokenFile = %q, %v", token, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("readTokenFile of a %v file = %q, %v; want an error mentioning %q", tc.mode, token, err, tc.wantErr)
			}
		})
	}
	if _, err := readTokenFile(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "no API token") {
		t.Errorf("missing file: %v", err)
	}
}

// TestTokenRotateAdmin replaces baton serve's admin token from the command line.
func TestTokenRotateAdmin(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	srv, err := local.Start(local.Config{Listen: "127.0.0.1:0", DataDir: dir, Modules: t.TempDir(), PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	before, err := readTokenFile(srv.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := cmdTokenRotateAdmin([]string{"--data", dir, "--lifetime", "2h"}); err != nil {
		t.Fatal(err)
	}
	after, err := readTokenFile(srv.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	if after == before {
		t.Fatal("the admin token did not change")
	}
	if _, err := srv.Auth().AuthenticateToken(t.Context(), before); err == nil {
		t.Error("the old admin token still works")
	}
	p, err := srv.Auth().AuthenticateToken(t.Context(), after)
	if err != nil || p.ExpiresAt == nil {
		t.Fatalf("the new admin token: %+v %v", p, err)
	}
	if err := cmdTokenRotateAdmin([]string{"--data", filepath.Join(t.TempDir(), "nothing")}); err == nil || !strings.Contains(err.Error(), "no baton serve data") {
		t.Errorf("rotating in an empty directory: %v", err)
	}
}

// TestWriteTokenFileIsPrivate: a token written over a file others could read ends up 0600
// (os.WriteFile would have kept the old mode), and the CLI reads it back.
func TestWriteTokenFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.token")
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeTokenFile(path, "s3cret"); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if got, err := readTokenFile(path); err != nil || got != "s3cret" {
		t.Errorf("read back %q, %v", got, err)
	}
}
