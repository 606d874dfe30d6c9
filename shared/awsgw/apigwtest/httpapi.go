package apigwtest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// HTTPHandlers are the Lambda functions behind an HTTP API: an optional Lambda authorizer with
// simple responses, and the integration of the route.
type HTTPHandlers struct {
	Authorizer func(context.Context, events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error)
	Handler    func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)
}

// HTTPAPI is an API Gateway HTTP API with one route and the $default stage, calling its Lambda
// with payload format 2.0. It is an http.Handler; Start also serves it on 127.0.0.1.
//
// Requests: header names lower-cased and repeated values joined with commas, Cookie headers moved
// to Cookies, query parameters joined with commas, RawPath escaped, the body base64-encoded
// (IsBase64Encoded) unless it is valid UTF-8 with no Content-Type or a textual one (text/*, JSON,
// XML, JavaScript, form data). Payloads over 10 MB → 413; an event over Lambda's 6 MB → 413.
// Authorizer: a missing identity source → 401 {"message":"Unauthorized"} without calling it;
// IsAuthorized false → 403 {"message":"Forbidden"}; an error or a context value that is not a
// string, number or boolean → 500; its context reaches the handler in
// RequestContext.Authorizer.Lambda, decoded from JSON as a Lambda would (numbers are float64).
// Handler: an error → 500 {"message":"Internal Server Error"}; no answer within the integration
// timeout → 503 {"message":"Service Unavailable"} (what HTTP APIs answer); a response over 6 MB or
// with an invalid status → 500. Responses: StatusCode, Headers, Cookies (one Set-Cookie each) and
// the body, base64-decoded when IsBase64Encoded. MultiValueHeaders is ignored, as in payload format
// 2.0, whose responses have no such field; no Content-Type is added when the handler sets none.
type HTTPAPI struct {
	h      HTTPHandlers
	cfg    config
	ids    []identitySource
	cfgErr error
	log    *slog.Logger
	t      tracker

	mu    sync.Mutex
	stats HTTPStats
	srv   *http.Server
	url   string
}

// NewHTTPAPI returns an HTTP API calling h.
func NewHTTPAPI(h HTTPHandlers, opts ...Option) *HTTPAPI {
	cfg := newConfig("$request.header.Authorization", opts)
	ids, err := cfg.validate()
	return &HTTPAPI{
		h:      h,
		cfg:    cfg,
		ids:    ids,
		cfgErr: err,
		log:    cfg.logger.With("component", "apigwtest", "api", "http", "api_id", cfg.apiID),
		stats:  HTTPStats{Invocations: map[string]int{}},
	}
}

// Start serves the API on an ephemeral port of 127.0.0.1.
func (a *HTTPAPI) Start() error {
	if a.cfgErr != nil {
		return fmt.Errorf("start http api: %w", a.cfgErr)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv != nil {
		return errors.New("start http api: already started")
	}
	if !a.t.enter() {
		return fmt.Errorf("start http api: %w", ErrClosed)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		a.t.wg.Done()
		return fmt.Errorf("start http api: %w", err)
	}
	a.url = "http://" + ln.Addr().String()
	a.srv = &http.Server{
		Handler:           a,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer a.t.wg.Done()
		_ = a.srv.Serve(ln) // returns http.ErrServerClosed on Close
	}()
	return nil
}

// URL is the API's base URL, http://127.0.0.1:port. Empty before Start.
func (a *HTTPAPI) URL() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.url
}

// APIID is the API id used in ARNs and events.
func (a *HTTPAPI) APIID() string { return a.cfg.apiID }

// Stats returns the metering so far.
func (a *HTTPAPI) Stats() HTTPStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.stats
	s.Invocations = maps.Clone(a.stats.Invocations)
	return s
}

// Close stops the server and waits for the handlers still running. It is safe to call more than
// once.
func (a *HTTPAPI) Close() error {
	a.t.mu.Lock()
	if a.t.closed {
		a.t.mu.Unlock()
		return nil
	}
	a.t.closed = true
	a.t.mu.Unlock()
	a.mu.Lock()
	srv := a.srv
	a.mu.Unlock()
	var err error
	if srv != nil {
		if err = srv.Close(); err != nil {
			err = fmt.Errorf("close http api: %w", err)
		}
	}
	a.t.wg.Wait()
	return err
}

