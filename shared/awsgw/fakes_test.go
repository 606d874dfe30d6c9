package awsgw_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"

	"github.com/baton-run/baton/shared/awsgw"
	"github.com/baton-run/baton/shared/protocol"
)

// answer is one scripted reply of the fake @connections endpoint.
type answer struct {
	status  int
	errType string // x-amzn-ErrorType; empty for an unmodelled error
}

var (
	ok200     = answer{status: http.StatusOK}
	gone410   = answer{http.StatusGone, "GoneException"}
	limit429  = answer{http.StatusTooManyRequests, "LimitExceededException"}
	plain429  = answer{status: http.StatusTooManyRequests}
	server500 = answer{http.StatusInternalServerError, "InternalServerErrorException"}
)

// post is one request the fake @connections endpoint received.
type post struct {
	conn   string
	body   []byte
	status int
	signed bool
}

// connectionsAPI stands in for API Gateway's @connections endpoint of stage "prod": it records
// every POST /prod/@connections/{id} and answers from a per-connection script (then 200), or 410
// for connections marked gone.
type connectionsAPI struct {
	srv *httptest.Server

	mu     sync.Mutex
	script map[string][]answer
	always map[string]answer
	posts  []post
}

func newConnectionsAPI(t *testing.T) *connectionsAPI {
	t.Helper()
	c := &connectionsAPI{script: map[string][]answer{}, always: map[string]answer{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /prod/@connections/{id}", c.handle)
	c.srv = httptest.NewServer(mux)
	t.Cleanup(c.srv.Close)
	return c
}

func (c *connectionsAPI) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id := r.PathValue("id")
	auth := r.Header.Get("Authorization")
	signed := strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") && strings.Contains(auth, "/execute-api/aws4_request")
	c.mu.Lock()
	a, fixed := c.always[id]
	if !fixed {
		a = ok200
		if s := c.script[id]; len(s) > 0 {
			a, c.script[id] = s[0], s[1:]
		}
	}
	c.posts = append(c.posts, post{conn: id, body: body, status: a.status, signed: signed})
	c.mu.Unlock()
	if a.status == http.StatusOK {
		w.WriteHeader(http.StatusOK)
		return
	}
	if a.errType != "" {
		w.Header().Set("X-Amzn-ErrorType", a.errType)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_, _ = w.Write([]byte(`{"message":"` + http.StatusText(a.status) + `"}`))
}

// answerWith scripts the next answers for conn.
func (c *connectionsAPI) answerWith(conn string, answers ...answer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.script[conn] = append(c.script[conn], answers...)
}

// alwaysAnswer makes every post to conn get a.
func (c *connectionsAPI) alwaysAnswer(conn string, a answer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.always[conn] = a
}

func (c *connectionsAPI) received() []post {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]post(nil), c.posts...)
}

// delivered returns the bodies answered 200, per connection.
func (c *connectionsAPI) delivered() map[string][][]byte {
	out := map[string][][]byte{}
	for _, p := range c.received() {
		if p.status == http.StatusOK {
			out[p.conn] = append(out[p.conn], p.body)
		}
	}
	return out
}

// client returns an SDK client for the fake stage with static credentials and the standard
// retryer (3 attempts) without its waits, so that tests see what the SDK itself would retry.
func (c *connectionsAPI) client() *apigatewaymanagementapi.Client {
	return apigatewaymanagementapi.New(apigatewaymanagementapi.Options{
		BaseEndpoint: aws.String(c.srv.URL + "/prod"),
		Region:       "eu-west-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG", Source: "test"}, nil
		}),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		}),
	})
}

// conns is an in-memory ConnectionLookup: node → connection id (connected when present).
type conns struct {
	mu  sync.Mutex
	ids map[string]string
	err error
}

func (c *conns) Connection(_ context.Context, node string) (string, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return "", false, c.err
	}
	id, ok := c.ids[node]
	return id, ok, nil
}

// connEvent is one NodeConnected or NodeDisconnected call.
type connEvent struct{ node, conn string }

// inbox records what the control plane is told, and refuses with the configured errors.
type inbox struct {
	mu           sync.Mutex
	connected    []connEvent
	connectedAt  []time.Time // the connection times NodeConnected was given
	disconnected []connEvent
	messages     map[string][]protocol.Envelope // node → messages
	connectErr   error
	handleErr    error
	disconnErr   error
}

func (in *inbox) HandleAgentMessage(_ context.Context, node string, e protocol.Envelope) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.messages == nil {
		in.messages = map[string][]protocol.Envelope{}
	}
	in.messages[node] = append(in.messages[node], e)
	return in.handleErr
}

func (in *inbox) NodeConnected(_ context.Context, node, conn string, at time.Time) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.connected = append(in.connected, connEvent{node, conn})
	in.connectedAt = append(in.connectedAt, at)
	return in.connectErr
}

func (in *inbox) NodeDisconnected(_ context.Context, node, conn string) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.disconnected = append(in.disconnected, connEvent{node, conn})
	return in.disconnErr
}

// meter records every AddMessages call.
type meter struct {
	mu    sync.Mutex
	calls []meterCall
}

type meterCall struct {
	direction string
	n, units  int
}

func (m *meter) AddMessages(direction string, n, units int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, meterCall{direction, n, units})
}

func (m *meter) recorded() []meterCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]meterCall(nil), m.calls...)
}

// fastBackoff keeps the retry waits of throttled posts under a millisecond.
var fastBackoff = awsgw.WithBackoff(awsgw.Backoff{Attempts: 4, Base: 10 * time.Microsecond, Max: 200 * time.Microsecond})

// logBuffer is a concurrency-safe log sink whose contents tests can inspect.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
