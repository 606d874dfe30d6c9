package stack

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/baton-run/baton/shared/catalog/s3catalog"
)

// Names of the Lambda functions: each is built from functions/<name> into dist/<name>.zip.
const (
	FunctionAPI          = "api"
	FunctionAuthorizer   = "authorizer"
	FunctionWSAuthorizer = "wsauthorizer"
	FunctionWSConnect    = "wsconnect"
	FunctionWSDisconnect = "wsdisconnect"
	FunctionWSDefault    = "wsdefault"
	FunctionDispatch     = "dispatch"
	FunctionSweep        = "sweep"
)

// Environment variables the functions read (see shared/awsapp.ConfigFromEnv).
const (
	EnvTable         = "BATON_TABLE"
	EnvBucket        = "BATON_BUCKET"
	EnvWebSocketURL  = "BATON_WS_ENDPOINT"
	EnvDispatchQueue = "BATON_DISPATCH_QUEUE"
	EnvSealKeySecret = "BATON_SEAL_KEY_SECRET"
	EnvPuppetDBURL   = "BATON_PUPPETDB_URL"
)

// LogRetention is how long every function's logs are kept.
const LogRetention = awslogs.RetentionDays_ONE_MONTH

// Access is what a function's role allows, each grant following what the function's code
// path calls: TestPoliciesAllowRecordedActions checks it against the AWS actions the AWS
// end-to-end tests record (testdata/function-actions.json) both ways.
type Access struct {
	// Table are DynamoDB actions on the table, Indexes on each of its named indexes.
	Table, Indexes []string
	// LeadingKeys, when set, limits the table actions to items whose partition key matches
	// one of these patterns (dynamodb:LeadingKeys, StringLike).
	LeadingKeys []string
	// Objects are S3 object actions by key prefix (s3catalog's prefixes).
	Objects map[string][]string
	// ListBucket lets the function list the bucket, without which S3 answers a GetObject of
	// a missing key with 403 instead of 404 (s3catalog reads a missing index as "nothing
	// published").
	ListBucket bool
	// SealKey reads the seal-key secret (once per cold start).
	SealKey bool
	// Sends posts to agents through the WebSocket API's @connections endpoint (granted by
	// Broker).
	Sends bool
	// Enqueues sends dispatch messages to the dispatch queue (granted by DispatchQueue). Only
	// the api does: a job's claimed nodes go to the queue in shares when it is created
	// (shared/awsapp queueHandoff); dispatch and the sweep send to agents themselves.
	Enqueues bool
}

// Spec is what one function is: its size, its timeout and the access its role gets.
type Spec struct {
	Name    string
	Timeout time.Duration
	// Description is shown in the Lambda console.
	Description string
	// MemoryMB is the function's memory, and so its share of a CPU (1,769 MB is one vCPU).
	MemoryMB int
	// ReservedConcurrency reserves that many concurrent instances for the function and caps
	// it there (0: none; it shares the account's unreserved pool). Set to 0 for all by
	// BatonStackProps.NoReservedConcurrency.
	ReservedConcurrency int
	Access              Access
}