func (a *HTTPAPI) count(route string) {
	a.mu.Lock()
	if route == "" {
		a.stats.Requests++
	} else {
		a.stats.Invocations[route]++
	}
	a.mu.Unlock()
}

// ServeHTTP handles one request as API Gateway would.
func (a *HTTPAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const (
		internal     = `{"message":"Internal Server Error"}`
		tooLarge     = `{"message":"Request Entity Too Large"}`
		unauthorized = `{"message":"Unauthorized"}`
	)
	if !a.t.enter() {
		writeJSON(w, http.StatusServiceUnavailable, "", `{"message":"Service Unavailable"}`)
		return
	}
	defer a.t.wg.Done()
	a.count("")
	if a.cfgErr != nil {
		a.log.Error("misconfigured http api", "err", a.cfgErr)
		writeJSON(w, http.StatusInternalServerError, "", internal)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxHTTPPayload+1))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, "", `{"message":"Bad Request"}`)
		return
	}
	if len(body) > MaxHTTPPayload {
		writeJSON(w, http.StatusRequestEntityTooLarge, "", tooLarge)
		return
	}
	ev := a.event(r, body, time.Now())
	log := a.log.With("request_id", ev.RequestContext.RequestID)

	if a.h.Authorizer != nil {
		identity, ok := identityValues(r, a.ids)
		if !ok {
			writeJSON(w, http.StatusUnauthorized, "", unauthorized)
			return
		}
		authz, status, msg := a.authorize(r.Context(), log, ev, identity)
		if status != 0 {
			writeJSON(w, status, "", msg)
			return
		}
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{Lambda: authz}
	}
	if raw, err := json.Marshal(ev); err != nil || len(raw) > MaxLambdaPayload {
		log.Warn("event over the Lambda payload limit", "bytes", len(raw), "err", err)
		writeJSON(w, http.StatusRequestEntityTooLarge, "", tooLarge)
		return
	}
	if a.h.Handler == nil {
		writeJSON(w, http.StatusNotFound, "", `{"message":"Not Found"}`)
		return
	}
	a.count(a.cfg.routeKey)
	resp, err := invoke(r.Context(), a.cfg.integrationTimeout, &a.t.wg, a.h.Handler, ev)
	switch {
	case errors.Is(err, errIntegrationTimeout):
		log.Warn("integration timed out", "timeout", a.cfg.integrationTimeout)
		writeJSON(w, http.StatusServiceUnavailable, "", `{"message":"Service Unavailable"}`)
		return
	case err != nil:
		log.Warn("integration failed", "err", err)
		writeJSON(w, http.StatusInternalServerError, "", internal)
		return
	}
	if err := a.writeResponse(w, resp, ev.RequestContext.RequestID); err != nil {
		log.Warn("integration response unusable", "err", err)
		writeJSON(w, http.StatusInternalServerError, "", internal)
	}
}

func (a *HTTPAPI) authorize(ctx context.Context, log *slog.Logger, ev events.APIGatewayV2HTTPRequest, identity []string) (map[string]interface{}, int, string) {
	const internal = `{"message":"Internal Server Error"}`
	req := events.APIGatewayV2CustomAuthorizerV2Request{
		Version:               "2.0",
		Type:                  "REQUEST",
		RouteArn:              fmt.Sprintf("arn:aws:execute-api:%s:%s:%s/$default/%s%s", Region, AccountID, a.cfg.apiID, ev.RequestContext.HTTP.Method, ev.RawPath),
		IdentitySource:        identity,
		RouteKey:              ev.RouteKey,
		RawPath:               ev.RawPath,
		RawQueryString:        ev.RawQueryString,
		Cookies:               ev.Cookies,
		Headers:               ev.Headers,
		QueryStringParameters: ev.QueryStringParameters,
		RequestContext:        ev.RequestContext,
		PathParameters:        ev.PathParameters,
		StageVariables:        ev.StageVariables,
	}
	a.count("authorizer")
	resp, err := invoke(ctx, a.cfg.integrationTimeout, &a.t.wg, a.h.Authorizer, req)
	if err != nil {
		log.Warn("authorizer failed", "err", err)
		return nil, http.StatusInternalServerError, internal
	}
	if raw, err := json.Marshal(resp); err != nil || len(raw) > MaxAuthorizerResult {
		log.Warn("authorizer result unusable", "bytes", len(raw), "err", err)
		return nil, http.StatusInternalServerError, internal
	}
	authz, err := normalizeContext(resp.Context)
	if err != nil {
		log.Warn("authorizer context unusable", "err", err)
		return nil, http.StatusInternalServerError, internal
	}
	if !resp.IsAuthorized {
		return nil, http.StatusForbidden, `{"message":"Forbidden"}`
	}
	return authz, 0, ""
}

