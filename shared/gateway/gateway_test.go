package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/protocol"
)

type acceptAll struct{}

func (acceptAll) AuthenticateNodeHeader(context.Context, string, string) error { return nil }

// inbox records the messages it is handed; a message whose id is in block waits for release.
type inbox struct {
	mu       sync.Mutex
	got      []protocol.Envelope
	block    string
	release  chan struct{}
	blocked  chan struct{}
	connects chan string
	fail     map[string]error // HandleAgentMessage's error for the message with that id
}

func newInbox() *inbox {
	return &inbox{release: make(chan struct{}), blocked: make(chan struct{}), connects: make(chan string, 1)}
}

func (b *inbox) HandleAgentMessage(_ context.Context, _ string, e protocol.Envelope) error {
	if e.ID == b.block {
		close(b.blocked)
		<-b.release
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got = append(b.got, e)
	return b.fail[e.ID]
}

func (b *inbox) handled() []protocol.Envelope {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]protocol.Envelope(nil), b.got...)
}

func (b *inbox) NodeConnected(_ context.Context, node, _ string, _ time.Time) error {
	b.connects <- node
	return nil
}
func (b *inbox) NodeDisconnected(context.Context, string, string) error { return nil }
func (b *inbox) DeliverPending(context.Context, string) error           { return nil }