// Specs lists the functions.
//
// Memory: the authorizers, $connect and $disconnect do one or two small DynamoDB calls
// (128 MB); $default decodes agents' messages up to 128 KB and moves jobs on (256 MB); api,
// dispatch and the sweep create, fan out and scan jobs of up to 10,000 nodes, with 64
// parallel sends, and get 512 MB for the CPU share that comes with it.
//
// Reserved concurrency (sum 421, leaving 579 of a default 1,000-instance account for the
// HTTP authorizer and anything else in the account; Lambda needs 100 unreserved): api 50, so
// that a storm of connects cannot take its instances; wsauthorizer, $connect and $disconnect
// are capped at 50 each (about 1,000 connects a second at 50 ms each, twice the account's
// default 500 new WebSocket connections a second), so that a reconnect storm queues at the
// agents (they retry with backoff) instead of taking the account; $default 200 (100,000
// agents' keepalives every 9 minutes, 185 a second, plus a result a node-run at 1,000
// node-runs a second, at ~50 ms each: ~60 busy instances); dispatch 20, the queue's event
// source mapping's maximum concurrency; the sweep 1, so that two runs never overlap.
func Specs() []Spec {
	sending := map[string][]string{
		s3catalog.FilesPrefix:   {"s3:GetObject"}, // presigned downloads of task files
		s3catalog.ResultsPrefix: {"s3:PutObject"}, // presigned uploads of large results
	}
	ddb := func(actions ...string) []string {
		for i, a := range actions {
			actions[i] = "dynamodb:" + a
		}
		return actions
	}
	// The partition keys of a node's items (its credential and connection).
	nodeKeys := []string{"NODE#*"}
	return []Spec{
		{Name: FunctionAPI, Timeout: 29 * time.Second, MemoryMB: 512, ReservedConcurrency: 50,
			Description: "Baton HTTP API (PE orchestrator v1 and /baton/v1)",
			Access: Access{
				Table:   ddb("BatchGetItem", "BatchWriteItem", "DeleteItem", "GetItem", "PutItem", "Query", "UpdateItem"),
				Indexes: ddb("Query"),
				Objects: map[string][]string{
					s3catalog.EnvsPrefix:  {"s3:GetObject"},
					s3catalog.TasksPrefix: {"s3:GetObject"},
					s3catalog.FilesPrefix: {"s3:GetObject"},
				},
				ListBucket: true, SealKey: true, Sends: true, Enqueues: true,
			}},
		{Name: FunctionAuthorizer, Timeout: 10 * time.Second, MemoryMB: 128,
			Description: "Baton HTTP API token authorizer",
			Access:      Access{Table: ddb("GetItem"), LeadingKeys: []string{"TOKEN#*", "USERS", "ROLES"}}},
		{Name: FunctionWSAuthorizer, Timeout: 10 * time.Second, MemoryMB: 128, ReservedConcurrency: 50,
			Description: "Baton agent WebSocket $connect authorizer",
			// It reads the node's credential (its two items, one BatchGetItem) and records each
			// signed connect's nonce.
			Access: Access{Table: ddb("BatchGetItem", "PutItem"), LeadingKeys: append([]string{"NONCE#*"}, nodeKeys...)}},
		{Name: FunctionWSConnect, Timeout: 10 * time.Second, MemoryMB: 128, ReservedConcurrency: 50,
			Description: "Baton agent WebSocket $connect",
			// A connect older than the one recorded is refused by its condition; a read of the
			// node's item then tells that from an unknown node.
			Access: Access{Table: ddb("GetItem", "UpdateItem"), LeadingKeys: nodeKeys, SealKey: true}},
		{Name: FunctionWSDisconnect, Timeout: 10 * time.Second, MemoryMB: 128, ReservedConcurrency: 50,
			Description: "Baton agent WebSocket $disconnect",
			Access:      Access{Table: ddb("GetItem", "UpdateItem"), LeadingKeys: nodeKeys, SealKey: true}},
		{Name: FunctionWSDefault, Timeout: 10 * time.Second, MemoryMB: 256, ReservedConcurrency: 200,
			Description: "Baton agent WebSocket $default (PCP messages from agents)",
			Access: Access{Table: ddb("BatchGetItem", "BatchWriteItem", "GetItem", "PutItem", "Query", "UpdateItem"), Indexes: ddb("Query"),
				Objects: sending, SealKey: true, Sends: true}},
		{Name: FunctionDispatch, Timeout: 60 * time.Second, MemoryMB: 512, ReservedConcurrency: DispatchMaxConcurrency,
			Description: "Baton job dispatch (messages of the dispatch queue)",
			Access: Access{Table: ddb("BatchGetItem", "GetItem", "PutItem", "Query", "UpdateItem"),
				Objects: sending, SealKey: true, Sends: true}},
		{Name: FunctionSweep, Timeout: 60 * time.Second, MemoryMB: 512, ReservedConcurrency: 1,
			Description: "Baton sweep: timeouts and undelivered work, every minute",
			Access: Access{Table: ddb("BatchGetItem", "BatchWriteItem", "GetItem", "PutItem", "Query", "UpdateItem"), Indexes: ddb("Query"),
				Objects: sending, SealKey: true, Sends: true}},
	}
}

