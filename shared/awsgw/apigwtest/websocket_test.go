package apigwtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/coder/websocket"
)

type authorizerFunc = func(context.Context, events.APIGatewayCustomAuthorizerRequestTypeRequest) (events.APIGatewayCustomAuthorizerResponse, error)

func TestUpgradeRefused(t *testing.T) {
	respond := func(resp events.APIGatewayCustomAuthorizerResponse, err error) authorizerFunc {
		return func(context.Context, events.APIGatewayCustomAuthorizerRequestTypeRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
			return resp, err
		}
	}
	connectAnswer := func(status int, err error) func(context.Context, wsEvent) (events.APIGatewayProxyResponse, error) {
		return func(context.Context, wsEvent) (events.APIGatewayProxyResponse, error) {
			return events.APIGatewayProxyResponse{StatusCode: status, Body: "refused"}, err
		}
	}
	tests := []struct {
		name           string
		authorizer     authorizerFunc
		connect        func(context.Context, wsEvent) (events.APIGatewayProxyResponse, error)
		noAuthHeader   bool
		wantStatus     int
		wantAuthorizer int
		wantConnect    int
	}{
		{name: "missing identity source", authorizer: allowAll, noAuthHeader: true,
			wantStatus: http.StatusUnauthorized},
		{name: "authorizer says Unauthorized", authorizer: respond(events.APIGatewayCustomAuthorizerResponse{}, errors.New("Unauthorized")),
			wantStatus: http.StatusUnauthorized, wantAuthorizer: 1},
		{name: "deny policy", authorizer: func(_ context.Context, ev events.APIGatewayCustomAuthorizerRequestTypeRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
			return policy("Deny", ev.MethodArn, nil), nil
		}, wantStatus: http.StatusForbidden, wantAuthorizer: 1},
		{name: "allow for another stage", authorizer: respond(allow("arn:aws:execute-api:*:*:*/prod/$connect", nil), nil),
			wantStatus: http.StatusForbidden, wantAuthorizer: 1},
		{name: "authorizer fails", authorizer: respond(events.APIGatewayCustomAuthorizerResponse{}, errors.New("boom")),
			wantStatus: http.StatusInternalServerError, wantAuthorizer: 1},
		{name: "context value not a primitive", authorizer: respond(allow("*", map[string]interface{}{"nested": map[string]string{"a": "b"}}), nil),
			wantStatus: http.StatusInternalServerError, wantAuthorizer: 1},
		{name: "authorizer result over 8 KB", authorizer: respond(allow("*", map[string]interface{}{"big": strings.Repeat("x", MaxAuthorizerResult)}), nil),
			wantStatus: http.StatusInternalServerError, wantAuthorizer: 1},
		{name: "$connect answers 403", authorizer: allowAll, connect: connectAnswer(http.StatusForbidden, nil),
			wantStatus: http.StatusForbidden, wantAuthorizer: 1, wantConnect: 1},
		{name: "$connect fails", authorizer: allowAll, connect: connectAnswer(0, errors.New("boom")),
			wantStatus: http.StatusInternalServerError, wantAuthorizer: 1, wantConnect: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			api := startWS(t, WebSocketHandlers{Authorizer: tc.authorizer, Connect: tc.connect})
			opts := dialOpts()
			if tc.noAuthHeader {
				opts.HTTPHeader.Del("Authorization")
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, api.URL(), opts)
			if err == nil {
				_ = c.CloseNow()
				t.Fatal("dial succeeded, want the upgrade refused")
			}
			if resp == nil || resp.StatusCode != tc.wantStatus {
				t.Fatalf("dial: %v (response %+v), want HTTP %d", err, resp, tc.wantStatus)
			}
			s := api.Stats()
			if s.Invocations["authorizer"] != tc.wantAuthorizer || s.Invocations["$connect"] != tc.wantConnect {
				t.Errorf("invocations %v, want authorizer %d and $connect %d", s.Invocations, tc.wantAuthorizer, tc.wantConnect)
			}
			if s.Connections != 0 || s.Rejected != 1 {
				t.Errorf("connections %d rejected %d, want 0 and 1", s.Connections, s.Rejected)
			}
		})
	}
}

