package stack

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
)

// ResourceCounts pins the shape of the stack; a change here is a change of what is deployed.
var resourceCounts = map[string]int{
	"AWS::DynamoDB::Table":           1,
	"AWS::S3::Bucket":                1,
	"AWS::S3::BucketPolicy":          1,
	"AWS::SecretsManager::Secret":    1,
	"AWS::Lambda::Function":          8,
	"AWS::Logs::LogGroup":            8,
	"AWS::IAM::Role":                 8,
	"AWS::IAM::Policy":               8,
	"AWS::Lambda::EventInvokeConfig": 1,
	// The dispatch queue, its dead-letter queue (each with a TLS-only policy), the event
	// source mapping to dispatch and the dead-letter alarm.
	"AWS::SQS::Queue":                 2,
	"AWS::SQS::QueuePolicy":           2,
	"AWS::Lambda::EventSourceMapping": 1,
	"AWS::CloudWatch::Alarm":          1,
	// 3 WebSocket routes + its authorizer, 3 HTTP routes + its authorizer, 4 public HTTP routes
	// (enrolment, the console's page, assets and sign-in), the sweep rule.
	"AWS::Lambda::Permission":       13,
	"AWS::ApiGatewayV2::Api":        2,
	"AWS::ApiGatewayV2::Stage":      2,
	"AWS::ApiGatewayV2::Authorizer": 2,
	// 3 WebSocket integrations, 1 shared by the HTTP routes.
	"AWS::ApiGatewayV2::Integration": 4,
	"AWS::ApiGatewayV2::Route":       10,
	"AWS::Events::Rule":              1,
}

func TestStackResourceCounts(t *testing.T) {
	for _, v := range []variant{defaultVariant, localstackVariant} {
		t.Run(string(v), func(t *testing.T) {
			s := synth(t, v)
			got := map[string]int{}
			for _, r := range s.doc["Resources"].(map[string]any) {
				got[r.(map[string]any)["Type"].(string)]++
			}
			if !maps.Equal(got, resourceCounts) {
				t.Errorf("resource counts = %v\nwant %v", got, resourceCounts)
			}
			for typ, n := range resourceCounts {
				assert(t, typ, func() { s.template.ResourceCountIs(jsii.String(typ), jsii.Number(n)) })
			}
		})
	}
}

func TestStackOutputs(t *testing.T) {
	s := synth(t, defaultVariant)
	outputs := s.doc["Outputs"].(map[string]any)
	if got, want := slices.Sorted(maps.Keys(outputs)), slices.Sorted(slices.Values(Outputs())); !slices.Equal(got, want) {
		t.Fatalf("outputs = %v, want %v", got, want)
	}
	httpAPI := cfnID(t, s.stack.Stack, s.stack.API.HTTPAPI.Node().DefaultChild())
	wsAPI := cfnID(t, s.stack.Stack, s.stack.Broker.API.Node().DefaultChild())
	tableID, _ := s.only(t, "AWS::DynamoDB::Table")
	bucketID, _ := s.only(t, "AWS::S3::Bucket")
	want := map[string]string{
		OutputHttpApiURL:                 "${" + httpAPI + ".ApiEndpoint}/",
		OutputWebSocketURL:               "${" + wsAPI + ".ApiEndpoint}/" + DefaultStageName,
		OutputWebSocketManagementURL:     "https://${" + wsAPI + "}.execute-api.${AWS::Region}.${AWS::URLSuffix}/" + DefaultStageName,
		OutputTableName:                  "${" + tableID + "}",
		OutputBucketName:                 "${" + bucketID + "}",
		OutputDispatchDeadLetterQueueURL: "${" + cfnID(t, s.stack.Stack, s.stack.Dispatch.DeadLetters.Node().DefaultChild()) + "}",
	}
	for name, w := range want {
		if got := render(outputs[name].(map[string]any)["Value"]); got != w {
			t.Errorf("output %s = %s, want %s", name, got, w)
		}
	}
}

