// Command baton-agent is Baton's node agent: it holds a WebSocket to the control plane, runs
// the tasks it is sent (after checking every file's SHA-256), and reports back.
//
// Settings come from flags, else BATON_AGENT_* environment variables, else a JSON config file
// (--config), else defaults. The credential file written by `baton node add` supplies the
// node name, secret, server URL and, for a self-signed server certificate, its SHA-256
// fingerprint, which the agent pins. ws:// (no TLS) is refused for a host that is not loopback
// unless --insecure is given.
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/baton-run/baton/agent"
	"github.com/baton-run/baton/agent/puppet"
	"github.com/baton-run/baton/shared/auth"
)

// fileConfig is the --config file.
type fileConfig struct {
	Server     string `json:"server"`
	Name       string `json:"name"`
	Credential string `json:"credential"`
	CacheDir   string `json:"cache_dir"`
	SpoolDir   string `json:"spool_dir"`
	LogLevel   string `json:"log_level"`
	// TLSFingerprint, CAFile and Insecure are agent.Config's.
	TLSFingerprint string `json:"tls_fingerprint"`
	CAFile         string `json:"ca_file"`
	Insecure       bool   `json:"insecure"`
	// Interpreters (Bolt's setting: extension → interpreter path or [path, args...]) and
	// Features are agent.Config's; see platformSettings.
	Interpreters agent.InterpreterMap `json:"interpreters"`
	Features     []string             `json:"features"`
	Puppet       struct {
		Bin        string   `json:"bin"`
		Mode       string   `json:"mode"`
		Manifest   string   `json:"manifest"`
		ModulePath string   `json:"modulepath"`
		Args       []string `json:"args"`
	} `json:"puppet"`
}

func main() {
	if len(os.Args) < 2 || os.Args[1] != "simulate" {
		oneProcessor()
	}
	if len(os.Args) == 2 && os.Args[1] == agent.SupervisorCommand {
		os.Exit(agent.RunSupervisor()) // started by the agent itself (agent.Config.SupervisorDaemon)
	}
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "baton-agent:", err)
		os.Exit(1)
	}
}

