package apigwtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"
)

// WebSocketHandlers are the Lambda functions behind a WebSocket API. Nil handlers are routes that
// do not exist: no authorizer (every upgrade proceeds to $connect), no $connect or $disconnect
// integration, or no $default route (clients then get API Gateway's "Forbidden" message).
type WebSocketHandlers struct {
	Authorizer func(context.Context, events.APIGatewayCustomAuthorizerRequestTypeRequest) (events.APIGatewayCustomAuthorizerResponse, error)
	Connect    func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error)
	Disconnect func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error)
	Default    func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error)
}

// WebSocketAPI is an API Gateway WebSocket API with one stage, served on 127.0.0.1.
//
// Behaviour, and where it follows AWS:
//   - Upgrade: the identity sources are checked (401 when missing), then the REQUEST authorizer is
//     called (error "Unauthorized" → 401, other errors, a result over 8 KB or a context value that
//     is not a string, number or boolean → 500, no Allow or an explicit Deny for the method ARN →
//     403), then $connect (error → 500, timeout → 504, non-2xx → that status and body). Only then
//     is the connection upgraded and known to @connections: posting to it while $connect runs gets
//     410. A Sec-WebSocket-Protocol header returned by $connect selects the subprotocol.
//   - Events carry header names as the client sent them (Go clients send canonical names such as
//     "Authorization"; AWS does not lower-case WebSocket headers), so look headers up
//     case-insensitively. The authorizer context arrives in RequestContext.Authorizer as a
//     map[string]interface{} holding "principalId" too, decoded from JSON as a Lambda would
//     (numbers are float64), on $connect and on every later event of the connection.
//   - Messages: each complete text message is one $default invocation; binary messages close the
//     connection with 1003 (API Gateway does not accept binary frames). $default invocations of
//     one connection run one after another, in order; real API Gateway may run them concurrently.
//     Their responses are discarded (no route responses); an error or timeout sends the client API
//     Gateway's {"message": "Internal server error" | "Endpoint request timed out", ...} message.
//   - Limits: a data frame over 32 KB, or a message over 128 KB, closes the connection with 1009.
//     Messages posted to @connections go out in frames of at most 32 KB.
//   - Timeouts: the idle timeout counts data messages in either direction (client messages and
//     @connections posts). Ping and pong frames do not count: AWS documents only "Idle Connection
//     Timeout 10 minutes" (quotas table) and its users report that protocol pings do not keep a
//     connection open (andyrichardson/subscriptionless#3; hotsock.io "Keep Alive"). Pings are
//     still answered. Idle and maximum-duration expiry close with 1001 and invoke $disconnect.
//   - $disconnect follows every close (client close, DELETE @connections with 1000, limits,
//     timeouts), after the connection's queued $default invocations, with DisconnectStatusCode
//     and DisconnectReason set; Kill and Close skip it, as a lost $disconnect would.
//
// The authorizer's RequestContext type in aws-lambda-go has no connectionId, routeKey or
// eventType fields, so although AWS sends them, a Go authorizer cannot see them here or on AWS.
type WebSocketAPI struct {
	h      WebSocketHandlers
	cfg    config
	ids    []identitySource
	cfgErr error
	log    *slog.Logger
	t      tracker
	m      *meter
	// slots holds a token per running invocation of each function with a reserved
	// concurrency (WithReservedConcurrency).
	slots map[string]chan struct{}

	mu    sync.Mutex
	conns map[string]*wsConn   // open: reachable through @connections
	live  map[*wsConn]struct{} // upgraded and not yet finished
	srv   *http.Server
	addr  string
}

