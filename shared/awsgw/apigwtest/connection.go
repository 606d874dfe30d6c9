package apigwtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"
)

type connState int

const (
	statePending connState = iota // upgrade in progress
	stateOpen
	stateClosing
)

// wsConn is one client connection. Three goroutines serve it: readLoop reads messages and queues
// them, dispatchLoop invokes $default for each in order and $disconnect at the end, and supervise
// enforces the idle timeout and the maximum duration.
type wsConn struct {
	api         *WebSocketAPI
	id          string
	connectedAt time.Time
	sourceIP    string
	userAgent   string
	domain      string
	authorizer  map[string]interface{}
	ready       chan struct{}   // closed once the handshake is over
	ws          *websocket.Conn // set before ready is closed; nil if the handshake failed

	queue    chan []byte   // received messages, closed by readLoop
	activity chan struct{} // data message in or out
	done     chan struct{} // closed when readLoop ends

	mu           sync.Mutex
	state        connState
	lastActive   time.Time
	serverClosed bool
	closeCode    websocket.StatusCode
	closeReason  string
	killed       bool
}

func (c *wsConn) requestContext(routeKey, eventType string, now time.Time) events.APIGatewayWebsocketProxyRequestContext {
	id := newOpaqueID()
	rc := events.APIGatewayWebsocketProxyRequestContext{
		Stage:             c.api.cfg.stage,
		RequestID:         id,
		ExtendedRequestID: id,
		Identity:          events.APIGatewayRequestIdentity{SourceIP: c.sourceIP, UserAgent: c.userAgent},
		APIID:             c.api.cfg.apiID,
		ConnectedAt:       c.connectedAt.UnixMilli(),
		ConnectionID:      c.id,
		DomainName:        c.domain,
		EventType:         eventType,
		MessageDirection:  "IN",
		RequestTime:       requestTime(now),
		RequestTimeEpoch:  now.UnixMilli(),
		RouteKey:          routeKey,
	}
	if c.authorizer != nil {
		rc.Authorizer = maps.Clone(c.authorizer)
	}
	return rc
}

func (c *wsConn) readLoop() {
	defer close(c.done)
	defer close(c.queue)
	for {
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.ended(err)
			// The websocket library closes the socket after a close handshake, not after a
			// read error (the client dropped the connection, or reset it): without this the
			// socket would stay open until the garbage collector finds the Conn.
			_ = c.ws.CloseNow()
			return
		}
		if !c.isOpen() {
			continue // closing: API Gateway no longer routes messages
		}
		if typ != websocket.MessageText {
			c.shutdown(websocket.StatusUnsupportedData, "Binary frames are not supported")
			continue
		}
		c.touch()
		c.api.m.message(true, len(data))
		c.queue <- data
	}
}

// ended records how the connection ended when the server did not close it itself.
func (c *wsConn) ended(err error) {
	c.mu.Lock()
	if !c.serverClosed && !c.killed {
		c.closeCode = websocket.CloseStatus(err)
		if c.closeCode == -1 {
			c.closeCode = websocket.StatusAbnormalClosure
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			c.closeReason = ce.Reason
		}
	}
	c.state = stateClosing
	c.mu.Unlock()
	c.api.removeConn(c)
}

func (c *wsConn) dispatchLoop() {
	for data := range c.queue {
		c.dispatch(data)
	}
	c.disconnect()
	c.api.finished(c)
}

func (c *wsConn) dispatch(data []byte) {
	a := c.api
	ev := events.APIGatewayWebsocketProxyRequest{
		RequestContext: c.requestContext("$default", "MESSAGE", time.Now()),
		Body:           string(data),
	}
	ev.RequestContext.MessageID = newOpaqueID()
	if a.cfg.drop != nil && a.cfg.drop(data) {
		a.m.dropped()
		return
	}
	if a.cfg.throttle != nil && a.cfg.throttle(data) {
		a.m.throttled()
		c.gatewayMessage("Too Many Requests", ev.RequestContext.RequestID)
		return
	}
	if a.h.Default == nil {
		c.gatewayMessage("Forbidden", ev.RequestContext.RequestID)
		return
	}
	release, ok := a.reserve("$default")
	if !ok {
		a.log.Info("$default throttled: reserved concurrency reached", "connection_id", c.id)
		c.gatewayMessage("Internal server error", ev.RequestContext.RequestID)
		return
	}
	a.m.invocation("$default")
	_, err := invoke(context.Background(), a.cfg.integrationTimeout, &a.t.wg, holding(a.h.Default, release), ev)
	switch {
	case errors.Is(err, errIntegrationTimeout):
		a.log.Warn("$default timed out", "connection_id", c.id, "timeout", a.cfg.integrationTimeout)
		c.gatewayMessage("Endpoint request timed out", ev.RequestContext.RequestID)
	case err != nil:
		a.log.Warn("$default failed", "connection_id", c.id, "err", err)
		c.gatewayMessage("Internal server error", ev.RequestContext.RequestID)
	}
}

// gatewayMessage sends the client the JSON message API Gateway sends when a route fails.
func (c *wsConn) gatewayMessage(message, requestID string) {
	body, err := json.Marshal(struct {
		Message      string `json:"message"`
		ConnectionID string `json:"connectionId"`
		RequestID    string `json:"requestId"`
	}{message, c.id, requestID})
	if err != nil {
		return
	}
	if err := c.send(context.Background(), body); err != nil {
		c.api.log.Debug("gateway message not delivered", "connection_id", c.id, "err", err)
	}
}

