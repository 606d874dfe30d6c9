package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/protocol"
)

// Errors of this package. ErrTimedOut, ErrCanceled and ErrAgentStopped are also the causes
// (context.Cause) of the context a ModuleHandler runs with when the agent ends it early.
var (
	// ErrNotConnected: a message could not be sent because there is no connection right now.
	ErrNotConnected = errors.New("agent is not connected")
	// ErrAlreadyRunning: Run was called while another Run of the same Agent is active.
	ErrAlreadyRunning = errors.New("agent is already running")
	// ErrTimedOut: the request's timeout elapsed.
	ErrTimedOut = errors.New("transaction timed out")
	// ErrCanceled: the server cancelled the transaction.
	ErrCanceled = errors.New("transaction canceled")
	// ErrAgentStopped: Run's context ended while the transaction was running.
	ErrAgentStopped = errors.New("the agent stopped while the transaction was running")
)

// Agent is one node's connection to the control plane. Create it with New and call Run.
// Two Agents must not share a SpoolDir at the same time.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	base    *url.URL
	modules map[moduleKey]module
	spool   txnSpool
	cache   *fileCache
	// sv is the task supervisor process (Config.SupervisorDaemon), nil without one.
	sv *supervisor

	active atomic.Bool

	connMu sync.Mutex
	conn   *websocket.Conn

	mu       sync.Mutex
	running  map[string]*transaction
	stopping bool
	tasks    sync.WaitGroup
	lastDone time.Time // when the last transaction ended

	out outbox // outcomes sent on the current connection, until acknowledged
	// unspooled holds outcomes the spool could not record (see unspooled.go).
	unspooledMu sync.Mutex
	unspooled   map[string]txnState
	// lastRead and lastSent are when the current connection last delivered a message and
	// last took one (Unix nanoseconds): a ping is needed only after a silence, and a
	// keepalive only when the agent has said nothing for a while.
	lastRead, lastSent atomic.Int64

	factsMu sync.Mutex // held while gathering: one facter at a time
	facts   map[string]any
	factsAt time.Time
}

// Idle reports whether no transaction is running, and when the last one ended (the zero time
// when none has).
func (a *Agent) Idle() (idle bool, since time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.running) == 0, a.lastDone
}

// Option customises an Agent.
type Option func(*Agent)

// New checks cfg, applies its defaults and builds an Agent. The built-in `task run` and
// `status query` handlers are always registered; opts may add more.
func New(cfg Config, opts ...Option) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	base, err := httpBase(cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	if cfg.HTTPClient, err = tlsHTTPClient(cfg); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	if cfg.HTTPClient, err = loopbackOnly(cfg); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	log := cfg.Logger.With("component", "agent", "node", cfg.Name)
	a := &Agent{
		cfg:     cfg,
		log:     log,
		base:    base,
		modules: map[moduleKey]module{},
		spool:   newSpool(cfg),
		cache: &fileCache{
			dir: cfg.CacheDir, client: cfg.HTTPClient, base: base,
			backoff: cfg.DownloadBackoff, timeout: cfg.DownloadTimeout, maxBytes: cfg.MaxDownloadBytes, log: log,
		},
		running: map[string]*transaction{},
	}
	if len(cfg.SupervisorDaemon) > 0 {
		a.sv = newSupervisor(cfg.SupervisorDaemon, supervisorIdle)
	}
	a.modules[moduleKey{protocol.ModuleTask, protocol.ActionRun}] = module{
		handler: a.runTask, validate: validateTaskParams,
	}
	for _, o := range opts {
		o(a)
	}
	return a, nil
}

// Connected reports whether the agent holds a live connection to the server right now.
func (a *Agent) Connected() bool {
	a.connMu.Lock()
	defer a.connMu.Unlock()
	return a.conn != nil
}

