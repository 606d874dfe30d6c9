// Package gateway is the agents' WebSocket endpoint of `baton serve` (path /pcp): it plays the
// PCP broker in-process. It authenticates each agent when it connects, binds the connection to
// that node (an agent can only ever speak for itself), hands decoded messages to the control
// plane, and delivers the control plane's messages to connected agents. On AWS, API Gateway's
// WebSocket API and the ws* functions play this part instead.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/protocol"
	"github.com/baton-run/baton/shared/ratelimit"
)

// Inbox is what the gateway needs from the control plane.
type Inbox interface {
	HandleAgentMessage(ctx context.Context, node string, e protocol.Envelope) error
	NodeConnected(ctx context.Context, node, conn string, at time.Time) error
	NodeDisconnected(ctx context.Context, node, conn string) error
	// DeliverPending sends a newly connected agent the work waiting for it.
	DeliverPending(ctx context.Context, node string) error
}

// NodeAuthenticator checks a node's credential.
type NodeAuthenticator interface {
	AuthenticateNodeHeader(ctx context.Context, name, authorization string) error
}

// Headers an agent authenticates with.
const (
	HeaderNode          = "X-Baton-Node"
	HeaderAuthorization = "Authorization"
)

// MaxMessageBytes caps one incoming message (PCP's max-message-size): a larger one closes
// the connection (status 1009). An agent keeps a task's stdout and stderr to 16 MiB each,
// so a genuine result fits.
const MaxMessageBytes = 32 << 20

// Per-connection byte budget: an agent may send 8 MiB a second, bursts of 64 MiB (two
// messages of the largest size). A connection over its budget is not read from until the
// budget allows the message it sent: the agent is slowed down (TCP pushes back), nothing is
// refused. A message larger than the burst costs the whole burst.
const (
	byteRate  = 8 << 20
	byteBurst = 2 * MaxMessageBytes
)

// Per-connection message limits. Messages an agent sends of its own accord (facts,
// keepalives, anything unexpected) are limited to a sustained 50 a second, bursts of 200: far
// above normal use, and a runaway or hostile agent cannot monopolise the control plane.
// Answers to requests (provisional and final responses, RPC errors, status answers) are what
// the server asked for: each request sent over a connection credits it with answerCredits
// answers, which pass unlimited; answers beyond the credit (results spooled across a
// reconnect, repeats) have a bucket of their own, 500 a second, bursts of 2,000. Messages
// over a limit get an error_message naming them (in_reply_to).
const (
	messageRate   = 50
	messageBurst  = 200
	answerRate    = 500
	answerBurst   = 2000
	answerCredits = 4
	maxCredits    = 1 << 20
)

// maxInFlight bounds the messages of one connection handled at once: an agent's messages do
// not wait behind each other (a result does not wait for the previous one's commit), and a
// flood from one agent is pushed back to it instead of piling up in the server.
const maxInFlight = 64

// Liveness: a connection silent for PingInterval is pinged, and closed when the pong does
// not come within PingTimeout, so that a dead connection (a half-open TCP connection, an
// agent that froze) is noticed and its node shown offline within 28 s, and requests go out
// on the agent's next connection instead of into a dead socket.
const (
	PingInterval = 15 * time.Second
	PingTimeout  = 10 * time.Second
)

// Gateway holds the live agent connections.
type Gateway struct {
	log          *slog.Logger
	writeTimeout time.Duration
	pingInterval time.Duration
	pingTimeout  time.Duration
	byteRate     float64 // bytes a second per connection
	byteBurst    int

	mu      sync.Mutex
	conns   map[string]*conn // node name → current connection
	all     map[*conn]struct{}
	closing bool           // Close was called: no new connection is taken
	serving sync.WaitGroup // the connections being served
	seq     atomic.Uint64  // numbers the connection attempts
}

