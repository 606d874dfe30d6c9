package gateway

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/baton-run/baton/shared/protocol"
)

// dialGateway connects an agent named web1 to g.
func dialGateway(t *testing.T, g *Gateway, ib *inbox) *websocket.Conn {
	t.Helper()
	srv := httptest.NewServer(g.Handler(acceptAll{}, ib))
	t.Cleanup(srv.Close)
	t.Cleanup(g.Close)
	ws, _, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{
		HTTPHeader: map[string][]string{HeaderNode: {"web1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(-1)
	t.Cleanup(func() { ws.CloseNow() })
	select {
	case <-ib.connects:
	case <-time.After(10 * time.Second):
		t.Fatal("the gateway did not report the connection")
	}
	return ws
}

// TestByteBudgetSlowsAFlood: an agent sending more bytes than its budget is slowed down to
// the budget's rate; every message is still handled.
func TestByteBudgetSlowsAFlood(t *testing.T) {
	const (
		rate  = 1 << 20 // a second
		burst = 256 << 10
		each  = 256 << 10
		count = 5
	)
	g := New(nil)
	g.byteRate, g.byteBurst = rate, burst
	ib := newInbox()
	ws := dialGateway(t, g, ib)
	pad := strings.Repeat("x", each-200) // the envelope makes up the rest
	start := time.Now()
	for range count {
		send(t, ws, protocol.TypeFacts, protocol.Facts{Facts: map[string]any{"pad": pad}})
	}
	eventually(t, "every message to be handled", func() bool { return len(ib.handled()) == count })
	took := time.Since(start)
	// The first message takes the burst; each of the other four waits for about a quarter of
	// a second of refill.
	if want := time.Duration(float64(count-1) * each / rate * 0.8 * float64(time.Second)); took < want {
		t.Errorf("%d messages of %d KiB were handled in %s; the byte budget should take at least %s", count, each>>10, took, want)
	}
}

// TestOversizeMessageClosesTheConnection: a message over MaxMessageBytes closes the
// connection with status 1009 (message too big), unread.
func TestOversizeMessageClosesTheConnection(t *testing.T) {
	if MaxMessageBytes > 32<<20 {
		t.Fatalf("MaxMessageBytes is %d MiB, more than the 32 MiB SECURITY.md states", MaxMessageBytes>>20)
	}
	ib := newInbox()
	g := New(nil)
	g.SetLiveness(time.Hour, time.Hour) // on a busy machine the write may outlast a ping round
	ws := dialGateway(t, g, ib)
	// Not even JSON: the server stops reading at the limit, before any decoding.
	b := bytes.Repeat([]byte("x"), MaxMessageBytes+1)
	_ = ws.Write(t.Context(), websocket.MessageText, b) // the server may close before it is all written
	_, _, err := ws.Read(t.Context())
	if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
		t.Errorf("after a %d MiB message: %v (status %v), want status 1009", len(b)>>20, err, got)
	}
	if n := len(ib.handled()); n != 0 {
		t.Errorf("%d messages handled", n)
	}
}
