package apigwtest

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/coder/websocket"
)

// waitLimit bounds every wait for something that must happen (an event, a close, a read):
// generous, because a loaded 2-core runner under the race detector can stall for seconds, and
// no test waits it out to show that something did not happen.
const waitLimit = 20 * time.Second

// calls records the events a handler receives.
type calls[T any] struct{ ch chan T }

func newCalls[T any]() *calls[T] { return &calls[T]{ch: make(chan T, 64)} }

func (c *calls[T]) next(t *testing.T) T {
	t.Helper()
	select {
	case v := <-c.ch:
		return v
	case <-time.After(waitLimit):
		var zero T
		t.Fatalf("no %T within %v", zero, waitLimit)
		return zero
	}
}

type wsEvent = events.APIGatewayWebsocketProxyRequest

// recordWS is a route handler that records its events and answers 200.
func recordWS(c *calls[wsEvent]) func(context.Context, wsEvent) (events.APIGatewayProxyResponse, error) {
	return func(_ context.Context, ev wsEvent) (events.APIGatewayProxyResponse, error) {
		c.ch <- ev
		return events.APIGatewayProxyResponse{StatusCode: http.StatusOK}, nil
	}
}

func allow(arn string, ctx map[string]interface{}) events.APIGatewayCustomAuthorizerResponse {
	return policy("Allow", arn, ctx)
}

func policy(effect, arn string, ctx map[string]interface{}) events.APIGatewayCustomAuthorizerResponse {
	return events.APIGatewayCustomAuthorizerResponse{
		PrincipalID: "node-principal",
		PolicyDocument: events.APIGatewayCustomAuthorizerPolicy{
			Version: "2012-10-17",
			Statement: []events.IAMPolicyStatement{
				{Action: []string{"execute-api:Invoke"}, Effect: effect, Resource: []string{arn}},
			},
		},
		Context: ctx,
	}
}

// allowAll is an authorizer that allows every upgrade.
func allowAll(_ context.Context, ev events.APIGatewayCustomAuthorizerRequestTypeRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
	return allow(ev.MethodArn, nil), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func startWS(t *testing.T, h WebSocketHandlers, opts ...Option) *WebSocketAPI {
	t.Helper()
	api := NewWebSocketAPI(h, append([]Option{WithLogger(testLogger(t))}, opts...)...)
	if err := api.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		if err := api.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return api
}

func dialOpts() *websocket.DialOptions {
	return &websocket.DialOptions{HTTPHeader: http.Header{
		"Authorization": {"Bearer node-token"},
		"User-Agent":    {"baton-agent/test"},
	}}
}

func dial(t *testing.T, api *WebSocketAPI) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, _, err := websocket.Dial(ctx, api.URL(), dialOpts())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// readClose reads until the connection ends and returns the close status the server sent.
func readClose(t *testing.T, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

func managementClient(api *WebSocketAPI) *apigatewaymanagementapi.Client {
	return apigatewaymanagementapi.New(apigatewaymanagementapi.Options{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		BaseEndpoint: aws.String(api.ManagementURL()),
	})
}

// waitUntil polls cond until it holds or the wait limit passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