// NewWebSocketAPI returns a WebSocket API calling h; Start serves it.
func NewWebSocketAPI(h WebSocketHandlers, opts ...Option) *WebSocketAPI {
	cfg := newConfig("route.request.header.Authorization", opts)
	ids, err := cfg.validate()
	slots := map[string]chan struct{}{}
	for fn, n := range cfg.reserved {
		slots[fn] = make(chan struct{}, max(n, 1))
	}
	return &WebSocketAPI{
		slots:  slots,
		h:      h,
		cfg:    cfg,
		ids:    ids,
		cfgErr: err,
		log:    cfg.logger.With("component", "apigwtest", "api", "websocket", "api_id", cfg.apiID),
		m:      newMeter(),
		conns:  map[string]*wsConn{},
		live:   map[*wsConn]struct{}{},
	}
}

// Start serves the API on an ephemeral port of 127.0.0.1.
func (a *WebSocketAPI) Start() error {
	if a.cfgErr != nil {
		return fmt.Errorf("start websocket api: %w", a.cfgErr)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv != nil {
		return errors.New("start websocket api: already started")
	}
	if !a.t.enter() {
		return fmt.Errorf("start websocket api: %w", ErrClosed)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		a.t.wg.Done()
		return fmt.Errorf("start websocket api: %w", err)
	}
	a.addr = ln.Addr().String()
	a.srv = &http.Server{
		Handler:           http.HandlerFunc(a.serve),
		ConnContext:       connContext,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer a.t.wg.Done()
		_ = a.srv.Serve(frameListener{ln}) // returns http.ErrServerClosed on Close
	}()
	return nil
}

// URL is the WebSocket URL clients dial: ws://127.0.0.1:port/{stage}. Empty before Start.
func (a *WebSocketAPI) URL() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.addr == "" {
		return ""
	}
	return "ws://" + a.addr + "/" + a.cfg.stage
}

// ManagementURL is the @connections base endpoint, http://127.0.0.1:port/{stage}: set it as the
// apigatewaymanagementapi client's BaseEndpoint. Empty before Start.
func (a *WebSocketAPI) ManagementURL() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.addr == "" {
		return ""
	}
	return "http://" + a.addr + "/" + a.cfg.stage
}

// APIID is the API id used in ARNs and events.
func (a *WebSocketAPI) APIID() string { return a.cfg.apiID }

// Stage is the stage name.
func (a *WebSocketAPI) Stage() string { return a.cfg.stage }

// Stats returns the metering so far.
func (a *WebSocketAPI) Stats() Stats {
	a.mu.Lock()
	open := make([]time.Time, 0, len(a.live))
	for c := range a.live {
		open = append(open, c.connectedAt)
	}
	a.mu.Unlock()
	s := a.m.snapshot(open, time.Now())
	s.Running = make(map[string]int, len(a.slots))
	for fn, slots := range a.slots {
		s.Running[fn] = len(slots)
	}
	return s
}

// Kill drops an open connection abruptly, without the close handshake and without invoking
// $disconnect, as when API Gateway loses a $disconnect event. Later @connections calls get 410.
func (a *WebSocketAPI) Kill(connectionID string) error {
	c := a.openConn(connectionID)
	if c == nil {
		return fmt.Errorf("kill connection %s: %w", connectionID, ErrGone)
	}
	c.kill()
	return nil
}

// Close stops the server and drops every connection without invoking $disconnect, then waits for
// the handlers still running. It is safe to call more than once.
func (a *WebSocketAPI) Close() error {
	a.t.mu.Lock()
	if a.t.closed {
		a.t.mu.Unlock()
		return nil
	}
	a.t.closed = true
	a.t.mu.Unlock()

	a.mu.Lock()
	srv := a.srv
	live := make([]*wsConn, 0, len(a.live))
	for c := range a.live {
		live = append(live, c)
	}
	a.mu.Unlock()

	for _, c := range live {
		c.kill()
	}
	var err error
	if srv != nil {
		if err = srv.Close(); err != nil {
			err = fmt.Errorf("close websocket api: %w", err)
		}
	}
	a.t.wg.Wait()
	return err
}

