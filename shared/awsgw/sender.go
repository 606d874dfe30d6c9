package awsgw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/usage"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/aws/smithy-go"

	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/protocol"
)

// MaxMessageBytes is API Gateway's limit on one WebSocket message (128 KB, not raisable). A
// larger message would close the agent's connection with status 1009, so it is never sent.
const MaxMessageBytes = 128 << 10

// FrameBytes is API Gateway's WebSocket frame size, also its billing unit for messages.
const FrameBytes = 32 << 10

// ErrTooLarge is wrapped when a message does not fit in one API Gateway WebSocket message.
var ErrTooLarge = errors.New("message larger than API Gateway's 128 KB WebSocket limit")

// ErrThrottled is wrapped when @connections kept answering 429 through every attempt.
var ErrThrottled = errors.New("throttled by API Gateway")

// Directions reported to a Meter.
const (
	DirectionIn  = "in"
	DirectionOut = "out"
)

// Meter counts WebSocket messages as API Gateway bills them: billingUnits is the number of
// 32 KB units (a message of n bytes is ceil(n / 32 KiB) units, at least one).
type Meter interface {
	AddMessages(direction string, n, billingUnits int)
}

// ConnectionLookup finds the API Gateway connection id a node's agent last connected with
// (the inventory's Connection and Connected fields).
type ConnectionLookup interface {
	Connection(ctx context.Context, node string) (connID string, connected bool, err error)
}

// Disconnector is told when API Gateway reports a connection gone (410).
type Disconnector interface {
	NodeDisconnected(ctx context.Context, node, conn string) error
}

// Backoff bounds the retries of a throttled post: Attempts tries in all, waiting a random
// duration in [0, min(Max, Base·2^(n-1))] before retry n ("full jitter").
type Backoff struct {
	Attempts int           // tries in all, the first included; default 5
	Base     time.Duration // default 50ms
	Max      time.Duration // default 2s
}

func (b Backoff) withDefaults() Backoff {
	if b.Attempts <= 0 {
		b.Attempts = 5
	}
	if b.Base <= 0 {
		b.Base = 50 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 2 * time.Second
	}
	return b
}

// delay returns the wait before retry n (n ≥ 1); jitter(k) returns a number in [0, k).
func (b Backoff) delay(n int, jitter func(int64) int64) time.Duration {
	ceiling := b.Max
	if shift := n - 1; shift < 62 && b.Base <= b.Max>>shift {
		ceiling = b.Base << shift
	}
	return time.Duration(jitter(int64(ceiling) + 1))
}

// Option configures a Sender.
type Option func(*Sender)

// WithMeter counts the messages sent (and, through a WebSocket built on this Sender, received).
func WithMeter(m Meter) Option { return func(s *Sender) { s.meter = m } }

// WithBackoff sets the retry bounds for throttled posts.
func WithBackoff(b Backoff) Option { return func(s *Sender) { s.backoff = b } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Sender) { s.log = l } }

// Sender delivers messages to agents through API Gateway's @connections API. It implements
// orchestrator.Sender.
//
// Retries: Sender alone retries throttling (429), with Backoff. On each call it wraps the
// client's retryer so that the SDK does not retry throttling as well (which would multiply the
// attempts) nor a GoneException (410: the connection is closed for good; the standard retryer
// does not retry it either, and this makes sure of it whatever retryer the client was built
// with). Other transient failures (5xx, network) are left to the client's retryer.
type Sender struct {
	client  *apigatewaymanagementapi.Client
	conns   ConnectionLookup
	inbox   Disconnector
	meter   Meter
	backoff Backoff
	jitter  func(int64) int64
	log     *slog.Logger
}

var _ orchestrator.Sender = (*Sender)(nil)

// NewSender returns a Sender posting with client, which must have the WebSocket stage's
// endpoint as BaseEndpoint (https://{api-id}.execute-api.{region}.amazonaws.com/{stage}).
func NewSender(client *apigatewaymanagementapi.Client, conns ConnectionLookup, inbox Disconnector, opts ...Option) *Sender {
	s := &Sender{client: client, conns: conns, inbox: inbox, jitter: rand.Int64N}
	for _, o := range opts {
		o(s)
	}
	s.backoff = s.backoff.withDefaults()
	s.log = componentLogger(s.log, "ws-sender")
	return s
}

// Send delivers e to node's agent over the connection the inventory records for it. It fails
// with orchestrator.ErrNotConnected when the node has no connection or API Gateway says the
// connection is gone (and then records the node disconnected), with ErrTooLarge for a message
// over MaxMessageBytes (nothing is sent), and with ErrThrottled when every attempt was throttled.
func (s *Sender) Send(ctx context.Context, node string, e protocol.Envelope) error {
	connID, connected, err := s.conns.Connection(ctx, node)
	if err != nil {
		return fmt.Errorf("send to %s: look up connection: %w", node, err)
	}
	if !connected || connID == "" {
		return fmt.Errorf("send to %s: %w", node, orchestrator.ErrNotConnected)
	}
	b, err := encode(e)
	if err != nil {
		return fmt.Errorf("send to %s: %w", node, err)
	}
	err = s.post(ctx, connID, b)
	if isGone(err) {
		s.log.Info("connection gone", "node", node, "conn", connID)
		if derr := s.inbox.NodeDisconnected(ctx, node, connID); derr != nil {
			s.log.Error("record node disconnected", "node", node, "conn", connID, "err", derr)
		}
		return fmt.Errorf("send to %s over connection %s: %w: %w", node, connID, orchestrator.ErrNotConnected, err)
	}
	if err != nil {
		return fmt.Errorf("send %s to %s over connection %s: %w", e.MessageType, node, connID, err)
	}
	return nil
}

