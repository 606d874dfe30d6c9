package awsgw_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/awsgw"
	"github.com/baton-run/baton/shared/store/sqlite"
)

// newAuth returns the real auth service over a fresh embedded store.
func newAuth(t *testing.T) *auth.Service {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return auth.New(st, time.Now)
}

// connectAuthorizerEvent is the REQUEST authorizer event API Gateway sends for a WebSocket
// $connect (as documented by AWS; headers are filled in per test).
const connectAuthorizerEvent = `{
  "type": "REQUEST",
  "methodArn": "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/$connect",
  "headers": {},
  "multiValueHeaders": {},
  "queryStringParameters": {},
  "multiValueQueryStringParameters": {},
  "stageVariables": {},
  "requestContext": {
    "routeKey": "$connect",
    "eventType": "CONNECT",
    "extendedRequestId": "XHn0oFCWDoEFmzg=",
    "requestTime": "14/Nov/2026:10:21:07 +0000",
    "messageDirection": "IN",
    "stage": "prod",
    "connectedAt": 1794651667000,
    "requestTimeEpoch": 1794651667100,
    "identity": {"sourceIp": "203.0.113.7", "userAgent": "baton-agent"},
    "requestId": "XHn0oFCWDoEFmzg=",
    "domainName": "abcdef1234.execute-api.eu-west-1.amazonaws.com",
    "connectionId": "XHn0oc1PjoECJwA=",
    "apiId": "abcdef1234"
  }
}`

func connectRequest(t *testing.T, headers map[string]string, multi map[string][]string) events.APIGatewayCustomAuthorizerRequestTypeRequest {
	t.Helper()
	var req events.APIGatewayCustomAuthorizerRequestTypeRequest
	if err := json.Unmarshal([]byte(connectAuthorizerEvent), &req); err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Headers[k] = v
	}
	for k, v := range multi {
		req.MultiValueHeaders[k] = v
	}
	return req
}

