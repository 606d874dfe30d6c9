package main

// How the CLI checks a Baton server's TLS certificate. For each server address (host:port)
// the first that applies wins:
//
//  1. a pin or CA file given on the command line (`node add --tls-fingerprint | --ca-file`);
//  2. the local server's certificate, pinned by the SHA-256 fingerprint `baton serve` records
//     next to its URL in the local state file ($XDG_CONFIG_HOME/baton/local.json);
//  3. BATON_TLS_FINGERPRINT (pin) or BATON_CA_FILE (CA file trusted besides the system's);
//  4. the system's CAs, as for any HTTPS client.
//
// A pinned server is accepted with exactly that certificate, whatever its issuer, names or
// dates. The API client the CLI builds (clientFlags.client) uses cliTLS as its transport;
// other hosts get the default transport's behaviour unchanged.

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/baton-run/baton/shared/local"
)

// servedState is what `baton serve` records in the local state file: common.go's localState
// plus the certificate it serves.
type servedState struct {
	localState
	TLSFingerprint string `json:"tls_fingerprint,omitempty"` // lowercase hex SHA-256 of the DER
	TLSCertFile    string `json:"tls_cert_file,omitempty"`
}

func readServedState() (servedState, bool) {
	b, err := os.ReadFile(stateFile())
	if err != nil {
		return servedState{}, false
	}
	var s servedState
	return s, json.Unmarshal(b, &s) == nil
}

// serverTrust is how one server's certificate is checked; the zero value means the system's
// CAs.
type serverTrust struct {
	Fingerprint string // lowercase hex SHA-256 of the certificate's DER
	CAFile      string
}

func (t serverTrust) String() string {
	switch {
	case t.Fingerprint != "":
		return "certificate pinned by SHA-256 fingerprint " + t.Fingerprint
	case t.CAFile != "":
		return "certificate verified with the CAs in " + t.CAFile
	}
	return "certificate verified with the system's CAs"
}

// newServerTrust checks a fingerprint (hex, colons allowed) and a CA file given together on
// a command line; at most one may be set.
func newServerTrust(fingerprint, caFile string) (serverTrust, error) {
	if fingerprint != "" && caFile != "" {
		return serverTrust{}, usageError("give --tls-fingerprint or --ca-file, not both")
	}
	if fingerprint == "" {
		return serverTrust{CAFile: caFile}, nil
	}
	fp, err := local.NormalizeFingerprint(fingerprint)
	if err != nil {
		return serverTrust{}, usageErr{err.Error()}
	}
	return serverTrust{Fingerprint: fp}, nil
}

// tlsTrust is an http.RoundTripper that applies each server's serverTrust.
type tlsTrust struct {
	base *http.Transport // what requests without a special trust go through

	mu         sync.Mutex
	explicit   map[string]serverTrust          // by host:port, from command-line flags
	transports map[serverTrust]*http.Transport // one per trust, so that connections are reused
}

// cliTLS is the process's tlsTrust; every API client the CLI makes uses it.
var cliTLS = newTLSTrust(http.DefaultTransport.(*http.Transport))

func newTLSTrust(base *http.Transport) *tlsTrust {
	return &tlsTrust{base: base, explicit: map[string]serverTrust{}, transports: map[serverTrust]*http.Transport{}}
}

// httpClient is an *http.Client that checks certificates as described at the top of this
// file, with the same overall timeout as shared/client's.
func (r *tlsTrust) httpClient() *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: r}
}

// set makes t how the certificate of the server at base (an http(s) URL) is checked.
func (r *tlsTrust) set(base string, t serverTrust) error {
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("server URL %q: %w", base, err)
	}
	if u.Scheme != "https" {
		return usageError("--tls-fingerprint and --ca-file need an https:// server, not %s", base)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.explicit[hostPort(u)] = t
	return nil
}

// trustFor returns how the certificate of the server at addr (host:port) is checked.
func (r *tlsTrust) trustFor(addr string) (serverTrust, error) {
	r.mu.Lock()
	t, ok := r.explicit[addr]
	r.mu.Unlock()
	if ok {
		return t, nil
	}
	if st, ok := readServedState(); ok && st.TLSFingerprint != "" {
		if u, err := url.Parse(st.URL); err == nil && u.Scheme == "https" && hostPort(u) == addr {
			fp, err := local.NormalizeFingerprint(st.TLSFingerprint)
			if err != nil {
				return serverTrust{}, fmt.Errorf("local state %s: %w", stateFile(), err)
			}
			return serverTrust{Fingerprint: fp}, nil
		}
	}
	fp, ca := os.Getenv("BATON_TLS_FINGERPRINT"), os.Getenv("BATON_CA_FILE")
	if fp != "" && ca != "" {
		return serverTrust{}, errors.New("set BATON_TLS_FINGERPRINT or BATON_CA_FILE, not both")
	}
	if fp != "" {
		n, err := local.NormalizeFingerprint(fp)
		if err != nil {
			return serverTrust{}, fmt.Errorf("BATON_TLS_FINGERPRINT: %w", err)
		}
		return serverTrust{Fingerprint: n}, nil
	}
	return serverTrust{CAFile: ca}, nil
}

// RoundTrip sends req through the transport for its server's trust.
func (r *tlsTrust) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		return r.base.RoundTrip(req)
	}
	t, err := r.trustFor(hostPort(req.URL))
	if err == nil && t == (serverTrust{}) {
		return r.base.RoundTrip(req)
	}
	var tr *http.Transport
	if err == nil {
		tr, err = r.transport(t)
	}
	if err != nil {
		if req.Body != nil {
			req.Body.Close() // a RoundTripper always closes the body
		}
		return nil, err
	}
	return tr.RoundTrip(req)
}

// CloseIdleConnections closes the idle connections of every transport.
func (r *tlsTrust) CloseIdleConnections() {
	r.base.CloseIdleConnections()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.transports {
		t.CloseIdleConnections()
	}
}

func (r *tlsTrust) transport(t serverTrust) (*http.Transport, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if tr, ok := r.transports[t]; ok {
		return tr, nil
	}
	tr := r.base.Clone()
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if t.Fingerprint != "" {
		want := t.Fingerprint
		tr.TLSClientConfig.InsecureSkipVerify = true // VerifyConnection checks the pin instead
		tr.TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server presented no TLS certificate")
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if got := hex.EncodeToString(sum[:]); got != want {
				return fmt.Errorf("the server's TLS certificate has SHA-256 fingerprint %s, not the expected %s: "+
					"it is another server, or its certificate was replaced", got, want)
			}
			return nil
		}
	} else {
		b, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", t.CAFile)
		}
		tr.TLSClientConfig.RootCAs = roots
	}
	r.transports[t] = tr
	return tr, nil
}

// hostPort is u's lowercase host with its port, the scheme's default when u has none.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" || u.Scheme == "wss" {
			port = "443"
		}
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}
