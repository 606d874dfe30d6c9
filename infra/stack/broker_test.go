package stack

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/jsii-runtime-go"
)

// routes returns the routes of API apiID by route key.
func (s *synthesized) routes(apiID string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, r := range s.resources("AWS::ApiGatewayV2::Route") {
		p := props(r)
		if render(p["ApiId"]) == "${"+apiID+"}" {
			out[p["RouteKey"].(string)] = p
		}
	}
	return out
}

// integrationFunction returns the logical id of the function behind route p's integration.
func (s *synthesized) integrationFunction(t *testing.T, route map[string]any) string {
	t.Helper()
	target := render(route["Target"])
	id, ok := strings.CutPrefix(target, "integrations/${")
	if !ok {
		t.Fatalf("route target %q is not an integration", target)
	}
	integ := s.resources("AWS::ApiGatewayV2::Integration")[strings.TrimSuffix(id, "}")]
	if integ == nil {
		t.Fatalf("integration %s not found", id)
	}
	return functionIn(render(props(integ)["IntegrationUri"]))
}

var arnRef = regexp.MustCompile(`\$\{([A-Za-z0-9]+)\.Arn\}`)

// functionIn returns the logical id of the (first) resource whose ARN appears in s.
func functionIn(s string) string {
	m := arnRef.FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return m[1]
}

func TestBrokerRoutes(t *testing.T) {
	s := synth(t, defaultVariant)
	apiID := cfnID(t, s.stack.Stack, s.stack.Broker.API.Node().DefaultChild())
	api := s.resources("AWS::ApiGatewayV2::Api")[apiID]
	if got := props(api)["ProtocolType"]; got != "WEBSOCKET" {
		t.Fatalf("broker API protocol = %v, want WEBSOCKET", got)
	}
	authorizers := s.resources("AWS::ApiGatewayV2::Authorizer")
	routes := s.routes(apiID)
	want := map[string]string{"$connect": FunctionWSConnect, "$disconnect": FunctionWSDisconnect, "$default": FunctionWSDefault}
	if len(routes) != len(want) {
		t.Errorf("routes %v, want exactly %v", slices.Sorted(mapKeys(routes)), slices.Sorted(mapKeys(want)))
	}
	for key, fn := range want {
		t.Run(key, func(t *testing.T) {
			r, ok := routes[key]
			if !ok {
				t.Fatal("route missing")
			}
			if got := s.integrationFunction(t, r); got != s.functionID(t, fn) {
				t.Errorf("integration goes to %s, want %s (%s)", got, s.functionID(t, fn), fn)
			}
			if key != "$connect" {
				if r["AuthorizationType"] != "NONE" {
					t.Errorf("AuthorizationType = %v, want NONE (only $connect is authorized)", r["AuthorizationType"])
				}
				return
			}
			if r["AuthorizationType"] != "CUSTOM" {
				t.Fatalf("$connect AuthorizationType = %v, want CUSTOM", r["AuthorizationType"])
			}
			authz := props(authorizers[strings.Trim(render(r["AuthorizerId"]), "${}")])
			if authz == nil {
				t.Fatalf("authorizer %v not found", r["AuthorizerId"])
			}
			if authz["AuthorizerType"] != "REQUEST" {
				t.Errorf("AuthorizerType = %v, want REQUEST", authz["AuthorizerType"])
			}
			if got := strs(authz["IdentitySource"]); !slices.Equal(got, WebSocketIdentitySources) {
				t.Errorf("IdentitySource = %v, want %v", got, WebSocketIdentitySources)
			}
			if got := functionIn(render(authz["AuthorizerUri"])); got != s.functionID(t, FunctionWSAuthorizer) {
				t.Errorf("authorizer function = %s, want wsauthorizer", got)
			}
		})
	}
}

func TestBrokerStage(t *testing.T) {
	s := synth(t, defaultVariant)
	apiID := cfnID(t, s.stack.Stack, s.stack.Broker.API.Node().DefaultChild())
	assert(t, "stage", func() {
		s.template.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Stage"), map[string]any{
			"ApiId":      map[string]any{"Ref": apiID},
			"StageName":  DefaultStageName,
			"AutoDeploy": true,
			"DefaultRouteSettings": map[string]any{
				"ThrottlingRateLimit":  DefaultThrottleRate,
				"ThrottlingBurstLimit": DefaultThrottleBurst,
			},
		})
	})
}

// TestBrokerThrottleFitsTheFleet: the stage's default throttle carries 100,000 agents at
// 1,000 node-runs a second (keepalives every 9 minutes, a result and at most one provisional
// response per node-run, facts after each reconnect every 110 minutes, the connects
// themselves), and its burst is within the account's default burst (5,000).
func TestBrokerThrottleFitsTheFleet(t *testing.T) {
	const agents, nodeRunsPerSecond = 100_000, 1_000.0
	keepalives := agents / (9 * 60.0)
	results := 2 * nodeRunsPerSecond
	reconnects := agents / (110 * 60.0) // each a $connect and a facts message
	need := keepalives + results + 2*reconnects
	if DefaultThrottleRate < need {
		t.Errorf("stage rate %d/s < %.0f/s needed", DefaultThrottleRate, need)
	}
	if DefaultThrottleBurst > 5000 {
		t.Errorf("stage burst %d over the account's default burst of 5,000", DefaultThrottleBurst)
	}
	t.Logf("needed %.0f msg/s (keepalives %.0f, results %.0f, reconnects %.0f); stage %d/s, burst %d", need, keepalives, results, 2*reconnects, DefaultThrottleRate, DefaultThrottleBurst)
}

// TestBrokerInvokePermissions: API Gateway may invoke the WebSocket functions, and only
// from this API.
func TestBrokerInvokePermissions(t *testing.T) {
	s := synth(t, defaultVariant)
	apiID := cfnID(t, s.stack.Stack, s.stack.Broker.API.Node().DefaultChild())
	perms := s.resources("AWS::Lambda::Permission")
	for _, fn := range []string{FunctionWSConnect, FunctionWSDisconnect, FunctionWSDefault, FunctionWSAuthorizer} {
		id := s.functionID(t, fn)
		found := false
		for _, p := range perms {
			p := props(p)
			if functionIn(render(p["FunctionName"])) != id {
				continue
			}
			found = true
			if p["Principal"] != "apigateway.amazonaws.com" || p["Action"] != "lambda:InvokeFunction" {
				t.Errorf("%s: permission %v", fn, p)
			}
			if src := render(p["SourceArn"]); !strings.Contains(src, "${"+apiID+"}/") {
				t.Errorf("%s: SourceArn %s is not scoped to the WebSocket API", fn, src)
			}
		}
		if !found {
			t.Errorf("%s: API Gateway has no permission to invoke it", fn)
		}
	}
}

func TestBrokerLocalStackEndpoint(t *testing.T) {
	s := synth(t, localstackVariant)
	for name, fn := range s.resources("AWS::Lambda::Function") {
		env := props(fn)["Environment"].(map[string]any)["Variables"].(map[string]any)
		if got := render(env[EnvWebSocketURL]); got != LocalStackManagementURL {
			t.Errorf("%s: %s = %s, want %s", name, EnvWebSocketURL, got, LocalStackManagementURL)
		}
	}
	out := s.doc["Outputs"].(map[string]any)[OutputWebSocketManagementURL].(map[string]any)
	if got := render(out["Value"]); got != LocalStackManagementURL {
		t.Errorf("output %s = %s, want %s", OutputWebSocketManagementURL, got, LocalStackManagementURL)
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
