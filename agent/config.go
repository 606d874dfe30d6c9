package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults applied by New to zero fields of Config.
const (
	// DefaultPingInterval and DefaultPongTimeout bound how long a dead connection goes
	// unnoticed: a connection that delivered nothing for DefaultPingInterval is pinged, and
	// closed when the pong does not come within DefaultPongTimeout: 25 s in all, so that with a
	// reconnect the agent is back within 30 s.
	DefaultPingInterval = 15 * time.Second
	DefaultPongTimeout  = 10 * time.Second
	// DefaultKeepaliveInterval: API Gateway closes a WebSocket after 10 minutes without a data
	// message; the agent sends a keepalive once it has sent nothing for this long.
	DefaultKeepaliveInterval = 9 * time.Minute
	// DefaultMaxConnectionAge: API Gateway ends every connection at 2 hours; the agent
	// reconnects before, at a random age between 90% of this and this.
	DefaultMaxConnectionAge = 110 * time.Minute
	// DefaultAckTimeout is how long the agent waits for the server to acknowledge a result
	// before it sends the result again on the same connection (then twice as long each time,
	// up to DefaultMaxAckTimeout).
	DefaultAckTimeout    = 30 * time.Second
	DefaultMaxAckTimeout = 5 * time.Minute
	// DefaultMaxDownloadBytes caps a task file whose request declares no size (size_bytes 0):
	// a download longer than this fails. A declared size is the cap otherwise.
	DefaultMaxDownloadBytes = 256 << 20
	DefaultMaxBackoff       = 30 * time.Second
	DefaultSpoolPurgeTTL    = 14 * 24 * time.Hour
	DefaultDialTimeout      = 10 * time.Second
	DefaultDownloadLimit    = 30 * time.Minute
	// MaxOutputBytes caps what is kept of a task's stdout and of its stderr.
	MaxOutputBytes = 16 << 20
	// readLimit is the largest frame the agent accepts (pxp-agent's max-message-size).
	readLimit = 64 << 20
)

// DefaultDownloadBackoff is the wait before each retry of a failed file download (reference
// §4.8 step 4: five attempts, waiting 1, 2, 4 and 8 s between them).
var DefaultDownloadBackoff = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}