func (c *wsConn) disconnect() {
	a := c.api
	c.mu.Lock()
	killed, code, reason := c.killed, c.closeCode, c.closeReason
	c.mu.Unlock()
	if killed || a.h.Disconnect == nil {
		return
	}
	ev := events.APIGatewayWebsocketProxyRequest{
		Headers:           map[string]string{"Host": c.domain},
		MultiValueHeaders: map[string][]string{"Host": {c.domain}},
		RequestContext:    c.requestContext("$disconnect", "DISCONNECT", time.Now()),
	}
	ev.RequestContext.DisconnectStatusCode = int64(code)
	ev.RequestContext.DisconnectReason = &reason
	release, ok := a.reserve("$disconnect")
	if !ok {
		a.log.Info("$disconnect throttled (lost): reserved concurrency reached", "connection_id", c.id)
		return
	}
	a.m.invocation("$disconnect")
	if _, err := invoke(context.Background(), a.cfg.integrationTimeout, &a.t.wg, holding(a.h.Disconnect, release), ev); err != nil {
		a.log.Warn("$disconnect failed", "connection_id", c.id, "err", err)
	}
}

func (c *wsConn) supervise() {
	a := c.api
	idle := time.NewTimer(a.cfg.idleTimeout)
	defer idle.Stop()
	life := time.NewTimer(a.cfg.maxConnDuration - time.Since(c.connectedAt))
	defer life.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-c.activity:
			idle.Reset(a.cfg.idleTimeout)
		case <-idle.C:
			// A message may have come in while the timer fired (both cases ready, or this
			// goroutine late): the timeout counts from the last activity, not from the reset.
			c.mu.Lock()
			left := a.cfg.idleTimeout - time.Since(c.lastActive)
			c.mu.Unlock()
			if left > 0 {
				idle.Reset(left)
				continue
			}
			a.log.Info("idle timeout", "connection_id", c.id, "timeout", a.cfg.idleTimeout)
			c.shutdown(websocket.StatusGoingAway, "Going away")
			return
		case <-life.C:
			a.log.Info("maximum connection duration reached", "connection_id", c.id, "duration", a.cfg.maxConnDuration)
			c.shutdown(websocket.StatusGoingAway, "Going away")
			return
		}
	}
}

func (c *wsConn) isOpen() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == stateOpen
}

func (c *wsConn) touch() {
	c.mu.Lock()
	c.lastActive = time.Now()
	c.mu.Unlock()
	select {
	case c.activity <- struct{}{}:
	default:
	}
}

// shutdown starts a server-side close with the close handshake; $disconnect follows.
func (c *wsConn) shutdown(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return
	}
	c.state = stateClosing
	c.serverClosed = true
	c.closeCode, c.closeReason = code, reason
	c.mu.Unlock()
	c.api.removeConn(c)
	c.api.t.wg.Go(func() {
		if ws := c.socket(); ws != nil {
			_ = ws.Close(code, reason)
		}
	})
}

// socket waits for the end of the handshake and returns the WebSocket, or nil if it failed.
func (c *wsConn) socket() *websocket.Conn {
	<-c.ready
	return c.ws
}

// kill drops the connection without a close handshake and without $disconnect.
func (c *wsConn) kill() {
	c.mu.Lock()
	c.killed = true
	c.state = stateClosing
	c.mu.Unlock()
	c.api.removeConn(c)
	if ws := c.socket(); ws != nil {
		_ = ws.CloseNow()
	}
}

// send delivers one text message, in frames of at most MaxFrameSize bytes.
func (c *wsConn) send(ctx context.Context, data []byte) error {
	ws := c.socket()
	if ws == nil {
		return fmt.Errorf("send to %s: %w", c.id, ErrGone)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if len(data) <= MaxFrameSize {
		if err := ws.Write(ctx, websocket.MessageText, data); err != nil {
			return fmt.Errorf("send to %s: %w", c.id, err)
		}
	} else {
		w, err := ws.Writer(ctx, websocket.MessageText)
		if err != nil {
			return fmt.Errorf("send to %s: %w", c.id, err)
		}
		for off := 0; off < len(data); off += MaxFrameSize {
			if _, err := w.Write(data[off:min(off+MaxFrameSize, len(data))]); err != nil {
				_ = w.Close()
				return fmt.Errorf("send to %s: %w", c.id, err)
			}
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("send to %s: %w", c.id, err)
		}
	}
	c.touch()
	c.api.m.message(false, len(data))
	return nil
}

// connectionInfo is the GetConnection answer.
type connectionInfo struct {
	ConnectedAt  string             `json:"connectedAt"`
	Identity     connectionIdentity `json:"identity"`
	LastActiveAt string             `json:"lastActiveAt"`
}

type connectionIdentity struct {
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent"`
}

const isoMillis = "2006-01-02T15:04:05.000Z"

func (c *wsConn) info() connectionInfo {
	c.mu.Lock()
	last := c.lastActive
	c.mu.Unlock()
	return connectionInfo{
		ConnectedAt:  c.connectedAt.UTC().Format(isoMillis),
		Identity:     connectionIdentity{SourceIP: c.sourceIP, UserAgent: c.userAgent},
		LastActiveAt: last.UTC().Format(isoMillis),
	}
}
