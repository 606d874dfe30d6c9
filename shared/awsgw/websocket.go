package awsgw

import (
	"fmt"
	"time"

	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/baton-run/baton/shared/ratelimit"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/usage"

	"github.com/aws/aws-lambda-go/events"

	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/protocol"
)

// Inbox is what the WebSocket handlers need from the control plane (orchestrator.Service).
type Inbox interface {
	HandleAgentMessage(ctx context.Context, node string, e protocol.Envelope) error
	NodeConnected(ctx context.Context, node, conn string, at time.Time) error
	NodeDisconnected(ctx context.Context, node, conn string) error
}

// WebSocket holds the Lambda handlers of the agents' WebSocket API routes. Each invocation is
// one event; the node a connection speaks for is the one the $connect authorizer put in the
// authorizer context, never what a message claims.
type WebSocket struct {
	inbox   Inbox
	sender  *Sender
	log     *slog.Logger
	limiter *ratelimit.Limiter
}

// Per-connection message rate, as in baton serve's gateway (a few messages per transaction is
// normal use). The buckets live in each Lambda instance, so this bounds what one connection
// can make one instance do; the stage's throttling bounds the API as a whole. Bytes need no
// budget of their own here (baton serve's gateway has one): API Gateway caps a message at
// 128 KB (MaxMessageBytes) in frames of at most 32 KB, so this rate also bounds a connection
// to about 6.4 MB a second. Facts are capped by the orchestrator (MaxFactsBytes).
const (
	messageRate  = 50
	messageBurst = 200
)

// NewWebSocket returns the handlers. sender answers refused frames on their own connection and
// meters incoming messages with its Meter, if it has one.
func NewWebSocket(inbox Inbox, sender *Sender, logger *slog.Logger) *WebSocket {
	w := &WebSocket{inbox: inbox, sender: sender, log: componentLogger(logger, "ws")}
	limiter, err := ratelimit.New(messageRate, messageBurst, ratelimit.WithMaxKeys(10000))
	if err != nil { // cannot happen with the constants above; a test checks them
		w.log.Error("message rate limit disabled", "err", err)
	}
	w.limiter = limiter
	return w
}

// Connect handles $connect: it records the node's new connection. It never posts to the
// connection (API Gateway answers 410 until $connect has returned). A failure to record the
// connection refuses it (500), so the agent reconnects rather than wait on a connection the
// control plane does not know.
func (w *WebSocket) Connect(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	conn := req.RequestContext.ConnectionID
	log := w.log.With("request_id", req.RequestContext.RequestID, "conn", conn)
	node := authorizerNode(req.RequestContext.Authorizer)
	if node == "" || conn == "" {
		log.Error("connect without an authorized node or a connection id: is the authorizer attached to $connect?")
		return status(http.StatusForbidden), nil
	}
	// API Gateway's time of the connection orders the connects of a node, which Lambda may
	// handle out of order.
	var at time.Time
	if ms := req.RequestContext.ConnectedAt; ms > 0 {
		at = time.UnixMilli(ms)
	}
	if err := w.inbox.NodeConnected(ctx, node, conn, at); err != nil {
		log.Error("record node connected", "node", node, "err", err)
		return status(http.StatusInternalServerError), nil
	}
	log.Info("agent connected", "node", node)
	return status(http.StatusOK), nil
}

// Disconnect handles $disconnect: it records the connection closed. API Gateway delivers it on a
// best-effort basis and ignores the answer, so it always answers 200; a missed one is repaired
// when a post to the connection gets 410.
func (w *WebSocket) Disconnect(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	conn := req.RequestContext.ConnectionID
	log := w.log.With("request_id", req.RequestContext.RequestID, "conn", conn)
	node := authorizerNode(req.RequestContext.Authorizer)
	if node == "" {
		log.Warn("disconnect without an authorized node")
		return status(http.StatusOK), nil
	}
	if err := w.inbox.NodeDisconnected(ctx, node, conn); err != nil {
		log.Error("record node disconnected", "node", node, "err", err)
		return status(http.StatusOK), nil
	}
	log.Info("agent disconnected", "node", node, "status", req.RequestContext.DisconnectStatusCode)
	return status(http.StatusOK), nil
}

