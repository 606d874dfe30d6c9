package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCredentialTLSFingerprint(t *testing.T) {
	fp := strings.Repeat("5a", 32)
	for _, tc := range []struct {
		name    string
		cred    Credential
		wantKey bool
	}{
		{"pinned", Credential{Name: "web1", Secret: "s", Server: "wss://127.0.0.1:8143/pcp", Fingerprint: fp}, true},
		{"verified with CAs", Credential{Name: "web1", Secret: "s", Server: "wss://baton.example.com:8143/pcp"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "web1.cred")
			if err := WriteCredential(path, tc.cred); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(string(b), `"tls_fingerprint": "`+fp+`"`); got != tc.wantKey {
				t.Errorf("credential file holds tls_fingerprint: %v, want %v\n%s", got, tc.wantKey, b)
			}
			if !tc.wantKey && strings.Contains(string(b), "tls_fingerprint") {
				t.Errorf("an empty fingerprint is written:\n%s", b)
			}
			got, err := ReadCredential(path)
			if err != nil || got != tc.cred {
				t.Errorf("ReadCredential = %+v, %v; want %+v", got, err, tc.cred)
			}
		})
	}
}
