package awsapp

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"

	"github.com/baton-run/baton/shared/catalog/s3catalog"
	"github.com/baton-run/baton/shared/store/dynamo"
)

// functionKey tags a context with the Lambda function whose handler runs in it.
type functionKey struct{}

// WithFunction returns ctx tagged with the name of the Lambda function (infra/stack's
// Function* names) whose handler runs with it, so that an ActionRecorder on clients shared by
// several handlers (the AWS end-to-end test runs them all in one process) can tell whose
// calls it sees.
func WithFunction(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, functionKey{}, name)
}

// FunctionOf returns the function name WithFunction put in ctx, or "".
func FunctionOf(ctx context.Context) string {
	s, _ := ctx.Value(functionKey{}).(string)
	return s
}

// FunctionActions is what each function asks of AWS: function name → IAM action (as in a
// policy, e.g. "dynamodb:GetItem") → resource → the partition key patterns it touched
// (DynamoDB only; sorted; nil for other services).
//
// Resources are symbolic, so that the same file describes the test's emulators and the
// deployed stack (infra/stack resolves them against the synthesized template):
//
//	table, table/index/<name>   the DynamoDB table and its indexes
//	bucket, bucket/<prefix>*    the S3 bucket (ListBucket) and its objects under a key prefix
//	queue                       the dispatch queue
//	seal-key                    the seal-key secret
//	function/<name>             a Lambda function
//	@connections/<METHOD>       the WebSocket API's @connections endpoint
//
// A partition key pattern keeps a key up to its first '#' and replaces the rest with '*'
// ("JOB#*", "TOKEN#*"); a key without '#' is kept when it is a constant (upper case letters
// and '_': "NODES"), else it is "*". They are what a dynamodb:LeadingKeys condition compares.
type FunctionActions map[string]map[string]map[string][]string

