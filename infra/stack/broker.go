package stack

import (
	"errors"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2authorizers"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// Identity sources of the $connect authorizer: the headers the agent sends (see
// shared/awsgw.NodeAuthorizer). A connection without both is refused before the authorizer
// runs.
var WebSocketIdentitySources = []string{"route.request.header.X-Baton-Node", "route.request.header.Authorization"}

// Defaults of BrokerProps.
const (
	DefaultStageName = "pcp"
	// DefaultThrottleRate and DefaultThrottleBurst limit the messages per second the stage
	// accepts from all agents together, sized for 100,000 agents at 1,000 node-runs a second:
	// keepalives (one per agent every 9 minutes: 185/s), results and provisional responses
	// (1,000-2,000/s), facts after reconnects (one per agent every ~110 minutes: 15/s) and
	// connects (15/s steady; a reconnect storm is held by the account's 500 new connections
	// a second): about 2,200/s, with headroom to 2,500/s. The burst is the account's default
	// burst (5,000). The account-wide API Gateway limit (10,000 requests/s) is shared with the
	// functions' @connections calls (about 2,000/s at that rate: request and acknowledgement)
	// and the HTTP API.
	DefaultThrottleRate  = 2500
	DefaultThrottleBurst = 5000
)

// BrokerProps configures Broker.
type BrokerProps struct {
	Functions *Functions
	// StageName is the stage, the last path element of the agents' URL (DefaultStageName).
	StageName string
	// ThrottleRate and ThrottleBurst are the stage's default route throttling
	// (DefaultThrottleRate, DefaultThrottleBurst when 0).
	ThrottleRate, ThrottleBurst float64
	// ManagementURL overrides the @connections endpoint the functions are given (the stage's
	// callback URL). LocalStack serves @connections at its edge URL instead.
	ManagementURL *string
	// Domain, when set, is the agents' custom domain: the stage is mapped at its root.
	// @connections stays on the stage's callback URL.
	Domain awsapigatewayv2.IDomainName
}

// Broker is the agents' side of the control plane: the API Gateway WebSocket API with a
// Lambda REQUEST authorizer on $connect (node name and bearer secret), the $connect,
// $disconnect and $default routes, a throttled stage, and permission to post to its
// connections (execute-api:ManageConnections on this stage's @connections only) for the
// functions that send to agents. It sets BATON_WS_ENDPOINT on every function.
type Broker struct {
	constructs.Construct
	API   awsapigatewayv2.WebSocketApi
	Stage awsapigatewayv2.WebSocketStage
	// URL is the agents' wss:// URL; ManagementURL the @connections endpoint.
	URL, ManagementURL *string
}

// NewBroker declares the WebSocket API.
func NewBroker(scope constructs.Construct, id string, props BrokerProps) (*Broker, error) {
	fns := props.Functions
	if fns == nil {
		return nil, errors.New("broker: no functions")
	}
	if props.StageName == "" {
		props.StageName = DefaultStageName
	}
	if props.ThrottleRate == 0 {
		props.ThrottleRate = DefaultThrottleRate
	}
	if props.ThrottleBurst == 0 {
		props.ThrottleBurst = DefaultThrottleBurst
	}
	b := &Broker{Construct: constructs.NewConstruct(scope, jsii.String(id))}
	integration := func(name string) awsapigatewayv2integrations.WebSocketLambdaIntegration {
		return awsapigatewayv2integrations.NewWebSocketLambdaIntegration(jsii.String(name+"Integration"), fns.ByName[name], nil)
	}
	authorizer := awsapigatewayv2authorizers.NewWebSocketLambdaAuthorizer(jsii.String("NodeAuthorizer"), fns.ByName[FunctionWSAuthorizer],
		&awsapigatewayv2authorizers.WebSocketLambdaAuthorizerProps{
			AuthorizerName: jsii.String("baton-node"),
			IdentitySource: jsii.Strings(WebSocketIdentitySources...),
		})
	b.API = awsapigatewayv2.NewWebSocketApi(b.Construct, jsii.String("Api"), &awsapigatewayv2.WebSocketApiProps{
		ApiName:     jsii.String(*awscdk.Stack_Of(b.Construct).StackName() + "-agents"),
		Description: jsii.String("Baton agents (PCP over WebSocket)"),
		ConnectRouteOptions: &awsapigatewayv2.WebSocketRouteOptions{
			Integration: integration(FunctionWSConnect),
			Authorizer:  authorizer,
		},
		DisconnectRouteOptions: &awsapigatewayv2.WebSocketRouteOptions{Integration: integration(FunctionWSDisconnect)},
		DefaultRouteOptions:    &awsapigatewayv2.WebSocketRouteOptions{Integration: integration(FunctionWSDefault)},
	})
	var mapping *awsapigatewayv2.DomainMappingOptions
	if props.Domain != nil {
		mapping = &awsapigatewayv2.DomainMappingOptions{DomainName: props.Domain}
	}
	b.Stage = awsapigatewayv2.NewWebSocketStage(b.Construct, jsii.String("Stage"), &awsapigatewayv2.WebSocketStageProps{
		DomainMapping: mapping,
		WebSocketApi:  b.API,
		StageName:     jsii.String(props.StageName),
		AutoDeploy:    jsii.Bool(true),
		Throttle: &awsapigatewayv2.ThrottleSettings{
			RateLimit:  jsii.Number(props.ThrottleRate),
			BurstLimit: jsii.Number(props.ThrottleBurst),
		},
	})
	b.URL = b.Stage.Url()
	b.ManagementURL = b.Stage.CallbackUrl()
	if props.ManagementURL != nil {
		b.ManagementURL = props.ManagementURL
	}
	for _, name := range fns.Senders() {
		b.Stage.GrantManagementApiAccess(fns.Roles[name])
	}
	fns.SetEnvironment(EnvWebSocketURL, b.ManagementURL)
	return b, nil
}