// PostToConnectionID delivers e to connection connID, whoever it belongs to: the WebSocket
// handlers answer a frame on the connection it came from. Errors are those of Send, except that
// a gone connection is not recorded anywhere ($disconnect does that).
func (s *Sender) PostToConnectionID(ctx context.Context, connID string, e protocol.Envelope) error {
	b, err := encode(e)
	if err != nil {
		return fmt.Errorf("post to connection %s: %w", connID, err)
	}
	err = s.post(ctx, connID, b)
	if isGone(err) {
		return fmt.Errorf("post to connection %s: %w: %w", connID, orchestrator.ErrNotConnected, err)
	}
	if err != nil {
		return fmt.Errorf("post %s to connection %s: %w", e.MessageType, connID, err)
	}
	return nil
}

func encode(e protocol.Envelope) ([]byte, error) {
	b, err := protocol.Encode(e)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxMessageBytes {
		return nil, fmt.Errorf("%s %s is %d bytes: %w", e.MessageType, e.ID, len(b), ErrTooLarge)
	}
	return b, nil
}

// post sends one message, retrying while API Gateway throttles.
func (s *Sender) post(ctx context.Context, connID string, b []byte) error {
	in := &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(connID), Data: b}
	for attempt := 1; ; attempt++ {
		_, err := s.client.PostToConnection(ctx, in, ownRetries)
		if err == nil {
			s.count(ctx, DirectionOut, len(b))
			return nil
		}
		if !isThrottled(err) {
			return err
		}
		if attempt >= s.backoff.Attempts {
			return fmt.Errorf("%w after %d attempts: %w", ErrThrottled, attempt, err)
		}
		d := s.backoff.delay(attempt, s.jitter)
		s.log.Debug("throttled, retrying", "conn", connID, "attempt", attempt, "wait", d)
		if werr := wait(ctx, d); werr != nil {
			return fmt.Errorf("%w (gave up waiting to retry: %w): %w", ErrThrottled, werr, err)
		}
	}
}

func (s *Sender) count(ctx context.Context, direction string, size int) {
	if s != nil && s.meter != nil {
		s.meter.AddMessages(direction, 1, billingUnits(size))
	}
	u := store.Usage{MessageUnits: int64(billingUnits(size))}
	if direction == DirectionIn {
		u.MessagesIn = 1
	} else {
		u.MessagesOut = 1
	}
	usage.From(ctx).Add(u)
}

// billingUnits is the number of 32 KB units API Gateway bills a message of size bytes as.
func billingUnits(size int) int {
	if size <= 0 {
		return 1
	}
	return (size + FrameBytes - 1) / FrameBytes
}

func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ownRetries keeps the SDK from retrying what Sender handles itself (see Sender).
func ownRetries(o *apigatewaymanagementapi.Options) {
	if o.Retryer == nil {
		o.Retryer = aws.NopRetryer{}
	}
	o.Retryer = sdkRetryer{o.Retryer}
}

// sdkRetryer is the client's retryer minus throttling and gone connections.
type sdkRetryer struct{ aws.Retryer }

func (r sdkRetryer) IsErrorRetryable(err error) bool {
	if isGone(err) || isThrottled(err) {
		return false
	}
	return r.Retryer.IsErrorRetryable(err)
}

// GetAttemptToken implements aws.RetryerV2 when the wrapped retryer does.
func (r sdkRetryer) GetAttemptToken(ctx context.Context) (func(error) error, error) {
	if v2, ok := r.Retryer.(aws.RetryerV2); ok {
		return v2.GetAttemptToken(ctx)
	}
	return r.Retryer.GetInitialToken(), nil //nolint:staticcheck // the V1 fallback the SDK itself uses
}

func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// isGone reports whether err says the connection no longer exists (410 GoneException).
func isGone(err error) bool {
	if err == nil {
		return false
	}
	var gone *types.GoneException
	return errors.As(err, &gone) || httpStatus(err) == http.StatusGone
}

// isThrottled reports whether err is API Gateway throttling the call (429).
func isThrottled(err error) bool {
	if err == nil {
		return false
	}
	var limit *types.LimitExceededException
	if errors.As(err, &limit) || httpStatus(err) == http.StatusTooManyRequests {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch code := api.ErrorCode(); {
		case strings.EqualFold(code, "TooManyRequestsException"), strings.EqualFold(code, "ThrottlingException"),
			strings.EqualFold(code, "Throttling"), strings.EqualFold(code, "LimitExceededException"):
			return true
		}
	}
	return false
}

// Disconnect closes node's live connection through @connections DELETE (after its credential
// was revoked). A connection that is already gone is not an error.
func (s *Sender) Disconnect(ctx context.Context, node string) error {
	connID, connected, err := s.conns.Connection(ctx, node)
	if err != nil {
		return fmt.Errorf("disconnect %s: %w", node, err)
	}
	if !connected || connID == "" {
		return nil
	}
	_, err = s.client.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(connID)})
	var gone *types.GoneException
	if err != nil && !errors.As(err, &gone) {
		return fmt.Errorf("disconnect %s: %w", node, err)
	}
	return nil
}
