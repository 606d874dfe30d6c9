package awsgw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/baton-run/baton/shared/auth"
)

// ErrUnauthorized is what an authorizer returns to refuse a caller: a Lambda authorizer that
// fails with exactly the message "Unauthorized" makes API Gateway answer 401. Any other error
// makes it answer 500, which the authorizers use for failures that are not the caller's fault.
var ErrUnauthorized = errors.New("Unauthorized")

// Headers and query parameters the authorizers read.
const (
	HeaderNode           = "X-Baton-Node"
	HeaderAuthorization  = "Authorization"
	HeaderAuthentication = "X-Authentication"
	QueryToken           = "token"
)

// Keys of the authorizer context that API Gateway hands to the integrations.
const (
	ContextNode  = "node"
	ContextLogin = "login"
)

// NodeAuthenticator checks a node's credential (auth.Service does).
type NodeAuthenticator interface {
	AuthenticateNodeHeader(ctx context.Context, name, authorization string) error
}

// TokenAuthenticator checks an API token (auth.Service does).
type TokenAuthenticator interface {
	AuthenticateToken(ctx context.Context, token string) (auth.Principal, error)
}

// NodeAuthorizer returns the Lambda handler of the WebSocket API's $connect REQUEST authorizer.
// It reads X-Baton-Node and "Authorization: Bearer <secret>", and allows the connection with the
// node name as principal and as context key "node", which API Gateway passes to every route of
// the connection. A refused credential fails with ErrUnauthorized (401); a failure to check it
// (the store is down) fails with another error (500), so agents simply retry later.
func NodeAuthorizer(a NodeAuthenticator, logger *slog.Logger) func(context.Context, events.APIGatewayCustomAuthorizerRequestTypeRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
	log := componentLogger(logger, "node-authorizer")
	return func(ctx context.Context, req events.APIGatewayCustomAuthorizerRequestTypeRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
		log := log.With("request_id", req.RequestContext.RequestID, "source_ip", req.RequestContext.Identity.SourceIP)
		deny := func(reason string, args ...any) (events.APIGatewayCustomAuthorizerResponse, error) {
			log.Warn("agent refused", append([]any{"reason", reason}, args...)...)
			return events.APIGatewayCustomAuthorizerResponse{}, ErrUnauthorized
		}
		node, err := header(req.Headers, req.MultiValueHeaders, HeaderNode)
		if err != nil {
			return deny(err.Error())
		}
		authz, err := header(req.Headers, req.MultiValueHeaders, HeaderAuthorization)
		if err != nil {
			return deny(err.Error(), "node", node)
		}
		switch {
		case node == "":
			return deny("no " + HeaderNode + " header")
		case !auth.ValidNodeName(node):
			return deny("invalid node name", "node", truncate(node, 64))
		}
		if strings.TrimSpace(authz) == "" {
			return deny("no credential in the "+HeaderAuthorization+" header", "node", node)
		}
		if err := a.AuthenticateNodeHeader(ctx, node, authz); err != nil {
			if errors.Is(err, auth.ErrUnauthenticated) {
				return deny(err.Error(), "node", node)
			}
			log.Error("check node credential", "node", node, "err", err)
			return events.APIGatewayCustomAuthorizerResponse{}, fmt.Errorf("check credential of %s: %w", node, err)
		}
		log.Info("agent authorized", "node", node)
		return events.APIGatewayCustomAuthorizerResponse{
			PrincipalID: node,
			PolicyDocument: events.APIGatewayCustomAuthorizerPolicy{
				Version: "2012-10-17",
				Statement: []events.IAMPolicyStatement{{
					Action:   []string{"execute-api:Invoke"},
					Effect:   "Allow",
					Resource: []string{req.MethodArn},
				}},
			},
			Context: map[string]any{ContextNode: node},
		}, nil
	}
}

// TokenAuthorizer returns the Lambda handler of the HTTP API's authorizer (payload format 2.0,
// simple responses). The token comes from the X-Authentication header or, failing that, the
// "token" query parameter, or the web console's session cookie together with its CSRF header
// (auth.SessionFromCookie); the caller's login is passed on as context key "login". A refused
// token gives IsAuthorized false (API Gateway answers 403); a failure to check it is an error
// (500).
func TokenAuthorizer(a TokenAuthenticator, logger *slog.Logger) func(context.Context, events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
	log := componentLogger(logger, "token-authorizer")
	return func(ctx context.Context, req events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
		log := log.With("request_id", req.RequestContext.RequestID, "source_ip", req.RequestContext.HTTP.SourceIP,
			"route", req.RouteKey)
		token, err := header(req.Headers, nil, HeaderAuthentication)
		if err != nil {
			log.Warn("caller refused", "reason", err.Error())
			return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: false}, nil
		}
		if token == "" {
			token = req.QueryStringParameters[QueryToken]
		}
		if token == "" {
			// The web console: its session cookie, which counts only with its CSRF header.
			csrf, err := header(req.Headers, nil, auth.CSRFHeader)
			session, found, ok := auth.SessionFromCookie(req.Cookies, csrf)
			if found && (err != nil || !ok) {
				log.Warn("caller refused", "reason", "a session cookie without its "+auth.CSRFHeader+" header")
				return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: false}, nil
			}
			token = session
		}
		p, err := a.AuthenticateToken(ctx, token)
		if errors.Is(err, auth.ErrUnauthenticated) {
			log.Warn("caller refused", "reason", err.Error())
			return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: false}, nil
		}
		if err != nil {
			log.Error("check token", "err", err)
			return events.APIGatewayV2CustomAuthorizerSimpleResponse{}, fmt.Errorf("check token: %w", err)
		}
		return events.APIGatewayV2CustomAuthorizerSimpleResponse{
			IsAuthorized: true,
			Context:      map[string]any{ContextLogin: p.Login},
		}, nil
	}
}

// header returns the value of header name, looked up case-insensitively in both maps (API
// Gateway lowercases names in some payloads and not in others). A header sent more than once
// with different values is an error: which one API Gateway keeps in Headers is not ours to guess.
func header(single map[string]string, multi map[string][]string, name string) (string, error) {
	var found []string
	add := func(v string) {
		for _, f := range found {
			if f == v {
				return
			}
		}
		found = append(found, v)
	}
	for k, v := range single {
		if strings.EqualFold(k, name) {
			add(v)
		}
	}
	for k, vs := range multi {
		if strings.EqualFold(k, name) {
			for _, v := range vs {
				add(v)
			}
		}
	}
	switch len(found) {
	case 0:
		return "", nil
	case 1:
		return strings.TrimSpace(found[0]), nil
	default:
		return "", fmt.Errorf("header %s sent %d times with different values", name, len(found))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func componentLogger(l *slog.Logger, component string) *slog.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return l.With("component", component)
}