func (a *WebSocketAPI) serve(w http.ResponseWriter, r *http.Request) {
	if !a.t.enter() {
		writeJSON(w, http.StatusServiceUnavailable, "", `{"message":"Service Unavailable"}`)
		return
	}
	defer a.t.wg.Done()
	prefix := "/" + a.cfg.stage
	switch {
	case r.URL.Path == prefix || r.URL.Path == prefix+"/":
		a.upgrade(w, r)
	case strings.HasPrefix(r.URL.Path, prefix+"/@connections/"):
		a.manage(w, r, strings.TrimPrefix(r.URL.Path, prefix+"/@connections/"))
	default:
		writeJSON(w, http.StatusForbidden, "MissingAuthenticationTokenException", `{"message":"Missing Authentication Token"}`)
	}
}

func (a *WebSocketAPI) upgrade(w http.ResponseWriter, r *http.Request) {
	fc, _ := r.Context().Value(frameConnKey{}).(*frameConn)
	if fc == nil {
		writeJSON(w, http.StatusInternalServerError, "", `{"message":"Internal server error"}`)
		return
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		writeJSON(w, http.StatusUpgradeRequired, "", `{"message":"Upgrade Required"}`)
		return
	}
	now := time.Now()
	c := &wsConn{
		api:         a,
		id:          newOpaqueID(),
		connectedAt: now,
		sourceIP:    sourceIP(r),
		userAgent:   r.UserAgent(),
		domain:      r.Host,
		ready:       make(chan struct{}),
		queue:       make(chan []byte, 64),
		activity:    make(chan struct{}, 1),
		done:        make(chan struct{}),
	}
	log := a.log.With("connection_id", c.id)
	reject := func(status int, body string) {
		a.m.update(func(s *Stats) { s.Rejected++ })
		writeJSON(w, status, "", body)
	}

	if a.h.Authorizer != nil {
		if _, ok := identityValues(r, a.ids); !ok {
			reject(http.StatusUnauthorized, `{"message":"Unauthorized"}`)
			return
		}
		authz, status, body := a.authorize(r, log, c)
		if status != 0 {
			reject(status, body)
			return
		}
		c.authorizer = authz
	}

	var subprotocols []string
	if a.h.Connect != nil {
		headers, multiHeaders := upgradeHeaders(r, c.sourceIP) // each event gets its own maps
		query, multiQuery := queryMaps(r.URL.Query())
		ev := events.APIGatewayWebsocketProxyRequest{
			Headers:                         headers,
			MultiValueHeaders:               multiHeaders,
			QueryStringParameters:           query,
			MultiValueQueryStringParameters: multiQuery,
			RequestContext:                  c.requestContext("$connect", "CONNECT", now),
		}
		release, ok := a.reserve("$connect")
		if !ok {
			log.Info("$connect throttled: reserved concurrency reached")
			reject(http.StatusInternalServerError, `{"message":"Internal server error"}`)
			return
		}
		a.m.invocation("$connect")
		resp, err := invoke(r.Context(), a.cfg.integrationTimeout, &a.t.wg, holding(a.h.Connect, release), ev)
		switch {
		case errors.Is(err, errIntegrationTimeout):
			log.Warn("$connect timed out", "timeout", a.cfg.integrationTimeout)
			reject(http.StatusGatewayTimeout, `{"message":"Endpoint request timed out"}`)
			return
		case err != nil:
			log.Warn("$connect failed", "err", err)
			reject(http.StatusInternalServerError, `{"message":"Internal server error"}`)
			return
		case resp.StatusCode < 200 || resp.StatusCode > 299:
			a.m.update(func(s *Stats) { s.Rejected++ })
			status := resp.StatusCode
			if status < 100 || status > 599 {
				status = http.StatusInternalServerError
			}
			w.WriteHeader(status)
			_, _ = w.Write([]byte(resp.Body))
			return
		}
		if p := lookupHeader(resp.Headers, resp.MultiValueHeaders, "Sec-WebSocket-Protocol"); p != "" {
			subprotocols = []string{p}
		}
	}

	// Known to @connections from here on; calls that need the socket wait for c.ready.
	if !a.register(c) {
		writeJSON(w, http.StatusServiceUnavailable, "", `{"message":"Service Unavailable"}`)
		return
	}
	fc.activate(frameParser{
		maxFrame:    MaxFrameSize,
		maxMessage:  MaxMessageSize,
		onDataFrame: a.m.frame,
		onViolation: func(reason string) {
			log.Info("closing connection over a limit", "reason", reason)
			c.shutdown(websocket.StatusMessageTooBig, reason)
		},
	})
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // API Gateway does not check Origin
		CompressionMode:    websocket.CompressionDisabled,
		Subprotocols:       subprotocols,
	})
	if err != nil {
		log.Warn("websocket handshake failed", "err", err)
		a.unregister(c)
		close(c.ready)
		return
	}
	ws.SetReadLimit(MaxMessageSize)
	c.ws = ws
	close(c.ready)
	a.t.wg.Go(c.readLoop)
	a.t.wg.Go(c.dispatchLoop)
	a.t.wg.Go(c.supervise)
}

