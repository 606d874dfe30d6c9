package gateway

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/baton-run/baton/shared/protocol"
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
	// Pinged after 200 ms of silence, but 3 s for the pong: the reading agent's answer can be
	// that late on a loaded runner, and the frozen one never answers however long it is given.
	g.SetLiveness(200*time.Millisecond, 3*time.Second)
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

// slowFirst holds the first authentication of each node until released.
type slowFirst struct {
	mu      sync.Mutex
	seen    map[string]bool
	held    chan struct{}
	release chan struct{}
}

func (s *slowFirst) AuthenticateNodeHeader(_ context.Context, node, _ string) error {
	s.mu.Lock()
	first := !s.seen[node]
	s.seen[node] = true
	s.mu.Unlock()
	if first {
		close(s.held)
		<-s.release
	}
	return nil
}

// TestStaleConnectionAttemptDoesNotReplaceANewerOne: an agent's connection attempt whose
// authentication was slow (a storm) reaches the gateway after the agent's next attempt; the
// stale one is closed and the live, newer one stays the node's connection.
func TestStaleConnectionAttemptDoesNotReplaceANewerOne(t *testing.T) {
	ib := newInbox()
	ib.connects = make(chan string, 2)
	auth := &slowFirst{seen: map[string]bool{}, held: make(chan struct{}), release: make(chan struct{})}
	g := New(nil)
	srv := httptest.NewServer(g.Handler(auth, ib))
	t.Cleanup(srv.Close)
	t.Cleanup(g.Close)
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	dial := func() (*websocket.Conn, error) {
		ws, _, err := websocket.Dial(t.Context(), url, &websocket.DialOptions{HTTPHeader: map[string][]string{HeaderNode: {"web1"}}})
		if err == nil {
			t.Cleanup(func() { ws.CloseNow() })
		}
		return ws, err
	}
	staleDone := make(chan *websocket.Conn, 1)
	go func() {
		ws, err := dial()
		if err != nil {
			t.Error(err)
		}
		staleDone <- ws
	}()
	<-auth.held // the first attempt is stuck in authentication
	newer, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	<-ib.connects
	close(auth.release)
	stale := <-staleDone
	if stale == nil {
		t.FailNow()
	}
	rctx, rcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer rcancel()
	if _, _, err := stale.Read(rctx); websocket.CloseStatus(err) != 4000 {
		t.Fatalf("stale attempt: %v, want closed with 4000", err)
	}
	// The newer connection is still the node's: a message sent to web1 reaches it.
	e, err := protocol.New(protocol.TypeResultAck, protocol.AgentURI("web1"), protocol.ResultAck{TransactionID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Send(t.Context(), "web1", e); err != nil {
		t.Fatalf("send to web1: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, b, err := newer.Read(ctx); err != nil || !strings.Contains(string(b), "t1") {
		t.Fatalf("newer connection read %q, %v; want the message", b, err)
	}
}