// FunctionsProps configures Functions.
type FunctionsProps struct {
	// AssetDir holds <name>.zip for every function in Specs (make lambdas writes ../dist).
	AssetDir string
	Storage  *Storage
	// Retain keeps the log groups when the stack is deleted.
	Retain bool
	// NoReservedConcurrency leaves every function in the account's unreserved pool (for
	// accounts whose concurrency quota is below what Specs reserve, e.g. new accounts).
	NoReservedConcurrency bool
	// PuppetDBURL, when set, is EnvPuppetDBURL on the api function, the one that resolves
	// scope queries (its TLS files and route to PuppetDB are set up outside the stack).
	PuppetDBURL string
}

// Functions are the eight Lambda functions (provided.al2023, arm64, from AssetDir/<name>.zip),
// each with its own log group (LogRetention) and its own role granting only what its code
// path uses: no wildcard action, no wildcard resource, DynamoDB actions listed on the table
// and its named indexes, S3 actions on the key prefixes of the catalog. The WebSocket
// endpoint and @connections permissions are added by Broker.
type Functions struct {
	constructs.Construct
	ByName map[string]awslambda.Function
	Roles  map[string]awsiam.Role
	specs  []Spec
}

// NewFunctions declares the functions. It fails if a zip is missing from AssetDir.
func NewFunctions(scope constructs.Construct, id string, props FunctionsProps) (*Functions, error) {
	if props.Storage == nil {
		return nil, errors.New("functions: no storage")
	}
	var missing []error
	for _, sp := range Specs() {
		zip := filepath.Join(props.AssetDir, sp.Name+".zip")
		if st, err := os.Stat(zip); err != nil || st.IsDir() {
			missing = append(missing, fmt.Errorf("%s is missing (run `make lambdas`)", zip))
		}
	}
	if err := errors.Join(missing...); err != nil {
		return nil, fmt.Errorf("functions: %w", err)
	}
	removal := awscdk.RemovalPolicy_DESTROY
	if props.Retain {
		removal = awscdk.RemovalPolicy_RETAIN
	}
	st := props.Storage
	f := &Functions{
		Construct: constructs.NewConstruct(scope, jsii.String(id)),
		ByName:    map[string]awslambda.Function{},
		Roles:     map[string]awsiam.Role{},
		specs:     Specs(),
	}
	for _, sp := range f.specs {
		scope := constructs.NewConstruct(f.Construct, jsii.String(sp.Name))
		logs := awslogs.NewLogGroup(scope, jsii.String("Logs"), &awslogs.LogGroupProps{
			Retention:     LogRetention,
			RemovalPolicy: removal,
		})
		role := awsiam.NewRole(scope, jsii.String("Role"), &awsiam.RoleProps{
			AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
			Description: jsii.String("Baton function " + sp.Name),
		})
		logs.GrantWrite(role)
		env := map[string]*string{EnvTable: st.Table.TableName()}
		if err := grantAccess(role, st, sp.Access); err != nil {
			return nil, fmt.Errorf("functions: %s: %w", sp.Name, err)
		}
		if len(sp.Access.Objects) > 0 || sp.Access.ListBucket {
			env[EnvBucket] = st.Bucket.BucketName()
		}
		if sp.Access.SealKey {
			env[EnvSealKeySecret] = st.SealKey.SecretArn()
		}
		if sp.Name == FunctionAPI && props.PuppetDBURL != "" {
			env[EnvPuppetDBURL] = jsii.String(props.PuppetDBURL)
		}
		var reserved *float64
		if sp.ReservedConcurrency > 0 && !props.NoReservedConcurrency {
			reserved = jsii.Number(sp.ReservedConcurrency)
		}
		fn := awslambda.NewFunction(scope, jsii.String("Function"), &awslambda.FunctionProps{
			Description:  jsii.String(sp.Description),
			Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
			Architecture: awslambda.Architecture_ARM_64(),
			Handler:      jsii.String("bootstrap"),
			Code:         awslambda.Code_FromAsset(jsii.String(filepath.Join(props.AssetDir, sp.Name+".zip")), nil),
			MemorySize:   jsii.Number(sp.MemoryMB),
			Timeout:      awscdk.Duration_Seconds(jsii.Number(sp.Timeout.Seconds())),
			Role:         role,
			LogGroup:     logs,
			Environment:  &env,

			ReservedConcurrentExecutions: reserved,
		})
		f.ByName[sp.Name] = fn
		f.Roles[sp.Name] = role
	}
	// The sweep runs every minute: a failed run is not retried, the next one does its work.
	f.ByName[FunctionSweep].ConfigureAsyncInvoke(&awslambda.EventInvokeConfigOptions{RetryAttempts: jsii.Number(0)})
	return f, nil
}

