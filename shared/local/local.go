// Package local wires `baton serve`: the whole control plane in one process — SQLite store,
// modules-directory catalog, orchestrator, HTTP API, agent WebSocket endpoint and signed task
// file downloads on one listener, over TLS (a certificate of the operator's, or a self-signed one
// kept in the data directory) unless plain HTTP is asked for. It is composition only: the same
// orchestrator and API run on AWS with other adapters. Tests start it on port 0.
package local

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/catalog"
	"github.com/baton-run/baton/shared/console"
	"github.com/baton-run/baton/shared/gateway"
	"github.com/baton-run/baton/shared/httpapi"
	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/protocol"
	"github.com/baton-run/baton/shared/puppetdb"
	"github.com/baton-run/baton/shared/ratelimit"
	"github.com/baton-run/baton/shared/seal"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/store/sqlite"
)

// Config configures the local server.
type Config struct {
	Listen string // default 127.0.0.1:8143; "127.0.0.1:0" picks a free port
	// DataDir holds baton.db, the secrets, admin.token and the self-signed TLS certificate.
	DataDir string
	// Modules is a modules directory served as environment "production".
	Modules string
	// Environments is a directory of <env>/modules directories.
	Environments   string
	ConnectTimeout time.Duration // default 30s
	TimeoutGrace   time.Duration // default 30s
	FileURLTTL     time.Duration // default 5m
	SweepInterval  time.Duration // default 1s
	// RequestRate and RequestBurst limit API requests per user (httpapi.DefaultPrincipalRate
	// and Burst by default); AnonymousRate and AnonymousBurst limit requests without a valid
	// credential per client address (httpapi.DefaultAnonymousRate and Burst). A negative rate:
	// no limit.
	RequestRate    float64
	RequestBurst   int
	AnonymousRate  float64
	AnonymousBurst int
	// MaxTokenLifetime bounds the lifetime of tokens issued through the API (default 1 year).
	MaxTokenLifetime time.Duration
	// AdminTokenLifetime is the lifetime of the admin token kept in DataDir (default
	// DefaultAdminTokenLifetime). The server replaces it when less than half is left.
	AdminTokenLifetime time.Duration
	// ReadTimeout, WriteTimeout and IdleTimeout bound how long a client may take to send a
	// request (headers and body), how long answering one may take, and how long a kept-alive
	// connection may sit idle (defaults DefaultReadTimeout, DefaultWriteTimeout,
	// DefaultIdleTimeout). Agents' WebSocket connections and task file downloads, once
	// accepted, are streams and exempt from the read and write timeouts.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxConnsPerAddress caps the connections one client address (an IPv6 /64) holds at once
	// (default DefaultMaxConnsPerAddress; -1: no cap). Clients for which ConnCapExempt
	// answers true are not capped; by default those on loopback addresses.
	MaxConnsPerAddress int
	ConnCapExempt      func(netip.Addr) bool
	// TaskConcurrency caps running actions across all jobs (PE's task_concurrency); default 250.
	TaskConcurrency int
	Logger          *slog.Logger
	// PuppetDB, when its URL is set, takes scope queries (the whole of PQL, instead of the
	// built-in subset) and supplies the facts of nodes whose agent reported none.
	PuppetDB puppetdb.Config

	// TLSCert and TLSKey are PEM files of the certificate (chain) and key to serve. When both
	// are empty, a self-signed certificate (ECDSA P-256) is made on first start and kept in
	// DataDir as tls.crt (0644) and tls.key (0600) for later starts.
	TLSCert, TLSKey string
	// TLSSANs are extra DNS names or IP addresses for the self-signed certificate, which
	// always names localhost, 127.0.0.1, ::1 and the host name.
	TLSSANs []string
	// ShutdownGrace is how long Close lets requests in progress finish before it closes the
	// connections left (default 5 s).
	ShutdownGrace time.Duration

	// PlainHTTP serves http:// and ws:// without TLS, on a loopback address only.
	PlainHTTP bool
	// Insecure serves plain HTTP on any address, loopback or not (it implies PlainHTTP).
	Insecure bool
}

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8143"
	}
	if c.DataDir == "" {
		return errors.New("a data directory is required (--data)")
	}
	if c.Modules == "" && c.Environments == "" {
		return errors.New("a modules directory (--modules) or an environments directory (--environments) is required")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("a TLS certificate needs its key and a key its certificate (--tls-cert and --tls-key)")
	}
	if c.TLSCert != "" && len(c.TLSSANs) > 0 {
		return errors.New("extra certificate names (--tls-san) apply to the self-signed certificate only, not to --tls-cert")
	}
	if c.Insecure {
		c.PlainHTTP = true
	}
	if c.PlainHTTP && c.TLSCert != "" {
		return errors.New("a TLS certificate was given, but plain HTTP was asked for (--insecure)")
	}
	if c.FileURLTTL <= 0 {
		c.FileURLTTL = 5 * time.Minute
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 5 * time.Second
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.AdminTokenLifetime == 0 {
		c.AdminTokenLifetime = DefaultAdminTokenLifetime
	}
	if c.AdminTokenLifetime < time.Hour {
		return fmt.Errorf("the admin token's lifetime must be at least 1h, got %s", c.AdminTokenLifetime)
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&c.ReadTimeout, DefaultReadTimeout}, {&c.WriteTimeout, DefaultWriteTimeout}, {&c.IdleTimeout, DefaultIdleTimeout}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if c.MaxConnsPerAddress == 0 {
		c.MaxConnsPerAddress = DefaultMaxConnsPerAddress
	}
	if c.ConnCapExempt == nil {
		c.ConnCapExempt = netip.Addr.IsLoopback
	}
	return nil
}