// oneProcessor runs the agent's Go code on one processor (GOMAXPROCS=1) unless the
// GOMAXPROCS environment variable says otherwise. An agent waits on its connection, its
// files and its tasks' processes, which run on every core regardless; with a second
// processor the Go scheduler wakes a second thread to look for work at many steps of a task.
// In fleets of 100 real agents on two cores (four interleaved pairs, 2026-12-05), one
// processor used 8% less CPU per task on average (34.1 against 37.2 CPU-seconds per 1,000
// node-runs, agents with their tasks), three pairs of four in its favour. The fleet simulator
// keeps every processor: it runs thousands of agents.
func oneProcessor() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "simulate" {
		return simulate(args[1:])
	}
	fs := flag.NewFlagSet("baton-agent", flag.ContinueOnError)
	configPath := fs.String("config", os.Getenv("BATON_AGENT_CONFIG"), "JSON config file (env BATON_AGENT_CONFIG)")
	server := fs.String("server", "", "control plane WebSocket URL, e.g. wss://baton.example.com:8143/pcp (env BATON_AGENT_SERVER; default from the credential)")
	fingerprint := fs.String("tls-fingerprint", "", "SHA-256 fingerprint (hex) of the server's TLS certificate to accept, whatever its issuer (env BATON_AGENT_TLS_FINGERPRINT; default from the credential)")
	caFile := fs.String("ca-file", "", "PEM file of CA certificates to trust besides the system's, instead of a fingerprint (env BATON_AGENT_CA_FILE)")
	insecure := fs.Bool("insecure", false, "allow a ws:// (unencrypted) server URL on a host that is not loopback (env BATON_AGENT_INSECURE)")
	name := fs.String("name", "", "node name (env BATON_AGENT_NAME; default from the credential)")
	credential := fs.String("credential", "", "credential file from 'baton node add' (env BATON_AGENT_CREDENTIAL)")
	cacheDir := fs.String("cache-dir", "", "task file cache (env BATON_AGENT_CACHE_DIR; default /var/cache/baton-agent/tasks)")
	spoolDir := fs.String("spool-dir", "", "result spool (env BATON_AGENT_SPOOL_DIR; default /var/lib/baton-agent/spool)")
	keepalive := fs.Duration("keepalive-interval", 0, "send a keepalive message after this long without sending anything (default 9m; API Gateway closes idle WebSockets after 10m)")
	maxAge := fs.Duration("max-connection-age", 0, "reconnect after a random age between 90% of this and this (default 110m; API Gateway ends connections at 2h)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (env BATON_AGENT_LOG_LEVEL; default info)")
	puppetBin := fs.String("puppet-bin", "", "puppet executable for on-demand runs (env BATON_AGENT_PUPPET_BIN; default puppet)")
	puppetMode := fs.String("puppet-mode", "", "agent (puppet agent against a server) or apply (masterless) (env BATON_AGENT_PUPPET_MODE; default agent)")
	puppetManifest := fs.String("puppet-manifest", "", "manifest for apply mode (env BATON_AGENT_PUPPET_MANIFEST)")
	puppetModulePath := fs.String("puppet-modulepath", "", "modulepath for apply mode (env BATON_AGENT_PUPPET_MODULEPATH)")
	puppetArgs := fs.String("puppet-args", "", "comma-separated extra puppet settings for every run, e.g. --confdir,/etc/x (env BATON_AGENT_PUPPET_ARGS)")
	var interpreters listFlag
	fs.Var(&interpreters, "interpreters", "task interpreters by file extension, e.g. .rb=/usr/bin/ruby,.py=/usr/bin/python3, or with arguments a JSON object as in the config file, e.g. '{\".rb\": [\"/usr/bin/ruby\", \"-r\", \"puppet\"]}' (repeatable; EXT= or \"\" removes a default; env BATON_AGENT_INTERPRETERS; default detected: .rb the Ruby Puppet runs on, .py python3, .ps1 pwsh)")
	features := fs.String("features", "", "comma-separated task features instead of the detected ones (shell, powershell, puppet-agent) (env BATON_AGENT_FEATURES)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var fc fileConfig
	if *configPath != "" {
		b, err := os.ReadFile(*configPath)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fc); err != nil {
			return fmt.Errorf("config %s: %w", *configPath, err)
		}
	}
	pick := func(flagVal, env, file, def string) string {
		for _, v := range []string{flagVal, os.Getenv(env), file} {
			if v != "" {
				return v
			}
		}
		return def
	}
	credPath := pick(*credential, "BATON_AGENT_CREDENTIAL", fc.Credential, "")
	if credPath == "" {
		return fmt.Errorf("a credential file is required (--credential; create one with `baton node add NAME --out FILE`)")
	}
	cred, err := auth.ReadCredential(credPath)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(pick(*logLevel, "BATON_AGENT_LOG_LEVEL", fc.LogLevel, "info"))); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	cfg := agent.Config{
		Server:         pick(*server, "BATON_AGENT_SERVER", fc.Server, cred.Server),
		Name:           pick(*name, "BATON_AGENT_NAME", fc.Name, cred.Name),
		Secret:         cred.Secret,
		TLSFingerprint: pick(*fingerprint, "BATON_AGENT_TLS_FINGERPRINT", fc.TLSFingerprint, ""),
		CAFile:         pick(*caFile, "BATON_AGENT_CA_FILE", fc.CAFile, ""),
		Insecure:       *insecure || fc.Insecure,
		CacheDir:       pick(*cacheDir, "BATON_AGENT_CACHE_DIR", fc.CacheDir, "/var/cache/baton-agent/tasks"),
		SpoolDir:       pick(*spoolDir, "BATON_AGENT_SPOOL_DIR", fc.SpoolDir, "/var/lib/baton-agent/spool"),
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),

		KeepaliveInterval: *keepalive,
		MaxConnectionAge:  *maxAge,
	}
	if v := os.Getenv("BATON_AGENT_INSECURE"); v != "" && !cfg.Insecure {
		if cfg.Insecure, err = strconv.ParseBool(v); err != nil {
			return fmt.Errorf("BATON_AGENT_INSECURE=%q: want true or false", v)
		}
	}
	// The credential's fingerprint pins the server's certificate unless a fingerprint or a CA
	// file is given some other way; it has no use without TLS.
	if u, err := url.Parse(cfg.Server); err == nil && u.Scheme == "wss" && cfg.TLSFingerprint == "" && cfg.CAFile == "" {
		cfg.TLSFingerprint = cred.Fingerprint
	}
	if cfg.Name != cred.Name {
		return fmt.Errorf("node name %q does not match the credential's %q", cfg.Name, cred.Name)
	}
	for _, d := range []*string{&cfg.CacheDir, &cfg.SpoolDir} {
		if *d, err = filepath.Abs(*d); err != nil {
			return err
		}
	}
	pcfg := puppet.Config{
		PuppetBin:  pick(*puppetBin, "BATON_AGENT_PUPPET_BIN", fc.Puppet.Bin, ""),
		Mode:       pick(*puppetMode, "BATON_AGENT_PUPPET_MODE", fc.Puppet.Mode, ""),
		Manifest:   pick(*puppetManifest, "BATON_AGENT_PUPPET_MANIFEST", fc.Puppet.Manifest, ""),
		ModulePath: pick(*puppetModulePath, "BATON_AGENT_PUPPET_MODULEPATH", fc.Puppet.ModulePath, ""),
		ExtraArgs:  fc.Puppet.Args,
	}
	if v := pick(*puppetArgs, "BATON_AGENT_PUPPET_ARGS", "", ""); v != "" {
		pcfg.ExtraArgs = strings.Split(v, ",")
	}
	if err := pcfg.Validate(); err != nil {
		return err
	}
	plat, err := platformSettings(interpreters, *features, fc)
	if err != nil {
		return err
	}
	// What is not given is detected by the agent in the background (puppet --version takes
	// seconds): enrolling and connecting do not wait for it.
	cfg.Features, cfg.InterpreterOverrides, cfg.PuppetBin = plat.Features, plat.Interpreters, pcfg.PuppetBin
	// Tasks run under a supervisor so that they outlive a restart of the agent and their real
	// outcome is still reported: this binary as a process of its own (`baton-agent supervise`),
	// else a shell script per task.
	if exe, err := os.Executable(); err == nil {
		cfg.SupervisorDaemon = []string{exe, agent.SupervisorCommand}
	}
	if cfg.Supervisor = agent.DefaultSupervisor(); cfg.Supervisor == nil && cfg.SupervisorDaemon == nil {
		cfg.Logger.Warn("no /bin/sh: tasks run without a supervisor, and their outcome is unknown after an agent restart")
	}
	if cfg.FaultHook, err = faultHook(os.Getenv("BATON_AGENT_FAULT"), cfg.Logger); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := useCredential(ctx, &cfg, credPath, cred); err != nil {
		return err
	}
	a, err := agent.New(cfg, agent.WithPuppet(pcfg))
	if err != nil {
		return err
	}
	cfg.Logger.Info("baton-agent starting", "node", cfg.Name, "server", cfg.Server,
		"tls_fingerprint", cfg.TLSFingerprint, "ca_file", cfg.CAFile)
	go keepSmall(ctx, a)
	if addr := os.Getenv("BATON_PPROF"); addr != "" {
		go servePprof(addr)
	}
	return a.Run(ctx)
}

