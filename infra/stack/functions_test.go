package stack

import (
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
)

func TestFunctionsRuntimeAndEnvironment(t *testing.T) {
	s := synth(t, defaultVariant)
	tableID, _ := s.only(t, "AWS::DynamoDB::Table")
	bucketID, _ := s.only(t, "AWS::S3::Bucket")
	secretID, _ := s.only(t, "AWS::SecretsManager::Secret")
	wsAPIID := cfnID(t, s.stack.Stack, s.stack.Broker.API.Node().DefaultChild())
	queueID := cfnID(t, s.stack.Stack, s.stack.Dispatch.Queue.Node().DefaultChild())
	fns := s.resources("AWS::Lambda::Function")
	if len(fns) != len(Specs()) {
		t.Fatalf("%d functions, want %d", len(fns), len(Specs()))
	}
	logGroups := s.resources("AWS::Logs::LogGroup")
	roles := map[string]string{}
	for _, sp := range Specs() {
		t.Run(sp.Name, func(t *testing.T) {
			fn := fns[s.functionID(t, sp.Name)]
			if fn == nil {
				t.Fatal("function not in the template")
			}
			p := props(fn)
			for key, want := range map[string]string{
				"Runtime":       "provided.al2023",
				"Architectures": "[arm64]",
				"Handler":       "bootstrap",
				"MemorySize":    render(float64(sp.MemoryMB)),
				"Timeout":       render(sp.Timeout.Seconds()),
			} {
				if got := render(p[key]); got != want {
					t.Errorf("%s = %s, want %s", key, got, want)
				}
			}
			env := p["Environment"].(map[string]any)["Variables"].(map[string]any)
			want := map[string]string{
				EnvTable:        "${" + tableID + "}",
				EnvWebSocketURL: "https://${" + wsAPIID + "}.execute-api.${AWS::Region}.${AWS::URLSuffix}/" + DefaultStageName,
			}
			if len(sp.Access.Objects) > 0 || sp.Access.ListBucket {
				want[EnvBucket] = "${" + bucketID + "}"
			}
			if sp.Access.SealKey {
				want[EnvSealKeySecret] = "${" + secretID + "}"
			}
			if sp.Access.Enqueues {
				want[EnvDispatchQueue] = "${" + queueID + "}"
			}
			if got, want := p["ReservedConcurrentExecutions"], float64(sp.ReservedConcurrency); sp.ReservedConcurrency > 0 && got != want || sp.ReservedConcurrency == 0 && got != nil {
				t.Errorf("ReservedConcurrentExecutions = %v, want %v", got, want)
			}
			if len(env) != len(want) {
				t.Errorf("environment has %d variables, want %d: %v", len(env), len(want), env)
			}
			for k, w := range want {
				if got := render(env[k]); got != w {
					t.Errorf("%s = %s, want %s", k, got, w)
				}
			}
			// Its own log group, kept a month.
			lc, _ := p["LoggingConfig"].(map[string]any)
			lg := strings.Trim(render(lc["LogGroup"]), "${}")
			if group, ok := logGroups[lg]; !ok {
				t.Errorf("LoggingConfig.LogGroup = %v, not a log group of the stack", lc["LogGroup"])
			} else if got := props(group)["RetentionInDays"]; got != float64(30) {
				t.Errorf("log retention = %v days, want 30", got)
			}
			role := render(p["Role"])
			if other, dup := roles[role]; dup {
				t.Errorf("shares role %s with %s", role, other)
			}
			roles[role] = sp.Name
		})
	}
}

func TestFunctionsRolesHaveNoManagedPolicies(t *testing.T) {
	s := synth(t, defaultVariant)
	roles := s.resources("AWS::IAM::Role")
	if len(roles) != len(Specs()) {
		t.Errorf("%d roles, want one per function (%d)", len(roles), len(Specs()))
	}
	for id, r := range roles {
		p := props(r)
		if mp := p["ManagedPolicyArns"]; mp != nil {
			t.Errorf("role %s has managed policies %v: every permission must be listed in the template", id, mp)
		}
		doc := p["AssumeRolePolicyDocument"].(map[string]any)
		for _, st := range list(doc["Statement"]) {
			principal := render(st.(map[string]any)["Principal"].(map[string]any)["Service"])
			if principal != "lambda.amazonaws.com" {
				t.Errorf("role %s is assumed by %s, want lambda.amazonaws.com only", id, principal)
			}
		}
	}
}

func TestFunctionsAsync(t *testing.T) {
	s := synth(t, defaultVariant)
	sweep := s.functionID(t, FunctionSweep)
	cfgs := s.resources("AWS::Lambda::EventInvokeConfig")
	if len(cfgs) != 1 {
		t.Fatalf("%d EventInvokeConfig resources, want 1 (sweep)", len(cfgs))
	}
	for _, c := range cfgs {
		p := props(c)
		if render(p["FunctionName"]) != "${"+sweep+"}" || p["MaximumRetryAttempts"] != float64(0) {
			t.Errorf("EventInvokeConfig = %v, want the sweep with 0 retries", p)
		}
	}
}

func TestFunctionsNeedAllAssets(t *testing.T) {
	st := awscdk.NewStack(awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())}), jsii.String("Missing"), nil)
	storage, err := NewStorage(st, "Storage", StorageProps{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewFunctions(st, "Functions", FunctionsProps{AssetDir: t.TempDir(), Storage: storage})
	if err == nil || !strings.Contains(err.Error(), "make lambdas") {
		t.Errorf("NewFunctions with an empty asset directory: err = %v, want one that says to run make lambdas", err)
	}
}
