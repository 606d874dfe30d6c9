// Package fleet runs many virtual agents in one process, for load tests and benchmarks of a
// control plane: each has its own node identity (an enrolled Ed25519 key), its own WebSocket
// connection and the agent library's real protocol code — signed connects, facts, request
// handling, the spool (in memory unless the real task runner is used), acknowledgements and
// reconnects — with a pluggable executor: a no-op that answers after a configurable latency
// with a configurable failure rate, or the real task runner. It is not an agent to deploy.
package fleet

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-run/baton/agent"
	"github.com/baton-run/baton/shared/client"
	"github.com/baton-run/baton/shared/protocol"
)

// Executors a fleet can run requests with.
const (
	ExecutorNoop = "noop" // answer after Latency, failing FailRate of the time; no process
	ExecutorTask = "task" // the agent's real task runner: download, check, run the task file
)

// Config configures a fleet.
type Config struct {
	// Count is the number of virtual agents; they are named Prefix1 … PrefixCount.
	Count  int
	Prefix string
	// Server is the control plane's agent endpoint (wss://host:port/pcp); API its HTTP API's
	// base URL (default: the same host over https, or http for ws).
	Server, API string
	// Token is an API token allowed to enrol nodes (nodes:manage), needed only when some
	// names have no key in KeysDir yet.
	Token string
	// KeysDir keeps each agent's private key as <name>.key (0600), so that a second run
	// reconnects the same fleet.
	KeysDir string
	// TLSFingerprint, CAFile and Insecure are agent.Config's.
	TLSFingerprint, CAFile string
	Insecure               bool
	// Executor is ExecutorNoop (default) or ExecutorTask.
	Executor string
	// Latency is how long the no-op executor takes per request; FailRate (0 to 1) is the
	// fraction of its runs that fail with exit code 1.
	Latency  time.Duration
	FailRate float64
	// WorkDir holds each agent's spool and task file cache for ExecutorTask (required then);
	// the no-op executor keeps its spool in memory.
	WorkDir string
	// EnrollParallel bounds the enrolments in flight (default 32).
	EnrollParallel int
	// Facts makes agent i's facts (default: a few synthetic ones, see SyntheticFacts).
	Facts func(i int, name string) map[string]any
	// MaxBackoff caps the agents' wait between connection attempts (agent's default: 30s).
	MaxBackoff time.Duration
	// DialParallel bounds the connection attempts (WebSocket handshakes) in flight across the
	// fleet, 0 for no bound: a server whose connects are slow then sees a steady stream of
	// them rather than every agent at once and their retries. Waiting for a turn counts
	// against the agent's dial timeout, so an agent that waits too long backs off and tries
	// again, as it would after a refused connect.
	DialParallel int
	Logger       *slog.Logger
}

