package awsgw_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/baton-run/baton/shared/awsgw"
	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/protocol"
	"github.com/baton-run/baton/shared/store"
)

const connID = "XHn0oc1PjoECJwA="

// wsEvent is a WebSocket proxy event as API Gateway sends it to a route's Lambda once the
// $connect authorizer has allowed the connection: the authorizer's context is flattened into
// requestContext.authorizer (route, event type and body are filled in per test).
const wsEvent = `{
  "headers": {"Host": "abcdef1234.execute-api.eu-west-1.amazonaws.com", "x-baton-node": "web01"},
  "multiValueHeaders": {"Host": ["abcdef1234.execute-api.eu-west-1.amazonaws.com"]},
  "requestContext": {
    "routeKey": "%s",
    "authorizer": {"principalId": "web01", "node": "web01", "integrationLatency": 12},
    "messageId": "XHn0sdJ3DoECF8g=",
    "eventType": "%s",
    "extendedRequestId": "XHn0sGqyjoEFrHg=",
    "requestTime": "14/Nov/2026:10:21:09 +0000",
    "messageDirection": "IN",
    "stage": "prod",
    "connectedAt": 1794651667000,
    "requestTimeEpoch": 1794651669100,
    "identity": {"sourceIp": "203.0.113.7"},
    "requestId": "XHn0sGqyjoEFrHg=",
    "domainName": "abcdef1234.execute-api.eu-west-1.amazonaws.com",
    "connectionId": "` + connID + `",
    "apiId": "abcdef1234"
  },
  "isBase64Encoded": false
}`

func wsRequest(t *testing.T, route, eventType, body string) events.APIGatewayWebsocketProxyRequest {
	t.Helper()
	var req events.APIGatewayWebsocketProxyRequest
	if err := json.Unmarshal(fmt.Appendf(nil, wsEvent, route, eventType), &req); err != nil {
		t.Fatal(err)
	}
	req.Body = body
	return req
}

type wsHarness struct {
	api   *connectionsAPI
	inbox *inbox
	meter *meter
	ws    *awsgw.WebSocket
}

func newWSHarness(t *testing.T) *wsHarness {
	h := &wsHarness{api: newConnectionsAPI(t), inbox: &inbox{}, meter: &meter{}}
	// The inventory knows web01 by another (older) connection: replies must go to the frame's.
	lookup := &conns{ids: map[string]string{"web01": "older-connection="}}
	s := awsgw.NewSender(h.api.client(), lookup, h.inbox, fastBackoff, awsgw.WithMeter(h.meter),
		awsgw.WithLogger(newLogger(testWriter{t})))
	h.ws = awsgw.NewWebSocket(h.inbox, s, newLogger(testWriter{t}))
	return h
}