func TestConnectMessageDisconnect(t *testing.T) {
	authorized := newCalls[events.APIGatewayCustomAuthorizerRequestTypeRequest]()
	connects, messages, disconnects := newCalls[wsEvent](), newCalls[wsEvent](), newCalls[wsEvent]()
	api := startWS(t, WebSocketHandlers{
		Authorizer: func(_ context.Context, ev events.APIGatewayCustomAuthorizerRequestTypeRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
			authorized.ch <- ev
			return allow("arn:aws:execute-api:us-east-1:123456789012:*/test/*",
				map[string]interface{}{"node": ev.QueryStringParameters["node"], "weight": 3, "admin": false}), nil
		},
		Connect:    recordWS(connects),
		Default:    recordWS(messages),
		Disconnect: recordWS(disconnects),
	}, WithAPIID("abcdef1234"))

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, _, err := websocket.Dial(ctx, api.URL()+"?node=web01", dialOpts())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()

	az := authorized.next(t)
	if az.Type != "REQUEST" || az.MethodArn != "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/test/$connect" {
		t.Errorf("authorizer type %q arn %q", az.Type, az.MethodArn)
	}
	if az.Headers["Authorization"] != "Bearer node-token" || az.MultiValueHeaders["Authorization"][0] != "Bearer node-token" {
		t.Errorf("authorizer headers %v", az.Headers)
	}
	if az.QueryStringParameters["node"] != "web01" || az.RequestContext.APIID != "abcdef1234" ||
		az.RequestContext.Stage != "test" || az.RequestContext.Identity.SourceIP != "127.0.0.1" {
		t.Errorf("authorizer query %v context %+v", az.QueryStringParameters, az.RequestContext)
	}

	wantAuthz := map[string]interface{}{"node": "web01", "weight": float64(3), "admin": false, "principalId": "node-principal"}
	checkContext := func(t *testing.T, ev wsEvent, route, eventType string) {
		t.Helper()
		rc := ev.RequestContext
		if rc.RouteKey != route || rc.EventType != eventType {
			t.Errorf("route %q event type %q, want %q %q", rc.RouteKey, rc.EventType, route, eventType)
		}
		if len(rc.ConnectionID) != 16 || rc.APIID != "abcdef1234" || rc.Stage != "test" || rc.RequestID == "" ||
			rc.ConnectedAt == 0 || rc.RequestTimeEpoch < rc.ConnectedAt || rc.MessageDirection != "IN" {
			t.Errorf("request context %+v", rc)
		}
		if rc.Identity.SourceIP != "127.0.0.1" || rc.Identity.UserAgent != "baton-agent/test" {
			t.Errorf("identity %+v", rc.Identity)
		}
		got, _ := rc.Authorizer.(map[string]interface{})
		if len(got) != len(wantAuthz) {
			t.Errorf("authorizer context %v, want %v", rc.Authorizer, wantAuthz)
		}
		for k, v := range wantAuthz {
			if got[k] != v {
				t.Errorf("authorizer context %s = %#v, want %#v", k, got[k], v)
			}
		}
	}

	conn := connects.next(t)
	checkContext(t, conn, "$connect", "CONNECT")
	if conn.Headers["Authorization"] != "Bearer node-token" || conn.QueryStringParameters["node"] != "web01" ||
		conn.Headers["Host"] == "" || conn.IsBase64Encoded {
		t.Errorf("$connect headers %v query %v", conn.Headers, conn.QueryStringParameters)
	}
	id := conn.RequestContext.ConnectionID

	for _, body := range []string{`{"hello":1}`, "second"} {
		if err := c.Write(ctx, websocket.MessageText, []byte(body)); err != nil {
			t.Fatalf("write: %v", err)
		}
		msg := messages.next(t)
		checkContext(t, msg, "$default", "MESSAGE")
		if msg.Body != body || msg.IsBase64Encoded || msg.RequestContext.ConnectionID != id || msg.RequestContext.MessageID == nil {
			t.Errorf("$default body %q connection %q message id %v, want %q on %q", msg.Body, msg.RequestContext.ConnectionID,
				msg.RequestContext.MessageID, body, id)
		}
	}

	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("close: %v", err)
	}
	disc := disconnects.next(t)
	checkContext(t, disc, "$disconnect", "DISCONNECT")
	if disc.RequestContext.ConnectionID != id || disc.RequestContext.DisconnectStatusCode != 1000 ||
		disc.RequestContext.DisconnectReason == nil || *disc.RequestContext.DisconnectReason != "bye" {
		t.Errorf("$disconnect context %+v", disc.RequestContext)
	}
	waitUntil(t, "connection finished", func() bool { return api.Stats().OpenConnections == 0 })
	s := api.Stats()
	if s.Connections != 1 || s.MessagesIn != 2 || s.BillingUnitsIn != 2 || s.ConnectionMinutes != 1 ||
		s.Invocations["$default"] != 2 || s.Invocations["$disconnect"] != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestPostDuringConnectIsGone(t *testing.T) {
	type result struct {
		status    int
		errorType string
	}
	results := make(chan result, 1)
	var api *WebSocketAPI
	api = startWS(t, WebSocketHandlers{
		Connect: func(ctx context.Context, ev wsEvent) (events.APIGatewayProxyResponse, error) {
			url := api.ManagementURL() + "/@connections/" + ev.RequestContext.ConnectionID
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("too early"))
			if err != nil {
				return events.APIGatewayProxyResponse{}, err
			}
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDTEST/20261101/us-east-1/execute-api/aws4_request")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return events.APIGatewayProxyResponse{}, err
			}
			_ = resp.Body.Close()
			results <- result{resp.StatusCode, resp.Header.Get("x-amzn-ErrorType")}
			return events.APIGatewayProxyResponse{StatusCode: http.StatusOK}, nil
		},
	})
	c := dial(t, api)
	r := <-results
	if r.status != http.StatusGone || r.errorType != "GoneException" {
		t.Errorf("post during $connect: %d %q, want 410 GoneException", r.status, r.errorType)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
}

