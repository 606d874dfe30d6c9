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
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/catalog"
	"github.com/baton-run/baton/shared/gateway"
	"github.com/baton-run/baton/shared/httpapi"
	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/protocol"
	"github.com/baton-run/baton/shared/seal"
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
	// TaskConcurrency caps running actions across all jobs (PE's task_concurrency); default 250.
	TaskConcurrency int
	Logger          *slog.Logger

	// TLSCert and TLSKey are PEM files of the certificate (chain) and key to serve. When both
	// are empty, a self-signed certificate (ECDSA P-256) is made on first start and kept in
	// DataDir as tls.crt (0644) and tls.key (0600) for later starts.
	TLSCert, TLSKey string
	// TLSSANs are extra DNS names or IP addresses for the self-signed certificate, which
	// always names localhost, 127.0.0.1, ::1 and the host name.
	TLSSANs []string
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
	if c.SweepInterval <= 0 {
		c.SweepInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

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
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
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
	st, err := sqlite.Open(filepath.Join(cfg.DataDir, "baton.db"))
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
	api := httpapi.New(s.orch, cat, urls, s.auth, cfg.Logger, httpapi.WithLimits(limits))
	mux := http.NewServeMux()
	mux.Handle("/orchestrator/", api)
	mux.Handle("/baton/", api)
	mux.Handle("/pcp", s.gateway.Handler(s.auth, s.orch))
	mux.Handle("/files/", catalog.FileHandler(cat, signer, cfg.Logger))
	mux.Handle("/", api)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10,
		// TLS handshake failures (a client that does not trust the certificate) land here.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	serve := func() error { return s.http.Serve(ln) }
	if certs != nil {
		s.http.TLSConfig = &tls.Config{Certificates: []tls.Certificate{certs.cert}, MinVersion: tls.VersionTLS12}
		serve = func() error { return s.http.ServeTLS(ln, "", "") }
	}
	s.wg.Add(2)
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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx) // the listener first: closed agents must not come back here
	s.gateway.Close()
	s.cancel()
	s.wg.Wait()
	return errors.Join(err, s.store.Close())
}

// ensureAdminToken creates <data>/admin.token (0600) unless it holds a valid token.
func (s *Server) ensureAdminToken(ctx context.Context) error {
	path := filepath.Join(s.cfg.DataDir, AdminTokenFile)
	if b, err := os.ReadFile(path); err == nil {
		if _, err := s.auth.AuthenticateToken(ctx, strings.TrimSpace(string(b))); err == nil {
			return nil
		}
	}
	token, err := s.auth.IssueToken(ctx, "admin", "admin token created by baton serve", 0)
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("write admin token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write admin token: %w", err)
	}
	s.log.Info("created admin API token", "path", path)
	return nil
}

func (s *Server) markAllDisconnected(ctx context.Context) error {
	if err := s.store.MarkAllNodesDisconnected(ctx); err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	return nil
}