func TestNodeAuthorizer(t *testing.T) {
	a := newAuth(t)
	ctx := context.Background()
	secret, err := a.EnrollNode(ctx, "web01.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.EnrollNode(ctx, "db01"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		headers map[string]string
		multi   map[string][]string
		allow   bool
	}{
		{name: "canonical headers", allow: true,
			headers: map[string]string{"X-Baton-Node": "web01.example.com", "Authorization": "Bearer " + secret}},
		{name: "lowercased headers", allow: true,
			headers: map[string]string{"x-baton-node": "web01.example.com", "authorization": "Bearer " + secret}},
		{name: "multi-value headers only", allow: true,
			multi: map[string][]string{"x-baton-node": {"web01.example.com"}, "Authorization": {"Bearer " + secret}}},
		{name: "both maps agree", allow: true,
			headers: map[string]string{"X-Baton-Node": "web01.example.com", "Authorization": "Bearer " + secret},
			multi:   map[string][]string{"X-Baton-Node": {"web01.example.com"}, "Authorization": {"Bearer " + secret}}},
		{name: "scheme in lower case", allow: true,
			headers: map[string]string{"X-Baton-Node": "web01.example.com", "Authorization": "bearer " + secret}},
		{name: "no node header",
			headers: map[string]string{"Authorization": "Bearer " + secret}},
		{name: "no authorization header",
			headers: map[string]string{"X-Baton-Node": "web01.example.com"}},
		{name: "no headers at all"},
		{name: "wrong secret",
			headers: map[string]string{"X-Baton-Node": "web01.example.com", "Authorization": "Bearer " + auth.NewSecret()}},
		{name: "another node's secret",
			headers: map[string]string{"X-Baton-Node": "db01", "Authorization": "Bearer " + secret}},
		{name: "unknown node",
			headers: map[string]string{"X-Baton-Node": "nosuch", "Authorization": "Bearer " + secret}},
		{name: "not a bearer credential",
			headers: map[string]string{"X-Baton-Node": "web01.example.com", "Authorization": "Basic " + secret}},
		{name: "empty bearer",
			headers: map[string]string{"X-Baton-Node": "web01.example.com", "Authorization": "Bearer "}},
		{name: "invalid node name",
			headers: map[string]string{"X-Baton-Node": "../web01", "Authorization": "Bearer " + secret}},
		{name: "node header twice with different values",
			multi: map[string][]string{"X-Baton-Node": {"web01.example.com", "db01"}, "Authorization": {"Bearer " + secret}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logBuffer
			h := awsgw.NodeAuthorizer(a, newLogger(&logs))
			req := connectRequest(t, tt.headers, tt.multi)
			resp, err := h(ctx, req)
			t.Log(logs.String())
			if strings.Contains(logs.String(), secret) {
				t.Errorf("the secret was logged")
			}
			if !tt.allow {
				if err == nil || err.Error() != "Unauthorized" || !errors.Is(err, awsgw.ErrUnauthorized) {
					t.Fatalf("err = %v, want exactly Unauthorized", err)
				}
				if resp.PrincipalID != "" || len(resp.PolicyDocument.Statement) != 0 {
					t.Errorf("refusal carries a policy: %+v", resp)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v, want allowed", err)
			}
			if resp.PrincipalID != "web01.example.com" || resp.Context["node"] != "web01.example.com" {
				t.Errorf("principal %q, context %v", resp.PrincipalID, resp.Context)
			}
			st := resp.PolicyDocument.Statement
			if resp.PolicyDocument.Version != "2012-10-17" || len(st) != 1 || st[0].Effect != "Allow" ||
				len(st[0].Action) != 1 || st[0].Action[0] != "execute-api:Invoke" ||
				len(st[0].Resource) != 1 || st[0].Resource[0] != req.MethodArn {
				t.Errorf("policy = %+v", resp.PolicyDocument)
			}
			if b := mustJSON(t, resp); len(b) > 8<<10 {
				t.Errorf("authorizer result is %d bytes, over API Gateway's 8 KB", len(b))
			}
		})
	}
}

// failingNodes is an authenticator whose store is down.
type failingNodes struct{}

func (failingNodes) AuthenticateNodeHeader(context.Context, string, string) error {
	return errors.New("look up node web01: connection refused")
}

func TestNodeAuthorizerStoreFailureIsNotARefusal(t *testing.T) {
	h := awsgw.NodeAuthorizer(failingNodes{}, newLogger(testWriter{t}))
	req := connectRequest(t, map[string]string{"x-baton-node": "web01", "authorization": "Bearer s3cret"}, nil)
	_, err := h(context.Background(), req)
	if err == nil || errors.Is(err, awsgw.ErrUnauthorized) || err.Error() == "Unauthorized" {
		t.Fatalf("err = %v, want an internal error (API Gateway 500), not Unauthorized", err)
	}
}

// httpAuthorizerEvent is a payload format 2.0 authorizer event of the HTTP API (headers are
// lowercased by API Gateway; filled in per test).
const httpAuthorizerEvent = `{
  "version": "2.0",
  "type": "REQUEST",
  "routeArn": "arn:aws:execute-api:eu-west-1:123456789012:api1234567/$default/GET/orchestrator/v1/jobs",
  "identitySource": [],
  "routeKey": "ANY /{proxy+}",
  "rawPath": "/orchestrator/v1/jobs",
  "rawQueryString": "",
  "headers": {"host": "api1234567.execute-api.eu-west-1.amazonaws.com", "user-agent": "baton/1.0"},
  "queryStringParameters": {},
  "requestContext": {
    "accountId": "123456789012",
    "apiId": "api1234567",
    "domainName": "api1234567.execute-api.eu-west-1.amazonaws.com",
    "domainPrefix": "api1234567",
    "http": {"method": "GET", "path": "/orchestrator/v1/jobs", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "baton/1.0"},
    "requestId": "JKJaXmPLvHcESHA=",
    "routeKey": "ANY /{proxy+}",
    "stage": "$default",
    "time": "14/Nov/2026:10:21:07 +0000",
    "timeEpoch": 1794651667100
  }
}`

func TestTokenAuthorizer(t *testing.T) {
	a := newAuth(t)
	ctx := context.Background()
	token, err := a.IssueToken(ctx, "alice", "laptop", 0)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := a.IssueToken(ctx, "bob", "old", time.Nanosecond)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		headers map[string]string
		query   map[string]string
		cookies []string
		allow   bool
	}{
		{name: "lowercased header", headers: map[string]string{"x-authentication": token}, allow: true},
		{name: "canonical header", headers: map[string]string{"X-Authentication": token}, allow: true},
		{name: "query parameter", query: map[string]string{"token": token}, allow: true},
		{name: "header wins over query", headers: map[string]string{"x-authentication": token}, query: map[string]string{"token": "junk"}, allow: true},
		{name: "no token"},
		{name: "unknown token", headers: map[string]string{"x-authentication": auth.NewSecret()}},
		{name: "expired token", headers: map[string]string{"x-authentication": expired}},
		{name: "console session cookie with its CSRF header", cookies: []string{"theme=dark", auth.SessionCookie + "=" + token},
			headers: map[string]string{"x-baton-csrf": auth.CSRFValue(token)}, allow: true},
		{name: "console session cookie without its CSRF header", cookies: []string{auth.SessionCookie + "=" + token}},
		{name: "console session cookie with another session's CSRF value", cookies: []string{auth.SessionCookie + "=" + token},
			headers: map[string]string{"x-baton-csrf": auth.CSRFValue(expired)}},
		{name: "CSRF header without a cookie", headers: map[string]string{"x-baton-csrf": auth.CSRFValue(token)}},
		{name: "expired token in the session cookie", cookies: []string{auth.SessionCookie + "=" + expired},
			headers: map[string]string{"x-baton-csrf": auth.CSRFValue(expired)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logBuffer
			h := awsgw.TokenAuthorizer(a, newLogger(&logs))
			var req events.APIGatewayV2CustomAuthorizerV2Request
			if err := json.Unmarshal([]byte(httpAuthorizerEvent), &req); err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.headers {
				req.Headers[k] = v
			}
			for k, v := range tt.query {
				req.QueryStringParameters[k] = v
			}
			req.Cookies = tt.cookies
			resp, err := h(ctx, req)
			t.Log(logs.String())
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if strings.Contains(logs.String(), token) {
				t.Errorf("the token was logged")
			}
			if resp.IsAuthorized != tt.allow {
				t.Fatalf("IsAuthorized = %v, want %v", resp.IsAuthorized, tt.allow)
			}
			if tt.allow && resp.Context["login"] != "alice" {
				t.Errorf("context = %v, want login alice", resp.Context)
			}
			if !tt.allow && len(resp.Context) != 0 {
				t.Errorf("refusal carries context %v", resp.Context)
			}
		})
	}
}

// failingTokens is a token authenticator whose store is down.
type failingTokens struct{}

func (failingTokens) AuthenticateToken(context.Context, string) (auth.Principal, error) {
	return auth.Principal{}, errors.New("look up token: i/o timeout")
}

func TestTokenAuthorizerStoreFailure(t *testing.T) {
	h := awsgw.TokenAuthorizer(failingTokens{}, newLogger(testWriter{t}))
	resp, err := h(context.Background(), events.APIGatewayV2CustomAuthorizerV2Request{Headers: map[string]string{"x-authentication": "t"}})
	if err == nil || resp.IsAuthorized {
		t.Fatalf("resp %+v, err %v: want an error and no authorization", resp, err)
	}
}
