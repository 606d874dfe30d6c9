package awsgw_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"

	"github.com/baton-run/baton/shared/awsgw"
	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/protocol"
)

// envelopeOfSize returns a message that encodes to exactly size bytes.
func envelopeOfSize(t *testing.T, size int) protocol.Envelope {
	t.Helper()
	e := protocol.Envelope{ID: "8d0c2f7e-0000-4000-8000-000000000001", MessageType: protocol.TypeCancel,
		Target: protocol.AgentURI("web01"), Data: []byte(`""`)}
	b, err := protocol.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	pad := size - len(b)
	if pad < 0 {
		t.Fatalf("size %d is below the envelope's own %d bytes", size, len(b))
	}
	e.Data = []byte(`"` + strings.Repeat("a", pad) + `"`)
	if b, _ := protocol.Encode(e); len(b) != size {
		t.Fatalf("built %d bytes, want %d", len(b), size)
	}
	return e
}

func TestSend(t *testing.T) {
	const conn = "TWegAcC4EowCHnA="
	small := envelopeOfSize(t, 300)
	errLookup := errors.New("get node web01: ProvisionedThroughputExceededException")

	tests := []struct {
		name         string
		node         string
		lookupErr    error
		script       []answer
		always       *answer
		env          protocol.Envelope
		wantErr      []error // each must match with errors.Is
		wantPosts    int     // requests that reached the endpoint
		delivered    bool
		disconnected bool
	}{
		{name: "delivered", node: "web01", env: small, wantPosts: 1, delivered: true},
		{name: "exactly 128 KB is delivered", node: "web01", env: envelopeOfSize(t, awsgw.MaxMessageBytes),
			wantPosts: 1, delivered: true},
		{name: "one byte over 128 KB is never sent", node: "web01", env: envelopeOfSize(t, awsgw.MaxMessageBytes+1),
			wantErr: []error{awsgw.ErrTooLarge}},
		{name: "gone: node recorded disconnected", node: "web01", env: small, script: []answer{gone410},
			wantErr: []error{orchestrator.ErrNotConnected}, wantPosts: 1, disconnected: true},
		{name: "throttled twice, then delivered", node: "web01", env: small, script: []answer{limit429, limit429},
			wantPosts: 3, delivered: true},
		{name: "unmodelled 429 twice, then delivered", node: "web01", env: small, script: []answer{plain429, plain429},
			wantPosts: 3, delivered: true},
		{name: "throttled on every attempt", node: "web01", env: small, always: &limit429,
			wantErr: []error{awsgw.ErrThrottled}, wantPosts: 4},
		{name: "server error: the SDK retries it, then it fails", node: "web01", env: small, always: &server500,
			wantPosts: 3},
		{name: "not connected: no HTTP call", node: "db01", env: small, wantErr: []error{orchestrator.ErrNotConnected}},
		{name: "lookup fails", node: "web01", env: small, lookupErr: errLookup, wantErr: []error{errLookup}},
		{name: "invalid envelope", node: "web01", env: protocol.Envelope{ID: "x"}, wantErr: []error{protocol.ErrInvalid}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newConnectionsAPI(t)
			api.answerWith(conn, tt.script...)
			if tt.always != nil {
				api.alwaysAnswer(conn, *tt.always)
			}
			in := &inbox{}
			lookup := &conns{ids: map[string]string{"web01": conn}, err: tt.lookupErr}
			s := awsgw.NewSender(api.client(), lookup, in, fastBackoff, awsgw.WithLogger(newLogger(testWriter{t})))

			err := s.Send(context.Background(), tt.node, tt.env)

			wantFail := len(tt.wantErr) > 0 || !tt.delivered
			if wantFail && err == nil {
				t.Fatalf("Send succeeded, want an error")
			}
			if !wantFail && err != nil {
				t.Fatalf("Send: %v", err)
			}
			for _, w := range tt.wantErr {
				if !errors.Is(err, w) {
					t.Errorf("err = %v, want it to wrap %v", err, w)
				}
			}
			if err != nil && len(tt.wantErr) == 0 &&
				(errors.Is(err, orchestrator.ErrNotConnected) || errors.Is(err, awsgw.ErrThrottled)) {
				t.Errorf("err = %v: a plain failure must not read as not-connected or throttled", err)
			}
			posts := api.received()
			if len(posts) != tt.wantPosts {
				t.Errorf("%d requests reached @connections, want %d", len(posts), tt.wantPosts)
			}
			for _, p := range posts {
				if p.conn != conn || !p.signed {
					t.Errorf("request to %q (signed %v), want a signed POST to %q", p.conn, p.signed, conn)
				}
			}
			delivered := api.delivered()[conn]
			if tt.delivered {
				want, _ := protocol.Encode(tt.env)
				if len(delivered) != 1 || !bytes.Equal(delivered[0], want) {
					t.Errorf("delivered %d messages, want exactly the encoded envelope once", len(delivered))
				}
			} else if len(delivered) != 0 {
				t.Errorf("delivered %d messages, want none", len(delivered))
			}
			var wantDisc []connEvent
			if tt.disconnected {
				wantDisc = []connEvent{{"web01", conn}}
			}
			if fmt.Sprint(in.disconnected) != fmt.Sprint(wantDisc) {
				t.Errorf("NodeDisconnected calls = %v, want %v", in.disconnected, wantDisc)
			}
		})
	}
}

