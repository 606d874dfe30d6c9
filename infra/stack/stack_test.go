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
	// 3 WebSocket routes + its authorizer, 3 HTTP routes + its authorizer, the sweep rule.
	"AWS::Lambda::Permission":       10,
	"AWS::ApiGatewayV2::Api":        2,
	"AWS::ApiGatewayV2::Stage":      2,
	"AWS::ApiGatewayV2::Authorizer": 2,
	// 3 WebSocket integrations, 1 shared by the HTTP routes.
	"AWS::ApiGatewayV2::Integration": 4,
	"AWS::ApiGatewayV2::Route":       7,
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