type conn struct {
	seq      uint64 // order of the connection attempts: a later attempt supersedes an earlier one
	id       string
	node     string
	ws       *websocket.Conn
	credits  atomic.Int64 // answers the server asked for and has not received yet
	lastRead atomic.Int64 // when a message was last read, in Unix nanoseconds
}

// isRequest reports whether a message to an agent asks for answers.
func isRequest(messageType string) bool {
	return messageType == protocol.TypeNonBlockingRequest || messageType == protocol.TypeBlockingRequest
}

// isAnswer reports whether a message from an agent answers a request.
func isAnswer(messageType string) bool {
	switch messageType {
	case protocol.TypeProvisionalResponse, protocol.TypeNonBlockingResponse, protocol.TypeRPCError, protocol.TypeBlockingResponse:
		return true
	}
	return false
}

// New returns an empty Gateway.
func New(logger *slog.Logger) *Gateway {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Gateway{log: logger.With("component", "gateway"), writeTimeout: 10 * time.Second,
		pingInterval: PingInterval, pingTimeout: PingTimeout,
		byteRate: byteRate, byteBurst: byteBurst,
		conns: map[string]*conn{}, all: map[*conn]struct{}{}}
}

// Send delivers e to node's current connection, or fails with orchestrator.ErrNotConnected.
func (g *Gateway) Send(ctx context.Context, node string, e protocol.Envelope) error {
	g.mu.Lock()
	c := g.conns[node]
	g.mu.Unlock()
	if c == nil {
		return fmt.Errorf("send to %s: %w", node, orchestrator.ErrNotConnected)
	}
	return g.write(ctx, c, e)
}

func (g *Gateway) write(ctx context.Context, c *conn, e protocol.Envelope) error {
	b, err := protocol.Encode(e)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, g.writeTimeout)
	defer cancel()
	if isRequest(e.MessageType) && c.credits.Load() < maxCredits {
		c.credits.Add(answerCredits)
	}
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("send to %s: %w: %v", c.node, orchestrator.ErrNotConnected, err)
	}
	return nil
}

// Disconnect closes node's live connection (status 4001), if any.
func (g *Gateway) Disconnect(_ context.Context, node string) error {
	g.mu.Lock()
	c := g.conns[node]
	g.mu.Unlock()
	if c != nil {
		c.ws.Close(websocket.StatusCode(4001), "node credential revoked")
	}
	return nil
}

// Connected reports whether node has a live connection here.
func (g *Gateway) Connected(node string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.conns[node] != nil
}

// Close closes every connection, many at a time (each close waits for the agent's answer),
// refuses new ones, and returns once every connection's handling has ended.
func (g *Gateway) Close() {
	g.mu.Lock()
	g.closing = true
	all := make([]*conn, 0, len(g.all))
	for c := range g.all {
		all = append(all, c)
	}
	g.mu.Unlock()
	next := make(chan *conn)
	var closers sync.WaitGroup
	for range min(64, len(all)) {
		closers.Go(func() {
			for c := range next {
				c.ws.Close(websocket.StatusGoingAway, "server shutting down")
			}
		})
	}
	for _, c := range all {
		next <- c
	}
	close(next)
	closers.Wait()
	g.serving.Wait()
}

