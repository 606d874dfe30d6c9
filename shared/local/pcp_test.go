package local

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/baton-run/baton/shared/client"
	"github.com/baton-run/baton/shared/protocol"
)

// rawAgent is a hand-driven agent connection, for testing what the server accepts.
type rawAgent struct {
	t    *testing.T
	conn *websocket.Conn
}

func (h *harness) dialRaw(name, secret string) (*rawAgent, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hdr := http.Header{"X-Baton-Node": {name}, "Authorization": {"Bearer " + secret}}
	c, resp, err := websocket.Dial(ctx, "ws://"+h.srv.Addr()+"/pcp", &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		return nil, resp, err
	}
	h.t.Cleanup(func() { c.CloseNow() })
	return &rawAgent{t: h.t, conn: c}, resp, nil
}

func (r *rawAgent) write(b []byte) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.conn.Write(ctx, websocket.MessageText, b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawAgent) send(typ string, data any) protocol.Envelope {
	r.t.Helper()
	e, err := protocol.New(typ, protocol.ServerURI, data)
	if err != nil {
		r.t.Fatal(err)
	}
	b, _ := protocol.Encode(e)
	r.write(b)
	return e
}

// next reads frames until one of type typ arrives.
func (r *rawAgent) next(typ string) protocol.Envelope {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, b, err := r.conn.Read(ctx)
		if err != nil {
			r.t.Fatalf("waiting for %s: %v", typ, err)
		}
		e, err := protocol.Decode(b)
		if err != nil {
			r.t.Fatalf("server sent an undecodable frame %s: %v", b, err)
		}
		if e.MessageType == typ {
			return e
		}
	}
}