func TestFrameAndMessageLimits(t *testing.T) {
	tests := []struct {
		name      string
		size      int
		fragment  int // 0: one frame
		wantClose websocket.StatusCode
	}{
		{name: "one 40 KB frame", size: 40 * 1024, wantClose: websocket.StatusMessageTooBig},
		{name: "100 KB in 25 KB fragments", size: 100 * 1024, fragment: 25 * 1024},
		{name: "128 KB in 32 KB fragments", size: 128 * 1024, fragment: 32 * 1024},
		{name: "200 KB in 32 KB fragments", size: 200 * 1024, fragment: 32 * 1024, wantClose: websocket.StatusMessageTooBig},
		{name: "one 32 KB frame", size: 32 * 1024},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			messages, disconnects := newCalls[wsEvent](), newCalls[wsEvent]()
			api := startWS(t, WebSocketHandlers{Default: recordWS(messages), Disconnect: recordWS(disconnects)})
			c := dial(t, api)
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			payload := []byte(strings.Repeat("a", tc.size))
			if tc.fragment == 0 {
				_ = c.Write(ctx, websocket.MessageText, payload) // may fail once the server has closed
			} else {
				w, err := c.Writer(ctx, websocket.MessageText)
				if err != nil {
					t.Fatalf("writer: %v", err)
				}
				for off := 0; off < len(payload); off += tc.fragment {
					if _, err := w.Write(payload[off:min(off+tc.fragment, len(payload))]); err != nil {
						break // the server closed the connection
					}
				}
				_ = w.Close()
			}

			if tc.wantClose != 0 {
				if got := readClose(t, c); got != tc.wantClose {
					t.Fatalf("close status %v, want %v", got, tc.wantClose)
				}
				disc := disconnects.next(t)
				if disc.RequestContext.DisconnectStatusCode != int64(tc.wantClose) {
					t.Errorf("$disconnect status %d, want %d", disc.RequestContext.DisconnectStatusCode, tc.wantClose)
				}
				if n := api.Stats().Invocations["$default"]; n != 0 {
					t.Errorf("$default invoked %d times for a refused message", n)
				}
				return
			}
			msg := messages.next(t)
			if msg.Body != string(payload) {
				t.Fatalf("$default got %d bytes, want %d", len(msg.Body), len(payload))
			}
			s := api.Stats()
			wantFrames := 1
			if tc.fragment > 0 {
				wantFrames = (tc.size + tc.fragment - 1) / tc.fragment
			}
			// The server saw the frames as sent: the client's Writer emits one frame per Write,
			// plus an empty final frame when the writer is closed.
			wantLargest := int64(tc.size)
			if tc.fragment > 0 {
				wantLargest = int64(tc.fragment)
			}
			if s.LargestFrameIn > MaxFrameSize || s.LargestFrameIn != wantLargest || s.FramesIn < wantFrames {
				t.Errorf("frames in %d (largest %d), want at least %d of at most %d bytes", s.FramesIn, s.LargestFrameIn, wantFrames, MaxFrameSize)
			}
			if want := (tc.size + BillingUnit - 1) / BillingUnit; s.BillingUnitsIn != want {
				t.Errorf("billing units in %d, want %d", s.BillingUnitsIn, want)
			}
			_ = c.Close(websocket.StatusNormalClosure, "")
		})
	}
}