// Handler returns the http.Handler for the /pcp endpoint.
func (g *Gateway) Handler(auth NodeAuthenticator, inbox Inbox) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Numbered before authentication, which can take a while under load: an attempt that
		// started earlier never replaces one that started later (see serve).
		seq := g.seq.Add(1)
		node := r.Header.Get(HeaderNode)
		if err := auth.AuthenticateNodeHeader(r.Context(), node, r.Header.Get(HeaderAuthorization)); err != nil {
			if r.Context().Err() != nil {
				// Not a refusal: the agent hung up (its dial timeout, under a reconnect storm)
				// before its credential was checked. It connects again after its backoff.
				g.log.Info("agent gave up before its connection was authenticated", "node", node, "remote", r.RemoteAddr, "err", err)
				return
			}
			g.log.Warn("agent refused", "node", node, "remote", r.RemoteAddr, "err", err)
			http.Error(w, `{"kind":"puppetlabs.orchestrator/not-authenticated","msg":"node credential refused","details":{}}`, http.StatusUnauthorized)
			return
		}
		g.mu.Lock()
		closing := g.closing
		if !closing {
			g.serving.Add(1)
		}
		g.mu.Unlock()
		if closing {
			http.Error(w, `{"kind":"puppetlabs.orchestrator/unavailable","msg":"the server is shutting down","details":{}}`, http.StatusServiceUnavailable)
			return
		}
		defer g.serving.Done()
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			g.log.Warn("websocket upgrade", "node", node, "err", err)
			return
		}
		ws.SetReadLimit(MaxMessageBytes)
		c := &conn{seq: seq, id: protocol.NewID(), node: node, ws: ws}
		g.serve(context.WithoutCancel(r.Context()), c, inbox)
	})
}

func (g *Gateway) serve(ctx context.Context, c *conn, inbox Inbox) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g.mu.Lock()
	old := g.conns[c.node]
	if old != nil && old.seq > c.seq {
		// The agent gave up on this attempt and connected again, and the newer connection
		// got here first: this one is stale.
		g.mu.Unlock()
		g.log.Info("stale connection attempt closed", "node", c.node, "conn", c.id)
		c.ws.Close(websocket.StatusCode(4000), "superseded by a newer connection")
		return
	}
	g.conns[c.node] = c
	g.all[c] = struct{}{}
	g.mu.Unlock()
	if old != nil {
		old.ws.Close(websocket.StatusCode(4000), "superseded by a new connection")
	}
	log := g.log.With("node", c.node, "conn", c.id)
	limiter, err := ratelimit.New(messageRate, messageBurst, ratelimit.WithMaxKeys(1))
	if err != nil {
		log.Error("rate limiter", "err", err)
		return
	}
	answers, err := ratelimit.New(answerRate, answerBurst, ratelimit.WithMaxKeys(1))
	if err != nil {
		log.Error("rate limiter", "err", err)
		return
	}
	bytesIn, err := ratelimit.New(g.byteRate, g.byteBurst, ratelimit.WithMaxKeys(1))
	if err != nil {
		log.Error("rate limiter", "err", err)
		return
	}
	slots := make(chan struct{}, maxInFlight)
	var handlers sync.WaitGroup
	defer handlers.Wait()
	log.Info("agent connected")
	go func() {
		if err := inbox.NodeConnected(ctx, c.node, c.id, time.Time{}); err != nil {
			log.Error("node connected", "err", err)
			return
		}
		// The connection can carry messages at once (unlike API Gateway's during $connect):
		// the agent's waiting work goes out without waiting for its facts.
		if err := inbox.DeliverPending(ctx, c.node); err != nil {
			log.Warn("deliver pending work", "err", err)
		}
	}()
	defer func() {
		g.mu.Lock()
		delete(g.all, c)
		current := g.conns[c.node] == c
		if current {
			delete(g.conns, c.node)
		}
		g.mu.Unlock()
		c.ws.CloseNow()
		if err := inbox.NodeDisconnected(context.WithoutCancel(ctx), c.node, c.id); err != nil {
			log.Error("node disconnected", "err", err)
		}
		log.Info("agent disconnected")
	}()
	c.lastRead.Store(time.Now().UnixNano())
	go g.watch(ctx, c, log)
	for {
		typ, b, err := c.ws.Read(ctx)
		c.lastRead.Store(time.Now().UnixNano())
		if err != nil {
			if websocket.CloseStatus(err) == -1 && !errors.Is(err, context.Canceled) {
				log.Debug("read", "err", err)
			}
			return
		}
		if !g.payBytes(ctx, bytesIn, c.id, len(b), log) {
			return
		}
		if typ != websocket.MessageText {
			if ok, _ := limiter.Allow(c.id); ok {
				g.reply(ctx, c, protocol.NewErrorMessage("", "Could not decode message: binary frames are not supported"))
			}
			continue
		}
		e, err := protocol.Decode(b)
		if err != nil {
			if ok, _ := limiter.Allow(c.id); ok {
				g.reply(ctx, c, protocol.NewErrorMessage(e.ID, err.Error()))
			}
			continue
		}
		if ok, wait := g.allow(c, e, limiter, answers); !ok {
			g.reply(ctx, c, protocol.NewRetryableError(e.ID, fmt.Sprintf("Too many messages; retry after %s", wait.Round(time.Millisecond)), wait))
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		handlers.Go(func() {
			defer func() { <-slots }()
			g.handle(ctx, c, inbox, e, log)
		})
	}
}