// Config configures an Agent. Zero fields get the defaults documented on each field.
type Config struct {
	// Server is the ws:// or wss:// URL of the control plane's /pcp endpoint. Task files with a
	// relative uri.path are downloaded from the same host over http:// or https://.
	Server string
	// Name is this node's name (its PCP identity), sent as the X-Baton-Node header.
	Name string
	// Secret is the agent's credential, sent as "Authorization: Bearer <Secret>". Either it or
	// PrivateKey is set.
	Secret string
	// PrivateKey is the agent's own key (from enrolment, see Enroll): every connect is signed
	// with it, with a fresh timestamp and nonce, so a captured connect cannot be replayed.
	PrivateKey ed25519.PrivateKey
	// CacheDir holds downloaded task files as <CacheDir>/<sha256>/<basename>.
	CacheDir string
	// SpoolDir holds one directory per transaction with its metadata and outcome.
	SpoolDir string
	// MemorySpool keeps the spool in memory instead of SpoolDir, for simulated agents (see
	// agent/fleet): transactions are still never run twice and outcomes are still sent until
	// acknowledged, but nothing survives the process, and handlers get no scratch directory.
	MemorySpool bool
	// Features are what task implementations may require (their "requirements"); the agent
	// selects the implementation to run (reference §4.8 step 2) and reports them with its
	// facts. Default: detected in the background when the agent starts (DetectPlatform; the
	// first task waits for it) — "shell" when a POSIX
	// sh is present, "powershell" on Windows or with pwsh, "puppet-agent" when puppet is
	// found and answers `puppet --version`. A non-nil list is used exactly as given.
	Features []string
	// Interpreters maps a task file's extension (".rb") to the interpreter that runs it,
	// its path and arguments (Bolt's `interpreters`, whose values are a path or an array):
	// the file is started as `path args... file` (never through a shell) instead of by its
	// shebang. Default (nil): the detected defaults (see
	// DetectPlatform): ".rb" → /opt/puppetlabs/puppet/bin/ruby when present, else the Ruby
	// that puppet runs on, else ruby on PATH; ".py" → python3; ".ps1" → pwsh. A non-nil map
	// is used exactly as given (InterpreterOverrides change the defaults instead); keys may
	// be given with or without the dot.
	Interpreters map[string][]string
	// InterpreterOverrides are merged over Interpreters (the detected defaults when that is
	// nil): each entry replaces its extension's interpreter, and an empty one removes it.
	// Keys may be given with or without the dot.
	InterpreterOverrides map[string][]string
	// PuppetBin is the puppet executable looked for by feature detection; default
	// /opt/puppetlabs/bin/puppet when present, else puppet on PATH.
	PuppetBin string
	// PuppetVersion is reported with the facts (baton_agent.puppet_version); default the
	// version detected with the features.
	PuppetVersion string
	// platform resolves Features and Interpreters (detecting what is unset); set by
	// withDefaults.
	platform *lazyPlatform
	// Facts gathers the facts sent after every connect (in the background, after spooled
	// results); default Facts. Facts gathered less than FactsTTL ago are sent again as they
	// are; every FactsTTL while connected they are gathered and sent afresh. Default 30 min.
	Facts    func(ctx context.Context) (map[string]any, error)
	FactsTTL time.Duration
	// HTTPClient is used for the WebSocket handshake and for file downloads; default a
	// client without an overall timeout (each use carries its own deadline). With
	// TLSFingerprint or CAFile its Transport must be nil or an *http.Transport.
	HTTPClient *http.Client
	// TLSFingerprint pins the server's certificate: the lowercase hex SHA-256 of its DER
	// (colons and upper case are accepted). When set, connections to the server's host and
	// port — the WebSocket and task file downloads — accept exactly that certificate, whatever
	// its issuer, names or dates; other hosts are verified as usual. Needs a wss:// Server.
	TLSFingerprint string
	// CAFile is a PEM file of CA certificates trusted in addition to the system's. Needs a
	// wss:// Server; not together with TLSFingerprint.
	CAFile string
	// Insecure allows a ws:// (unencrypted) Server on a host that is not loopback; without it
	// only ws://localhost, ws://127.x.x.x and ws://[::1] are accepted.
	Insecure bool
	// Logger receives the agent's logs; default discards them.
	Logger *slog.Logger
	// PingInterval: a connection that delivered nothing for this long is checked with a
	// WebSocket ping; default 15 s. A ping not answered within PongTimeout (default 10 s)
	// closes the connection, which is then re-dialled: a dead or half-open connection is
	// noticed within PingInterval+PongTimeout.
	PingInterval time.Duration
	PongTimeout  time.Duration
	// KeepaliveInterval: once the agent has sent no data message for this long, it sends a
	// keepalive (API Gateway closes a WebSocket after 10 minutes without a data message, and
	// pings do not count); default 9 min.
	KeepaliveInterval time.Duration
	// MaxConnectionAge is when the agent closes its connection and connects again, before API
	// Gateway's 2-hour limit on a connection ends it; spooled results go out on the new one.
	// Each connection's age is drawn at random between 90% of this and this, so that agents
	// connected together do not reconnect together. Default 110 min.
	MaxConnectionAge time.Duration
	// AckTimeout is how long a sent result waits for the server's acknowledgement before the
	// agent sends it again on the same connection; each further wait doubles, up to
	// MaxAckTimeout. Defaults 30 s and 5 min. A server error_message that refuses a result
	// and says to retry (protocol.ErrorData) brings the next attempt forward.
	AckTimeout    time.Duration
	MaxAckTimeout time.Duration
	// MaxDownloadBytes caps a task file whose request declares no size_bytes; default
	// DefaultMaxDownloadBytes (256 MiB). A file with a declared size may not exceed it.
	MaxDownloadBytes int64
	// Supervisor, when set, is the command (argv prefix) that runs each task process: the
	// agent starts `Supervisor... <txn dir> <task executable> <args...>`, and the supervisor
	// (DefaultSupervisor: SupervisorScript under /bin/sh) runs the task, writes its output to files
	// in the transaction's directory and its exit code last. The task then outlives a
	// restart of the agent, which finds it again (by PID and start time) and reports its real
	// outcome. Without a supervisor the task is the agent's own child: after an agent restart
	// the agent still waits for it to end, but reports its outcome as unknown.
	Supervisor []string
	// SupervisorDaemon, when set, is the command that starts the agent's task supervisor
	// process (`baton-agent supervise`, RunSupervisor): one process, started at the first task
	// and kept while tasks come, that starts every task, records its PID, output and exit code
	// in the files Supervisor's script writes, and outlives the agent, so a task still finishes
	// and is reported after an agent restart. It is preferred to Supervisor, which remains the
	// fallback when the process cannot be started.
	SupervisorDaemon []string
	// FaultHook, when set, is called at named points of the spool and task lifecycle (see
	// FaultPoints); a chaos test makes it kill the process there. Production leaves it nil.
	FaultHook func(point string)
	// LookupHost resolves a ws:// server's host name to check that it is loopback (see
	// Insecure); default net.DefaultResolver.LookupHost.
	LookupHost func(ctx context.Context, host string) ([]string, error)
	// MaxBackoff caps the wait between connection attempts; default 30 s.
	MaxBackoff time.Duration
	// ProvisionalDelay is how long a new transaction runs before the agent sends its
	// provisional response: one that ends sooner sends only its result, which says as much
	// (one message less per quick task). Default 200 ms; negative: at once, as pxp-agent does.
	ProvisionalDelay time.Duration
	// DialTimeout bounds one connection attempt; default 10 s.
	DialTimeout time.Duration
	// DownloadBackoff is the wait before each retry of a failed download; its length is the
	// number of retries. Default DefaultDownloadBackoff. An empty non-nil slice means no retry.
	DownloadBackoff []time.Duration
	// DownloadTimeout bounds one download attempt; default 30 min.
	DownloadTimeout time.Duration
	// SpoolPurgeTTL: when Run starts, finished transactions that started longer ago than this
	// are deleted from the spool, and cache entries unused for as long from the cache;
	// default 14 days; negative disables purging.
	SpoolPurgeTTL time.Duration
}

