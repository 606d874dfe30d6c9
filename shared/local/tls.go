package local

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Names of the self-signed certificate and its key in the data directory.
const (
	TLSCertFile = "tls.crt" // PEM certificate, mode 0644
	TLSKeyFile  = "tls.key" // PEM PKCS #8 private key, mode 0600
)

// selfSignedLifetime is how long a self-signed certificate is valid. Agents and the CLI pin
// its fingerprint, so it is replaced only by deleting the files, never behind their backs.
const selfSignedLifetime = 10 * 365 * 24 * time.Hour

// ErrPlainHTTPNotLoopback is returned by Start for plain HTTP on a non-loopback address
// without Config.Insecure.
var ErrPlainHTTPNotLoopback = errors.New("plain HTTP is only served on a loopback address")

// Fingerprint is the lowercase hex SHA-256 of a certificate's DER bytes: what agents and the
// CLI pin.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// NormalizeFingerprint accepts a SHA-256 fingerprint as hex, in any case, with or without
// colons (AB:CD:…), and returns it as Fingerprint writes it.
func NormalizeFingerprint(s string) (string, error) {
	h := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("TLS fingerprint %q: want the SHA-256 of the certificate as 64 hex digits", s)
	}
	return h, nil
}

// serverTLS is the certificate a server presents.
type serverTLS struct {
	cert        tls.Certificate
	certFile    string
	fingerprint string
}

// loadTLS loads cfg.TLSCert/TLSKey, or the self-signed pair in the data directory, made on
// first use.
func loadTLS(cfg Config, log *slog.Logger) (*serverTLS, error) {
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("TLS certificate %s: %w", cfg.TLSCert, err)
		}
		return newServerTLS(cert, cfg.TLSCert)
	}
	certPath := filepath.Join(cfg.DataDir, TLSCertFile)
	keyPath := filepath.Join(cfg.DataDir, TLSKeyFile)
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	if certErr == nil && keyErr == nil {
		cert, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			return nil, fmt.Errorf("self-signed TLS certificate in %s (delete %s and %s to make a new one): %w",
				cfg.DataDir, TLSCertFile, TLSKeyFile, err)
		}
		st, err := newServerTLS(cert, certPath)
		if err != nil {
			return nil, err
		}
		for _, san := range cfg.TLSSANs {
			if st.cert.Leaf.VerifyHostname(san) != nil {
				log.Warn("the self-signed TLS certificate made on an earlier start does not name a requested --tls-san; "+
					"delete its files to make a new one (enrolled agents then need new credentials)",
					"san", san, "cert", certPath, "key", keyPath)
			}
		}
		return st, nil
	}
	for _, err := range []error{certErr, keyErr} {
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("self-signed TLS certificate: %w", err)
		}
	}
	host, _ := os.Hostname() // the certificate simply does not name the host if this fails
	certPEM, keyPEM, err := selfSigned(host, cfg.TLSSANs, time.Now())
	if err != nil {
		return nil, err
	}
	// The key goes first: a certificate file is never left without its key.
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("write TLS key: %w", err)
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("write TLS certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("self-signed TLS certificate: %w", err)
	}
	st, err := newServerTLS(cert, certPath)
	if err != nil {
		return nil, err
	}
	log.Info("created a self-signed TLS certificate", "cert", certPath, "sha256", st.fingerprint,
		"dns", st.cert.Leaf.DNSNames, "ip", st.cert.Leaf.IPAddresses)
	return st, nil
}

func newServerTLS(cert tls.Certificate, certFile string) (*serverTLS, error) {
	if len(cert.Certificate) == 0 {
		return nil, fmt.Errorf("TLS certificate %s holds no certificate", certFile)
	}
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("TLS certificate %s: %w", certFile, err)
		}
		cert.Leaf = leaf
	}
	return &serverTLS{cert: cert, certFile: certFile, fingerprint: Fingerprint(cert.Certificate[0])}, nil
}

// selfSigned makes an ECDSA P-256 certificate for localhost, 127.0.0.1, ::1, host and sans
// (DNS names or IP addresses). It is its own CA, so that it can also be given to clients as a
// CA file (curl --cacert, baton-agent --ca-file).
func selfSigned(host string, sans []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("certificate serial: %w", err)
	}
	cn := "baton serve"
	if host != "" {
		cn += " on " + host
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Baton"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	seen := map[string]bool{}
	for _, n := range append([]string{"localhost", "127.0.0.1", "::1", host}, sans...) {
		n = strings.TrimSpace(n)
		if n == "" || seen[strings.ToLower(n)] {
			continue
		}
		seen[strings.ToLower(n)] = true
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode TLS key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// writeFileAtomic writes b to path with exactly mode perm, replacing any file there.
func writeFileAtomic(path string, b []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// checkPlainListen refuses plain HTTP on an address that is not loopback.
func checkPlainListen(listen string) error {
	addr, err := net.ResolveTCPAddr("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", listen, err)
	}
	if addr.IP == nil || !addr.IP.IsLoopback() {
		return fmt.Errorf("%w, and %s is not loopback: agent secrets and API tokens would cross the network "+
			"unencrypted; serve TLS (the default, or a certificate of your own) or, if that is really meant, "+
			"allow plain HTTP with Insecure (baton serve --insecure)", ErrPlainHTTPNotLoopback, listen)
	}
	return nil
}