// Run connects to the server and serves requests until ctx is done, reconnecting with
// exponential backoff and jitter (capped at MaxBackoff, reset after each successful connect).
// Before the first connection it purges old spool entries and finalises transactions that a
// previous agent process left running. When ctx ends, running transactions are killed and
// recorded as failed (the outcome is sent on the next connection), and Run returns nil.
// Tasks that a previous agent process left running are followed to their end (see
// recoverTransactions).
func (a *Agent) Run(ctx context.Context) error {
	if !a.active.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer a.active.Store(false)
	if err := a.prepareDirs(); err != nil {
		return err
	}
	a.mu.Lock()
	a.stopping = false
	a.mu.Unlock()
	if a.sv != nil {
		// Deferred first, so run last: once the transactions are stopped, their tasks killed
		// and reported, the supervisor process is let go.
		defer a.sv.Close()
	}
	defer a.stopTransactions()

	minBackoff := min(500*time.Millisecond, a.cfg.MaxBackoff)
	backoff := minBackoff
	for {
		connected, err := a.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			backoff = minBackoff
		}
		// Wait between half and all of the current backoff, so that agents restarted together
		// spread out their reconnects.
		wait := backoff/2 + rand.N(backoff/2+1)
		a.log.Warn("connection lost; reconnecting", "error", err, "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, a.cfg.MaxBackoff)
	}
}

func (a *Agent) prepareDirs() error {
	for _, d := range []string{a.cfg.SpoolDir, a.cfg.CacheDir} {
		if d == "" {
			continue // a memory spool has no directory
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	if a.cfg.SpoolPurgeTTL > 0 {
		cutoff := time.Now().Add(-a.cfg.SpoolPurgeTTL)
		n, err := a.spool.purge(cutoff)
		if err != nil {
			a.log.Warn("purge spool", "error", err)
		} else if n > 0 {
			a.log.Info("purged old transactions from the spool", "count", n)
		}
		n, err = a.cache.purge(cutoff)
		if err != nil {
			a.log.Warn("purge task file cache", "error", err)
		} else if n > 0 {
			a.log.Info("purged unused task files from the cache", "count", n)
		}
	}
	a.recoverTransactions()
	return nil
}

// stopTransactions kills every running transaction and waits for their outcomes to be spooled.
func (a *Agent) stopTransactions() {
	a.mu.Lock()
	a.stopping = true
	for _, t := range a.running {
		t.cancel(ErrAgentStopped)
	}
	a.mu.Unlock()
	a.tasks.Wait()
}

// session dials once and serves the connection until it breaks or ctx ends. connected says
// whether the handshake succeeded.
func (a *Agent) session(ctx context.Context) (connected bool, err error) {
	dialCtx, cancelDial := context.WithTimeout(ctx, a.cfg.DialTimeout)
	defer cancelDial()
	h := http.Header{}
	if len(a.cfg.PrivateKey) != 0 {
		h.Set("Authorization", auth.SignConnect(a.cfg.PrivateKey, a.cfg.Name, time.Now()))
	} else {
		h.Set("Authorization", "Bearer "+a.cfg.Secret)
	}
	h.Set("X-Baton-Node", a.cfg.Name)
	conn, resp, err := websocket.Dial(dialCtx, a.cfg.Server, &websocket.DialOptions{
		HTTPClient: a.cfg.HTTPClient, HTTPHeader: h,
	})
	if err != nil {
		if resp != nil {
			return false, fmt.Errorf("connect to %s: HTTP %d: %w", a.cfg.Server, resp.StatusCode, err)
		}
		return false, fmt.Errorf("connect to %s: %w", a.cfg.Server, err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(readLimit)
	a.log.Info("connected", "server", a.cfg.Server)

	now := time.Now().UnixNano()
	a.lastRead.Store(now)
	a.lastSent.Store(now)
	a.connMu.Lock()
	a.conn = conn
	a.connMu.Unlock()
	defer func() {
		a.connMu.Lock()
		a.conn = nil
		a.connMu.Unlock()
	}()

	sctx, cancel := context.WithCancel(ctx)
	a.outboxOpen(sctx)
	defer a.outboxClose()
	// Spooled outcomes go out before any request is read, so the server sees them first on
	// every connection. Facts follow in the background: gathering them (facter) can take
	// seconds, and must never hold up work.
	a.resendPending(sctx)

	var pinger sync.WaitGroup
	pinger.Go(func() { a.keepAlive(sctx, conn) })
	pinger.Go(func() { a.factsLoop(sctx) })
	defer pinger.Wait()
	defer cancel()
	return true, a.readLoop(sctx, conn)
}

// connectionAge draws the age at which a connection is closed and made again: between 90%
// and 100% of max, so that agents connected at the same moment (after a server restart) do
// not all reconnect at the same moment again.
func connectionAge(max time.Duration) time.Duration { return max - rand.N(max/10+1) }

// keepAlive watches the connection: a ping when nothing arrived for PingInterval (closing the
// connection when the pong does not come within PongTimeout, so a dead or half-open
// connection is noticed within PingInterval+PongTimeout), a keepalive message when the agent
// sent nothing for KeepaliveInterval, and a reconnect at the connection's drawn age.
func (a *Agent) keepAlive(ctx context.Context, conn *websocket.Conn) {
	ping := time.NewTimer(a.cfg.PingInterval)
	defer ping.Stop()
	keep := time.NewTimer(a.cfg.KeepaliveInterval)
	defer keep.Stop()
	maxAge := connectionAge(a.cfg.MaxConnectionAge)
	age := time.NewTimer(maxAge)
	defer age.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-keep.C:
			if idle := time.Since(time.Unix(0, a.lastSent.Load())); idle < a.cfg.KeepaliveInterval {
				keep.Reset(a.cfg.KeepaliveInterval - idle)
				continue
			}
			if err := a.sendData(ctx, protocol.TypeKeepalive, nil); err != nil && ctx.Err() == nil {
				a.log.Warn("keepalive", "error", err)
			}
			keep.Reset(a.cfg.KeepaliveInterval)
		case <-age.C:
			// Reconnect before the gateway's connection-duration limit cuts the connection;
			// anything unacknowledged is still in the spool and is sent on the new one.
			a.log.Info("reconnecting: the connection reached its maximum age", "age", maxAge)
			conn.Close(websocket.StatusNormalClosure, "reconnecting before the connection-duration limit")
			return
		case <-ping.C:
			if idle := time.Since(time.Unix(0, a.lastRead.Load())); idle < a.cfg.PingInterval {
				ping.Reset(a.cfg.PingInterval - idle) // the connection is evidently alive
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, a.cfg.PongTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					a.log.Warn("no answer to a ping; closing the connection", "error", err, "timeout", a.cfg.PongTimeout)
					conn.CloseNow()
				}
				return
			}
			a.lastRead.Store(time.Now().UnixNano())
			ping.Reset(a.cfg.PingInterval)
		}
	}
}

func (a *Agent) readLoop(ctx context.Context, conn *websocket.Conn) error {
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		a.lastRead.Store(time.Now().UnixNano())
		a.handleFrame(ctx, data)
	}
}