func TestBinaryMessageCloses1003(t *testing.T) {
	messages := newCalls[wsEvent]()
	api := startWS(t, WebSocketHandlers{Default: recordWS(messages)})
	c := dial(t, api)
	if err := c.Write(context.Background(), websocket.MessageBinary, []byte{0xff, 0x00}); err != nil {
		t.Fatalf("write: %v", err)
	}
	if got := readClose(t, c); got != websocket.StatusUnsupportedData {
		t.Errorf("close status %v, want 1003", got)
	}
	if n := api.Stats().Invocations["$default"]; n != 0 {
		t.Errorf("$default invoked %d times for a binary message", n)
	}
}

func TestRouteErrorsReachTheClient(t *testing.T) {
	tests := []struct {
		name        string
		handlers    WebSocketHandlers
		timeout     time.Duration // the integration timeout; waitLimit if zero
		wantMessage string
	}{
		{name: "handler error", wantMessage: "Internal server error", handlers: WebSocketHandlers{
			Default: func(context.Context, wsEvent) (events.APIGatewayProxyResponse, error) {
				return events.APIGatewayProxyResponse{}, errors.New("boom")
			}}},
		{name: "handler panic", wantMessage: "Internal server error", handlers: WebSocketHandlers{
			Default: func(context.Context, wsEvent) (events.APIGatewayProxyResponse, error) { panic("boom") }}},
		{name: "integration timeout", timeout: 50 * time.Millisecond, wantMessage: "Endpoint request timed out", handlers: WebSocketHandlers{
			Default: func(ctx context.Context, _ wsEvent) (events.APIGatewayProxyResponse, error) {
				<-ctx.Done()
				return events.APIGatewayProxyResponse{}, ctx.Err()
			}}},
		{name: "no $default route", wantMessage: "Forbidden"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			connects := newCalls[wsEvent]()
			tc.handlers.Connect = recordWS(connects)
			// Only the timeout case has a short integration timeout: on a loaded runner an
			// invocation that fails at once may still take longer than 50 ms to return.
			timeout := tc.timeout
			if timeout == 0 {
				timeout = waitLimit
			}
			api := startWS(t, tc.handlers, WithIntegrationTimeout(timeout))
			c := dial(t, api)
			id := connects.next(t).RequestContext.ConnectionID
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
				t.Fatalf("write: %v", err)
			}
			_, data, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			var got struct{ Message, ConnectionID, RequestID string }
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatalf("decode %s: %v", data, err)
			}
			if got.Message != tc.wantMessage || got.ConnectionID != id || got.RequestID == "" {
				t.Errorf("got %s, want message %q for %s", data, tc.wantMessage, id)
			}
			_ = c.Close(websocket.StatusNormalClosure, "")
		})
	}
}

