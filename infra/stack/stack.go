package stack

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscertificatemanager"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// Target is where the stack is deployed.
type Target string

const (
	// TargetAWS is an AWS account.
	TargetAWS Target = "aws"
	// TargetLocalStack is a LocalStack container (localstack/): the functions reach
	// @connections at LocalStackManagementURL.
	TargetLocalStack Target = "localstack"
)

// LocalStackManagementURL is where Lambda functions running in LocalStack reach the
// @connections API (LocalStack's edge port, which its DNS resolves inside the functions'
// containers).
const LocalStackManagementURL = "http://localhost.localstack.cloud:4566"

// Context keys main reads (cdk -c KEY=VALUE).
const (
	ContextRetain    = "baton:retain"    // true (default) or false
	ContextTarget    = "baton:target"    // aws (default) or localstack
	ContextAssetDir  = "baton:assetDir"  // default ../dist
	ContextStackName = "baton:stackName" // default DefaultStackName
	// ContextReservedConcurrency: true (default) reserves the concurrency Specs give each
	// function; false reserves none (accounts with a small concurrency quota).
	ContextReservedConcurrency = "baton:reservedConcurrency"
	// ContextAgentsDomain, ContextAPIDomain and ContextCertificateARN give the APIs custom
	// domains (all three or none; see CustomDomains).
	ContextAgentsDomain   = "baton:agentsDomain"
	ContextAPIDomain      = "baton:apiDomain"
	ContextCertificateARN = "baton:certificateArn"
	// ContextPuppetDBURL is PuppetDB's https URL, set as BATON_PUPPETDB_URL on the api
	// function (scope queries in full PQL); default none: the built-in subset.
	ContextPuppetDBURL = "baton:puppetdbUrl"
)

// CustomDomains puts the WebSocket API at wss://Agents and the HTTP API at https://API, so
// that agents' credentials and operators' configuration name a host of yours instead of an
// API id: the stack can then be replaced, or moved to another region, by pointing the names
// elsewhere. CertificateARN is an ACM certificate in the stack's region covering both names;
// the DNS records (CNAME or alias to the OutputAgentsDomainTarget and OutputAPIDomainTarget
// outputs) are yours to create.
type CustomDomains struct {
	Agents, API, CertificateARN string
}

func (d CustomDomains) set() bool { return d.Agents != "" || d.API != "" || d.CertificateARN != "" }

func (d CustomDomains) validate() error {
	if d.set() && (d.Agents == "" || d.API == "" || d.CertificateARN == "") {
		return fmt.Errorf("custom domains: give all of %s, %s and %s, or none", ContextAgentsDomain, ContextAPIDomain, ContextCertificateARN)
	}
	if d.set() && d.Agents == d.API {
		return errors.New("custom domains: the agents' and the API's domains must differ")
	}
	return nil
}

// DefaultStackName is the stack's name unless ContextStackName says otherwise.
const DefaultStackName = "Baton"

// BatonStackProps configures NewBatonStack.
type BatonStackProps struct {
	awscdk.StackProps
	// AssetDir holds the functions' <name>.zip files (make lambdas writes them to dist/).
	AssetDir string
	// Retain keeps the table (with deletion protection), bucket, secret and log groups when
	// the stack is deleted. Set it to false only for throw-away deployments.
	Retain bool
	// Target is TargetAWS (the zero value means the same) or TargetLocalStack.
	Target Target
	// NoReservedConcurrency leaves every function in the account's unreserved pool.
	NoReservedConcurrency bool
	// Domains, when set, are the APIs' custom domains.
	Domains CustomDomains
	// PuppetDBURL, when set, is PuppetDB's https URL for the api function (FunctionsProps).
	PuppetDBURL string
	// Broker tunes the WebSocket stage; its Functions and ManagementURL are set by
	// NewBatonStack.
	Broker BrokerProps
}