func TestConnect(t *testing.T) {
	tests := []struct {
		name       string
		authorizer any // nil: keep the event's (decoded from JSON as map[string]any)
		connectErr error
		status     int
		want       []connEvent
	}{
		{name: "authorizer context from the event JSON", status: 200, want: []connEvent{{"web01", connID}}},
		{name: "authorizer context built in Go", authorizer: map[string]string{"node": "db01"}, status: 200,
			want: []connEvent{{"db01", connID}}},
		{name: "no authorizer context", authorizer: map[string]any{"principalId": "web01"}, status: 403},
		{name: "inbox fails", connectErr: errors.New("put inventory: throttled"), status: 500,
			want: []connEvent{{"web01", connID}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newWSHarness(t)
			h.inbox.connectErr = tt.connectErr
			req := wsRequest(t, "$connect", "CONNECT", "")
			if tt.authorizer != nil {
				req.RequestContext.Authorizer = tt.authorizer
			}
			resp, err := h.ws.Connect(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if fmt.Sprint(h.inbox.connected) != fmt.Sprint(tt.want) {
				t.Errorf("NodeConnected calls = %v, want %v", h.inbox.connected, tt.want)
			}
			// The connection's time is API Gateway's (requestContext.connectedAt), which orders
			// a node's connects however late Lambda handles them.
			for _, at := range h.inbox.connectedAt {
				if !at.Equal(time.UnixMilli(1794651667000)) {
					t.Errorf("NodeConnected at %v, want the event's connectedAt", at)
				}
			}
			if p := h.api.received(); len(p) != 0 {
				t.Errorf("$connect posted to the connection: %v", p)
			}
		})
	}
}

func TestDisconnect(t *testing.T) {
	tests := []struct {
		name       string
		authorizer any
		err        error
		want       []connEvent
	}{
		{name: "recorded", want: []connEvent{{"web01", connID}}},
		{name: "inbox fails: still 200", err: errors.New("update inventory: timeout"), want: []connEvent{{"web01", connID}}},
		{name: "no authorizer context: still 200", authorizer: map[string]any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newWSHarness(t)
			h.inbox.disconnErr = tt.err
			req := wsRequest(t, "$disconnect", "DISCONNECT", "")
			req.RequestContext.DisconnectStatusCode = 1001
			if tt.authorizer != nil {
				req.RequestContext.Authorizer = tt.authorizer
			}
			resp, err := h.ws.Disconnect(context.Background(), req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("resp %d, err %v: want 200", resp.StatusCode, err)
			}
			if fmt.Sprint(h.inbox.disconnected) != fmt.Sprint(tt.want) {
				t.Errorf("NodeDisconnected calls = %v, want %v", h.inbox.disconnected, tt.want)
			}
		})
	}
}

func TestDefault(t *testing.T) {
	facts := `{"id":"5a4c6e0e-1f4b-4c1a-9d57-0d6c1b9e2f11","message_type":"https://baton.run/pxp/facts",` +
		`"sender":"pcp://db01/agent","data":{"facts":{"os":{"family":"Debian"}}}}`
	result := `{"id":"msg-2","message_type":"http://puppetlabs.com/rpc_provisional_response",` +
		`"sender":"pcp://web01/agent","data":{"transaction_id":"txn-1"}}`

	tests := []struct {
		name       string
		body       string
		base64     bool
		authorizer any
		handleErr  error
		delivered  bool   // the inbox got the message, as web01's
		inReplyTo  string // when an error_message is expected
		desc       string // substring of its description
		secret     string // text that must not reach the agent
		retry      bool   // the error_message tells the agent to send the message again
	}{
		{name: "good frame, sender claims another node", body: facts, delivered: true},
		{name: "good frame", body: result, delivered: true},
		{name: "malformed JSON", body: `{"id":"abc", "message_type":`, desc: "could not decode message"},
		{name: "unknown message type", body: `{"id":"m-7","message_type":"http://example.com/nope"}`,
			inReplyTo: "m-7", desc: "unknown message_type"},
		{name: "binary frame", body: "AAEC", base64: true, desc: "binary frames are not supported"},
		{name: "refused: forbidden", body: result, delivered: true, inReplyTo: "msg-2",
			handleErr: fmt.Errorf("%w: transaction txn-1 was not sent to web01", orchestrator.ErrForbidden),
			desc:      "was not sent to web01"},
		{name: "refused: invalid data", body: result, delivered: true, inReplyTo: "msg-2",
			handleErr: fmt.Errorf("%w: bad data", protocol.ErrInvalid), desc: "bad data"},
		{name: "internal failure is not shown to the agent", body: result, delivered: true, inReplyTo: "msg-2",
			handleErr: fmt.Errorf("record txn-1: %w: table baton-prod", store.ErrConflict),
			desc:      "internal error handling message msg-2", secret: "baton-prod", retry: true},
		{name: "no authorized node", body: facts, authorizer: map[string]any{"principalId": "x"},
			desc: "not authenticated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newWSHarness(t)
			h.inbox.handleErr = tt.handleErr
			req := wsRequest(t, "$default", "MESSAGE", tt.body)
			req.IsBase64Encoded = tt.base64
			if tt.authorizer != nil {
				req.RequestContext.Authorizer = tt.authorizer
			}
			resp, err := h.ws.Default(context.Background(), req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("resp %d, err %v: want 200", resp.StatusCode, err)
			}

			got := h.inbox.messages
			if tt.delivered {
				if len(got) != 1 || len(got["web01"]) != 1 {
					t.Fatalf("inbox got %v, want one message from web01 (the authorizer's node)", got)
				}
				want, _ := protocol.Decode([]byte(tt.body))
				if got["web01"][0].ID != want.ID {
					t.Errorf("inbox got message %q, want %q", got["web01"][0].ID, want.ID)
				}
			} else if len(got) != 0 {
				t.Errorf("inbox got %v, want nothing", got)
			}

			posts := h.api.received()
			if tt.desc == "" {
				if len(posts) != 0 {
					t.Errorf("posted %d replies, want none", len(posts))
				}
				return
			}
			if len(posts) != 1 {
				t.Fatalf("posted %d replies, want one error_message", len(posts))
			}
			p := posts[0]
			if p.conn != connID {
				t.Errorf("reply went to connection %q, want the frame's %q", p.conn, connID)
			}
			if !p.signed {
				t.Errorf("reply was not SigV4-signed for execute-api")
			}
			e, err := protocol.Decode(p.body)
			if err != nil {
				t.Fatalf("reply does not decode: %v", err)
			}
			ed, err := protocol.DecodeErrorMessage(e)
			if err != nil {
				t.Fatalf("error_message data: %v", err)
			}
			desc := ed.Description
			if e.MessageType != protocol.TypeErrorMessage || e.InReplyTo != tt.inReplyTo || !strings.Contains(desc, tt.desc) {
				t.Errorf("reply = %s, want error_message in reply to %q containing %q", p.body, tt.inReplyTo, tt.desc)
			}
			if ed.Retry != tt.retry {
				t.Errorf("reply = %s: retry %v, want %v", p.body, ed.Retry, tt.retry)
			}
			if tt.authorizer == nil && e.Target != protocol.AgentURI("web01") {
				t.Errorf("reply target = %q", e.Target)
			}
			if tt.secret != "" && strings.Contains(desc, tt.secret) {
				t.Errorf("reply leaks %q: %s", tt.secret, desc)
			}
		})
	}
}