// add records one action of fn.
func (fa FunctionActions) add(fn, action, resource string, keys ...string) {
	if fa[fn] == nil {
		fa[fn] = map[string]map[string][]string{}
	}
	if fa[fn][action] == nil {
		fa[fn][action] = map[string][]string{}
	}
	ks := fa[fn][action][resource]
	for _, k := range keys {
		if !slices.Contains(ks, k) {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	fa[fn][action][resource] = ks
}

// Merge adds every entry of other to fa.
func (fa FunctionActions) Merge(other FunctionActions) {
	for fn, acts := range other {
		for act, res := range acts {
			for r, keys := range res {
				fa.add(fn, act, r, keys...)
			}
		}
	}
}

// Missing returns, sorted, the entries of fa that committed does not hold, one line each:
// "function action resource" or "function action resource key".
func (fa FunctionActions) Missing(committed FunctionActions) []string {
	var out []string
	for fn, acts := range fa {
		for act, res := range acts {
			for r, keys := range res {
				have, ok := committed[fn][act][r]
				if !ok {
					out = append(out, fmt.Sprintf("%s %s %s %v", fn, act, r, keys))
					continue
				}
				for _, k := range keys {
					if !slices.Contains(have, k) {
						out = append(out, fmt.Sprintf("%s %s %s key %s", fn, act, r, k))
					}
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// ReadFunctionActions reads a file WriteFile wrote.
func ReadFunctionActions(path string) (FunctionActions, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var fa FunctionActions
	if err := json.Unmarshal(b, &fa); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fa, nil
}

// WriteFile writes fa as indented JSON (map keys sorted, so the file is stable).
func (fa FunctionActions) WriteFile(path string) error {
	b, err := json.MarshalIndent(fa, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ActionRecorder is a client middleware (ActionRecorder.APIOption, for any aws-sdk-go-v2
// client's APIOptions, presign clients included) that records every AWS API action a call
// makes, with the IAM action names and resources IAM checks it against, under the function
// its context is tagged with (WithFunction). Calls whose context carries no function are
// counted apart (Untagged): in a test they are the harness's own.
type ActionRecorder struct {
	schema dynamo.Schema

	mu       sync.Mutex
	names    map[string]string // real resource identifier → symbolic name
	actions  FunctionActions
	untagged FunctionActions // under the key ""
}

// NewActionRecorder returns a recorder for a table with schema (whose key attributes say
// which attribute of an item or a query is its partition key).
func NewActionRecorder(schema dynamo.Schema) *ActionRecorder {
	return &ActionRecorder{schema: schema, names: map[string]string{}, actions: FunctionActions{}, untagged: FunctionActions{}}
}

// Name makes the recorder write symbolic instead of real, a resource identifier as the
// clients see it: a table or bucket name, a queue URL, a function name or a secret id.
func (r *ActionRecorder) Name(real, symbolic string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.names[real] = symbolic
}

// Actions returns a copy of what the tagged calls did.
func (r *ActionRecorder) Actions() FunctionActions {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := FunctionActions{}
	out.Merge(r.actions)
	return out
}

// Untagged returns what calls without a function did, as the actions of function "".
func (r *ActionRecorder) Untagged() FunctionActions {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := FunctionActions{}
	out.Merge(r.untagged)
	return out
}

// APIOption adds the recorder to a client's middleware stack: append it to the client's
// Options.APIOptions (or aws.Config.APIOptions for every client built from the config).
func (r *ActionRecorder) APIOption(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("BatonActionRecorder",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			r.record(ctx, awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx), in.Parameters)
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}

// APIOptions returns APIOption as a list, for config.WithAPIOptions and clients' Options.
func (r *ActionRecorder) APIOptions() []func(*middleware.Stack) error {
	return []func(*middleware.Stack) error{r.APIOption}
}

// call is one IAM authorization a request needs.
type call struct {
	action, resource string
	keys             []string
}

func (r *ActionRecorder) record(ctx context.Context, service, op string, params any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn := FunctionOf(ctx)
	into := r.actions
	if fn == "" {
		into = r.untagged
	}
	for _, c := range r.calls(service, op, params) {
		into.add(fn, c.action, c.resource, c.keys...)
	}
}

// calls maps one API operation to the IAM actions and resources it is authorized against.
func (r *ActionRecorder) calls(service, op string, params any) []call {
	switch service {
	case dynamodb.ServiceID:
		return r.dynamoCalls(op, params)
	case s3.ServiceID:
		return r.s3Calls(op, params)
	case apigatewaymanagementapi.ServiceID:
		method := map[string]string{"PostToConnection": "POST", "GetConnection": "GET", "DeleteConnection": "DELETE"}[op]
		if method == "" {
			method = "?" + op
		}
		return []call{{action: "execute-api:ManageConnections", resource: "@connections/" + method}}
	case "SQS":
		action := "sqs:" + op
		if op == "SendMessageBatch" { // IAM authorizes a batch as SendMessage
			action = "sqs:SendMessage"
		}
		return []call{{action: action, resource: r.name(stringField(params, "QueueUrl"))}}
	case "Lambda":
		action := "lambda:" + op
		if op == "Invoke" || op == "InvokeWithResponseStream" {
			action = "lambda:InvokeFunction"
		}
		return []call{{action: action, resource: r.name(stringField(params, "FunctionName"))}}
	case "Secrets Manager":
		return []call{{action: "secretsmanager:" + op, resource: r.name(stringField(params, "SecretId"))}}
	default:
		return []call{{action: strings.ToLower(strings.ReplaceAll(service, " ", "")) + ":" + op, resource: "?"}}
	}
}

// name returns the symbolic name of a real resource identifier, or "?" and the identifier.
func (r *ActionRecorder) name(real string) string {
	if s, ok := r.names[real]; ok {
		return s
	}
	return "?" + real
}

// dynamoCalls: IAM authorizes a transaction item by item (PutItem, UpdateItem, DeleteItem,
// ConditionCheckItem; GetItem for TransactGetItems), batches as BatchGetItem and
// BatchWriteItem, everything else as the operation of the same name.
func (r *ActionRecorder) dynamoCalls(op string, params any) []call {
	tablePK := func(table string, item map[string]ddbtypes.AttributeValue) call {
		return call{resource: r.name(table), keys: []string{keyPattern(item[r.schema.PartitionKey])}}
	}
	with := func(action string, c call) call { c.action = "dynamodb:" + action; return c }
	switch in := params.(type) {
	case *dynamodb.GetItemInput:
		return []call{with(op, tablePK(deref(in.TableName), in.Key))}
	case *dynamodb.PutItemInput:
		return []call{with(op, tablePK(deref(in.TableName), in.Item))}
	case *dynamodb.UpdateItemInput:
		return []call{with(op, tablePK(deref(in.TableName), in.Key))}
	case *dynamodb.DeleteItemInput:
		return []call{with(op, tablePK(deref(in.TableName), in.Key))}
	case *dynamodb.QueryInput:
		resource, pk := r.name(deref(in.TableName)), r.schema.PartitionKey
		if ix := deref(in.IndexName); ix != "" {
			resource += "/index/" + ix
			pk = ""
			for _, g := range r.schema.GSIs {
				if g.Name == ix {
					pk = g.PartitionKey
				}
			}
		}
		return []call{{action: "dynamodb:Query", resource: resource,
			keys: []string{keyPattern(queryPartitionValue(pk, deref(in.KeyConditionExpression), in.ExpressionAttributeNames, in.ExpressionAttributeValues))}}}
	case *dynamodb.ScanInput:
		resource := r.name(deref(in.TableName))
		if ix := deref(in.IndexName); ix != "" {
			resource += "/index/" + ix
		}
		return []call{{action: "dynamodb:Scan", resource: resource, keys: []string{"*"}}}
	case *dynamodb.BatchGetItemInput:
		var out []call
		for _, table := range slices.Sorted(maps.Keys(in.RequestItems)) {
			for _, k := range in.RequestItems[table].Keys {
				out = append(out, with(op, tablePK(table, k)))
			}
		}
		return out
	case *dynamodb.BatchWriteItemInput:
		var out []call
		for _, table := range slices.Sorted(maps.Keys(in.RequestItems)) {
			for _, w := range in.RequestItems[table] {
				switch {
				case w.PutRequest != nil:
					out = append(out, with(op, tablePK(table, w.PutRequest.Item)))
				case w.DeleteRequest != nil:
					out = append(out, with(op, tablePK(table, w.DeleteRequest.Key)))
				}
			}
		}
		return out
	case *dynamodb.TransactWriteItemsInput:
		var out []call
		for _, it := range in.TransactItems {
			switch {
			case it.Put != nil:
				out = append(out, with("PutItem", tablePK(deref(it.Put.TableName), it.Put.Item)))
			case it.Update != nil:
				out = append(out, with("UpdateItem", tablePK(deref(it.Update.TableName), it.Update.Key)))
			case it.Delete != nil:
				out = append(out, with("DeleteItem", tablePK(deref(it.Delete.TableName), it.Delete.Key)))
			case it.ConditionCheck != nil:
				out = append(out, with("ConditionCheckItem", tablePK(deref(it.ConditionCheck.TableName), it.ConditionCheck.Key)))
			}
		}
		return out
	case *dynamodb.TransactGetItemsInput:
		var out []call
		for _, it := range in.TransactItems {
			if it.Get != nil {
				out = append(out, with("GetItem", tablePK(deref(it.Get.TableName), it.Get.Key)))
			}
		}
		return out
	default:
		return []call{{action: "dynamodb:" + op, resource: r.name(stringField(params, "TableName"))}}
	}
}

// s3Calls: IAM authorizes HeadObject as GetObject, listing as ListBucket on the bucket,
// multipart uploads as PutObject. An object resource keeps the key's first path element.
func (r *ActionRecorder) s3Calls(op string, params any) []call {
	bucket := r.name(stringField(params, "Bucket"))
	object := bucket + "/" + objectPattern(stringField(params, "Key"))
	switch op {
	case "GetObject", "HeadObject":
		return []call{{action: "s3:GetObject", resource: object}}
	case "PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload":
		return []call{{action: "s3:PutObject", resource: object}}
	case "CopyObject":
		return []call{{action: "s3:PutObject", resource: object}, {action: "s3:GetObject", resource: "?" + stringField(params, "CopySource")}}
	case "DeleteObject":
		return []call{{action: "s3:DeleteObject", resource: object}}
	case "ListObjects", "ListObjectsV2":
		return []call{{action: "s3:ListBucket", resource: bucket}}
	default:
		return []call{{action: "s3:" + op, resource: bucket}}
	}
}

var keyCondition = regexp.MustCompile(`([#\w.]+)\s*=\s*(:\w+)`)

// queryPartitionValue finds the value a key condition gives the partition key attribute pk.
func queryPartitionValue(pk, cond string, names map[string]string, values map[string]ddbtypes.AttributeValue) ddbtypes.AttributeValue {
	for _, m := range keyCondition.FindAllStringSubmatch(cond, -1) {
		attr := m[1]
		if n, ok := names[attr]; ok {
			attr = n
		}
		if attr == pk && pk != "" {
			return values[m[2]]
		}
	}
	return nil
}

// keyPattern turns a partition key value into the pattern FunctionActions records.
func keyPattern(v ddbtypes.AttributeValue) string {
	s, ok := v.(*ddbtypes.AttributeValueMemberS)
	if !ok {
		return "*"
	}
	if i := strings.IndexByte(s.Value, '#'); i >= 0 {
		return s.Value[:i+1] + "*"
	}
	if s.Value != "" && strings.Trim(s.Value, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") == "" {
		return s.Value
	}
	return "*"
}

// objectPrefixes are the key prefixes of the bucket's objects (s3catalog's), longest first.
var objectPrefixes = func() []string {
	p := []string{s3catalog.FilesPrefix, s3catalog.TasksPrefix, s3catalog.EnvsPrefix, s3catalog.ResultsPrefix}
	sort.Slice(p, func(i, j int) bool { return len(p[i]) > len(p[j]) })
	return p
}()

// objectPattern keeps the key prefix of an object key ("files/sha256/ab…" → "files/sha256/*"):
// the longest of s3catalog's prefixes it has, else its first path element.
func objectPattern(key string) string {
	for _, p := range objectPrefixes {
		if strings.HasPrefix(key, p) {
			return p + "*"
		}
	}
	if i := strings.IndexByte(key, '/'); i >= 0 {
		return key[:i+1] + "*"
	}
	return "*"
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// stringField returns the *string field name of the struct params points to, or "": the
// inputs of the services this package does not import (SQS, Lambda, Secrets Manager) are
// read by field name.
func stringField(params any, name string) string {
	v := reflect.ValueOf(params)
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return ""
	}
	f := v.FieldByName(name)
	if !f.IsValid() {
		return ""
	}
	if f.Kind() == reflect.Pointer && !f.IsNil() && f.Elem().Kind() == reflect.String {
		return f.Elem().String()
	}
	if f.Kind() == reflect.String {
		return f.String()
	}
	return ""
}
