package apigwtest

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"
)

// gate is a handler's way to hold its invocation until the test lets it go.
type gate struct {
	entered chan struct{}
	open    chan struct{}
	once    sync.Once
}

// newGate returns a closed gate; it is opened at the latest when the test ends (before the
// API it is used in is closed, which waits for its handlers).
func newGate(t *testing.T) *gate {
	g := &gate{entered: make(chan struct{}, 16), open: make(chan struct{})}
	t.Cleanup(g.release)
	return g
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

func (g *gate) hold() {
	g.entered <- struct{}{}
	<-g.open
}

func (g *gate) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(waitLimit):
		t.Fatal("the handler was not invoked")
	}
}

func TestReservedConcurrencyThrottlesUpgrades(t *testing.T) {
	for _, fn := range []string{"authorizer", "$connect"} {
		t.Run(fn, func(t *testing.T) {
			var g *gate
			h := WebSocketHandlers{Authorizer: allowAll, Connect: recordWS(newCalls[wsEvent]())}
			if fn == "authorizer" {
				h.Authorizer = func(ctx context.Context, ev events.APIGatewayCustomAuthorizerRequestTypeRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
					g.hold()
					return allowAll(ctx, ev)
				}
			} else {
				h.Connect = func(context.Context, wsEvent) (events.APIGatewayProxyResponse, error) {
					g.hold()
					return events.APIGatewayProxyResponse{StatusCode: http.StatusOK}, nil
				}
			}
			api := startWS(t, h, WithReservedConcurrency(fn, 1))
			g = newGate(t)
			ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
			defer cancel()
			first := make(chan error, 1)
			go func() {
				c, _, err := websocket.Dial(ctx, api.URL(), dialOpts())
				if err == nil {
					_ = c.CloseNow()
				}
				first <- err
			}()
			g.waitEntered(t)
			// The one execution is busy: the next upgrade is throttled, without an invocation.
			c, resp, err := websocket.Dial(ctx, api.URL(), dialOpts())
			if err == nil {
				_ = c.CloseNow()
				g.release()
				t.Fatal("second upgrade succeeded while the function was at its reserved concurrency")
			}
			if resp == nil || resp.StatusCode != http.StatusInternalServerError {
				t.Fatalf("second upgrade: %v (%+v), want HTTP 500", err, resp)
			}
			s := api.Stats()
			if s.LambdaThrottles[fn] != 1 || s.Invocations[fn] != 1 || s.Rejected != 1 {
				t.Errorf("throttles %v, invocations %v, rejected %d: want one %s throttle, one invocation, one rejection",
					s.LambdaThrottles, s.Invocations, s.Rejected, fn)
			}
			g.release()
			if err := <-first; err != nil {
				t.Fatalf("first upgrade: %v", err)
			}
			// Released when the handler returned: the next upgrade gets the execution.
			dial(t, api)
			if s := api.Stats(); s.Invocations[fn] != 2 || s.LambdaThrottles[fn] != 1 {
				t.Errorf("after release: invocations %v, throttles %v; want two invocations of %s and one throttle", s.Invocations, s.LambdaThrottles, fn)
			}
		})
	}
}

func TestReservedConcurrencyThrottlesMessagesAndDisconnects(t *testing.T) {
	var def, disc *gate
	api := startWS(t, WebSocketHandlers{
		Default: func(context.Context, wsEvent) (events.APIGatewayProxyResponse, error) {
			def.hold()
			return events.APIGatewayProxyResponse{StatusCode: http.StatusOK}, nil
		},
		Disconnect: func(context.Context, wsEvent) (events.APIGatewayProxyResponse, error) {
			disc.hold()
			return events.APIGatewayProxyResponse{StatusCode: http.StatusOK}, nil
		},
	}, WithReservedConcurrency("$default", 1), WithReservedConcurrency("$disconnect", 1))
	def, disc = newGate(t), newGate(t)
	a, b := dial(t, api), dial(t, api)
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	if err := a.Write(ctx, websocket.MessageText, []byte("a")); err != nil {
		t.Fatal(err)
	}
	def.waitEntered(t)
	if err := b.Write(ctx, websocket.MessageText, []byte("b")); err != nil {
		t.Fatal(err)
	}
	_, data, err := b.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var got struct{ Message string }
	if err := json.Unmarshal(data, &got); err != nil || got.Message != "Internal server error" {
		t.Fatalf("throttled $default: got %s (%v), want API Gateway's Internal server error message", data, err)
	}
	def.release()
	// The execution is free once the handler has returned, not when the gate opens.
	waitUntil(t, "the first $default execution released", func() bool { return api.Stats().Running["$default"] == 0 })
	if err := b.Write(ctx, websocket.MessageText, []byte("c")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the message after the release invoked", func() bool { return api.Stats().Invocations["$default"] == 2 })

	// $disconnect is best effort: a throttled one is lost.
	_ = a.Close(websocket.StatusNormalClosure, "")
	disc.waitEntered(t)
	_ = b.Close(websocket.StatusNormalClosure, "")
	waitUntil(t, "the second $disconnect throttled", func() bool { return api.Stats().LambdaThrottles["$disconnect"] == 1 })
	disc.release()
	waitUntil(t, "both connections finished", func() bool { return api.Stats().OpenConnections == 0 })
	s := api.Stats()
	if s.Invocations["$default"] != 2 || s.LambdaThrottles["$default"] != 1 || s.Invocations["$disconnect"] != 1 {
		t.Errorf("invocations %v, throttles %v: want $default 2 (1 throttled), $disconnect 1 (1 throttled)", s.Invocations, s.LambdaThrottles)
	}
}