func TestDefaultReplyToGoneConnection(t *testing.T) {
	h := newWSHarness(t)
	h.api.alwaysAnswer(connID, gone410)
	resp, err := h.ws.Default(context.Background(), wsRequest(t, "$default", "MESSAGE", "not json"))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("resp %d, err %v: want 200", resp.StatusCode, err)
	}
	if n := len(h.api.received()); n != 1 {
		t.Errorf("%d posts, want 1 (a gone connection is not retried)", n)
	}
	if len(h.inbox.disconnected) != 0 {
		t.Errorf("NodeDisconnected called from $default: %v", h.inbox.disconnected)
	}
}

func TestDefaultRateLimitsAConnection(t *testing.T) {
	h := newWSHarness(t)
	body := `{"id":"k","message_type":"https://baton.run/pxp/keepalive"}`
	refused := 0
	for i := 0; i < 300; i++ {
		resp, err := h.ws.Default(context.Background(), wsRequest(t, "$default", "MESSAGE", body))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("resp %d, err %v", resp.StatusCode, err)
		}
	}
	for _, p := range h.api.received() {
		if strings.Contains(string(p.body), "Too many messages") {
			refused++
			// The refusal names the refused message and says when to send it again.
			e, err := protocol.Decode(p.body)
			if err != nil {
				t.Fatal(err)
			}
			ed, err := protocol.DecodeErrorMessage(e)
			if err != nil || e.InReplyTo != "k" || ed.ID != "k" || !ed.Retry || ed.RetryAfterMS <= 0 {
				t.Fatalf("refusal %s (%+v, %v): want in_reply_to k, retry and retry_after_ms", p.body, ed, err)
			}
		}
	}
	delivered := len(h.inbox.messages["web01"])
	if refused == 0 || delivered+refused != 300 || delivered < 200 {
		t.Errorf("delivered %d, refused %d of 300 messages sent at once (burst 200)", delivered, refused)
	}
}