// factsLoop sends the node's facts on a new connection — those gathered within FactsTTL,
// else fresh ones — and again, freshly gathered, every FactsTTL while connected.
func (a *Agent) factsLoop(ctx context.Context) {
	if a.loadCachedFacts() {
		// A previous agent process's facts (within FactsTTL) go out at once: on AWS the
		// server delivers waiting work when the facts arrive. Fresh ones follow.
		a.sendFacts(ctx, false)
		a.sendFacts(ctx, true)
	} else {
		a.sendFacts(ctx, false)
	}
	t := time.NewTicker(a.cfg.FactsTTL)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.sendFacts(ctx, true)
		}
	}
}

func (a *Agent) sendFacts(ctx context.Context, fresh bool) {
	a.factsMu.Lock()
	facts := a.facts
	if fresh || facts == nil || time.Since(a.factsAt) >= a.cfg.FactsTTL {
		gathered, err := a.cfg.Facts(ctx)
		if err != nil {
			a.factsMu.Unlock()
			if ctx.Err() == nil {
				a.log.Warn("gather facts", "error", err)
			}
			return
		}
		if gathered == nil {
			gathered = map[string]any{}
		}
		a.facts, a.factsAt, facts = gathered, time.Now(), gathered
		a.saveFacts()
	}
	a.factsMu.Unlock()
	e, err := protocol.New(protocol.TypeFacts, protocol.ServerURI, protocol.Facts{Facts: a.withAgentFacts(ctx, facts)})
	if err == nil {
		a.factsSent(e.ID) // before sending: a refusal may come back at once
		err = a.send(ctx, e)
	}
	if err != nil && ctx.Err() == nil {
		a.log.Warn("send facts", "error", err)
	}
}