func TestSendGoneKeepsTheSDKError(t *testing.T) {
	api := newConnectionsAPI(t)
	api.alwaysAnswer("c1", gone410)
	s := awsgw.NewSender(api.client(), &conns{ids: map[string]string{"web01": "c1"}}, &inbox{}, fastBackoff)
	err := s.Send(context.Background(), "web01", envelopeOfSize(t, 200))
	var gone *types.GoneException
	if !errors.As(err, &gone) || !errors.Is(err, orchestrator.ErrNotConnected) {
		t.Fatalf("err = %v, want ErrNotConnected wrapping *types.GoneException", err)
	}
}

func TestSendGivesUpWhenTheContextEnds(t *testing.T) {
	api := newConnectionsAPI(t)
	api.alwaysAnswer("c1", limit429)
	s := awsgw.NewSender(api.client(), &conns{ids: map[string]string{"web01": "c1"}}, &inbox{},
		awsgw.WithBackoff(awsgw.Backoff{Attempts: 10, Base: time.Hour, Max: time.Hour}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Send(ctx, "web01", envelopeOfSize(t, 200))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Send took %v after its context ended", d)
	}
	if n := len(api.received()); n > 1 {
		t.Errorf("%d attempts, want at most one before the deadline", n)
	}
}

func TestPostToConnectionID(t *testing.T) {
	tests := []struct {
		name    string
		answer  answer
		wantErr error
	}{
		{name: "delivered", answer: ok200},
		{name: "gone", answer: gone410, wantErr: orchestrator.ErrNotConnected},
		{name: "throttled", answer: limit429, wantErr: awsgw.ErrThrottled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newConnectionsAPI(t)
			api.alwaysAnswer("abc=", tt.answer)
			in := &inbox{}
			// The lookup knows nothing: posting by connection id does not consult it.
			s := awsgw.NewSender(api.client(), &conns{err: errors.New("must not be called")}, in, fastBackoff)
			e := protocol.NewErrorMessage("m-1", "nope")
			err := s.PostToConnectionID(context.Background(), "abc=", e)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if len(in.disconnected) != 0 {
				t.Errorf("NodeDisconnected called: %v", in.disconnected)
			}
			if got := api.received(); len(got) == 0 || got[0].conn != "abc=" {
				t.Errorf("requests = %v, want posts to abc=", got)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		api := newConnectionsAPI(t)
		s := awsgw.NewSender(api.client(), &conns{}, &inbox{}, fastBackoff)
		err := s.PostToConnectionID(context.Background(), "abc=", envelopeOfSize(t, awsgw.MaxMessageBytes+1))
		if !errors.Is(err, awsgw.ErrTooLarge) || len(api.received()) != 0 {
			t.Fatalf("err = %v with %d requests, want ErrTooLarge and none", err, len(api.received()))
		}
	})
}

func TestMeter(t *testing.T) {
	api := newConnectionsAPI(t)
	m := &meter{}
	in := &inbox{}
	lookup := &conns{ids: map[string]string{"web01": connID, "gone01": "gone="}}
	api.alwaysAnswer("gone=", gone410)
	s := awsgw.NewSender(api.client(), lookup, in, fastBackoff, awsgw.WithMeter(m))
	ws := awsgw.NewWebSocket(in, s, newLogger(testWriter{t}))
	ctx := context.Background()

	// Out: 40 KB is two 32 KB units; exactly 32 KiB is one; a failed post is not a message.
	for _, size := range []int{40 << 10, 32 << 10} {
		if err := s.Send(ctx, "web01", envelopeOfSize(t, size)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Send(ctx, "gone01", envelopeOfSize(t, 200)); !errors.Is(err, orchestrator.ErrNotConnected) {
		t.Fatalf("send to gone01: %v", err)
	}
	// In: a small good frame, and a 33 KiB frame (refused by the decoder, answered with an
	// error_message: one more message out).
	good := `{"id":"m-1","message_type":"http://puppetlabs.com/rpc_provisional_response","data":{"transaction_id":"t1"}}`
	for _, body := range []string{good, strings.Repeat(" ", 33<<10) + "x"} {
		if _, err := ws.Default(ctx, wsRequest(t, "$default", "MESSAGE", body)); err != nil {
			t.Fatal(err)
		}
	}
	want := []meterCall{{"out", 1, 2}, {"out", 1, 1}, {"in", 1, 1}, {"in", 1, 2}, {"out", 1, 1}}
	if got := m.recorded(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("meter = %v, want %v", got, want)
	}
	if n := len(api.delivered()[connID]); n != 3 {
		t.Errorf("%d messages delivered to %s, want 3", n, connID)
	}
}
