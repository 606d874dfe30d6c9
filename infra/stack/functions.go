package stack

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	EnvTable            = "BATON_TABLE"
	EnvBucket           = "BATON_BUCKET"
	EnvWebSocketURL     = "BATON_WS_ENDPOINT"
	EnvDispatchFunction = "BATON_DISPATCH_FUNCTION"
	EnvSealKeySecret    = "BATON_SEAL_KEY_SECRET"
)

// Settings every function shares.
const (
	FunctionMemoryMB = 256
	LogRetention     = awslogs.RetentionDays_ONE_MONTH
)

// tableAccess is how much of the table a function uses.
type tableAccess int

const (
	tableGetItem tableAccess = iota // reads single items: tokens, node credentials
	tableNodes                      // reads and replaces single items: a node's connection
	tableAll                        // the whole store: items, batches, transactions, indexes
)

// Spec is what one function is: its timeout and the access its role gets.
type Spec struct {
	Name    string
	Timeout time.Duration
	// Description is shown in the Lambda console.
	Description string
	table       tableAccess
	// catalog: read the task catalog and results, sign file downloads and result uploads.
	catalog bool
	// Sends posts to agents through the WebSocket API's @connections endpoint.
	Sends bool
}

// Specs lists the functions. The access levels follow what each handler's code path calls:
// the authorizers only look up a token or a node credential; $connect and $disconnect only
// read and replace the node's inventory item; the API, $default, dispatch and the sweep run
// the orchestrator, which uses the whole store and the catalog and sends to agents.
func Specs() []Spec {
	return []Spec{
		{Name: FunctionAPI, Timeout: 29 * time.Second, Description: "Baton HTTP API (PE orchestrator v1 and /baton/v1)", table: tableAll, catalog: true, Sends: true},
		{Name: FunctionAuthorizer, Timeout: 10 * time.Second, Description: "Baton HTTP API token authorizer", table: tableGetItem},
		{Name: FunctionWSAuthorizer, Timeout: 10 * time.Second, Description: "Baton agent WebSocket $connect authorizer", table: tableGetItem},
		{Name: FunctionWSConnect, Timeout: 10 * time.Second, Description: "Baton agent WebSocket $connect", table: tableNodes},
		{Name: FunctionWSDisconnect, Timeout: 10 * time.Second, Description: "Baton agent WebSocket $disconnect", table: tableNodes},
		{Name: FunctionWSDefault, Timeout: 10 * time.Second, Description: "Baton agent WebSocket $default (PCP messages from agents)", table: tableAll, catalog: true, Sends: true},
		{Name: FunctionDispatch, Timeout: 60 * time.Second, Description: "Baton job dispatch (invoked asynchronously by the API)", table: tableAll, catalog: true, Sends: true},
		{Name: FunctionSweep, Timeout: 60 * time.Second, Description: "Baton sweep: timeouts and undelivered work, every minute", table: tableAll, catalog: true, Sends: true},
	}
}

// DynamoDB actions by access level. TransactWriteItems needs no action of its own: IAM
// checks each item's PutItem, UpdateItem, DeleteItem or ConditionCheckItem.
var (
	tableReadItemActions = []string{"dynamodb:GetItem"}
	tableNodeActions     = []string{"dynamodb:GetItem", "dynamodb:PutItem"}
	tableAllActions      = []string{
		"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query",
		"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
		"dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem",
	}
)

// FunctionsProps configures Functions.
type FunctionsProps struct {
	// AssetDir holds <name>.zip for every function in Specs (make lambdas writes ../dist).
	AssetDir string
	Storage  *Storage
	// Retain keeps the log groups when the stack is deleted.
	Retain bool
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
		st.SealKey.GrantRead(role, nil)
		if err := grantTable(role, st, sp.table); err != nil {
			return nil, fmt.Errorf("functions: %s: %w", sp.Name, err)
		}
		if sp.catalog {
			if err := grantCatalog(role, st); err != nil {
				return nil, fmt.Errorf("functions: %s: %w", sp.Name, err)
			}
		}
		fn := awslambda.NewFunction(scope, jsii.String("Function"), &awslambda.FunctionProps{
			Description:  jsii.String(sp.Description),
			Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
			Architecture: awslambda.Architecture_ARM_64(),
			Handler:      jsii.String("bootstrap"),
			Code:         awslambda.Code_FromAsset(jsii.String(filepath.Join(props.AssetDir, sp.Name+".zip")), nil),
			MemorySize:   jsii.Number(FunctionMemoryMB),
			Timeout:      awscdk.Duration_Seconds(jsii.Number(sp.Timeout.Seconds())),
			Role:         role,
			LogGroup:     logs,
			Environment: &map[string]*string{
				EnvTable:         st.Table.TableName(),
				EnvBucket:        st.Bucket.BucketName(),
				EnvSealKeySecret: st.SealKey.SecretArn(),
			},
		})
		f.ByName[sp.Name] = fn
		f.Roles[sp.Name] = role
	}
	// The API starts jobs by invoking dispatch asynchronously; nothing else invokes it.
	dispatch, api := f.ByName[FunctionDispatch], f.ByName[FunctionAPI]
	api.AddEnvironment(jsii.String(EnvDispatchFunction), dispatch.FunctionName(), nil)
	dispatch.GrantInvoke(f.Roles[FunctionAPI])
	// The sweep runs every minute: a failed run is not retried, the next one does its work.
	// Dispatch keeps Lambda's default two retries (its work is idempotent).
	f.ByName[FunctionSweep].ConfigureAsyncInvoke(&awslambda.EventInvokeConfigOptions{RetryAttempts: jsii.Number(0)})
	return f, nil
}

// Specs returns the specs of the functions, in declaration order.
func (f *Functions) Specs() []Spec { return append([]Spec(nil), f.specs...) }

// Senders returns the names of the functions that post to agents.
func (f *Functions) Senders() []string {
	var out []string
	for _, sp := range f.specs {
		if sp.Sends {
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

func grantTable(role awsiam.Role, st *Storage, level tableAccess) error {
	var actions []string
	resources := []*string{st.Table.TableArn()}
	switch level {
	case tableGetItem:
		actions = tableReadItemActions
	case tableNodes:
		actions = tableNodeActions
	case tableAll:
		actions = tableAllActions
		resources = append(resources, st.IndexArns()...)
	default:
		return fmt.Errorf("unknown table access level %d", level)
	}
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("Table"),
		Actions:   jsii.Strings(actions...),
		Resources: &resources,
	}))
	return nil
}

// grantCatalog lets a role read the catalog (task indexes and files, to sign download URLs)
// and results, sign result uploads, and list the bucket, without which S3 answers a missing
// key with 403 instead of 404.
func grantCatalog(role awsiam.Role, st *Storage) error {
	var read []*string
	for _, p := range []string{s3catalog.FilesPrefix, s3catalog.TasksPrefix, s3catalog.EnvsPrefix, s3catalog.ResultsPrefix} {
		arn, err := st.ObjectArn(p)
		if err != nil {
			return err
		}
		read = append(read, arn)
	}
	results, err := st.ObjectArn(s3catalog.ResultsPrefix)
	if err != nil {
		return err
	}
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("CatalogRead"),
		Actions:   jsii.Strings("s3:GetObject"),
		Resources: &read,
	}))
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("ResultUpload"),
		Actions:   jsii.Strings("s3:PutObject"),
		Resources: &[]*string{results},
	}))
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("CatalogList"),
		Actions:   jsii.Strings("s3:ListBucket"),
		Resources: &[]*string{st.Bucket.BucketArn()},
	}))
	return nil
}
