package apigwtest

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Limits and defaults of API Gateway and Lambda (API Gateway developer guide, "Quotas for
// configuring and running a WebSocket API" and "HTTP API quotas"; Lambda quotas).
const (
	DefaultIdleTimeout           = 10 * time.Minute
	DefaultMaxConnectionDuration = 2 * time.Hour
	DefaultIntegrationTimeout    = 29 * time.Second // WebSocket; HTTP APIs allow 30 s, 29 s is the safe common value

	MaxFrameSize        = 32 * 1024        // WebSocket frame size, not raisable
	MaxMessageSize      = 128 * 1024       // WebSocket message payload, also for @connections POST
	MaxHTTPPayload      = 10 * 1024 * 1024 // HTTP API request payload
	MaxLambdaPayload    = 6 * 1024 * 1024  // synchronous Lambda invocation, request and response
	MaxAuthorizerResult = 8 * 1024         // Lambda authorizer result size
	BillingUnit         = 32 * 1024        // WebSocket messages are metered in 32 KB increments

	Region    = "us-east-1"
	AccountID = "123456789012"
)

// Option configures a WebSocketAPI or an HTTPAPI. Options that concern only one kind of API say so
// and are ignored by the other.
type Option func(*config)

type config struct {
	stage              string
	apiID              string
	idleTimeout        time.Duration
	maxConnDuration    time.Duration
	integrationTimeout time.Duration
	identitySources    []string
	routeKey           string
	logger             *slog.Logger
	throttle           func(body []byte) bool
	drop               func(body []byte) bool
	reserved           map[string]int // WebSocket route or "authorizer" → concurrent invocations
}

func newConfig(defaultIdentity string, opts []Option) config {
	c := config{
		stage:              "test",
		apiID:              newAPIID(),
		idleTimeout:        DefaultIdleTimeout,
		maxConnDuration:    DefaultMaxConnectionDuration,
		integrationTimeout: DefaultIntegrationTimeout,
		identitySources:    []string{defaultIdentity},
		routeKey:           "$default",
		logger:             slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithStage names the WebSocket API's stage (default "test"): URL() is ws://host/{stage}. The HTTP
// API always uses the "$default" stage, which has no path prefix.
func WithStage(name string) Option { return func(c *config) { c.stage = name } }

// WithAPIID fixes the API id (default: ten random lower-case letters and digits, like AWS's).
func WithAPIID(id string) Option { return func(c *config) { c.apiID = id } }

// WithIdleTimeout sets the WebSocket idle connection timeout (default 10 minutes).
func WithIdleTimeout(d time.Duration) Option { return func(c *config) { c.idleTimeout = d } }

// WithMaxConnectionDuration sets the WebSocket maximum connection duration (default 2 hours).
func WithMaxConnectionDuration(d time.Duration) Option {
	return func(c *config) { c.maxConnDuration = d }
}

// WithIntegrationTimeout sets how long API Gateway waits for a Lambda (authorizer or integration)
// before giving up (default 29 s).
func WithIntegrationTimeout(d time.Duration) Option {
	return func(c *config) { c.integrationTimeout = d }
}

// WithIdentitySource sets the authorizer's identity sources, as API Gateway mapping expressions:
// "route.request.header.NAME" / "route.request.querystring.NAME" (WebSocket) or
// "$request.header.NAME" / "$request.querystring.NAME" (HTTP); either spelling is accepted by both
// APIs. A request missing any of them (absent or empty) is answered 401 without calling the
// authorizer. The default is the Authorization header, as in the CDK's WebSocketLambdaAuthorizer and
// HttpLambdaAuthorizer; WithIdentitySource() with no argument removes the check.
func WithIdentitySource(exprs ...string) Option {
	return func(c *config) { c.identitySources = exprs }
}

// WithRouteKey sets the HTTP API route key (default "$default"). With a greedy route such as
// "ANY /{proxy+}" the event carries PathParameters{"proxy": path without its leading slash}.
func WithRouteKey(key string) Option { return func(c *config) { c.routeKey = key } }

// WithThrottle makes the WebSocket API throttle the messages for which throttle returns
// true, as a stage or route throttle does: the message reaches no route, and the client gets
// API Gateway's {"message": "Too Many Requests", ...} frame instead.
func WithThrottle(throttle func(body []byte) bool) Option {
	return func(c *config) { c.throttle = throttle }
}

// WithDrop makes the WebSocket API lose the messages for which drop returns true without a
// word: the message reaches no route and the client gets nothing (API Gateway only "may"
// answer a throttled message, and a message can be lost on its way). Stats.Dropped counts them.
func WithDrop(drop func(body []byte) bool) Option {
	return func(c *config) { c.drop = drop }
}

// WithReservedConcurrency caps the concurrent invocations of one of a WebSocket API's Lambda
// functions, as its reserved concurrency does on AWS: fn is "authorizer", "$connect",
// "$disconnect" or "$default". Lambda throttles a synchronous invocation beyond the cap at once
// (it does not queue it) and API Gateway turns the throttle into an integration failure: an
// upgrade is refused with 500 {"message":"Internal server error"} (authorizer or $connect), a
// message gets the client API Gateway's "Internal server error" message ($default), and a
// $disconnect is lost. An invocation holds its place until its handler returns, even past the
// integration timeout. Stats.LambdaThrottles counts the throttled invocations by function.
// Ignored by an HTTPAPI.
func WithReservedConcurrency(fn string, n int) Option {
	return func(c *config) {
		if c.reserved == nil {
			c.reserved = map[string]int{}
		}
		c.reserved[fn] = n
	}
}

// WithLogger sets the logger for integration failures and limit violations (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// identitySource is one parsed identity-source expression.
type identitySource struct {
	header bool // false: query string parameter
	name   string
}

func (c config) validate() ([]identitySource, error) {
	if c.stage == "" || strings.ContainsAny(c.stage, "/?#") {
		return nil, fmt.Errorf("invalid stage name %q", c.stage)
	}
	if c.idleTimeout <= 0 || c.maxConnDuration <= 0 || c.integrationTimeout <= 0 {
		return nil, fmt.Errorf("timeouts must be positive (idle %v, max duration %v, integration %v)",
			c.idleTimeout, c.maxConnDuration, c.integrationTimeout)
	}
	for fn, n := range c.reserved {
		switch fn {
		case "authorizer", "$connect", "$disconnect", "$default":
		default:
			return nil, fmt.Errorf("reserved concurrency of %q: want authorizer, $connect, $disconnect or $default", fn)
		}
		if n < 1 {
			return nil, fmt.Errorf("reserved concurrency of %s: %d, want at least 1", fn, n)
		}
	}
	if c.routeKey != "$default" && len(strings.Fields(c.routeKey)) != 2 {
		return nil, fmt.Errorf("invalid route key %q: want $default or \"METHOD /path\"", c.routeKey)
	}
	out := make([]identitySource, 0, len(c.identitySources))
	for _, e := range c.identitySources {
		src, err := parseIdentitySource(e)
		if err != nil {
			return nil, err
		}
		out = append(out, src)
	}
	return out, nil
}

func parseIdentitySource(expr string) (identitySource, error) {
	rest := strings.TrimPrefix(strings.TrimPrefix(expr, "route."), "$")
	switch {
	case strings.HasPrefix(rest, "request.header.") && len(rest) > len("request.header."):
		return identitySource{header: true, name: strings.TrimPrefix(rest, "request.header.")}, nil
	case strings.HasPrefix(rest, "request.querystring.") && len(rest) > len("request.querystring."):
		return identitySource{name: strings.TrimPrefix(rest, "request.querystring.")}, nil
	}
	return identitySource{}, fmt.Errorf("unsupported identity source %q: want a request header or query string expression", expr)
}