func TestKillSkipsDisconnect(t *testing.T) {
	connects, disconnects := newCalls[wsEvent](), newCalls[wsEvent]()
	api := startWS(t, WebSocketHandlers{Connect: recordWS(connects), Disconnect: recordWS(disconnects)})
	c := dial(t, api)
	id := connects.next(t).RequestContext.ConnectionID

	if err := api.Kill(id); err != nil {
		t.Fatalf("kill: %v", err)
	}
	if got := readClose(t, c); got != -1 {
		t.Errorf("client saw close status %v, want an abrupt end (-1)", got)
	}
	waitUntil(t, "connection finished", func() bool { return api.Stats().OpenConnections == 0 })
	if n := api.Stats().Invocations["$disconnect"]; n != 0 {
		t.Errorf("$disconnect invoked %d times after Kill", n)
	}
	select {
	case ev := <-disconnects.ch:
		t.Errorf("unexpected $disconnect %+v", ev.RequestContext)
	default:
	}
	if _, err := managementClient(api).PostToConnection(context.Background(), postInput(id, "late")); !isGone(err) {
		t.Errorf("post after kill: %v, want GoneException", err)
	}
	if err := api.Kill(id); !errors.Is(err, ErrGone) {
		t.Errorf("second kill: %v, want ErrGone", err)
	}
}

func TestTimeoutsClose1001(t *testing.T) {
	tests := []struct {
		name string
		opt  Option
	}{
		// A second: long enough for pings to be answered before the close on a loaded runner.
		{name: "idle timeout, pings do not count", opt: WithIdleTimeout(time.Second)},
		{name: "maximum connection duration", opt: WithMaxConnectionDuration(time.Second)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			disconnects := newCalls[wsEvent]()
			api := startWS(t, WebSocketHandlers{Disconnect: recordWS(disconnects)}, tc.opt)
			start := time.Now()
			c := dial(t, api)
			closed := c.CloseRead(context.Background()) // answers the server's close, reads pongs
			pings := 0
			for closed.Err() == nil {
				ctx, cancel := context.WithTimeout(closed, waitLimit)
				if err := c.Ping(ctx); err == nil {
					pings++
				}
				cancel()
			}
			disc := disconnects.next(t)
			if disc.RequestContext.DisconnectStatusCode != int64(websocket.StatusGoingAway) {
				t.Errorf("$disconnect status %d, want 1001", disc.RequestContext.DisconnectStatusCode)
			}
			if elapsed := time.Since(start); elapsed < time.Second || pings == 0 {
				t.Errorf("closed after %v and %d pings, want ≥1s with pings answered", elapsed, pings)
			}
		})
	}
}