func TestAgentConnectionRules(t *testing.T) {
	h := newHarness(t)
	h.enroll("a", "b")

	t.Run("wrong credentials are refused before the upgrade", func(t *testing.T) {
		for _, c := range []struct{ name, secret string }{{"a", "wrong"}, {"a", h.secrets["b"]}, {"nobody", h.secrets["a"]}, {"a", ""}} {
			_, resp, err := h.dialRaw(c.name, c.secret)
			if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s/%q: err %v, resp %v", c.name, c.secret, err, resp)
			}
		}
	})

	a, _, err := h.dialRaw("a", h.secrets["a"])
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := h.dialRaw("b", h.secrets["b"])
	if err != nil {
		t.Fatal(err)
	}
	h.waitConnected("a", "b")

	t.Run("a malformed frame gets an error_message and the connection survives", func(t *testing.T) {
		for _, frame := range []string{`not json`, `{"id":"x1","message_type":"http://puppetlabs.com/nope"}`, `{"id":"x2"}`, `[]`,
			`{"id":"x3","message_type":"https://baton.run/pxp/facts","data":{"facts":"nope"}}`} {
			a.write([]byte(frame))
			e := a.next(protocol.TypeErrorMessage)
			var desc string
			if err := json.Unmarshal(e.Data, &desc); err != nil || desc == "" {
				t.Errorf("%s: error_message data %s", frame, e.Data)
			}
			if strings.HasPrefix(frame, `{"id":"x`) && e.InReplyTo == "" {
				t.Errorf("%s: error_message without in_reply_to", frame)
			}
		}
		a.send(protocol.TypeFacts, protocol.Facts{Facts: map[string]any{"role": "after-garbage"}})
		h.eventually("facts from the surviving connection", 5*time.Second, func() bool {
			n, err := h.api.InventoryNode(context.Background(), "a")
			return err == nil && strings.Contains(string(n.Facts), "after-garbage")
		})
	})

	t.Run("a node answers only for its own transactions, and results count once", func(t *testing.T) {
		ref := h.run(client.TaskRequest{Task: "demo::hello", Scope: client.Scope{Nodes: []string{"b"}}})
		req := b.next(protocol.TypeNonBlockingRequest)
		var r protocol.NonBlockingRequest
		if err := protocol.DecodeData(req, &r); err != nil {
			t.Fatal(err)
		}
		results := json.RawMessage(`{"exitcode":0,"stdout":"{\"ok\":true}"}`)

		// a claims b's transaction: refused, and b's node is untouched.
		a.send(protocol.TypeNonBlockingResponse, protocol.NonBlockingResponse{TransactionID: r.TransactionID, Results: results})
		e := a.next(protocol.TypeErrorMessage)
		if !strings.Contains(string(e.Data), "not authorized") {
			t.Errorf("impersonation answer: %s", e.Data)
		}
		if nodes, _ := h.api.JobNodes(context.Background(), ref.Name); nodes[0].State != "running" && nodes[0].State != "ready" {
			t.Fatalf("b's node after a's forged result: %s", nodes[0].State)
		}
		// b answers twice (as after a reconnect): both acknowledged, recorded once.
		for i := 0; i < 2; i++ {
			b.send(protocol.TypeNonBlockingResponse, protocol.NonBlockingResponse{TransactionID: r.TransactionID, Results: results})
			ack := b.next(protocol.TypeResultAck)
			var ra protocol.ResultAck
			if err := protocol.DecodeData(ack, &ra); err != nil || ra.TransactionID != r.TransactionID {
				t.Fatalf("ack %d: %+v %v", i, ra, err)
			}
		}
		job, nodes := h.waitJob(ref.Name, 10*time.Second)
		if job.State != "finished" || nodes[0].State != "finished" || !strings.Contains(string(nodes[0].Result), `"ok":true`) {
			t.Fatalf("job %s node %s %s", job.State, nodes[0].State, nodes[0].Result)
		}
		evs, _, _ := h.api.Events(context.Background(), ref.Name, 1)
		finished := 0
		for _, e := range evs {
			if e.Type == "node_finished" {
				finished++
			}
		}
		if finished != 1 {
			t.Errorf("node_finished events: %d", finished)
		}
	})

	t.Run("a new connection for the same node supersedes the old one", func(t *testing.T) {
		a2, _, err := h.dialRaw("a", h.secrets["a"])
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, _, err := a.conn.Read(ctx); websocket.CloseStatus(err) != 4000 {
			t.Errorf("old connection: %v", err)
		}
		a2.send(protocol.TypeFacts, protocol.Facts{Facts: map[string]any{"role": "second"}})
		h.eventually("facts from the new connection", 5*time.Second, func() bool {
			n, err := h.api.InventoryNode(context.Background(), "a")
			return err == nil && n.Connected && strings.Contains(string(n.Facts), "second")
		})
	})

	t.Run("a flood of messages is refused past the per-connection rate", func(t *testing.T) {
		h.enroll("flood")
		f, _, err := h.dialRaw("flood", h.secrets["flood"])
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 400; i++ {
			f.send(protocol.TypeFacts, protocol.Facts{Facts: map[string]any{"i": i}})
		}
		e := f.next(protocol.TypeErrorMessage)
		if !strings.Contains(string(e.Data), "Too many messages") {
			t.Errorf("error_message %s", e.Data)
		}
	})

	t.Run("revoking a node closes its live connection and refuses it from then on", func(t *testing.T) {
		if err := h.api.RevokeNode(context.Background(), "b"); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for {
			_, _, err := b.conn.Read(ctx)
			if err == nil {
				continue // frames sent before the close
			}
			if websocket.CloseStatus(err) != 4001 {
				t.Errorf("b's connection ended with %v, want close 4001", err)
			}
			break
		}
		if _, resp, err := h.dialRaw("b", h.secrets["b"]); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("revoked node reconnected: %v %v", err, resp)
		}
		n, err := h.api.InventoryNode(context.Background(), "b")
		if err != nil || n.Connected {
			t.Errorf("inventory after revocation: %+v %v", n, err)
		}
		var ae *client.APIError
		if err := h.api.RevokeNode(context.Background(), "ghost"); !errors.As(err, &ae) || ae.Status != 404 {
			t.Errorf("revoking an unknown node: %v", err)
		}
	})
}
