package apigwtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/coder/websocket"
)

func postInput(id, data string) *apigatewaymanagementapi.PostToConnectionInput {
	return &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: []byte(data)}
}

func isGone(err error) bool {
	var gone *types.GoneException
	return errors.As(err, &gone)
}

// TestManagementAPIWithSDK drives @connections with the real apigatewaymanagementapi client.
func TestManagementAPIWithSDK(t *testing.T) {
	connects, disconnects := newCalls[wsEvent](), newCalls[wsEvent]()
	api := startWS(t, WebSocketHandlers{Authorizer: allowAll, Connect: recordWS(connects), Disconnect: recordWS(disconnects)})
	client := managementClient(api)
	c := dial(t, api)
	id := connects.next(t).RequestContext.ConnectionID
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	t.Run("post delivers one text message", func(t *testing.T) {
		for _, body := range []string{`{"type":"hello"}`, strings.Repeat("b", 100*1024)} {
			if _, err := client.PostToConnection(ctx, postInput(id, body)); err != nil {
				t.Fatalf("post %d bytes: %v", len(body), err)
			}
			typ, data, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if typ != websocket.MessageText || string(data) != body {
				t.Errorf("client got %v message of %d bytes, want text of %d", typ, len(data), len(body))
			}
		}
		if s := api.Stats(); s.MessagesOut != 2 || s.BillingUnitsOut != 1+4 {
			t.Errorf("messages out %d (%d units), want 2 (5 units)", s.MessagesOut, s.BillingUnitsOut)
		}
	})

	t.Run("post over 128 KB is refused", func(t *testing.T) {
		_, err := client.PostToConnection(ctx, postInput(id, strings.Repeat("c", MaxMessageSize+1)))
		var tooLarge *types.PayloadTooLargeException
		if !errors.As(err, &tooLarge) {
			t.Errorf("post: %v, want PayloadTooLargeException", err)
		}
	})

	t.Run("get connection", func(t *testing.T) {
		out, err := client.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if out.ConnectedAt == nil || time.Since(*out.ConnectedAt) > time.Minute || out.LastActiveAt == nil ||
			out.LastActiveAt.Before(*out.ConnectedAt) {
			t.Errorf("connected at %v, last active %v", out.ConnectedAt, out.LastActiveAt)
		}
		if out.Identity == nil || aws.ToString(out.Identity.SourceIp) != "127.0.0.1" ||
			aws.ToString(out.Identity.UserAgent) != "baton-agent/test" {
			t.Errorf("identity %+v", out.Identity)
		}
	})

	t.Run("unknown connection is gone", func(t *testing.T) {
		if _, err := client.PostToConnection(ctx, postInput("AAAAAAAAAAAAAAA=", "x")); !isGone(err) {
			t.Errorf("post: %v, want GoneException", err)
		}
		_, err := client.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String("nope")})
		if !isGone(err) {
			t.Errorf("get: %v, want GoneException", err)
		}
	})

	t.Run("unsigned request is refused", func(t *testing.T) {
		resp, err := http.Post(api.ManagementURL()+"/@connections/"+id, "application/octet-stream", strings.NewReader("x"))
		if err != nil {
			t.Fatalf("post: %v", err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("status %d, want 403", resp.StatusCode)
		}
	})

	t.Run("delete closes and invokes $disconnect", func(t *testing.T) {
		if _, err := client.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(id)}); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if got := readClose(t, c); got != websocket.StatusNormalClosure {
			t.Errorf("client close status %v, want 1000", got)
		}
		disc := disconnects.next(t)
		if disc.RequestContext.ConnectionID != id || disc.RequestContext.EventType != "DISCONNECT" {
			t.Errorf("$disconnect %+v", disc.RequestContext)
		}
		if _, err := client.PostToConnection(ctx, postInput(id, "after delete")); !isGone(err) {
			t.Errorf("post after delete: %v, want GoneException", err)
		}
		_, err := client.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(id)})
		if !isGone(err) {
			t.Errorf("second delete: %v, want GoneException", err)
		}
	})

	if s := api.Stats(); s.ManagementCalls[http.MethodPost] < 4 || s.ManagementCalls[http.MethodDelete] != 2 || s.ManagementCalls[http.MethodGet] != 2 {
		t.Errorf("management calls %v", s.ManagementCalls)
	}
}

// TestPostIsSentInFramesOfAtMost32KB reads the server's frames with a raw client: a 100 KB post
// must reach the client as one message split into frames of at most 32 KB, as API Gateway does.
func TestPostIsSentInFramesOfAtMost32KB(t *testing.T) {
	connects := newCalls[wsEvent]()
	api := startWS(t, WebSocketHandlers{Connect: recordWS(connects)})
	host := strings.TrimPrefix(api.ManagementURL(), "http://")
	host = host[:strings.IndexByte(host, '/')]

	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(waitLimit)); err != nil {
		t.Fatalf("deadline: %v", err)
	}
	_, err = fmt.Fprintf(conn, "GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer x\r\n\r\n", api.Stage(), host)
	if err != nil {
		t.Fatalf("write handshake: %v", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	id := connects.next(t).RequestContext.ConnectionID

	const size = 100 * 1024
	if _, err := managementClient(api).PostToConnection(context.Background(), postInput(id, strings.Repeat("d", size))); err != nil {
		t.Fatalf("post: %v", err)
	}
	var lengths []int64
	total := int64(0)
	p := frameParser{maxFrame: 1 << 30, maxMessage: 1 << 30, onDataFrame: func(n int64) {
		lengths = append(lengths, n)
		total += n
	}}
	buf := make([]byte, 4096)
	for total < size {
		n, err := br.Read(buf)
		if err != nil {
			t.Fatalf("read frames (%v so far): %v", lengths, err)
		}
		p.feed(buf[:n], nil)
	}
	if len(lengths) < 4 || slices.Max(lengths) > MaxFrameSize {
		t.Errorf("frame payload lengths %v, want at least 4 frames of at most %d bytes", lengths, MaxFrameSize)
	}
}