// Validate reports whether c is usable (after defaults are applied).
func (c Config) Validate() error {
	var errs []error
	if c.Server == "" {
		errs = append(errs, errors.New("server URL is required"))
	} else if u, err := url.Parse(c.Server); err != nil {
		errs = append(errs, fmt.Errorf("server URL: %w", err))
	} else if u.Scheme != "ws" && u.Scheme != "wss" {
		errs = append(errs, fmt.Errorf("server URL %q: scheme must be ws or wss", c.Server))
	} else if u.Host == "" {
		errs = append(errs, fmt.Errorf("server URL %q has no host", c.Server))
	} else {
		errs = append(errs, c.validateTLS(u)...)
	}
	if c.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if (c.Secret == "") == (len(c.PrivateKey) == 0) {
		errs = append(errs, errors.New("exactly one of secret and private key is required"))
	} else if len(c.PrivateKey) != 0 && len(c.PrivateKey) != ed25519.PrivateKeySize {
		errs = append(errs, errors.New("private key has the wrong size"))
	}
	if c.CacheDir == "" {
		errs = append(errs, errors.New("cache dir is required"))
	}
	if c.SpoolDir == "" && !c.MemorySpool {
		errs = append(errs, errors.New("spool dir is required"))
	}
	if c.PingInterval < 0 || c.PongTimeout < 0 || c.MaxBackoff < 0 || c.DialTimeout < 0 || c.DownloadTimeout < 0 ||
		c.KeepaliveInterval < 0 || c.MaxConnectionAge < 0 || c.AckTimeout < 0 || c.MaxAckTimeout < 0 || c.MaxDownloadBytes < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	for _, m := range []map[string][]string{c.Interpreters, c.InterpreterOverrides} {
		if _, err := NormalizeInterpreters(m); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range c.Features {
		if f == "" || strings.ContainsAny(f, ", \t") {
			errs = append(errs, fmt.Errorf("feature %q: want a name such as shell, powershell or puppet-agent", f))
		}
	}
	for _, d := range c.DownloadBackoff {
		if d < 0 {
			errs = append(errs, errors.New("download backoff must not be negative"))
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("agent config: %w", err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if m, err := NormalizeInterpreters(c.Interpreters); err == nil {
		c.Interpreters = m
	}
	if m, err := NormalizeInterpreters(c.InterpreterOverrides); err == nil {
		c.InterpreterOverrides = m
	}
	if c.Facts == nil {
		c.Facts = Facts
	}
	if c.KeepaliveInterval == 0 {
		c.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if c.MaxConnectionAge == 0 {
		c.MaxConnectionAge = DefaultMaxConnectionAge
	}
	if c.PongTimeout == 0 {
		c.PongTimeout = DefaultPongTimeout
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.MaxAckTimeout == 0 {
		c.MaxAckTimeout = max(DefaultMaxAckTimeout, c.AckTimeout)
	}
	if c.MaxDownloadBytes == 0 {
		c.MaxDownloadBytes = DefaultMaxDownloadBytes
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.FactsTTL <= 0 {
		c.FactsTTL = 30 * time.Minute
	}
	if c.ProvisionalDelay == 0 {
		c.ProvisionalDelay = 200 * time.Millisecond
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.DownloadBackoff == nil {
		c.DownloadBackoff = DefaultDownloadBackoff
	}
	if c.DownloadTimeout == 0 {
		c.DownloadTimeout = DefaultDownloadLimit
	}
	if c.SpoolPurgeTTL == 0 {
		c.SpoolPurgeTTL = DefaultSpoolPurgeTTL
	}
	if c.platform == nil {
		// Detection (when Features or Interpreters is nil) starts now, in the background.
		c.platform = newLazyPlatform(c)
	}
	return c
}

// httpBase returns the http(s) URL of the server's host: ws→http, wss→https, no path.
func httpBase(server string) (*url.URL, error) {
	u, err := url.Parse(server)
	if err != nil {
		return nil, fmt.Errorf("parse server URL: %w", err)
	}
	b := &url.URL{Host: u.Host}
	switch u.Scheme {
	case "ws":
		b.Scheme = "http"
	case "wss":
		b.Scheme = "https"
	default:
		return nil, fmt.Errorf("server URL %q: scheme must be ws or wss", server)
	}
	return b, nil
}