// Defaults of Config.
const (
	// DefaultAdminTokenLifetime is how long the admin token lasts; it is renewed when half is gone.
	DefaultAdminTokenLifetime = 30 * 24 * time.Hour
	// DefaultReadTimeout: a request's headers and body (at most 1 MiB) must arrive within it.
	DefaultReadTimeout = 20 * time.Second
	// DefaultWriteTimeout: an answer must be written within it (GET /jobs/{id}?wait= waits
	// 25 s at most).
	DefaultWriteTimeout = 60 * time.Second
	// DefaultIdleTimeout: a kept-alive connection with no request is closed after it.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxConnsPerAddress caps one client address's connections at once. Agents behind
	// one NAT address count together: raise it for a larger fleet behind one address.
	DefaultMaxConnsPerAddress = 1000
	// headerTimeout bounds reading a request's headers (and the TLS handshake).
	headerTimeout = 10 * time.Second
)

// AdminTokenFile is the name of the admin token file in the data directory.
const AdminTokenFile = "admin.token"

// Server is a running local control plane.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   *sqlite.Store
	auth    *auth.Service
	orch    *orchestrator.Service
	gateway *gateway.Gateway
	tls     *serverTLS // nil for plain HTTP
	http    *http.Server
	ln      net.Listener
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type signedURLs struct {
	signer *catalog.Signer
	ttl    time.Duration
}

func (u signedURLs) FileURI(_ context.Context, env, module, filename, _ string) (protocol.FileURI, error) {
	return u.signer.Sign(env, module, filename, u.ttl), nil
}

