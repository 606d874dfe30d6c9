package apigwtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

type httpEvent = events.APIGatewayV2HTTPRequest

func startHTTP(t *testing.T, h HTTPHandlers, opts ...Option) *HTTPAPI {
	t.Helper()
	api := NewHTTPAPI(h, append([]Option{WithLogger(testLogger(t))}, opts...)...)
	if err := api.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		if err := api.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return api
}

func authorizeAll(_ context.Context, req events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
	return events.APIGatewayV2CustomAuthorizerSimpleResponse{
		IsAuthorized: true,
		Context:      map[string]interface{}{"user": "alice", "level": 2, "identity": strings.Join(req.IdentitySource, "|")},
	}, nil
}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, body
}

func TestHTTPAPIEventAndResponse(t *testing.T) {
	seen := newCalls[httpEvent]()
	api := startHTTP(t, HTTPHandlers{
		Authorizer: authorizeAll,
		Handler: func(_ context.Context, ev httpEvent) (events.APIGatewayV2HTTPResponse, error) {
			seen.ch <- ev
			return events.APIGatewayV2HTTPResponse{
				StatusCode: http.StatusCreated,
				Headers:    map[string]string{"Content-Type": "application/json", "X-Job": "42"},
				Cookies:    []string{"a=1; Path=/", "b=2"},
				Body:       `{"id":"42"}`,
			}, nil
		},
	}, WithAPIID("httpapi123"))

	req, _ := http.NewRequest(http.MethodPost, api.URL()+"/orchestrator/v1/command/task?x=1&x=2&y=3", strings.NewReader(`{"task":"echo"}`))
	req.Header.Set("Authorization", "tok")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Add("X-Multi", "a")
	req.Header.Add("X-Multi", "b")
	req.Header.Set("Cookie", "c1=v1; c2=v2")
	req.Header.Set("User-Agent", "baton-cli/test")
	resp, body := do(t, req)

	if resp.StatusCode != http.StatusCreated || string(body) != `{"id":"42"}` || resp.Header.Get("X-Job") != "42" ||
		resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Apigw-Requestid") == "" {
		t.Errorf("response %d %q headers %v", resp.StatusCode, body, resp.Header)
	}
	if got := resp.Header.Values("Set-Cookie"); !slices.Equal(got, []string{"a=1; Path=/", "b=2"}) {
		t.Errorf("Set-Cookie %q", got)
	}

	ev := seen.next(t)
	rc := ev.RequestContext
	checks := []struct {
		name      string
		got, want string
	}{
		{"version", ev.Version, "2.0"},
		{"route key", ev.RouteKey, "$default"},
		{"raw path", ev.RawPath, "/orchestrator/v1/command/task"},
		{"raw query", ev.RawQueryString, "x=1&x=2&y=3"},
		{"query x", ev.QueryStringParameters["x"], "1,2"},
		{"query y", ev.QueryStringParameters["y"], "3"},
		{"authorization header", ev.Headers["authorization"], "tok"},
		{"joined header", ev.Headers["x-multi"], "a,b"},
		{"content type", ev.Headers["content-type"], "application/json"},
		{"cookie header removed", ev.Headers["cookie"], ""},
		{"body", ev.Body, `{"task":"echo"}`},
		{"method", rc.HTTP.Method, http.MethodPost},
		{"path", rc.HTTP.Path, "/orchestrator/v1/command/task"},
		{"protocol", rc.HTTP.Protocol, "HTTP/1.1"},
		{"source ip", rc.HTTP.SourceIP, "127.0.0.1"},
		{"user agent", rc.HTTP.UserAgent, "baton-cli/test"},
		{"stage", rc.Stage, "$default"},
		{"api id", rc.APIID, "httpapi123"},
		{"account", rc.AccountID, AccountID},
		{"domain", rc.DomainName, strings.TrimPrefix(api.URL(), "http://")},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !slices.Equal(ev.Cookies, []string{"c1=v1", "c2=v2"}) || ev.IsBase64Encoded || rc.RequestID == "" ||
		rc.TimeEpoch == 0 || rc.Time == "" {
		t.Errorf("cookies %q base64 %v request context %+v", ev.Cookies, ev.IsBase64Encoded, rc)
	}
	if rc.Authorizer == nil || rc.Authorizer.Lambda["user"] != "alice" || rc.Authorizer.Lambda["level"] != float64(2) ||
		rc.Authorizer.Lambda["identity"] != "tok" {
		t.Errorf("authorizer %+v", rc.Authorizer)
	}
	if s := api.Stats(); s.Requests != 1 || s.Invocations["authorizer"] != 1 || s.Invocations["$default"] != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestHTTPAPIAuthorizer(t *testing.T) {
	tests := []struct {
		name           string
		authorizer     func(context.Context, events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error)
		header         string
		wantStatus     int
		wantBody       string
		wantAuthorizer int
	}{
		{name: "missing identity source", authorizer: authorizeAll, wantStatus: http.StatusUnauthorized,
			wantBody: `{"message":"Unauthorized"}`},
		{name: "not authorized", header: "tok", wantStatus: http.StatusForbidden, wantBody: `{"message":"Forbidden"}`, wantAuthorizer: 1,
			authorizer: func(context.Context, events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
				return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: false}, nil
			}},
		{name: "authorizer fails", header: "tok", wantStatus: http.StatusInternalServerError, wantBody: `{"message":"Internal Server Error"}`, wantAuthorizer: 1,
			authorizer: func(context.Context, events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
				return events.APIGatewayV2CustomAuthorizerSimpleResponse{}, errors.New("boom")
			}},
		{name: "authorized", header: "tok", authorizer: authorizeAll, wantStatus: http.StatusOK, wantBody: "ok", wantAuthorizer: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			api := startHTTP(t, HTTPHandlers{
				Authorizer: tc.authorizer,
				Handler: func(context.Context, httpEvent) (events.APIGatewayV2HTTPResponse, error) {
					return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusOK, Body: "ok"}, nil
				},
			})
			req, _ := http.NewRequest(http.MethodGet, api.URL()+"/jobs", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, body := do(t, req)
			if resp.StatusCode != tc.wantStatus || string(body) != tc.wantBody {
				t.Errorf("got %d %s, want %d %s", resp.StatusCode, body, tc.wantStatus, tc.wantBody)
			}
			if n := api.Stats().Invocations["authorizer"]; n != tc.wantAuthorizer {
				t.Errorf("authorizer invoked %d times, want %d", n, tc.wantAuthorizer)
			}
		})
	}
}