// factsFile keeps the last facts gathered, in CacheDir, for the next agent process.
const factsFile = "facts.json"

type cachedFacts struct {
	At    time.Time      `json:"at"`
	Facts map[string]any `json:"facts"`
}

// saveFacts keeps a.facts for the next agent process (not for a memory spool, whose agents
// share a cache directory). Called with factsMu held.
func (a *Agent) saveFacts() {
	if a.cfg.MemorySpool || a.cfg.CacheDir == "" {
		return
	}
	if err := writeJSONAtomic(filepath.Join(a.cfg.CacheDir, factsFile), cachedFacts{At: a.factsAt, Facts: a.facts}, false); err != nil {
		a.log.Warn("keep facts for the next start", "error", err)
	}
}

// loadCachedFacts takes up the facts a previous agent process gathered less than FactsTTL ago,
// when this one has none yet; it reports whether it did.
func (a *Agent) loadCachedFacts() bool {
	if a.cfg.MemorySpool || a.cfg.CacheDir == "" {
		return false
	}
	a.factsMu.Lock()
	defer a.factsMu.Unlock()
	if a.facts != nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join(a.cfg.CacheDir, factsFile))
	if err != nil {
		return false
	}
	var c cachedFacts
	if json.Unmarshal(b, &c) != nil || c.Facts == nil || time.Since(c.At) >= a.cfg.FactsTTL || c.At.After(time.Now()) {
		return false
	}
	a.facts, a.factsAt = c.Facts, c.At
	return true
}

// resendPending sends every spooled outcome the server has not acknowledged, oldest first.
func (a *Agent) resendPending(ctx context.Context) {
	pending, err := a.spool.pending()
	if err != nil {
		a.log.Warn("list spooled results", "error", err)
	}
	pending = append(pending, a.heldOutcomes()...)
	for _, st := range pending {
		if err := a.deliver(ctx, st); err != nil {
			a.log.Warn("resend spooled result", "transaction_id", st.meta.TransactionID, "error", err)
			return
		}
		a.log.Info("resent spooled result", "transaction_id", st.meta.TransactionID)
	}
}

// send writes one message to the current connection.
func (a *Agent) send(ctx context.Context, e protocol.Envelope) error {
	a.connMu.Lock()
	conn := a.conn
	a.connMu.Unlock()
	if conn == nil {
		return ErrNotConnected
	}
	e.Sender = ""
	if e.Target == "" {
		e.Target = protocol.ServerURI
	}
	b, err := protocol.Encode(e)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := writeFramed(wctx, conn, b); err != nil {
		return fmt.Errorf("send %s: %w", e.MessageType, err)
	}
	a.lastSent.Store(time.Now().UnixNano())
	return nil
}

// MaxFrameBytes is the largest WebSocket frame the agent sends: API Gateway refuses frames over
// 32 KB, so a longer message goes out as continuation frames of at most this size.
const MaxFrameBytes = 32 << 10

// writeFramed writes one text message, split into frames of at most MaxFrameBytes.
func writeFramed(ctx context.Context, conn *websocket.Conn, b []byte) error {
	if len(b) <= MaxFrameBytes {
		return conn.Write(ctx, websocket.MessageText, b)
	}
	w, err := conn.Writer(ctx, websocket.MessageText)
	if err != nil {
		return err
	}
	for len(b) > 0 {
		n := min(len(b), MaxFrameBytes)
		if _, err := w.Write(b[:n]); err != nil {
			w.Close()
			return err
		}
		b = b[n:]
	}
	return w.Close()
}

func (a *Agent) sendData(ctx context.Context, messageType string, v any) error {
	e, err := protocol.New(messageType, protocol.ServerURI, v)
	if err != nil {
		return err
	}
	return a.send(ctx, e)
}