// Start opens the data directory, listens, and serves until Close: over TLS unless
// cfg.PlainHTTP, which on an address that is not loopback fails with ErrPlainHTTPNotLoopback
// unless cfg.Insecure.
func Start(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PlainHTTP && !cfg.Insecure {
		if err := checkPlainListen(cfg.Listen); err != nil {
			return nil, err
		}
	}
	if err := privateDataDir(cfg.DataDir, cfg.Logger.With("component", "local")); err != nil {
		return nil, err
	}
	var certs *serverTLS
	if !cfg.PlainHTTP {
		var err error
		if certs, err = loadTLS(cfg, cfg.Logger.With("component", "local")); err != nil {
			return nil, err
		}
	}
	envs := map[string]string{}
	if cfg.Environments != "" {
		found, err := catalog.EnvironmentsFromDir(cfg.Environments)
		if err != nil {
			return nil, fmt.Errorf("environments: %w", err)
		}
		envs = found
	}
	if cfg.Modules != "" {
		envs["production"] = cfg.Modules
	}
	cat, err := catalog.NewLocal(envs, catalog.WithLogger(cfg.Logger))
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	pdb, err := openPuppetDB(cfg.PuppetDB, cfg.Logger)
	if err != nil {
		return nil, err
	}
	signKey, err := seal.LoadOrCreateKey(filepath.Join(cfg.DataDir, "url-signing.key"), 32)
	if err != nil {
		return nil, err
	}
	sealKey, err := seal.LoadOrCreateKey(filepath.Join(cfg.DataDir, "seal.key"), 32)
	if err != nil {
		return nil, err
	}
	sealer, err := seal.New(sealKey)
	if err != nil {
		return nil, err
	}
	st, err := sqlite.Open(filepath.Join(cfg.DataDir, "baton.db"), sqlite.WithLogger(cfg.Logger.With("component", "store")))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "local"), store: st, tls: certs}
	ok := false
	defer func() {
		if !ok {
			st.Close()
		}
	}()
	s.auth = auth.New(st, time.Now)
	if cfg.MaxTokenLifetime > 0 {
		s.auth.SetMaxLifetime(cfg.MaxTokenLifetime)
	}
	if err := s.auth.EnsureAdmin(context.Background(), "admin"); err != nil {
		return nil, err
	}
	if err := s.ensureAdminToken(context.Background()); err != nil {
		return nil, err
	}
	if err := s.markAllDisconnected(context.Background()); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s.ln = ln
	served := ln // the capped listener; s.ln stays the TCP one, for Addr
	if cfg.MaxConnsPerAddress > 0 {
		capped, err := ratelimit.LimitConns(ln, cfg.MaxConnsPerAddress, ratelimit.WithExempt(cfg.ConnCapExempt),
			ratelimit.WithRefused(func(a netip.Addr) {
				s.log.Debug("connection refused: too many from one address", "remote", a, "max", cfg.MaxConnsPerAddress)
			}))
		if err != nil {
			ln.Close()
			return nil, err
		}
		served = capped
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.gateway = gateway.New(cfg.Logger)
	signer, err := catalog.NewSigner(signKey, time.Now)
	if err != nil {
		cancel()
		ln.Close()
		return nil, err
	}
	urls := signedURLs{signer: signer, ttl: cfg.FileURLTTL}
	s.orch = orchestrator.New(st, cat, urls, s.gateway, sealer,
		orchestrator.WithLogger(cfg.Logger),
		pdb.orchestratorOption(),
		orchestrator.WithStreamAll(), // every task's live output (storing it costs nothing metered here)
		orchestrator.WithConfig(orchestrator.Config{ConnectTimeout: cfg.ConnectTimeout, TimeoutGrace: cfg.TimeoutGrace,
			TaskConcurrency: cfg.TaskConcurrency, Broker: "pcp://" + ln.Addr().String() + "/server"}),
		orchestrator.WithKick(func(id int64) {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				if err := s.orch.Dispatch(ctx, id); err != nil && ctx.Err() == nil {
					s.log.Error("dispatch", "job_id", id, "err", err)
				}
			}()
		}))
	limits, err := httpapi.NewLimits(cfg.RequestRate, cfg.RequestBurst, cfg.AnonymousRate, cfg.AnonymousBurst)
	if err != nil {
		cancel()
		ln.Close()
		return nil, err
	}
	api := httpapi.New(s.orch, cat, urls, s.auth, cfg.Logger, httpapi.WithLimits(limits), pdb.apiOption())
	mux := http.NewServeMux()
	mux.Handle("/orchestrator/", api)
	mux.Handle("/baton/", api)
	// net/http clears a hijacked connection's deadlines: the agents' WebSockets outlive the
	// read and write timeouts without help.
	mux.Handle("/pcp", s.gateway.Handler(s.auth, s.orch))
	mux.Handle("/files/", stream(catalog.FileHandler(cat, signer, cfg.Logger)))
	withConsole, err := console.WithAPI(api) // the web console at /, the API's 404 for other paths
	if err != nil {
		cancel()
		ln.Close()
		return nil, err
	}
	mux.Handle("/", withConsole)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: headerTimeout, MaxHeaderBytes: 64 << 10,
		ReadTimeout: cfg.ReadTimeout, WriteTimeout: cfg.WriteTimeout, IdleTimeout: cfg.IdleTimeout,
		// TLS handshake failures (a client that does not trust the certificate) land here.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	serve := func() error { return s.http.Serve(served) }
	if certs != nil {
		s.http.TLSConfig = &tls.Config{Certificates: []tls.Certificate{certs.cert}, MinVersion: tls.VersionTLS12}
		serve = func() error { return s.http.ServeTLS(served, "", "") }
	}
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(cfg.SweepInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.orch.Sweep(ctx); err != nil && ctx.Err() == nil {
					s.log.Error("sweep", "err", err)
				}
			}
		}
	}()
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(adminTokenCheck)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.ensureAdminToken(ctx); err != nil && ctx.Err() == nil {
					s.log.Error("renew admin token", "err", err)
				}
			}
		}
	}()
	ok = true
	s.log.Info("baton serving", "url", s.URL(), "data", cfg.DataDir, "environments", cat.Environments(),
		"tls_sha256", s.Fingerprint())
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the server's base URL: https://host:port, or http://host:port for plain HTTP.
func (s *Server) URL() string {
	if s.tls == nil {
		return "http://" + s.Addr()
	}
	return "https://" + s.Addr()
}