func TestHTTPAPIBase64RoundTrip(t *testing.T) {
	binary := []byte{0xff, 0xfe, 0x00, 0x01, 'b', 'a', 't', 'o', 'n', 0x80}
	tests := []struct {
		name        string
		contentType string
		body        []byte
		wantBase64  bool
	}{
		{name: "binary bytes", contentType: "application/octet-stream", body: binary, wantBase64: true},
		{name: "invalid UTF-8 claiming text", contentType: "text/plain", body: binary, wantBase64: true},
		{name: "UTF-8 JSON", contentType: "application/json; charset=utf-8", body: []byte(`{"é":1}`)},
		{name: "UTF-8 as octet-stream", contentType: "application/octet-stream", body: []byte("plain"), wantBase64: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seen := newCalls[httpEvent]()
			api := startHTTP(t, HTTPHandlers{Handler: func(_ context.Context, ev httpEvent) (events.APIGatewayV2HTTPResponse, error) {
				seen.ch <- ev
				// Echo the request body back, base64-encoded.
				body := ev.Body
				if !ev.IsBase64Encoded {
					body = base64.StdEncoding.EncodeToString([]byte(ev.Body))
				}
				return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusOK, Body: body, IsBase64Encoded: true,
					Headers: map[string]string{"Content-Type": "application/octet-stream"}}, nil
			}})
			req, _ := http.NewRequest(http.MethodPut, api.URL()+"/blob", bytes.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.contentType)
			resp, body := do(t, req)
			ev := seen.next(t)
			if ev.IsBase64Encoded != tc.wantBase64 {
				t.Errorf("IsBase64Encoded %v, want %v", ev.IsBase64Encoded, tc.wantBase64)
			}
			got := []byte(ev.Body)
			if ev.IsBase64Encoded {
				var err error
				if got, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
					t.Fatalf("decode event body: %v", err)
				}
			}
			if !bytes.Equal(got, tc.body) {
				t.Errorf("event body %x, want %x", got, tc.body)
			}
			if resp.StatusCode != http.StatusOK || !bytes.Equal(body, tc.body) {
				t.Errorf("response %d %x, want 200 %x", resp.StatusCode, body, tc.body)
			}
		})
	}
}

