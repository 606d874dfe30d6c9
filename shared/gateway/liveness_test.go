package gateway

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// disconnects counts the connections the gateway reports closed.
type disconnects struct {
	*inbox
	n atomic.Int32
}

func (d *disconnects) NodeDisconnected(context.Context, string, string) error {
	d.n.Add(1)
	return nil
}

// TestDeadConnectionsAreClosed: an agent that stops answering (here: it never reads, so it
// never answers a ping) is disconnected after the ping interval and timeout, while one that
// is silent but answers pings stays connected.
func TestDeadConnectionsAreClosed(t *testing.T) {
	ib := &disconnects{inbox: newInbox()}
	ib.connects = make(chan string, 2)
	g := New(nil)
	g.SetLiveness(200*time.Millisecond, 200*time.Millisecond)
	srv := httptest.NewServer(g.Handler(acceptAll{}, ib))
	t.Cleanup(srv.Close)
	t.Cleanup(g.Close)
	dialAs := func(node string) *websocket.Conn {
		ws, _, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{
			HTTPHeader: map[string][]string{HeaderNode: {node}},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.CloseNow() })
		return ws
	}
	frozen := dialAs("frozen")
	_ = frozen // never read from: pings go unanswered
	alive := dialAs("alive")
	go func() { // reading answers pings
		for {
			if _, _, err := alive.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	eventually(t, "the frozen agent disconnected", func() bool { return !g.Connected("frozen") && ib.n.Load() == 1 })
	// Well past several ping rounds, the agent that answers is still there.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if !g.Connected("alive") {
			t.Fatal("an agent that answers pings was disconnected")
		}
		time.Sleep(50 * time.Millisecond) // observe for a while
	}
	if n := ib.n.Load(); n != 1 {
		t.Fatalf("%d disconnects, want 1", n)
	}
}