// TestMessagesResetIdleTimeout keeps a connection busy for more than twice its idle timeout with
// client messages, then lets it idle out.
func TestMessagesResetIdleTimeout(t *testing.T) {
	// A second: the busy loop's round trips (write, $default invocation) and the
	// GetConnection call stay well inside it even on a loaded runner.
	const idle = time.Second
	connects, messages, disconnects := newCalls[wsEvent](), newCalls[wsEvent](), newCalls[wsEvent]()
	api := startWS(t, WebSocketHandlers{Connect: recordWS(connects), Default: recordWS(messages), Disconnect: recordWS(disconnects)},
		WithIdleTimeout(idle))
	c := dial(t, api)
	id := connects.next(t).RequestContext.ConnectionID
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var lastWrite time.Time // before the last message was written: its activity is no earlier
	for start := time.Now(); time.Since(start) < 2*idle+idle/3; {
		lastWrite = time.Now()
		if err := c.Write(ctx, websocket.MessageText, []byte("tick")); err != nil {
			t.Fatalf("write after %v: %v", time.Since(start), err)
		}
		messages.next(t)
	}
	if _, err := managementClient(api).GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: &id}); err != nil {
		t.Fatalf("connection closed although busy (%v after the last message): %v", time.Since(lastWrite), err)
	}
	if got := readClose(t, c); got != websocket.StatusGoingAway {
		t.Errorf("close status %v, want 1001", got)
	}
	// The server received the last message after lastWrite, so it may close no earlier than
	// the idle timeout after lastWrite.
	if waited := time.Since(lastWrite); waited < idle {
		t.Errorf("closed %v after the last message was written, want at least the idle timeout %v", waited, idle)
	}
	if disc := disconnects.next(t); disc.RequestContext.DisconnectStatusCode != int64(websocket.StatusGoingAway) {
		t.Errorf("$disconnect status %d, want 1001", disc.RequestContext.DisconnectStatusCode)
	}
}

// TestDroppedConnectionReleasesItsSocket: a client that goes away without a close handshake
// (its half of the TCP connection shut) gets its $disconnect, and the stand-in closes its end
// of the socket too, rather than holding the file descriptor until garbage collection.
func TestDroppedConnectionReleasesItsSocket(t *testing.T) {
	disconnects := newCalls[wsEvent]()
	api := startWS(t, WebSocketHandlers{Connect: recordWS(newCalls[wsEvent]()), Disconnect: recordWS(disconnects)})
	u, err := url.Parse(api.URL())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitLimit))
	req := "GET " + u.Path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer node-token\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil { // gone, without a close frame
		t.Fatal(err)
	}
	if ev := disconnects.next(t); ev.RequestContext.DisconnectStatusCode != int64(websocket.StatusAbnormalClosure) {
		t.Errorf("$disconnect status %d, want %d", ev.RequestContext.DisconnectStatusCode, websocket.StatusAbnormalClosure)
	}
	// The stand-in's end is closed: reading ours ends, with nothing sent (no close frame).
	if b, err := io.ReadAll(br); err != nil || len(b) != 0 {
		t.Errorf("after dropping the connection read %q, %v: want the server to close its end", b, err)
	}
}

// TestThrottleAndDrop: a throttled message reaches no route and the client gets API
// Gateway's "Too Many Requests" frame; a dropped one reaches no route and the client gets
// nothing; the next message is delivered as usual.
func TestThrottleAndDrop(t *testing.T) {
	msgs := newCalls[wsEvent]()
	api := startWS(t, WebSocketHandlers{Default: recordWS(msgs)},
		WithThrottle(func(b []byte) bool { return string(b) == "throttle me" }),
		WithDrop(func(b []byte) bool { return string(b) == "drop me" }))
	c := dial(t, api)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for _, m := range []string{"drop me", "throttle me", "deliver me"} {
		if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	_, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var got struct{ Message string }
	if err := json.Unmarshal(data, &got); err != nil || got.Message != "Too Many Requests" {
		t.Fatalf("the first frame back is %s, want the throttle's (nothing for the dropped message)", data)
	}
	if ev := msgs.next(t); ev.Body != "deliver me" {
		t.Fatalf("the route got %q, want only the delivered message", ev.Body)
	}
	if st := api.Stats(); st.Dropped != 1 || st.Throttled != 1 || st.Invocations["$default"] != 1 {
		t.Fatalf("stats: dropped %d, throttled %d, $default invocations %d; want 1, 1, 1", st.Dropped, st.Throttled, st.Invocations["$default"])
	}
}