func (c *Config) validate() error {
	var errs []error
	if c.Count < 1 {
		errs = append(errs, errors.New("count must be at least 1"))
	}
	if c.Prefix == "" {
		errs = append(errs, errors.New("a name prefix is required"))
	}
	if c.Server == "" {
		errs = append(errs, errors.New("the server's agent URL is required (wss://host:port/pcp)"))
	}
	if c.KeysDir == "" {
		errs = append(errs, errors.New("a keys directory is required"))
	}
	switch c.Executor {
	case "":
		c.Executor = ExecutorNoop
	case ExecutorNoop:
	case ExecutorTask:
		if c.WorkDir == "" {
			errs = append(errs, errors.New("the task executor needs a work directory for the agents' spools and caches"))
		}
	default:
		errs = append(errs, fmt.Errorf("executor %q: want %s or %s", c.Executor, ExecutorNoop, ExecutorTask))
	}
	if c.FailRate < 0 || c.FailRate > 1 || c.Latency < 0 {
		errs = append(errs, errors.New("the failure rate must be from 0 to 1 and the latency not negative"))
	}
	if c.EnrollParallel <= 0 {
		c.EnrollParallel = 32
	}
	if c.Facts == nil {
		c.Facts = SyntheticFacts
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.API == "" && c.Server != "" {
		u, err := url.Parse(c.Server)
		if err != nil {
			errs = append(errs, fmt.Errorf("server URL: %w", err))
		} else {
			scheme := "https"
			if u.Scheme == "ws" {
				scheme = "http"
			}
			c.API = scheme + "://" + u.Host
		}
	}
	return errors.Join(errs...)
}

// SyntheticFacts are a virtual agent's default facts: enough for scope queries to select
// by OS family, role or index.
func SyntheticFacts(i int, name string) map[string]any {
	families := []string{"Debian", "RedHat"}
	roles := []string{"web", "db", "cache", "app"}
	return map[string]any{
		"os":              map[string]any{"family": families[i%len(families)], "release": map[string]any{"major": 12 - i%2*3}},
		"role":            roles[i%len(roles)],
		"networking":      map[string]any{"hostname": name, "fqdn": name + ".fleet.test"},
		"processors":      map[string]any{"count": 2 << (i % 3)},
		"baton_simulated": true,
		"sim_index":       i,
	}
}

// Fleet is a set of virtual agents.
type Fleet struct {
	cfg    Config
	names  []string
	agents []*agent.Agent
	runs   atomic.Int64
	failed atomic.Int64
}

// Names returns the agents' node names.
func (f *Fleet) Names() []string { return f.names }

// New enrols the names that have no key in cfg.KeysDir (in one bulk call, then each agent's
// own enrolment exchange) and builds the agents.
func New(ctx context.Context, cfg Config) (*Fleet, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	f := &Fleet{cfg: cfg}
	for i := 1; i <= cfg.Count; i++ {
		f.names = append(f.names, fmt.Sprintf("%s%d", cfg.Prefix, i))
	}
	hc, err := agent.NewHTTPClient(agent.Config{Server: cfg.Server, TLSFingerprint: cfg.TLSFingerprint, CAFile: cfg.CAFile,
		HTTPClient: &http.Client{Transport: sharedTransport()}})
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	keys, err := f.keys(ctx, hc)
	if err != nil {
		return nil, err
	}
	if cfg.DialParallel > 0 {
		hc = &http.Client{Transport: &turns{next: hc.Transport, sem: make(chan struct{}, cfg.DialParallel)}}
	}
	for i, name := range f.names {
		a, err := f.newAgent(i, name, keys[i], hc)
		if err != nil {
			return nil, fmt.Errorf("fleet: agent %s: %w", name, err)
		}
		f.agents = append(f.agents, a)
	}
	return f, nil
}

// sharedTransport is the transport of every agent's handshakes and downloads: many idle
// connections per host would only hold memory, the WebSockets themselves are hijacked.
func sharedTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return t
}

// turns is a transport that lets at most cap(sem) requests wait for their response at once.
type turns struct {
	next http.RoundTripper
	sem  chan struct{}
}

func (t *turns) RoundTrip(r *http.Request) (*http.Response, error) {
	select {
	case t.sem <- struct{}{}:
	case <-r.Context().Done():
		return nil, context.Cause(r.Context())
	}
	defer func() { <-t.sem }()
	return t.next.RoundTrip(r)
}

func (f *Fleet) keyFile(name string) string { return filepath.Join(f.cfg.KeysDir, name+".key") }

// keys returns every agent's private key, enrolling those that have none yet.
func (f *Fleet) keys(ctx context.Context, hc *http.Client) ([]ed25519.PrivateKey, error) {
	if err := os.MkdirAll(f.cfg.KeysDir, 0o700); err != nil {
		return nil, fmt.Errorf("fleet: keys: %w", err)
	}
	keys := make([]ed25519.PrivateKey, len(f.names))
	var missing []int
	for i, name := range f.names {
		b, err := os.ReadFile(f.keyFile(name))
		if errors.Is(err, os.ErrNotExist) {
			missing = append(missing, i)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("fleet: key of %s: %w", name, err)
		}
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(k) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("fleet: key of %s in %s is not a base64 Ed25519 private key", name, f.keyFile(name))
		}
		keys[i] = k
	}
	if len(missing) == 0 {
		return keys, nil
	}
	if f.cfg.Token == "" {
		return nil, fmt.Errorf("fleet: %d agents have no key in %s and no API token was given to enrol them", len(missing), f.cfg.KeysDir)
	}
	api := client.NewWithHTTP(f.cfg.API, f.cfg.Token, hc)
	f.cfg.Logger.Info("enrolling virtual agents", "count", len(missing))
	const bulk = 10000
	for start := 0; start < len(missing); start += bulk {
		part := missing[start:min(start+bulk, len(missing))]
		names := make([]string, len(part))
		for k, i := range part {
			names[k] = f.names[i]
		}
		list, err := api.EnrollNodes(ctx, names, "1h")
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusConflict {
			return nil, fmt.Errorf("fleet: %s; their keys are not in %s: revoke them (baton node revoke) or use another prefix", ae.Msg, f.cfg.KeysDir)
		}
		if err != nil {
			return nil, fmt.Errorf("fleet: enrol %d nodes: %w", len(names), err)
		}
		if len(list) != len(part) {
			return nil, fmt.Errorf("fleet: asked to enrol %d nodes, got %d enrolment tokens", len(part), len(list))
		}
		if err := f.exchange(ctx, hc, part, list, keys); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// exchange runs each new agent's own enrolment (its key pair for the one-time token), at
// most EnrollParallel at a time, and keeps the keys.
func (f *Fleet) exchange(ctx context.Context, hc *http.Client, idx []int, list []client.Enrollment, keys []ed25519.PrivateKey) error {
	sem := make(chan struct{}, f.cfg.EnrollParallel)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for k, i := range idx {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			name := f.names[i]
			cfg := agent.Config{Server: f.cfg.Server, Name: name, HTTPClient: hc, Insecure: f.cfg.Insecure,
				CacheDir: os.TempDir(), SpoolDir: os.TempDir()}
			key, err := agent.Enroll(ctx, cfg, list[k].EnrollmentToken, f.cfg.API)
			if err == nil {
				err = writeKey(f.keyFile(name), key)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("enrol %s: %w", name, err))
				return
			}
			keys[i] = key
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("fleet: %d enrolments failed: %w", len(errs), errors.Join(errs[:min(len(errs), 5)]...))
	}
	return nil
}