// authorize runs the REQUEST authorizer. It returns the context to attach to the connection, or
// the HTTP status and body with which to refuse the upgrade.
func (a *WebSocketAPI) authorize(r *http.Request, log *slog.Logger, c *wsConn) (map[string]interface{}, int, string) {
	const internal = `{"message":"Internal server error"}`
	headers, multiHeaders := upgradeHeaders(r, c.sourceIP)
	query, multiQuery := queryMaps(r.URL.Query())
	ev := events.APIGatewayCustomAuthorizerRequestTypeRequest{
		Type:                            "REQUEST",
		MethodArn:                       fmt.Sprintf("arn:aws:execute-api:%s:%s:%s/%s/$connect", Region, AccountID, a.cfg.apiID, a.cfg.stage),
		Headers:                         headers,
		MultiValueHeaders:               multiHeaders,
		QueryStringParameters:           query,
		MultiValueQueryStringParameters: multiQuery,
		StageVariables:                  map[string]string{},
		RequestContext: events.APIGatewayCustomAuthorizerRequestTypeRequestContext{
			Stage:     a.cfg.stage,
			RequestID: newOpaqueID(),
			APIID:     a.cfg.apiID,
			Identity:  events.APIGatewayCustomAuthorizerRequestTypeRequestIdentity{SourceIP: c.sourceIP},
		},
	}
	release, ok := a.reserve("authorizer")
	if !ok {
		log.Info("authorizer throttled: reserved concurrency reached")
		return nil, http.StatusInternalServerError, internal
	}
	a.m.invocation("authorizer")
	resp, err := invoke(r.Context(), a.cfg.integrationTimeout, &a.t.wg, holding(a.h.Authorizer, release), ev)
	switch {
	case errors.Is(err, errIntegrationTimeout):
		log.Warn("authorizer timed out", "timeout", a.cfg.integrationTimeout)
		return nil, http.StatusInternalServerError, internal
	case err != nil && err.Error() == "Unauthorized":
		return nil, http.StatusUnauthorized, `{"message":"Unauthorized"}`
	case err != nil:
		log.Warn("authorizer failed", "err", err)
		return nil, http.StatusInternalServerError, internal
	}
	raw, err := json.Marshal(resp)
	if err != nil || len(raw) > MaxAuthorizerResult {
		log.Warn("authorizer result unusable", "bytes", len(raw), "err", err)
		return nil, http.StatusInternalServerError, internal
	}
	authz, err := normalizeContext(resp.Context)
	if err != nil {
		log.Warn("authorizer context unusable", "err", err)
		return nil, http.StatusInternalServerError, internal
	}
	statements := make([]policyStatement, 0, len(resp.PolicyDocument.Statement))
	for _, st := range resp.PolicyDocument.Statement {
		statements = append(statements, policyStatement(st))
	}
	if !policyAllows(statements, ev.MethodArn) {
		return nil, http.StatusForbidden, `{"message":"Forbidden"}`
	}
	if authz == nil {
		authz = map[string]interface{}{}
	}
	authz["principalId"] = resp.PrincipalID
	return authz, 0, ""
}