// event builds the payload format 2.0 event of a request.
func (a *HTTPAPI) event(r *http.Request, body []byte, now time.Time) events.APIGatewayV2HTTPRequest {
	ip := sourceIP(r)
	headers := make(map[string]string, len(r.Header)+4)
	var cookies []string
	for k, vs := range r.Header {
		name := strings.ToLower(k)
		if name == "cookie" {
			for _, v := range vs {
				for _, c := range strings.Split(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						cookies = append(cookies, c)
					}
				}
			}
			continue
		}
		headers[name] = strings.Join(vs, ",")
	}
	headers["host"] = r.Host
	if xff := headers["x-forwarded-for"]; xff != "" {
		headers["x-forwarded-for"] = xff + ", " + ip
	} else {
		headers["x-forwarded-for"] = ip
	}
	headers["x-forwarded-port"] = localPort(r)
	headers["x-forwarded-proto"] = "http"

	var query map[string]string
	if q := r.URL.Query(); len(q) > 0 {
		query = make(map[string]string, len(q))
		for k, v := range q {
			query[k] = strings.Join(v, ",")
		}
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	prefix, _, _ := strings.Cut(host, ".")
	id := newOpaqueID()
	ev := events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              a.cfg.routeKey,
		RawPath:               r.URL.EscapedPath(),
		RawQueryString:        r.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: query,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:     a.cfg.routeKey,
			AccountID:    AccountID,
			Stage:        "$default",
			RequestID:    id,
			APIID:        a.cfg.apiID,
			DomainName:   r.Host,
			DomainPrefix: prefix,
			Time:         requestTime(now),
			TimeEpoch:    now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method:    r.Method,
				Path:      r.URL.Path,
				Protocol:  r.Proto,
				SourceIP:  ip,
				UserAgent: r.UserAgent(),
			},
		},
	}
	if strings.HasSuffix(a.cfg.routeKey, "{proxy+}") {
		ev.PathParameters = map[string]string{"proxy": strings.TrimPrefix(r.URL.Path, "/")}
	}
	if len(body) > 0 {
		if utf8.Valid(body) && textual(r.Header.Get("Content-Type")) {
			ev.Body = string(body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(body)
			ev.IsBase64Encoded = true
		}
	}
	return ev
}

// textual reports whether a request body of this content type is passed as text.
func textual(contentType string) bool {
	if contentType == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"),
		mt == "application/json", mt == "application/xml", mt == "application/javascript",
		mt == "application/x-www-form-urlencoded":
		return true
	}
	return false
}

func (a *HTTPAPI) writeResponse(w http.ResponseWriter, resp events.APIGatewayV2HTTPResponse, requestID string) error {
	if raw, err := json.Marshal(resp); err != nil || len(raw) > MaxLambdaPayload {
		return fmt.Errorf("response of %d bytes over the Lambda payload limit (%v)", len(raw), err)
	}
	if resp.StatusCode < 100 || resp.StatusCode > 599 {
		return fmt.Errorf("invalid status code %d", resp.StatusCode)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
			return fmt.Errorf("decode base64 body: %w", err)
		}
	}
	if len(resp.MultiValueHeaders) > 0 {
		a.log.Warn("payload format 2.0 ignores multiValueHeaders in responses; use headers", "request_id", requestID)
	}
	h := w.Header()
	for k, v := range resp.Headers {
		h.Set(k, v)
	}
	for _, c := range resp.Cookies {
		h.Add("Set-Cookie", c)
	}
	if h.Get("Content-Type") == "" {
		h["Content-Type"] = nil // no sniffing: send what the handler said
	}
	h.Set("Apigw-Requestid", requestID)
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
	return nil
}