// useCredential sets cfg's credential from the credential file. On the first start after
// `baton node add` the file holds a one-time enrolment token: the agent then makes its own
// key pair, registers the public key with the server, and replaces the token in the file
// with the private key (mode 0600), which never leaves the node.
func useCredential(ctx context.Context, cfg *agent.Config, path string, cred auth.Credential) error {
	switch {
	case cred.PrivateKey != "":
		key, err := base64.StdEncoding.DecodeString(cred.PrivateKey)
		if err != nil || len(key) != ed25519.PrivateKeySize {
			return fmt.Errorf("credential %s: bad private_key", path)
		}
		cfg.Secret, cfg.PrivateKey = "", ed25519.PrivateKey(key)
	case cred.EnrollmentToken != "":
		cfg.Logger.Info("enrolling with the one-time enrolment token", "node", cfg.Name)
		key, err := agent.Enroll(ctx, *cfg, cred.EnrollmentToken, cred.API)
		if err != nil {
			return err
		}
		cred.EnrollmentToken, cred.PrivateKey = "", base64.StdEncoding.EncodeToString(key)
		if err := auth.WriteCredential(path, cred); err != nil {
			return fmt.Errorf("save the node's key (enrolment succeeded; the token is used up): %w", err)
		}
		cfg.Logger.Info("enrolled; the node's key is in the credential file", "path", path)
		cfg.Secret, cfg.PrivateKey = "", key
	}
	return nil
}

// keepSmall keeps resident only the code the agent goes on running: once started, and after
// each spell of work, when it has been idle for a while, it lets go of the rest (see
// trimResident).
func keepSmall(ctx context.Context, a *agent.Agent) {
	const settle = 10 * time.Second
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	started := time.Now()
	var trimmed bool
	var trimmedAfter time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		idle, since := a.Idle()
		switch {
		case !trimmed && time.Since(started) >= settle:
			trimResident()
			trimmed, trimmedAfter = true, since
		case trimmed && idle && since.After(trimmedAfter) && time.Since(since) >= settle:
			trimResident()
			trimmedAfter = since
		}
	}
}

// faultHook builds agent.Config.FaultHook from BATON_AGENT_FAULT, for chaos tests: "POINT"
// kills the agent (SIGKILL, as kill -9 would) the first time it reaches that fault point,
// "POINT:P" each time with probability P, and "any:P" at any point with probability P (the
// points are agent.FaultPoints). Empty: no hook.
func faultHook(spec string, log *slog.Logger) (func(string), error) {
	if spec == "" {
		return nil, nil
	}
	point, prob, hasProb := strings.Cut(spec, ":")
	p := 1.0
	if hasProb {
		var err error
		if p, err = strconv.ParseFloat(prob, 64); err != nil || p < 0 || p > 1 {
			return nil, fmt.Errorf("BATON_AGENT_FAULT=%q: the probability must be a number from 0 to 1", spec)
		}
	}
	if point != "any" && !slices.Contains(agent.FaultPoints, point) {
		return nil, fmt.Errorf("BATON_AGENT_FAULT=%q: unknown fault point (one of any, %s)", spec, strings.Join(agent.FaultPoints, ", "))
	}
	return func(at string) {
		if (point == "any" || at == point) && rand.Float64() < p {
			log.Warn("BATON_AGENT_FAULT: killing the agent at a fault point", "point", at)
			self, _ := os.FindProcess(os.Getpid())
			_ = self.Kill() // SIGKILL on unix: nothing runs after this
			select {}
		}
	}, nil
}
