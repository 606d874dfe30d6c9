package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/baton-run/baton/shared/httpapi"
	"github.com/baton-run/baton/shared/local"
)

func cmdServe(args []string) error {
	fs := newFlagSet("serve")
	cfg := local.Config{}
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8143", "address to listen on")
	fs.StringVar(&cfg.DataDir, "data", defaultDataDir(), "data directory (SQLite database, secrets, admin token); env BATON_DATA")
	fs.StringVar(&cfg.Modules, "modules", "", "Puppet modules directory served as environment production")
	fs.StringVar(&cfg.Environments, "environments", "", "directory of <env>/modules directories")
	fs.DurationVar(&cfg.ConnectTimeout, "connect-timeout", 0, "how long a node waits for its agent to connect (default 30s)")
	fs.IntVar(&cfg.TaskConcurrency, "task-concurrency", 0, "most actions running at once across all jobs, PE's task_concurrency (default 250; -1 for no cap)")
	fs.Float64Var(&cfg.RequestRate, "api-rate", 0, fmt.Sprintf("API requests a second per user (default %d; -1 for no limit)", httpapi.DefaultPrincipalRate))
	fs.IntVar(&cfg.RequestBurst, "api-burst", 0, fmt.Sprintf("API request burst per user (default %d)", httpapi.DefaultPrincipalBurst))
	fs.Float64Var(&cfg.AnonymousRate, "api-anonymous-rate", 0, fmt.Sprintf("requests a second per client address without a valid credential (default %d; -1 for no limit)", httpapi.DefaultAnonymousRate))
	fs.DurationVar(&cfg.AdminTokenLifetime, "admin-token-lifetime", local.DefaultAdminTokenLifetime, "lifetime of the admin token in the data directory, renewed when half is gone (tokens issued with it expire no later)")
	fs.IntVar(&cfg.MaxConnsPerAddress, "max-conns-per-address", local.DefaultMaxConnsPerAddress, "most connections at once from one client address, loopback excepted (-1 for no cap; agents behind one NAT address count together)")
	fs.DurationVar(&cfg.MaxTokenLifetime, "max-token-lifetime", 0, "longest lifetime of a token issued through the API (default 8760h, a year)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate (chain) to serve (default: a self-signed certificate made on first start and kept in the data directory)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.Func("tls-san", "extra DNS name or IP address for the self-signed certificate (repeatable, or comma-separated)", func(v string) error {
		for _, san := range strings.Split(v, ",") {
			if san = strings.TrimSpace(san); san != "" {
				cfg.TLSSANs = append(cfg.TLSSANs, san)
			}
		}
		return nil
	})
	fs.BoolVar(&cfg.Insecure, "insecure", false, "serve plain HTTP and WS, without TLS, on any address: API tokens and node secrets cross the network unencrypted")
	fs.StringVar(&cfg.PuppetDB.URL, "puppetdb", os.Getenv("BATON_PUPPETDB_URL"), "PuppetDB's URL (https://puppetdb:8081, or http://127.0.0.1:8080 on loopback): scope queries run there as full PQL instead of the built-in subset; env BATON_PUPPETDB_URL")
	fs.StringVar(&cfg.PuppetDB.CAFile, "puppetdb-ca-file", os.Getenv("BATON_PUPPETDB_CA_FILE"), "PEM CA file for PuppetDB's certificate, usually Puppet's CA (default: the system's roots); env BATON_PUPPETDB_CA_FILE")
	fs.StringVar(&cfg.PuppetDB.CertFile, "puppetdb-cert", os.Getenv("BATON_PUPPETDB_CERT"), "PEM client certificate for PuppetDB (its certname in PuppetDB's certificate-allowlist); env BATON_PUPPETDB_CERT")
	fs.StringVar(&cfg.PuppetDB.KeyFile, "puppetdb-key", os.Getenv("BATON_PUPPETDB_KEY"), "PEM key of --puppetdb-cert; env BATON_PUPPETDB_KEY")
	fs.DurationVar(&cfg.PuppetDB.Timeout, "puppetdb-timeout", 0, "how long one PuppetDB query may take (default 30s)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError("bad --log-level: %v", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	cfg.DataDir = abs
	srv, err := local.Start(cfg)
	if err != nil {
		return err
	}
	if addr := os.Getenv("BATON_PPROF"); addr != "" {
		// Profiling for performance work: net/http/pprof on its own listener, only when asked.
		go func() {
			mux := http.NewServeMux()
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
			cfg.Logger.Warn("profiling endpoint enabled", "addr", addr)
			// Timeouts as on the API; a CPU profile or trace answers after its ?seconds= (30 s by default).
			srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: local.DefaultReadTimeout,
				WriteTimeout: 5 * time.Minute, IdleTimeout: local.DefaultIdleTimeout}
			if err := srv.ListenAndServe(); err != nil {
				cfg.Logger.Error("profiling endpoint", "err", err)
			}
		}()
	}
	st := servedState{localState: localState{URL: srv.URL(), TokenFile: srv.AdminTokenPath()},
		TLSFingerprint: srv.Fingerprint(), TLSCertFile: srv.CertFile()}
	if err := writeLocalState(st); err != nil {
		cfg.Logger.Warn("could not record the local server for the CLI", "err", err)
	}
	fmt.Fprintf(os.Stderr, "baton serving on %s\n  API:    %s/orchestrator/v1\n  agents: %s\n", srv.Addr(), srv.URL(), srv.AgentURL())
	if srv.TLS() {
		fmt.Fprintf(os.Stderr, "  TLS certificate: %s\n    SHA-256 fingerprint %s\n    (baton node add records it in credentials; elsewhere: baton node add --tls-fingerprint)\n",
			srv.CertFile(), srv.Fingerprint())
	} else {
		fmt.Fprintln(os.Stderr, "  WARNING: plain HTTP (--insecure): tokens, node secrets and task parameters are not encrypted")
	}
	fmt.Fprintf(os.Stderr, "  admin token: %s (the baton CLI on this machine finds it)\n", srv.AdminTokenPath())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	fmt.Fprintln(os.Stderr, "baton: shutting down")
	err = srv.Close()
	if cur, ok := readLocalState(); ok && cur.URL == st.URL {
		os.Remove(stateFile())
	}
	return err
}

func writeLocalState(st servedState) error {
	path := stateFile()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
