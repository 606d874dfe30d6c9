package agent

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// ErrTLSFingerprintMismatch is the handshake error when the server's certificate is not the
// one Config.TLSFingerprint pins.
var ErrTLSFingerprintMismatch = errors.New("server certificate does not match the pinned TLS fingerprint")

// validateTLS checks the transport security settings against the server URL u.
func (c Config) validateTLS(u *url.URL) []error {
	var errs []error
	if c.TLSFingerprint != "" {
		if _, err := normalizeFingerprint(c.TLSFingerprint); err != nil {
			errs = append(errs, err)
		}
		if c.CAFile != "" {
			errs = append(errs, errors.New("set a TLS fingerprint or a CA file, not both"))
		}
	}
	if u.Scheme != "ws" {
		return errs
	}
	if c.TLSFingerprint != "" || c.CAFile != "" {
		errs = append(errs, fmt.Errorf("server URL %q is ws://, without TLS, so a TLS fingerprint or CA file cannot apply: use wss://", c.Server))
	}
	if !c.Insecure && !c.loopbackServer(u.Hostname()) {
		errs = append(errs, fmt.Errorf("server URL %q: ws:// to a host that is not loopback would send the node's secret "+
			"and every task's parameters unencrypted; use wss://, or allow it with Insecure (baton-agent --insecure)", c.Server))
	}
	return errs
}

// isLoopbackHost reports whether h is localhost or a loopback IP address, without resolving
// anything (see Config.loopbackServer for names).
func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// lookupTimeout bounds the name resolution of Config.loopbackServer.
const lookupTimeout = 5 * time.Second

// loopbackServer reports whether the server host h is loopback: localhost, a loopback IP
// address, or a name every address of which is loopback (LocalStack's
// localhost.localstack.cloud resolves to 127.0.0.1). A name that does not resolve is not
// loopback. The dial itself is held to loopback addresses too (loopbackOnly), so that a name
// that resolves differently later cannot take the unencrypted connection elsewhere.
func (c Config) loopbackServer(h string) bool {
	if isLoopbackHost(h) {
		return true
	}
	if net.ParseIP(h) != nil {
		return false
	}
	lookup := c.LookupHost
	if lookup == nil {
		lookup = net.DefaultResolver.LookupHost
	}
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	addrs, err := lookup(ctx, h)
	if err != nil || len(addrs) == 0 {
		return false
	}
	for _, a := range addrs {
		a, _, _ = strings.Cut(a, "%") // an IPv6 zone
		if ip := net.ParseIP(a); ip == nil || !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// errNotLoopback is the dial error when a ws:// server name accepted as loopback resolves to
// another address.
var errNotLoopback = errors.New("refusing an unencrypted connection to an address that is not loopback")

// loopbackOnly returns c.HTTPClient with its dials to the server's host and port held to
// loopback addresses, for a ws:// server given by a name other than localhost without
// Insecure; otherwise c.HTTPClient itself. c has its defaults applied.
func loopbackOnly(c Config) (*http.Client, error) {
	u, err := url.Parse(c.Server)
	if err != nil || u.Scheme != "ws" || c.Insecure || isLoopbackHost(u.Hostname()) {
		return c.HTTPClient, nil
	}
	rt := c.HTTPClient.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	base, ok := rt.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("a ws:// server by name needs HTTPClient.Transport to be nil or an *http.Transport, not %T", rt)
	}
	t := base.Clone()
	server := hostPort(u)
	plain := t.DialContext
	if plain == nil {
		plain = (&net.Dialer{Timeout: 30 * time.Second}).DialContext
	}
	checked := (&net.Dialer{Timeout: 30 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("%w: %s resolved to %s", errNotLoopback, u.Hostname(), address)
		}
		return nil
	}}).DialContext
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if strings.EqualFold(addr, server) {
			return checked(ctx, network, addr)
		}
		return plain(ctx, network, addr)
	}
	hc := *c.HTTPClient
	hc.Transport = t
	return &hc, nil
}

// normalizeFingerprint returns a SHA-256 fingerprint given as hex (any case, colons allowed)
// as lowercase hex.
func normalizeFingerprint(s string) (string, error) {
	h := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("TLS fingerprint %q: want the SHA-256 of the server certificate as 64 hex digits", s)
	}
	return h, nil
}

// NewHTTPClient returns the HTTP client an agent with cfg uses for its WebSocket and its
// downloads: cfg.HTTPClient (a new one when nil) set up for cfg.TLSFingerprint or cfg.CAFile.
// Many agents of one process (agent/fleet) can share it, passed as their HTTPClient with no
// TLS settings of their own.
func NewHTTPClient(cfg Config) (*http.Client, error) {
	return tlsHTTPClient(cfg.withDefaults())
}

// tlsHTTPClient returns c.HTTPClient set up for c.CAFile or c.TLSFingerprint; without either
// it returns c.HTTPClient itself. c has its defaults applied.
func tlsHTTPClient(c Config) (*http.Client, error) {
	if c.TLSFingerprint == "" && c.CAFile == "" {
		return c.HTTPClient, nil
	}
	rt := c.HTTPClient.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	base, ok := rt.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("TLS settings need HTTPClient.Transport to be nil or an *http.Transport, not %T", rt)
	}
	hc := *c.HTTPClient
	if c.CAFile != "" {
		pemBytes, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", c.CAFile)
		}
		t := base.Clone()
		t.TLSClientConfig = tlsConfigOf(t)
		t.TLSClientConfig.RootCAs = roots
		hc.Transport = t
		return &hc, nil
	}
	want, err := normalizeFingerprint(c.TLSFingerprint)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(c.Server)
	if err != nil {
		return nil, fmt.Errorf("parse server URL: %w", err)
	}
	pinned := base.Clone()
	pinned.TLSClientConfig = tlsConfigOf(pinned)
	// The certificate is checked by VerifyConnection alone: exactly the pinned one is
	// accepted, whatever its issuer, names or validity dates.
	pinned.TLSClientConfig.InsecureSkipVerify = true
	pinned.TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("%w: the server presented no certificate", ErrTLSFingerprintMismatch)
		}
		sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
		if got := hex.EncodeToString(sum[:]); got != want {
			return fmt.Errorf("%w: the server's is SHA-256 %s, the pinned one %s", ErrTLSFingerprintMismatch, got, want)
		}
		return nil
	}
	hc.Transport = &pinnedTransport{addr: hostPort(u), pinned: pinned, other: base}
	return &hc, nil
}

func tlsConfigOf(t *http.Transport) *tls.Config {
	if t.TLSClientConfig != nil {
		return t.TLSClientConfig.Clone()
	}
	return &tls.Config{MinVersion: tls.VersionTLS12}
}

// pinnedTransport sends requests for the server's host and port through pinned and all
// others (task files on another host) through other.
type pinnedTransport struct {
	addr   string
	pinned *http.Transport
	other  http.RoundTripper
}

func (p *pinnedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if hostPort(req.URL) == p.addr {
		return p.pinned.RoundTrip(req)
	}
	return p.other.RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach both transports.
func (p *pinnedTransport) CloseIdleConnections() {
	p.pinned.CloseIdleConnections()
	if ci, ok := p.other.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// hostPort is u's lowercase host with its port, the scheme's default when u has none.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https", "wss":
			port = "443"
		default:
			port = "80"
		}
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}
