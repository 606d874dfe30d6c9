package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Credential is what `baton node add` writes for an agent: who it is, its secret, where to
// connect, and which server certificate to accept.
// Exactly one of Secret, EnrollmentToken (before the agent's first start) and PrivateKey
// (after it: the agent's own Ed25519 key, base64) is set.
type Credential struct {
	Name            string `json:"name"`
	Secret          string `json:"secret,omitempty"`
	EnrollmentToken string `json:"enrollment_token,omitempty"`
	PrivateKey      string `json:"private_key,omitempty"`
	Server          string `json:"server,omitempty"` // ws:// or wss:// URL of the /pcp endpoint
	// API is the HTTP API's base URL, where the agent enrols (on AWS a different host from
	// Server; for baton serve the same).
	API string `json:"api,omitempty"`
	// Fingerprint pins the server's TLS certificate: the lowercase hex SHA-256 of its DER. It
	// is set when the server's certificate is self-signed (or otherwise trusted by pinning);
	// empty when the agent verifies the server with CAs.
	Fingerprint string `json:"tls_fingerprint,omitempty"`
}

// WriteCredential writes c to path with mode 0600, replacing any file there atomically.
func WriteCredential(path string, c Credential) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode credential: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".credential-*")
	if err != nil {
		return fmt.Errorf("write credential: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write credential: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write credential: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write credential: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write credential: %w", err)
	}
	return nil
}

// ReadCredential reads a credential file; it refuses files others can read.
func ReadCredential(path string) (Credential, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Credential{}, fmt.Errorf("read credential: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return Credential{}, fmt.Errorf("credential file %s has mode %v: it must not be readable by others (chmod 600)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Credential{}, fmt.Errorf("read credential: %w", err)
	}
	var c Credential
	if err := json.Unmarshal(b, &c); err != nil {
		return Credential{}, fmt.Errorf("credential file %s: %w", path, err)
	}
	set := 0
	for _, v := range []string{c.Secret, c.EnrollmentToken, c.PrivateKey} {
		if v != "" {
			set++
		}
	}
	if c.Name == "" || set != 1 {
		return Credential{}, errors.New("credential file " + path + " needs a name and one of secret, enrollment_token, private_key")
	}
	return c, nil
}