// BatonStack is the deployed control plane.
type BatonStack struct {
	awscdk.Stack
	Storage   *Storage
	Functions *Functions
	Broker    *Broker
	Dispatch  *DispatchQueue
	API       *API
	Sweep     *SweepSchedule
}

// NewBatonStack declares Baton's stack: storage, functions, the WebSocket broker, the HTTP
// API, the sweep schedule and the outputs named by the Output constants.
func NewBatonStack(scope constructs.Construct, id string, props BatonStackProps) (*BatonStack, error) {
	switch props.Target {
	case "":
		props.Target = TargetAWS
	case TargetAWS, TargetLocalStack:
	default:
		return nil, fmt.Errorf("baton stack: unknown target %q (want %q or %q)", props.Target, TargetAWS, TargetLocalStack)
	}
	if props.AssetDir == "" {
		return nil, errors.New("baton stack: no asset directory")
	}
	if err := props.Domains.validate(); err != nil {
		return nil, fmt.Errorf("baton stack: %w", err)
	}
	if props.StackProps.Description == nil {
		props.StackProps.Description = jsii.String("Baton: Puppet task orchestration control plane (API Gateway, Lambda, DynamoDB, S3)")
	}
	s := &BatonStack{Stack: awscdk.NewStack(scope, jsii.String(id), &props.StackProps)}
	var err error
	if s.Storage, err = NewStorage(s.Stack, "Storage", StorageProps{Retain: props.Retain}); err != nil {
		return nil, err
	}
	if s.Functions, err = NewFunctions(s.Stack, "Functions", FunctionsProps{AssetDir: props.AssetDir, Storage: s.Storage, Retain: props.Retain,
		NoReservedConcurrency: props.NoReservedConcurrency, PuppetDBURL: props.PuppetDBURL}); err != nil {
		return nil, err
	}
	if s.Dispatch, err = NewDispatchQueue(s.Stack, "Dispatch", DispatchQueueProps{Functions: s.Functions}); err != nil {
		return nil, err
	}
	var agentsDomain, apiDomain awsapigatewayv2.DomainName
	if props.Domains.set() {
		cert := awscertificatemanager.Certificate_FromCertificateArn(s.Stack, jsii.String("Certificate"), jsii.String(props.Domains.CertificateARN))
		agentsDomain = awsapigatewayv2.NewDomainName(s.Stack, jsii.String("AgentsDomain"), &awsapigatewayv2.DomainNameProps{
			DomainName: jsii.String(props.Domains.Agents), Certificate: cert})
		apiDomain = awsapigatewayv2.NewDomainName(s.Stack, jsii.String("ApiDomain"), &awsapigatewayv2.DomainNameProps{
			DomainName: jsii.String(props.Domains.API), Certificate: cert})
	}
	bp := props.Broker
	bp.Functions = s.Functions
	bp.Domain = agentsDomain
	if props.Target == TargetLocalStack {
		bp.ManagementURL = jsii.String(LocalStackManagementURL)
	}
	if s.Broker, err = NewBroker(s.Stack, "Broker", bp); err != nil {
		return nil, err
	}
	if s.API, err = NewAPI(s.Stack, "Api", APIProps{Functions: s.Functions, Domain: apiDomain}); err != nil {
		return nil, err
	}
	if s.Sweep, err = NewSweepSchedule(s.Stack, "Sweep", SweepScheduleProps{Function: s.Functions.ByName[FunctionSweep]}); err != nil {
		return nil, err
	}

	// The URLs are built from the APIs' ApiEndpoint attribute, which AWS and LocalStack both
	// fill with the endpoint they serve (LocalStack's differs from AWS's host pattern).
	output := func(name, description string, value *string) {
		awscdk.NewCfnOutput(s.Stack, jsii.String(name), &awscdk.CfnOutputProps{Value: value, Description: jsii.String(description)})
	}
	httpURL := awscdk.Fn_Join(jsii.String(""), &[]*string{s.API.HTTPAPI.ApiEndpoint(), jsii.String("/")})
	wsURL := awscdk.Fn_Join(jsii.String(""), &[]*string{s.Broker.API.ApiEndpoint(), jsii.String("/"), s.Broker.Stage.StageName()})
	if props.Domains.set() {
		httpURL = jsii.String("https://" + props.Domains.API + "/")
		wsURL = jsii.String("wss://" + props.Domains.Agents)
		output(OutputAgentsDomainTarget, "DNS target of "+props.Domains.Agents+" (CNAME or alias)", agentsDomain.RegionalDomainName())
		output(OutputAPIDomainTarget, "DNS target of "+props.Domains.API+" (CNAME or alias)", apiDomain.RegionalDomainName())
	}
	output(OutputHttpApiURL, "Baton HTTP API base URL (baton --server)", httpURL)
	output(OutputWebSocketURL, "Agents' WebSocket URL (baton-agent --server)", wsURL)
	output(OutputWebSocketManagementURL, "@connections endpoint the functions post to (BATON_WS_ENDPOINT)", s.Broker.ManagementURL)
	output(OutputTableName, "DynamoDB table (baton token create --table)", s.Storage.Table.TableName())
	output(OutputBucketName, "S3 bucket of tasks and results (baton task publish --bucket)", s.Storage.Bucket.BucketName())
	output(OutputDispatchDeadLetterQueueURL, "Dispatch messages that failed "+strconv.Itoa(DispatchMaxReceives)+" times (its depth is alarmed)",
		s.Dispatch.DeadLetters.QueueUrl())
	return s, nil
}