func TestHTTPAPIFailures(t *testing.T) {
	tests := []struct {
		name       string
		handler    func(context.Context, httpEvent) (events.APIGatewayV2HTTPResponse, error)
		body       int
		timeout    time.Duration
		wantStatus int
		wantBody   string
	}{
		{name: "integration timeout", timeout: 50 * time.Millisecond, wantStatus: http.StatusServiceUnavailable, wantBody: `{"message":"Service Unavailable"}`,
			handler: func(ctx context.Context, _ httpEvent) (events.APIGatewayV2HTTPResponse, error) {
				<-ctx.Done()
				return events.APIGatewayV2HTTPResponse{}, ctx.Err()
			}},
		{name: "handler error", wantStatus: http.StatusInternalServerError, wantBody: `{"message":"Internal Server Error"}`,
			handler: func(context.Context, httpEvent) (events.APIGatewayV2HTTPResponse, error) {
				return events.APIGatewayV2HTTPResponse{}, errors.New("boom")
			}},
		{name: "no status code", wantStatus: http.StatusInternalServerError, wantBody: `{"message":"Internal Server Error"}`,
			handler: func(context.Context, httpEvent) (events.APIGatewayV2HTTPResponse, error) {
				return events.APIGatewayV2HTTPResponse{Body: "forgot the status"}, nil
			}},
		{name: "response over 6 MB", wantStatus: http.StatusInternalServerError, wantBody: `{"message":"Internal Server Error"}`,
			handler: func(context.Context, httpEvent) (events.APIGatewayV2HTTPResponse, error) {
				return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusOK, Body: strings.Repeat("x", MaxLambdaPayload)}, nil
			}},
		{name: "payload over 10 MB", body: MaxHTTPPayload + 1, wantStatus: http.StatusRequestEntityTooLarge,
			wantBody: `{"message":"Request Entity Too Large"}`},
		{name: "event over 6 MB", body: 7 << 20, wantStatus: http.StatusRequestEntityTooLarge,
			wantBody: `{"message":"Request Entity Too Large"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			handler := tc.handler
			if handler == nil {
				handler = func(context.Context, httpEvent) (events.APIGatewayV2HTTPResponse, error) {
					t.Error("handler invoked for a refused request")
					return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusOK}, nil
				}
			}
			timeout := tc.timeout
			if timeout == 0 {
				timeout = waitLimit
			}
			api := startHTTP(t, HTTPHandlers{Handler: handler}, WithIntegrationTimeout(timeout))
			req, _ := http.NewRequest(http.MethodPost, api.URL()+"/x", bytes.NewReader(bytes.Repeat([]byte{'a'}, tc.body)))
			resp, body := do(t, req)
			if resp.StatusCode != tc.wantStatus || string(body) != tc.wantBody {
				t.Errorf("got %d %.80s, want %d %s", resp.StatusCode, body, tc.wantStatus, tc.wantBody)
			}
		})
	}
}

func TestHTTPAPIProxyRoute(t *testing.T) {
	seen := newCalls[httpEvent]()
	api := startHTTP(t, HTTPHandlers{Handler: func(_ context.Context, ev httpEvent) (events.APIGatewayV2HTTPResponse, error) {
		seen.ch <- ev
		return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusNoContent}, nil
	}}, WithRouteKey("ANY /{proxy+}"))
	resp, _ := do(t, mustRequest(t, http.MethodDelete, api.URL()+"/jobs/42%2F1"))
	ev := seen.next(t)
	if resp.StatusCode != http.StatusNoContent || ev.RouteKey != "ANY /{proxy+}" || ev.RequestContext.RouteKey != "ANY /{proxy+}" ||
		ev.PathParameters["proxy"] != "jobs/42/1" || ev.RawPath != "/jobs/42%2F1" {
		t.Errorf("status %d route %q path parameters %v raw path %q", resp.StatusCode, ev.RouteKey, ev.PathParameters, ev.RawPath)
	}
	if s := api.Stats(); s.Invocations["ANY /{proxy+}"] != 1 {
		t.Errorf("invocations %v", s.Invocations)
	}
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	return req
}

func TestInvalidOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
	}{
		{name: "identity source from a stage variable", opts: []Option{WithIdentitySource("$stageVariables.key")}},
		{name: "empty header name", opts: []Option{WithIdentitySource("route.request.header.")}},
		{name: "stage with a slash", opts: []Option{WithStage("a/b")}},
		{name: "zero idle timeout", opts: []Option{WithIdleTimeout(0)}},
		{name: "malformed route key", opts: []Option{WithRouteKey("/jobs")}},
		{name: "reserved concurrency of an unknown function", opts: []Option{WithReservedConcurrency("api", 5)}},
		{name: "reserved concurrency of zero", opts: []Option{WithReservedConcurrency("$default", 0)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ws := NewWebSocketAPI(WebSocketHandlers{}, tc.opts...)
			if err := ws.Start(); err == nil {
				_ = ws.Close()
				t.Error("websocket api started with invalid options")
			}
			h := NewHTTPAPI(HTTPHandlers{}, tc.opts...)
			if err := h.Start(); err == nil {
				_ = h.Close()
				t.Error("http api started with invalid options")
			}
		})
	}
}

func TestStartAfterClose(t *testing.T) {
	api := NewWebSocketAPI(WebSocketHandlers{})
	if err := api.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := api.Start(); !errors.Is(err, ErrClosed) {
		t.Errorf("start after close: %v, want ErrClosed", err)
	}
	h := NewHTTPAPI(HTTPHandlers{})
	if err := h.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := h.Start(); !errors.Is(err, ErrClosed) {
		t.Errorf("start after close: %v, want ErrClosed", err)
	}
}