// reserve takes one of fn's concurrent executions, to be released when its handler returns.
// It reports false, counting a throttle, when fn is at its reserved concurrency.
func (a *WebSocketAPI) reserve(fn string) (release func(), ok bool) {
	slots := a.slots[fn]
	if slots == nil {
		return func() {}, true
	}
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, true
	default:
		a.m.lambdaThrottled(fn)
		return nil, false
	}
}

// holding wraps a handler so that it releases its function's execution when it returns.
func holding[Req, Resp any](fn func(context.Context, Req) (Resp, error), release func()) func(context.Context, Req) (Resp, error) {
	return func(ctx context.Context, req Req) (Resp, error) {
		defer release()
		return fn(ctx, req)
	}
}

// register makes an upgraded connection open, unless the API is closing.
func (a *WebSocketAPI) register(c *wsConn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.t.isClosed() {
		return false
	}
	c.mu.Lock()
	c.state = stateOpen
	c.lastActive = time.Now()
	c.mu.Unlock()
	a.conns[c.id] = c
	a.live[c] = struct{}{}
	a.m.update(func(s *Stats) {
		s.Connections++
		s.OpenConnections++
	})
	return true
}

// unregister undoes register for a connection whose handshake failed.
func (a *WebSocketAPI) unregister(c *wsConn) {
	c.mu.Lock()
	c.state = stateClosing
	c.mu.Unlock()
	a.mu.Lock()
	if a.conns[c.id] == c {
		delete(a.conns, c.id)
	}
	delete(a.live, c)
	a.mu.Unlock()
	a.m.update(func(s *Stats) {
		s.Connections--
		s.OpenConnections--
		s.Rejected++
	})
}

func (a *WebSocketAPI) openConn(id string) *wsConn {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.conns[id]
}

func (a *WebSocketAPI) removeConn(c *wsConn) {
	a.mu.Lock()
	if a.conns[c.id] == c {
		delete(a.conns, c.id)
	}
	a.mu.Unlock()
}

func (a *WebSocketAPI) finished(c *wsConn) {
	a.mu.Lock()
	delete(a.live, c)
	a.mu.Unlock()
	a.m.connectionEnded(time.Since(c.connectedAt))
}

// upgradeHeaders builds the event headers of the upgrade request, with the headers API Gateway
// adds (Host, X-Forwarded-*).
func upgradeHeaders(r *http.Request, ip string) (map[string]string, map[string][]string) {
	multi := make(map[string][]string, len(r.Header)+4)
	for k, v := range r.Header {
		multi[k] = slices.Clone(v)
	}
	multi["Host"] = []string{r.Host}
	multi["X-Forwarded-For"] = append(multi["X-Forwarded-For"], ip)
	multi["X-Forwarded-Port"] = []string{localPort(r)}
	multi["X-Forwarded-Proto"] = []string{"http"}
	single := make(map[string]string, len(multi))
	for k, v := range multi {
		single[k] = v[len(v)-1]
	}
	return single, multi
}

// queryMaps builds the v1 query maps (last value wins in the single-value map); nil when empty.
func queryMaps(q url.Values) (map[string]string, map[string][]string) {
	if len(q) == 0 {
		return nil, nil
	}
	single := make(map[string]string, len(q))
	multi := make(map[string][]string, len(q))
	for k, v := range q {
		single[k] = v[len(v)-1]
		multi[k] = slices.Clone(v)
	}
	return single, multi
}

// lookupHeader finds a header by name, case-insensitively, in a handler's response.
func lookupHeader(single map[string]string, multi map[string][]string, name string) string {
	for k, v := range single {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	for k, v := range multi {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}