// AgentURL is the agents' WebSocket URL: wss://host:port/pcp, or ws://… for plain HTTP.
func (s *Server) AgentURL() string {
	if s.tls == nil {
		return "ws://" + s.Addr() + "/pcp"
	}
	return "wss://" + s.Addr() + "/pcp"
}

// TLS reports whether the server speaks HTTPS and WSS.
func (s *Server) TLS() bool { return s.tls != nil }

// Fingerprint is the SHA-256 of the served certificate's DER as lowercase hex (what agents
// and the CLI pin), or "" for plain HTTP.
func (s *Server) Fingerprint() string {
	if s.tls == nil {
		return ""
	}
	return s.tls.fingerprint
}

// CertificatePEM is the served certificate chain as PEM, or nil for plain HTTP. A self-signed
// certificate is its own CA, so this is also the CA file clients may trust.
func (s *Server) CertificatePEM() []byte {
	if s.tls == nil {
		return nil
	}
	var out []byte
	for _, der := range s.tls.cert.Certificate {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return out
}

// CertFile is the PEM file of the served certificate (the data directory's tls.crt for a
// self-signed one), or "" for plain HTTP.
func (s *Server) CertFile() string {
	if s.tls == nil {
		return ""
	}
	return s.tls.certFile
}

// AdminTokenPath is where the admin token is kept.
func (s *Server) AdminTokenPath() string { return filepath.Join(s.cfg.DataDir, AdminTokenFile) }

// Auth returns the server's authentication service (node enrolment and tokens).
func (s *Server) Auth() *auth.Service { return s.auth }

// Close stops serving and closes the store.
// Close stops serving — first taking no new connection, then closing the agents' — and
// closes the store once nothing uses it.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	err := s.http.Shutdown(ctx) // the listener first: closed agents must not come back here
	if errors.Is(err, context.DeadlineExceeded) {
		// Still open after the grace: a long poll, or a connection whose request has not
		// come yet (net/http counts a new connection busy for its first 5 s, so an agent
		// reconnecting at the wrong moment made Close fail).
		s.log.Warn("connections still open at the end of the shutdown grace: closing them", "grace", s.cfg.ShutdownGrace)
		err = s.http.Close()
	}
	s.gateway.Close()
	s.cancel()
	s.wg.Wait()
	return errors.Join(err, s.store.Close())
}

// adminTokenCheck is how often a running server checks whether the admin token is due for renewal.
const adminTokenCheck = time.Hour