// dial starts a gateway for ib and connects an agent named web1 to it.
func dial(t *testing.T, ib *inbox) (*Gateway, *websocket.Conn) {
	t.Helper()
	g := New(nil)
	srv := httptest.NewServer(g.Handler(acceptAll{}, ib))
	t.Cleanup(srv.Close)
	t.Cleanup(g.Close)
	ws, _, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{
		HTTPHeader: map[string][]string{HeaderNode: {"web1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	select {
	case <-ib.connects:
	case <-time.After(10 * time.Second):
		t.Fatal("the gateway did not report the connection")
	}
	return g, ws
}

func send(t *testing.T, ws *websocket.Conn, messageType string, v any) string {
	t.Helper()
	e, err := protocol.New(messageType, protocol.ServerURI, v)
	if err != nil {
		t.Fatal(err)
	}
	b, err := protocol.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Write(t.Context(), websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	return e.ID
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAnswersToRequestsAreNotLimited checks that answers the server asked for pass however
// many there are, while unsolicited messages over the limit are refused by name.
func TestAnswersToRequestsAreNotLimited(t *testing.T) {
	ib := newInbox()
	g, ws := dial(t, ib)
	const requests = 3 * messageBurst
	// Read whatever the gateway sends, so that its writes never block.
	refused := map[string]bool{}
	var mu sync.Mutex
	go func() {
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			e, err := protocol.Decode(b)
			if err == nil && e.MessageType == protocol.TypeErrorMessage {
				mu.Lock()
				refused[e.InReplyTo] = true
				mu.Unlock()
			}
		}
	}()
	for i := range requests {
		req, err := protocol.New(protocol.TypeNonBlockingRequest, protocol.AgentURI("web1"), protocol.NonBlockingRequest{
			TransactionID: protocol.NewID(), Module: protocol.ModuleTask, Action: protocol.ActionRun, Params: json.RawMessage(`{}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Send(t.Context(), "web1", req); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	var answers []string
	for range requests {
		answers = append(answers, send(t, ws, protocol.TypeProvisionalResponse, protocol.ProvisionalResponse{TransactionID: protocol.NewID()}))
	}
	eventually(t, "every answer to be handled", func() bool { return len(ib.handled()) == requests })
	mu.Lock()
	for _, id := range answers {
		if refused[id] {
			t.Errorf("answer %s was refused", id)
		}
	}
	mu.Unlock()

	// Unsolicited messages: at most the burst (plus what refills meanwhile) pass.
	const flood = 5 * messageBurst
	var keepalives []string
	for range flood {
		keepalives = append(keepalives, send(t, ws, protocol.TypeKeepalive, nil))
	}
	eventually(t, "the flood to be handled or refused", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ib.handled())-requests+len(refused) >= flood
	})
	mu.Lock()
	defer mu.Unlock()
	if len(refused) == 0 {
		t.Fatalf("none of %d keepalives sent at once was refused", flood)
	}
	for id := range refused {
		if !contains(keepalives, id) {
			t.Errorf("an error_message names %q, which is not one of the keepalives", id)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestMessagesOfOneAgentDoNotWaitForEachOther checks that a message whose handling blocks
// does not hold up the next message from the same agent.
func TestMessagesOfOneAgentDoNotWaitForEachOther(t *testing.T) {
	ib := newInbox()
	_, ws := dial(t, ib)
	go func() {
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	e, err := protocol.New(protocol.TypeKeepalive, protocol.ServerURI, nil)
	if err != nil {
		t.Fatal(err)
	}
	ib.block = e.ID
	b, err := protocol.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Write(t.Context(), websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	<-ib.blocked
	second := send(t, ws, protocol.TypeKeepalive, nil)
	eventually(t, "the second message to be handled while the first blocks", func() bool {
		for _, h := range ib.handled() {
			if h.ID == second {
				return true
			}
		}
		return false
	})
	close(ib.release)
	eventually(t, "the first message to be handled once released", func() bool { return len(ib.handled()) == 2 })
}

// TestRefusalsSayWhetherToRetry checks the error_message of each kind of refusal: a message
// over the rate limit and one the control plane failed to handle (its store could not write)
// are to be sent again (Baton's ErrorData, retry with retry_after_ms for the rate limit); a
// message the control plane refused as such is not.
func TestRefusalsSayWhetherToRetry(t *testing.T) {
	ib := newInbox()
	internal, forbidden := protocol.NewID(), protocol.NewID()
	ib.fail = map[string]error{
		internal:  errors.New("record txn-1: disk I/O error"),
		forbidden: fmt.Errorf("%w: transaction txn-2 was not sent to web1", orchestrator.ErrForbidden),
	}
	_, ws := dial(t, ib)
	replies := make(chan protocol.Envelope, 10*messageBurst)
	go func() {
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			if e, err := protocol.Decode(b); err == nil {
				replies <- e
			}
		}
	}()
	write := func(id, messageType string, v any) {
		t.Helper()
		e, err := protocol.New(messageType, protocol.ServerURI, v)
		if err != nil {
			t.Fatal(err)
		}
		e.ID = id
		b, _ := protocol.Encode(e)
		if err := ws.Write(t.Context(), websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
	}
	next := func() protocol.ErrorData {
		t.Helper()
		select {
		case e := <-replies:
			ed, err := protocol.DecodeErrorMessage(e)
			if err != nil {
				t.Fatalf("reply %+v: %v", e, err)
			}
			return ed
		case <-time.After(10 * time.Second):
			t.Fatal("no error_message")
		}
		return protocol.ErrorData{}
	}
	write(internal, protocol.TypeNonBlockingResponse, protocol.NonBlockingResponse{TransactionID: "txn-1", Results: json.RawMessage(`{}`)})
	if ed := next(); ed.ID != internal || !ed.Retry || ed.RetryAfterMS != 0 || strings.Contains(ed.Description, "disk") {
		t.Errorf("internal failure answered %+v: want retry, no wait, and nothing of the internal error", ed)
	}
	write(forbidden, protocol.TypeNonBlockingResponse, protocol.NonBlockingResponse{TransactionID: "txn-2", Results: json.RawMessage(`{}`)})
	if ed := next(); ed.ID != forbidden || ed.Retry || !strings.Contains(ed.Description, "was not sent to web1") {
		t.Errorf("refusal answered %+v: want no retry and the reason", ed)
	}
	for range 2 * messageBurst {
		write(protocol.NewID(), protocol.TypeKeepalive, nil)
	}
	if ed := next(); ed.ID == "" || !ed.Retry || ed.RetryAfterMS <= 0 || !strings.Contains(ed.Description, "Too many messages") {
		t.Errorf("rate limit answered %+v: want retry after a wait, naming the message", ed)
	}
}

// slowAuth refuses node "bad" at once and holds every other attempt until its request ends,
// failing then as a store read cut short does.
type slowAuth struct{ started chan struct{} }

func (a slowAuth) AuthenticateNodeHeader(ctx context.Context, name, _ string) error {
	if name == "bad" {
		return errors.New("node credential refused")
	}
	a.started <- struct{}{}
	<-ctx.Done()
	return fmt.Errorf("look up node %s: %w", name, ctx.Err())
}

// TestAgentThatHangsUpIsNotCountedRefused: an agent that gives up while its connection is
// being authenticated (its dial timeout, in a reconnect storm) is logged as having given up,
// not as refused; a real refusal is still logged as one.
func TestAgentThatHangsUpIsNotCountedRefused(t *testing.T) {
	var (
		mu  sync.Mutex
		buf strings.Builder
	)
	g := New(slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelInfo})))
	auth := slowAuth{started: make(chan struct{}, 1)}
	srv := httptest.NewServer(g.Handler(auth, newInbox()))
	t.Cleanup(srv.Close)
	t.Cleanup(g.Close)
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	logged := func() string {
		mu.Lock()
		defer mu.Unlock()
		return buf.String()
	}

	ctx, cancel := context.WithCancel(t.Context())
	dialed := make(chan error, 1)
	go func() {
		_, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: map[string][]string{HeaderNode: {"slow"}}})
		dialed <- err
	}()
	<-auth.started
	cancel()
	if err := <-dialed; err == nil {
		t.Fatal("a dial cancelled during authentication connected")
	}
	eventually(t, "the give-up to be logged", func() bool { return strings.Contains(logged(), "agent gave up") })
	if strings.Contains(logged(), "agent refused") {
		t.Fatalf("an agent that hung up was logged as refused:\n%s", logged())
	}

	if _, _, err := websocket.Dial(t.Context(), url, &websocket.DialOptions{HTTPHeader: map[string][]string{HeaderNode: {"bad"}}}); err == nil {
		t.Fatal("a refused node connected")
	}
	eventually(t, "the refusal to be logged", func() bool { return strings.Contains(logged(), `msg="agent refused" component=gateway node=bad`) })
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