func writeKey(path string, key ed25519.PrivateKey) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (f *Fleet) newAgent(i int, name string, key ed25519.PrivateKey, hc *http.Client) (*agent.Agent, error) {
	facts := f.cfg.Facts(i, name)
	cfg := agent.Config{
		Server: f.cfg.Server, Name: name, PrivateKey: key, HTTPClient: hc, Insecure: f.cfg.Insecure,
		Facts:      func(context.Context) (map[string]any, error) { return facts, nil },
		Logger:     f.cfg.Logger.With("node", name),
		MaxBackoff: f.cfg.MaxBackoff,
		// Virtual agents do not detect this machine's Puppet and interpreters (agent.DetectPlatform
		// runs puppet --version): they run shell tasks only.
		Features: []string{"shell"}, Interpreters: map[string][]string{},
	}
	var opts []agent.Option
	if f.cfg.Executor == ExecutorTask {
		dir := filepath.Join(f.cfg.WorkDir, name)
		cfg.SpoolDir, cfg.CacheDir = filepath.Join(dir, "spool"), filepath.Join(dir, "cache")
	} else {
		cfg.MemorySpool = true
		cfg.CacheDir = filepath.Join(os.TempDir(), "baton-fleet-unused-cache") // the no-op executor downloads nothing
		opts = append(opts, agent.WithModule(protocol.ModuleTask, protocol.ActionRun, f.noop(name)))
	}
	return agent.New(cfg, opts...)
}

// noop is the no-op executor of one agent: it answers after Latency, with exit code 1 for
// FailRate of its runs, and like the task runner when the run is timed out or cancelled.
func (f *Fleet) noop(name string) agent.ModuleHandler {
	prefix, _ := json.Marshal(name) // {"node":…,"run":…,"transaction_id":…}, built by hand: it runs for every request
	prefix = append(append([]byte(`{"node":`), prefix...), `,"run":`...)
	return func(ctx context.Context, req agent.Request) (json.RawMessage, error) {
		if f.cfg.Latency > 0 {
			t := time.NewTimer(f.cfg.Latency)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				cause := context.Cause(ctx)
				switch {
				case errors.Is(cause, agent.ErrTimedOut):
					return json.Marshal(protocol.TaskResults{Exitcode: -1, TimedOut: true})
				case errors.Is(cause, agent.ErrCanceled):
					return json.Marshal(protocol.TaskResults{Exitcode: -1, Canceled: true})
				}
				return nil, cause
			}
		}
		n := f.runs.Add(1)
		if f.cfg.FailRate > 0 && rand.Float64() < f.cfg.FailRate {
			f.failed.Add(1)
			return json.Marshal(protocol.TaskResults{Exitcode: 1, Stderr: "simulated failure"})
		}
		txn, _ := json.Marshal(req.TransactionID)
		out := append(strconv.AppendInt(append(make([]byte, 0, len(prefix)+len(txn)+40), prefix...), n, 10), `,"transaction_id":`...)
		out = append(append(out, txn...), '}')
		return json.Marshal(protocol.TaskResults{Exitcode: 0, Stdout: string(out)})
	}
}

// Run runs every agent until ctx ends.
func (f *Fleet) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(f.agents))
	for i, a := range f.agents {
		wg.Go(func() { errs[i] = a.Run(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Connected returns how many agents hold a live connection.
func (f *Fleet) Connected() int {
	n := 0
	for _, a := range f.agents {
		if a.Connected() {
			n++
		}
	}
	return n
}

// NodeRuns returns how many requests the no-op executor has answered, and how many of those
// it failed.
func (f *Fleet) NodeRuns() (runs, failed int64) { return f.runs.Load(), f.failed.Load() }
