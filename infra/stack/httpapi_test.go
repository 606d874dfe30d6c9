package stack

import (
	"slices"
	"strings"
	"testing"

	"github.com/aws/jsii-runtime-go"
)

func TestAPIRoutes(t *testing.T) {
	s := synth(t, defaultVariant)
	apiID := cfnID(t, s.stack.Stack, s.stack.API.HTTPAPI.Node().DefaultChild())
	api := s.resources("AWS::ApiGatewayV2::Api")[apiID]
	if got := props(api)["ProtocolType"]; got != "HTTP" {
		t.Fatalf("API protocol = %v, want HTTP", got)
	}
	routes := s.routes(apiID)
	want := []string{"GET /orchestrator/v1", "ANY /orchestrator/{proxy+}", "ANY /baton/{proxy+}"}
	public := []string{"POST /baton/v1/enroll", "GET /", "GET /console/{proxy+}", "POST /baton/v1/session"}
	all := append(slices.Clone(want), public...)
	if got := slices.Sorted(mapKeys(routes)); !slices.Equal(got, slices.Sorted(slices.Values(all))) {
		t.Errorf("routes = %v, want %v", got, all)
	}
	// Enrolment is authenticated by its one-time token and console sign-in by the token in
	// its body, both in the api function; the console's assets hold no data.
	for _, key := range public {
		if r := routes[key]; r == nil || r["AuthorizationType"] == "CUSTOM" || s.integrationFunction(t, r) != s.functionID(t, FunctionAPI) {
			t.Errorf("public route %s: %v", key, r)
		}
	}
	authorizers := s.resources("AWS::ApiGatewayV2::Authorizer")
	apiFn := s.functionID(t, FunctionAPI)
	for _, key := range want {
		t.Run(key, func(t *testing.T) {
			r, ok := routes[key]
			if !ok {
				t.Fatal("route missing")
			}
			if got := s.integrationFunction(t, r); got != apiFn {
				t.Errorf("integration goes to %s, want the api function %s", got, apiFn)
			}
			if r["AuthorizationType"] != "CUSTOM" {
				t.Fatalf("AuthorizationType = %v, want CUSTOM", r["AuthorizationType"])
			}
			authz := props(authorizers[strings.Trim(render(r["AuthorizerId"]), "${}")])
			if authz == nil {
				t.Fatalf("authorizer %v not found", r["AuthorizerId"])
			}
			for k, w := range map[string]any{
				"AuthorizerType":                 "REQUEST",
				"AuthorizerPayloadFormatVersion": "2.0",
				"EnableSimpleResponses":          true,
				"AuthorizerResultTtlInSeconds":   float64(HTTPAuthorizerCacheSeconds),
			} {
				if authz[k] != w {
					t.Errorf("authorizer %s = %v, want %v", k, authz[k], w)
				}
			}
			// No identity source, so that a token in the query reaches the authorizer; that is
			// only allowed, and only safe, without caching.
			if got := strs(authz["IdentitySource"]); len(got) != 0 || HTTPAuthorizerCacheSeconds != 0 {
				t.Errorf("IdentitySource = %v with a %d s cache, want none and no cache", got, HTTPAuthorizerCacheSeconds)
			}
			if got := functionIn(render(authz["AuthorizerUri"])); got != s.functionID(t, FunctionAuthorizer) {
				t.Errorf("authorizer function = %s, want authorizer", got)
			}
		})
	}
}

func TestAPIIntegration(t *testing.T) {
	s := synth(t, defaultVariant)
	apiID := cfnID(t, s.stack.Stack, s.stack.API.HTTPAPI.Node().DefaultChild())
	assert(t, "integration", func() {
		s.template.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Integration"), map[string]any{
			"ApiId":                map[string]any{"Ref": apiID},
			"IntegrationType":      "AWS_PROXY",
			"PayloadFormatVersion": "2.0",
			"IntegrationUri":       map[string]any{"Fn::GetAtt": []any{s.functionID(t, FunctionAPI), "Arn"}},
		})
	})
	assert(t, "default stage", func() {
		s.template.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Stage"), map[string]any{
			"ApiId": map[string]any{"Ref": apiID}, "StageName": "$default", "AutoDeploy": true,
		})
	})
}