func TestNewBatonStackRefusesBadProps(t *testing.T) {
	for _, tc := range []struct {
		name  string
		props BatonStackProps
		want  string
	}{
		{"no assets", BatonStackProps{}, "asset directory"},
		{"unknown target", BatonStackProps{AssetDir: t.TempDir(), Target: "gcp"}, "unknown target"},
		{"missing zips", BatonStackProps{AssetDir: t.TempDir()}, "make lambdas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
			_, err := NewBatonStack(app, "Bad", tc.props)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestPropsFromContext(t *testing.T) {
	for _, tc := range []struct {
		name    string
		context map[string]any
		stack   string
		props   BatonStackProps
		err     string
	}{
		{"defaults", nil, DefaultStackName, BatonStackProps{AssetDir: "dist", Retain: true, Target: TargetAWS}, ""},
		{"strings from the command line", map[string]any{ContextRetain: "false", ContextTarget: "localstack", ContextAssetDir: "/tmp/zips", ContextStackName: "BatonDev"},
			"BatonDev", BatonStackProps{AssetDir: "/tmp/zips", Retain: false, Target: TargetLocalStack}, ""},
		{"booleans from cdk.json", map[string]any{ContextRetain: false}, DefaultStackName, BatonStackProps{AssetDir: "dist", Target: TargetAWS}, ""},
		{"bad retain", map[string]any{ContextRetain: "maybe"}, "", BatonStackProps{}, ContextRetain},
		{"bad target", map[string]any{ContextTarget: "azure"}, "", BatonStackProps{}, ContextTarget},
		{"no reserved concurrency", map[string]any{ContextReservedConcurrency: "false"}, DefaultStackName,
			BatonStackProps{AssetDir: "dist", Retain: true, Target: TargetAWS, NoReservedConcurrency: true}, ""},
		{"bad reserved concurrency", map[string]any{ContextReservedConcurrency: "some"}, "", BatonStackProps{}, ContextReservedConcurrency},
		{"custom domains", map[string]any{ContextAgentsDomain: testDomains.Agents, ContextAPIDomain: testDomains.API, ContextCertificateARN: testDomains.CertificateARN},
			DefaultStackName, BatonStackProps{AssetDir: "dist", Retain: true, Target: TargetAWS, Domains: testDomains}, ""},
		{"a domain without a certificate", map[string]any{ContextAgentsDomain: testDomains.Agents, ContextAPIDomain: testDomains.API}, "", BatonStackProps{}, ContextCertificateARN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ctx *map[string]any
			if tc.context != nil {
				ctx = &tc.context
			}
			app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir()), Context: ctx})
			name, props, err := PropsFromContext(app.Node(), "dist")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("err = %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(props)
			want, _ := json.Marshal(tc.props)
			if name != tc.stack || string(got) != string(want) {
				t.Errorf("PropsFromContext = %s, %s; want %s, %s", name, got, tc.stack, want)
			}
		})
	}
}

// TestStackCustomDomains: with custom domains, both APIs are mapped at the root of their
// domain with the given certificate, the URLs the stack outputs (what credentials and
// operators' configuration hold) name the domains and no API id, and the DNS targets are
// outputs; @connections stays on the stage's callback URL.
func TestStackCustomDomains(t *testing.T) {
	s := synth(t, domainsVariant)
	names := s.resources("AWS::ApiGatewayV2::DomainName")
	byName := map[string]string{}
	for id, r := range names {
		p := props(r)
		cfg := list(p["DomainNameConfigurations"])
		if len(cfg) != 1 || cfg[0].(map[string]any)["CertificateArn"] != testDomains.CertificateARN {
			t.Errorf("domain %v: configurations %v, want the certificate %s", p["DomainName"], cfg, testDomains.CertificateARN)
		}
		byName[p["DomainName"].(string)] = id
	}
	if len(names) != 2 || byName[testDomains.Agents] == "" || byName[testDomains.API] == "" {
		t.Fatalf("domain names %v, want %s and %s", byName, testDomains.Agents, testDomains.API)
	}
	wsAPI := cfnID(t, s.stack.Stack, s.stack.Broker.API.Node().DefaultChild())
	httpAPI := cfnID(t, s.stack.Stack, s.stack.API.HTTPAPI.Node().DefaultChild())
	mapped := map[string]string{}
	for _, m := range s.resources("AWS::ApiGatewayV2::ApiMapping") {
		p := props(m)
		if p["ApiMappingKey"] != nil {
			t.Errorf("mapping %v has a key: want the root of the domain", p)
		}
		mapped[strings.Trim(render(p["DomainName"]), "${}")] = strings.Trim(render(p["ApiId"]), "${}")
	}
	if mapped[byName[testDomains.Agents]] != wsAPI || mapped[byName[testDomains.API]] != httpAPI || len(mapped) != 2 {
		t.Errorf("mappings %v, want %s → WebSocket API and %s → HTTP API", mapped, testDomains.Agents, testDomains.API)
	}
	outputs := s.doc["Outputs"].(map[string]any)
	for name, want := range map[string]string{
		OutputWebSocketURL:           "wss://" + testDomains.Agents,
		OutputHttpApiURL:             "https://" + testDomains.API + "/",
		OutputAgentsDomainTarget:     "${" + byName[testDomains.Agents] + ".RegionalDomainName}",
		OutputAPIDomainTarget:        "${" + byName[testDomains.API] + ".RegionalDomainName}",
		OutputWebSocketManagementURL: "https://${" + wsAPI + "}.execute-api.${AWS::Region}.${AWS::URLSuffix}/" + DefaultStageName,
	} {
		o, _ := outputs[name].(map[string]any)
		if got := render(o["Value"]); got != want {
			t.Errorf("output %s = %s, want %s", name, got, want)
		}
	}
	if _, err := NewBatonStack(awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())}), "Half",
		BatonStackProps{AssetDir: "x", Domains: CustomDomains{Agents: "a.example"}}); err == nil || !strings.Contains(err.Error(), ContextCertificateARN) {
		t.Errorf("a stack with only an agents domain: err %v", err)
	}
}