// Specs returns the specs of the functions, in declaration order.
func (f *Functions) Specs() []Spec { return append([]Spec(nil), f.specs...) }

// Senders returns the names of the functions that post to agents.
func (f *Functions) Senders() []string {
	var out []string
	for _, sp := range f.specs {
		if sp.Access.Sends {
			out = append(out, sp.Name)
		}
	}
	return out
}

// SetEnvironment sets key to value in every function's environment.
func (f *Functions) SetEnvironment(key string, value *string) {
	for _, sp := range f.specs {
		f.ByName[sp.Name].AddEnvironment(jsii.String(key), value, nil)
	}
}

// Enqueuers returns the names of the functions that send to the dispatch queue.
func (f *Functions) Enqueuers() []string {
	var out []string
	for _, sp := range f.specs {
		if sp.Access.Enqueues {
			out = append(out, sp.Name)
		}
	}
	return out
}

// grantAccess adds a's DynamoDB, S3 and secret statements to role: actions listed one by one, on
// the table, its named indexes, key prefixes of the bucket and the secret.
func grantAccess(role awsiam.Role, st *Storage, a Access) error {
	if len(a.Table) > 0 {
		var conditions *map[string]any
		if len(a.LeadingKeys) > 0 {
			conditions = &map[string]any{"ForAllValues:StringLike": map[string]any{"dynamodb:LeadingKeys": a.LeadingKeys}}
		}
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String("Table"),
			Actions:    jsii.Strings(a.Table...),
			Resources:  &[]*string{st.Table.TableArn()},
			Conditions: conditions,
		}))
	}
	if len(a.Indexes) > 0 {
		if len(a.LeadingKeys) > 0 {
			return errors.New("dynamodb:LeadingKeys is not applied to index actions: list no index actions with LeadingKeys")
		}
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("Indexes"),
			Actions:   jsii.Strings(a.Indexes...),
			Resources: new(st.IndexArns()),
		}))
	}
	byActions := map[string][]*string{} // "s3:GetObject,s3:PutObject" → object ARNs
	for _, prefix := range slices.Sorted(maps.Keys(a.Objects)) {
		arn, err := st.ObjectArn(prefix)
		if err != nil {
			return err
		}
		acts := slices.Sorted(slices.Values(a.Objects[prefix]))
		k := strings.Join(acts, ",")
		byActions[k] = append(byActions[k], arn)
	}
	for i, k := range slices.Sorted(maps.Keys(byActions)) {
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String(fmt.Sprintf("Objects%d", i)),
			Actions:   jsii.Strings(strings.Split(k, ",")...),
			Resources: new(byActions[k]),
		}))
	}
	if a.ListBucket {
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("ListBucket"),
			Actions:   jsii.Strings("s3:ListBucket"),
			Resources: &[]*string{st.Bucket.BucketArn()},
		}))
	}
	if a.SealKey {
		// GetSecretValue only: what Boot calls (GrantRead would add DescribeSecret).
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("SealKey"),
			Actions:   jsii.Strings("secretsmanager:GetSecretValue"),
			Resources: &[]*string{st.SealKey.SecretArn()},
		}))
	}
	return nil
}