// SetLiveness changes how long a connection may be silent before it is pinged, and how long
// the pong may take (PingInterval and PingTimeout by default). Call it before Handler.
func (g *Gateway) SetLiveness(interval, timeout time.Duration) {
	g.pingInterval, g.pingTimeout = interval, timeout
}

// watch pings connection c whenever it has been silent for the ping interval, and closes it
// when a pong does not come within the ping timeout; it returns when ctx ends.
func (g *Gateway) watch(ctx context.Context, c *conn, log *slog.Logger) {
	tick := time.NewTicker(g.pingInterval / 5) // a dead connection is closed by 1.2 intervals and a timeout
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if time.Since(time.Unix(0, c.lastRead.Load())) < g.pingInterval {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, g.pingTimeout)
		err := c.ws.Ping(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Warn("agent did not answer a ping: closing its connection", "timeout", g.pingTimeout, "err", err)
			c.ws.CloseNow()
			return
		}
		c.lastRead.Store(time.Now().UnixNano()) // it answered: alive as of now
	}
}

// payBytes takes n bytes from the connection's byte budget, waiting until it holds them; it
// is false when ctx ends first.
func (g *Gateway) payBytes(ctx context.Context, budget *ratelimit.Limiter, key string, n int, log *slog.Logger) bool {
	cost := float64(min(n, g.byteBurst))
	for {
		ok, wait := budget.AllowN(key, cost)
		if ok {
			return true
		}
		log.Debug("over the byte budget: reading paused", "bytes", n, "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
}

// allow applies the connection's message limits to e.
func (g *Gateway) allow(c *conn, e protocol.Envelope, messages, answers *ratelimit.Limiter) (bool, time.Duration) {
	if !isAnswer(e.MessageType) {
		return messages.Allow(c.id)
	}
	for {
		n := c.credits.Load()
		if n <= 0 {
			return answers.Allow(c.id)
		}
		if c.credits.CompareAndSwap(n, n-1) {
			return true, 0
		}
	}
}

// handle hands one message to the control plane and answers a refusal with an error_message.
func (g *Gateway) handle(ctx context.Context, c *conn, inbox Inbox, e protocol.Envelope, log *slog.Logger) {
	err := inbox.HandleAgentMessage(ctx, c.node, e)
	if err == nil {
		return
	}
	if !errors.Is(err, protocol.ErrInvalid) && !errors.Is(err, orchestrator.ErrForbidden) && !errors.Is(err, orchestrator.ErrUnexpected) {
		// Not the message's fault (the store could not write, say): the agent sends it again.
		log.Error("handle message", "type", e.MessageType, "id", e.ID, "err", err)
		g.reply(ctx, c, protocol.NewRetryableError(e.ID, "internal error handling message "+e.ID, 0))
		return
	}
	log.Warn("message refused", "type", e.MessageType, "id", e.ID, "err", err)
	g.reply(ctx, c, protocol.NewErrorMessage(e.ID, err.Error()))
}

func (g *Gateway) reply(ctx context.Context, c *conn, e protocol.Envelope) {
	e.Target = protocol.AgentURI(c.node)
	if err := g.write(ctx, c, e); err != nil {
		g.log.Debug("reply", "node", c.node, "err", err)
	}
}
