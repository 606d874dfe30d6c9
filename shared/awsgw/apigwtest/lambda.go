package apigwtest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// errIntegrationTimeout is what invoke returns when the handler outlives the integration timeout.
var errIntegrationTimeout = errors.New("integration timeout")

// ErrGone is returned by WebSocketAPI.Kill for a connection id that is not open.
var ErrGone = errors.New("connection gone")

// ErrClosed is returned by Start on an API that was closed.
var ErrClosed = errors.New("api closed")

// tracker counts the goroutines of one API so that Close can wait for them, and refuses new work
// once Close has begun (WaitGroup.Add from zero must not race with Wait).
type tracker struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// enter registers one unit of work started from outside the API's own goroutines.
func (t *tracker) enter() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	return true
}

func (t *tracker) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// invoke calls fn like a synchronous Lambda invocation behind API Gateway: with a context that
// carries the integration deadline, turning a panic into an invocation error, and giving up (but
// letting the handler run on, as a Lambda does) when the deadline passes.
func invoke[Req, Resp any](parent context.Context, timeout time.Duration, wg *sync.WaitGroup,
	fn func(context.Context, Req) (Resp, error), req Req) (Resp, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), timeout)
	type result struct {
		resp Resp
		err  error
	}
	done := make(chan result, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		var res result
		defer func() {
			if p := recover(); p != nil {
				res = result{err: fmt.Errorf("handler panic: %v", p)}
			}
			done <- res
		}()
		res.resp, res.err = fn(ctx, req)
	}()
	select {
	case r := <-done:
		return r.resp, r.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			var zero Resp
			return zero, errIntegrationTimeout
		}
		r := <-done // cancelled by the goroutine after it sent its result
		return r.resp, r.err
	}
}

// newOpaqueID returns an id shaped like API Gateway's connection, message and request ids:
// 11 random bytes in URL-safe base64, 16 characters ending in '='.
func newOpaqueID() string {
	b := make([]byte, 11)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error
	return base64.URLEncoding.EncodeToString(b)
}

// newAPIID returns ten random lower-case letters and digits, like an API Gateway API id.
func newAPIID() string {
	return strings.ToLower(rand.Text()[:10])
}

// requestTime formats t like API Gateway's requestContext.requestTime / time.
func requestTime(t time.Time) string {
	return t.UTC().Format("02/Jan/2006:15:04:05 -0700")
}

// writeJSON writes an API Gateway style JSON answer; errorType, when set, goes in
// x-amzn-ErrorType, which is how AWS SDK clients find the modelled exception.
func writeJSON(w http.ResponseWriter, status int, errorType, body string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("x-amzn-RequestId", newOpaqueID())
	if errorType != "" {
		h.Set("x-amzn-ErrorType", errorType)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// normalizeContext checks an authorizer context the way API Gateway does (values must be strings,
// numbers or booleans) and returns it as a Lambda would receive it after JSON decoding.
func normalizeContext(in map[string]interface{}) (map[string]interface{}, error) {
	if in == nil {
		return nil, nil
	}
	raw, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("encode authorizer context: %w", err)
	}
	var out map[string]interface{}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("decode authorizer context: %w", err)
	}
	for k, v := range out {
		switch v.(type) {
		case string, float64, bool:
		default:
			return nil, fmt.Errorf("authorizer context key %q: value of type %T is not a string, number or boolean", k, v)
		}
	}
	return out, nil
}

// identityValues returns the values of the identity sources, and false if one is missing or empty.
func identityValues(r *http.Request, sources []identitySource) ([]string, bool) {
	vals := make([]string, 0, len(sources))
	q := r.URL.Query()
	for _, s := range sources {
		var v string
		if s.header {
			v = strings.Join(r.Header.Values(s.name), ",")
		} else {
			v = strings.Join(q[s.name], ",")
		}
		if v == "" {
			return nil, false
		}
		vals = append(vals, v)
	}
	return vals, true
}

// sourceIP is the client address without its port.
func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func localPort(r *http.Request) string {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, port, err := net.SplitHostPort(a.String()); err == nil {
			return port
		}
	}
	return ""
}

// wildcardMatch matches s against an IAM-style pattern in which '*' matches any run of characters
// (including '/') and '?' any one character.
func wildcardMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// policyAllows evaluates an authorizer's policy for execute-api:Invoke on arn: an explicit Deny
// wins, otherwise some Allow must match.
func policyAllows(statements []policyStatement, arn string) bool {
	allowed := false
	for _, st := range statements {
		if !matchesAny(st.Action, "execute-api:invoke", true) || !matchesAny(st.Resource, arn, false) {
			continue
		}
		switch st.Effect {
		case "Deny":
			return false
		case "Allow":
			allowed = true
		}
	}
	return allowed
}

type policyStatement struct {
	Action   []string
	Effect   string
	Resource []string
}

func matchesAny(patterns []string, s string, foldCase bool) bool {
	for _, p := range patterns {
		if foldCase {
			p = strings.ToLower(p)
		}
		if wildcardMatch(p, s) {
			return true
		}
	}
	return false
}