// ensureAdminToken keeps <data>/admin.token (0600) holding a valid admin token with at least
// half its lifetime left. A missing, invalid or half-spent token is replaced; one that never
// expires (made by an older version) is replaced and revoked. A half-spent one is left to
// expire, so a command that read it a moment ago still works.
func (s *Server) ensureAdminToken(ctx context.Context) error {
	path := filepath.Join(s.cfg.DataDir, AdminTokenFile)
	var old string
	if b, err := os.ReadFile(path); err == nil {
		old = strings.TrimSpace(string(b))
		p, err := s.auth.AuthenticateToken(ctx, old)
		switch {
		case err != nil:
			old = "" // nothing to revoke
		case p.ExpiresAt == nil:
			// never expires: replace and revoke it below
		case p.ExpiresAt.Sub(time.Now()) > s.cfg.AdminTokenLifetime/2:
			return nil
		default:
			old = "" // half spent: let it expire
		}
	}
	if err := writeAdminToken(ctx, s.auth, path, s.cfg.AdminTokenLifetime, old); err != nil {
		return err
	}
	s.log.Info("created admin API token", "path", path, "lifetime", s.cfg.AdminTokenLifetime)
	return nil
}

// writeAdminToken issues an admin token valid for lifetime, writes it to path (0600,
// atomically), and then revokes the token old, if given.
func writeAdminToken(ctx context.Context, a *auth.Service, path string, lifetime time.Duration, old string) error {
	token, err := a.IssueToken(ctx, "admin", "admin token created by baton serve", lifetime)
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	tmp := path + ".tmp"
	_ = os.Remove(tmp) // a leftover keeps its mode through WriteFile: start afresh
	if err := os.WriteFile(tmp, []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("write admin token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write admin token: %w", err)
	}
	if old == "" {
		return nil
	}
	if err := a.RevokeTokenHash(ctx, auth.Hash(old)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("revoke the old admin token: %w", err)
	}
	return nil
}

// RotateAdminToken replaces the admin token of the baton serve data directory dataDir with a
// new one valid for lifetime (0: DefaultAdminTokenLifetime) and revokes the old one at once.
// It works on the database directly, with the server running or not: a running server takes
// the new token on its next request.
func RotateAdminToken(ctx context.Context, dataDir string, lifetime time.Duration) (string, error) {
	if lifetime == 0 {
		lifetime = DefaultAdminTokenLifetime
	}
	if lifetime < time.Hour {
		return "", fmt.Errorf("the admin token's lifetime must be at least 1h, got %s", lifetime)
	}
	db := filepath.Join(dataDir, "baton.db")
	if _, err := os.Stat(db); err != nil {
		return "", fmt.Errorf("no baton serve data in %s: %w", dataDir, err)
	}
	// Warnings (a token change stamp that cannot be written) go to the operator's terminal.
	st, err := sqlite.Open(db, sqlite.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))))
	if err != nil {
		return "", fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	a := auth.New(st, time.Now)
	if err := a.EnsureAdmin(ctx, "admin"); err != nil {
		return "", err
	}
	path := filepath.Join(dataDir, AdminTokenFile)
	var old string
	if b, err := os.ReadFile(path); err == nil {
		old = strings.TrimSpace(string(b))
	}
	if err := writeAdminToken(ctx, a, path, lifetime, old); err != nil {
		return "", err
	}
	return path, nil
}

// privateDataDir creates the data directory 0700, or takes group and other permissions away
// from an existing one and from the secrets and database files in it, with a warning.
func privateDataDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	private := func(path string, want os.FileMode) error {
		st, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		if perm := st.Mode().Perm(); perm&^want != 0 {
			if err := os.Chmod(path, perm&want); err != nil {
				return fmt.Errorf("data dir: %s has mode %v and cannot be made private: %w", path, perm, err)
			}
			log.Warn("took group and other permissions away", "path", path, "was", perm, "now", perm&want)
		}
		return nil
	}
	if err := private(dir, 0o700); err != nil {
		return err
	}
	for _, f := range []string{AdminTokenFile, "seal.key", "url-signing.key", "tls.key", "baton.db", "baton.db-wal", "baton.db-shm", "baton.db-auth"} {
		if err := private(filepath.Join(dir, f), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// stream exempts h's answers from the server's read and write timeouts: a task file
// download takes as long as the file needs. The timeouts still bound everything before h
// runs (headers, TLS handshake), and the files are served only for a valid signature.
func stream(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{}) // errors only for writers that cannot, which then have no deadline to clear
		_ = rc.SetWriteDeadline(time.Time{})
		h.ServeHTTP(w, r)
	})
}

func (s *Server) markAllDisconnected(ctx context.Context) error {
	if err := s.store.MarkAllNodesDisconnected(ctx); err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	return nil
}