// PropsFromContext reads the stack's name and props from the CDK context of node (the
// Context* keys); defaultAssetDir is used when ContextAssetDir is not set.
func PropsFromContext(node constructs.Node, defaultAssetDir string) (name string, props BatonStackProps, err error) {
	get := func(key string) (string, bool) {
		v := node.TryGetContext(jsii.String(key))
		switch v := v.(type) {
		case nil:
			return "", false
		case string:
			return v, true
		case *string:
			if v == nil {
				return "", false
			}
			return *v, true
		case bool:
			return strconv.FormatBool(v), true
		default:
			return fmt.Sprint(v), true
		}
	}
	name, props.AssetDir, props.Retain, props.Target = DefaultStackName, defaultAssetDir, true, TargetAWS
	if v, ok := get(ContextStackName); ok && v != "" {
		name = v
	}
	if v, ok := get(ContextAssetDir); ok && v != "" {
		props.AssetDir = v
	}
	if v, ok := get(ContextRetain); ok {
		if props.Retain, err = strconv.ParseBool(v); err != nil {
			return "", props, fmt.Errorf("context %s=%q: want true or false", ContextRetain, v)
		}
	}
	if v, ok := get(ContextReservedConcurrency); ok {
		reserve, err := strconv.ParseBool(v)
		if err != nil {
			return "", props, fmt.Errorf("context %s=%q: want true or false", ContextReservedConcurrency, v)
		}
		props.NoReservedConcurrency = !reserve
	}
	props.Domains.Agents, _ = get(ContextAgentsDomain)
	props.Domains.API, _ = get(ContextAPIDomain)
	props.Domains.CertificateARN, _ = get(ContextCertificateARN)
	if err := props.Domains.validate(); err != nil {
		return "", props, err
	}
	if v, ok := get(ContextPuppetDBURL); ok && v != "" {
		if !strings.HasPrefix(v, "https://") {
			return "", props, fmt.Errorf("context %s=%q: want https://host:8081 (PuppetDB's plain HTTP port has no authentication)", ContextPuppetDBURL, v)
		}
		props.PuppetDBURL = v
	}
	if v, ok := get(ContextTarget); ok {
		switch t := Target(v); t {
		case TargetAWS, TargetLocalStack:
			props.Target = t
		default:
			return "", props, fmt.Errorf("context %s=%q: want %q or %q", ContextTarget, v, TargetAWS, TargetLocalStack)
		}
	}
	return name, props, nil
}
