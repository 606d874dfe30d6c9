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

// The HTTP API's authorizer has no identity source and no cache. An HTTP API answers 401
// without invoking a Lambda authorizer when any identity source it lists is missing from the
// request, so listing the X-Authentication header would refuse the "token" query parameter
// that shared/awsgw.TokenAuthorizer (like baton serve) also accepts; identity sources are
// optional only when caching is off. The cost is one authorizer invocation per API request
// (128 MB, a GetItem or two: about $0.25 per million requests).
const HTTPAuthorizerCacheSeconds = 0

// HTTPRoute is one route of the HTTP API.
type HTTPRoute struct {
	Method awsapigatewayv2.HttpMethod
	Path   string
}

// EnrollRoute is a route without the token authorizer: a new agent exchanges its one-time
// enrolment token (checked by the api function) for registering its own key.
var EnrollRoute = HTTPRoute{Method: awsapigatewayv2.HttpMethod_POST, Path: "/baton/v1/enroll"}

// PublicRoutes are the routes to the api function without the token authorizer: enrolment,
// the web console's page and static assets (shared/console: no data in them), and signing in
// to the console (the token is in the request body; the api function checks it, as it checks
// every request again). Signing out and everything else the console does go through the
// authorizer, which takes the session cookie with its CSRF header (awsgw.TokenAuthorizer).
func PublicRoutes() []HTTPRoute {
	return []HTTPRoute{
		EnrollRoute,
		{Method: awsapigatewayv2.HttpMethod_GET, Path: "/"},
		{Method: awsapigatewayv2.HttpMethod_GET, Path: "/console/{proxy+}"},
		{Method: awsapigatewayv2.HttpMethod_POST, Path: "/baton/v1/session"},
	}
}

// HTTPRoutes are the routes to the API function behind the token authorizer.
func HTTPRoutes() []HTTPRoute {
	return []HTTPRoute{
		{Method: awsapigatewayv2.HttpMethod_GET, Path: "/orchestrator/v1"},
		{Method: awsapigatewayv2.HttpMethod_ANY, Path: "/orchestrator/{proxy+}"},
		{Method: awsapigatewayv2.HttpMethod_ANY, Path: "/baton/{proxy+}"},
	}
}

// APIProps configures API.
type APIProps struct {
	Functions *Functions
	// Domain, when set, is the API's custom domain (its default stage mapped at the root).
	Domain awsapigatewayv2.IDomainName
}

// API is the operators' side of the control plane: the API Gateway HTTP API (default stage)
// whose routes (HTTPRoutes) go to the api function with payload format 2.0, behind the
// authorizer function (simple responses, token in X-Authentication).
type API struct {
	constructs.Construct
	HTTPAPI awsapigatewayv2.HttpApi
	// URL is the API's base URL.
	URL *string
}

// NewAPI declares the HTTP API.
func NewAPI(scope constructs.Construct, id string, props APIProps) (*API, error) {
	fns := props.Functions
	if fns == nil {
		return nil, errors.New("api: no functions")
	}
	a := &API{Construct: constructs.NewConstruct(scope, jsii.String(id))}
	a.HTTPAPI = awsapigatewayv2.NewHttpApi(a.Construct, jsii.String("Api"), &awsapigatewayv2.HttpApiProps{
		ApiName:            jsii.String(*awscdk.Stack_Of(a.Construct).StackName() + "-api"),
		Description:        jsii.String("Baton orchestrator API"),
		CreateDefaultStage: jsii.Bool(true),
		DefaultDomainMapping: func() *awsapigatewayv2.DomainMappingOptions {
			if props.Domain == nil {
				return nil
			}
			return &awsapigatewayv2.DomainMappingOptions{DomainName: props.Domain}
		}(),
	})
	authorizer := awsapigatewayv2authorizers.NewHttpLambdaAuthorizer(jsii.String("TokenAuthorizer"), fns.ByName[FunctionAuthorizer],
		&awsapigatewayv2authorizers.HttpLambdaAuthorizerProps{
			AuthorizerName:  jsii.String("baton-token"),
			ResponseTypes:   &[]awsapigatewayv2authorizers.HttpLambdaResponseType{awsapigatewayv2authorizers.HttpLambdaResponseType_SIMPLE},
			IdentitySource:  &[]*string{},
			ResultsCacheTtl: awscdk.Duration_Seconds(jsii.Number(HTTPAuthorizerCacheSeconds)),
		})
	integration := awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String("ApiIntegration"), fns.ByName[FunctionAPI],
		&awsapigatewayv2integrations.HttpLambdaIntegrationProps{
			PayloadFormatVersion: awsapigatewayv2.PayloadFormatVersion_VERSION_2_0(),
		})
	for _, r := range HTTPRoutes() {
		a.HTTPAPI.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
			Path:        jsii.String(r.Path),
			Methods:     &[]awsapigatewayv2.HttpMethod{r.Method},
			Integration: integration,
			Authorizer:  authorizer,
		})
	}
	for _, r := range PublicRoutes() {
		a.HTTPAPI.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
			Path:        jsii.String(r.Path),
			Methods:     &[]awsapigatewayv2.HttpMethod{r.Method},
			Integration: integration,
		})
	}
	a.URL = a.HTTPAPI.Url()
	return a, nil
}