// Default handles $default, one frame from an agent: it decodes the PCP envelope and hands it to
// the control plane as coming from the connection's node. A frame that cannot be decoded or that
// the control plane refuses is answered with a PCP error_message on the same connection, as the
// PCP broker does; the answer to API Gateway is 200 either way.
func (w *WebSocket) Default(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	conn := req.RequestContext.ConnectionID
	log := w.log.With("request_id", req.RequestContext.RequestID, "conn", conn)
	// This invocation and its message are charged to the job the message is about.
	ctx, tally := usage.Start(ctx)
	tally.Add(store.Usage{Invocations: 1})
	w.sender.count(ctx, DirectionIn, len(req.Body))
	node := authorizerNode(req.RequestContext.Authorizer)
	if node == "" {
		log.Error("message without an authorized node: is the authorizer attached to $connect?")
		w.reply(ctx, log, conn, "", protocol.NewErrorMessage("", "connection is not authenticated"))
		return status(http.StatusOK), nil
	}
	log = log.With("node", node)
	if ok, wait := w.allow(conn); !ok {
		// Refused unread: the id is read so that the agent knows which message to send again.
		w.reply(ctx, log, conn, node, protocol.NewRetryableError(protocol.MessageID([]byte(req.Body)),
			fmt.Sprintf("Too many messages; retry after %s", wait.Round(time.Millisecond)), wait))
		return status(http.StatusOK), nil
	}
	if req.IsBase64Encoded {
		w.reply(ctx, log, conn, node, protocol.NewErrorMessage("", "Could not decode message: binary frames are not supported"))
		return status(http.StatusOK), nil
	}
	e, err := protocol.Decode([]byte(req.Body))
	if err != nil {
		log.Warn("undecodable message", "id", e.ID, "err", err)
		w.reply(ctx, log, conn, node, protocol.NewErrorMessage(e.ID, err.Error()))
		return status(http.StatusOK), nil
	}
	if err := w.inbox.HandleAgentMessage(ctx, node, e); err != nil {
		if refused(err) {
			log.Warn("message refused", "type", e.MessageType, "id", e.ID, "err", err)
			w.reply(ctx, log, conn, node, protocol.NewErrorMessage(e.ID, err.Error()))
		} else {
			// Not the message's fault (a store error, throttling): the agent sends it again.
			log.Error("handle message", "type", e.MessageType, "id", e.ID, "err", err)
			w.reply(ctx, log, conn, node, protocol.NewRetryableError(e.ID, "internal error handling message "+e.ID, 0))
		}
	}
	return status(http.StatusOK), nil
}

// refused reports whether err is the control plane refusing the agent's message, whose text is
// meant for the agent; any other error is internal and is not shown to it.
func refused(err error) bool {
	return errors.Is(err, protocol.ErrInvalid) || errors.Is(err, orchestrator.ErrForbidden) ||
		errors.Is(err, orchestrator.ErrUnexpected)
}

func (w *WebSocket) reply(ctx context.Context, log *slog.Logger, conn, node string, e protocol.Envelope) {
	if node != "" {
		e.Target = protocol.AgentURI(node)
	}
	if w.sender == nil {
		log.Error("cannot answer the agent: no sender")
		return
	}
	if err := w.sender.PostToConnectionID(ctx, conn, e); err != nil {
		log.Warn("answer the agent", "err", err)
	}
}

// authorizerNode reads the node name the $connect authorizer put in its context. Decoded from
// the Lambda event's JSON it is a map[string]any; built in Go it may be a map[string]string.
func authorizerNode(a any) string {
	switch m := a.(type) {
	case map[string]any:
		s, _ := m[ContextNode].(string)
		return s
	case map[string]string:
		return m[ContextNode]
	}
	return ""
}

func status(code int) events.APIGatewayProxyResponse {
	return events.APIGatewayProxyResponse{StatusCode: code}
}

func (w *WebSocket) allow(conn string) (bool, time.Duration) {
	if w.limiter == nil {
		return true, 0
	}
	return w.limiter.Allow(conn)
}
