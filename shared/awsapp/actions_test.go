package awsapp

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/baton-run/baton/shared/store/dynamo"
)

func s(v string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: v} }

// TestActionRecorderMapsOperationsToIAM: each operation is recorded as the IAM actions and
// resources IAM authorizes it against, with its partition keys as patterns.
func TestActionRecorderMapsOperationsToIAM(t *testing.T) {
	schema := dynamo.TableSchema()
	pk := schema.PartitionKey
	r := NewActionRecorder(schema)
	r.Name("tbl", "table")
	r.Name("bkt", "bucket")
	r.Name("https://sqs.example/1/q", "queue")
	gsiPK := schema.GSIs[0].PartitionKey
	for _, tc := range []struct {
		service, op string
		in          any
		want        []call
	}{
		{dynamodb.ServiceID, "GetItem", &dynamodb.GetItemInput{TableName: aws.String("tbl"), Key: map[string]ddbtypes.AttributeValue{pk: s("TOKEN#abc")}},
			[]call{{"dynamodb:GetItem", "table", []string{"TOKEN#*"}}}},
		{dynamodb.ServiceID, "PutItem", &dynamodb.PutItemInput{TableName: aws.String("tbl"), Item: map[string]ddbtypes.AttributeValue{pk: s("NODES")}},
			[]call{{"dynamodb:PutItem", "table", []string{"NODES"}}}},
		{dynamodb.ServiceID, "UpdateItem", &dynamodb.UpdateItemInput{TableName: aws.String("tbl"), Key: map[string]ddbtypes.AttributeValue{pk: s("web1")}},
			[]call{{"dynamodb:UpdateItem", "table", []string{"*"}}}}, // not a constant: any key
		{dynamodb.ServiceID, "Query", &dynamodb.QueryInput{TableName: aws.String("tbl"), IndexName: aws.String(schema.GSIs[0].Name),
			KeyConditionExpression:    aws.String("#p = :p AND begins_with(#s, :s)"),
			ExpressionAttributeNames:  map[string]string{"#p": gsiPK, "#s": "x"},
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":p": s("NAME#web1"), ":s": s("0")}},
			[]call{{"dynamodb:Query", "table/index/" + schema.GSIs[0].Name, []string{"NAME#*"}}}},
		{dynamodb.ServiceID, "TransactWriteItems", &dynamodb.TransactWriteItemsInput{TransactItems: []ddbtypes.TransactWriteItem{
			{Put: &ddbtypes.Put{TableName: aws.String("tbl"), Item: map[string]ddbtypes.AttributeValue{pk: s("JOB#1")}}},
			{Update: &ddbtypes.Update{TableName: aws.String("tbl"), Key: map[string]ddbtypes.AttributeValue{pk: s("COUNTERS")}}},
			{ConditionCheck: &ddbtypes.ConditionCheck{TableName: aws.String("tbl"), Key: map[string]ddbtypes.AttributeValue{pk: s("NODES")}}},
			{Delete: &ddbtypes.Delete{TableName: aws.String("tbl"), Key: map[string]ddbtypes.AttributeValue{pk: s("NONCE#x")}}},
		}}, []call{
			{"dynamodb:PutItem", "table", []string{"JOB#*"}},
			{"dynamodb:UpdateItem", "table", []string{"COUNTERS"}},
			{"dynamodb:ConditionCheckItem", "table", []string{"NODES"}},
			{"dynamodb:DeleteItem", "table", []string{"NONCE#*"}},
		}},
		{dynamodb.ServiceID, "BatchWriteItem", &dynamodb.BatchWriteItemInput{RequestItems: map[string][]ddbtypes.WriteRequest{"tbl": {
			{PutRequest: &ddbtypes.PutRequest{Item: map[string]ddbtypes.AttributeValue{pk: s("JOB#2")}}},
			{DeleteRequest: &ddbtypes.DeleteRequest{Key: map[string]ddbtypes.AttributeValue{pk: s("GROUPS")}}},
		}}}, []call{{"dynamodb:BatchWriteItem", "table", []string{"JOB#*"}}, {"dynamodb:BatchWriteItem", "table", []string{"GROUPS"}}}},
		{dynamodb.ServiceID, "Scan", &dynamodb.ScanInput{TableName: aws.String("other")},
			[]call{{"dynamodb:Scan", "?other", []string{"*"}}}},
		{s3.ServiceID, "HeadObject", &s3.HeadObjectInput{Bucket: aws.String("bkt"), Key: aws.String("files/sha256/abcd")},
			[]call{{"s3:GetObject", "bucket/files/sha256/*", nil}}},
		{s3.ServiceID, "PutObject", &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("results/txn")},
			[]call{{"s3:PutObject", "bucket/results/*", nil}}},
		{s3.ServiceID, "ListObjectsV2", &s3.ListObjectsV2Input{Bucket: aws.String("bkt")},
			[]call{{"s3:ListBucket", "bucket", nil}}},
		{apigatewaymanagementapi.ServiceID, "DeleteConnection", &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String("c")},
			[]call{{"execute-api:ManageConnections", "@connections/DELETE", nil}}},
		{"SQS", "SendMessageBatch", &struct{ QueueUrl *string }{aws.String("https://sqs.example/1/q")},
			[]call{{"sqs:SendMessage", "queue", nil}}},
		{"Secrets Manager", "GetSecretValue", &struct{ SecretId *string }{aws.String("arn:x")},
			[]call{{"secretsmanager:GetSecretValue", "?arn:x", nil}}},
	} {
		t.Run(tc.op, func(t *testing.T) {
			if got := r.calls(tc.service, tc.op, tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("calls = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestActionRecorderOnAClient: the middleware sees a real client's calls (presigned ones
// too), attributes them to the function in the context, and keeps untagged calls apart.
func TestActionRecorderOnAClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		fmt.Fprint(w, `{}`)
	}))
	t.Cleanup(srv.Close)
	rec := NewActionRecorder(dynamo.TableSchema())
	rec.Name("tbl", "table")
	rec.Name("bkt", "bucket")
	creds := credentials.NewStaticCredentialsProvider("a", "b", "")
	ddb := dynamodb.New(dynamodb.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(srv.URL),
		DisableValidateResponseChecksum: true, APIOptions: rec.APIOptions()})
	key := map[string]ddbtypes.AttributeValue{dynamo.PartitionKey: s("TOKEN#1"), dynamo.SortKey: s("TOKEN")}
	if _, err := ddb.GetItem(WithFunction(t.Context(), "authorizer"), &dynamodb.GetItemInput{TableName: aws.String("tbl"), Key: key}); err != nil {
		t.Fatal(err)
	}
	if _, err := ddb.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String("tbl"), Key: key}); err != nil {
		t.Fatal(err)
	}
	s3c := s3.New(s3.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(srv.URL), UsePathStyle: true, APIOptions: rec.APIOptions()})
	if _, err := s3.NewPresignClient(s3c).PresignPutObject(WithFunction(t.Context(), "wsdefault"),
		&s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("results/t1")}); err != nil {
		t.Fatal(err)
	}
	want := FunctionActions{
		"authorizer": {"dynamodb:GetItem": {"table": {"TOKEN#*"}}},
		"wsdefault":  {"s3:PutObject": {"bucket/results/*": nil}},
	}
	if got := rec.Actions(); !reflect.DeepEqual(got, want) {
		t.Errorf("actions = %v, want %v", got, want)
	}
	if got := rec.Untagged(); !reflect.DeepEqual(got, FunctionActions{"": {"dynamodb:GetItem": {"table": {"TOKEN#*"}}}}) {
		t.Errorf("untagged = %v", got)
	}

	// Round trip through the file, and what a record lacks.
	path := filepath.Join(t.TempDir(), "actions.json")
	if err := want.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadFunctionActions(path)
	if err != nil || len(back.Missing(want)) != 0 || len(want.Missing(back)) != 0 {
		t.Fatalf("read back %v (%v)", back, err)
	}
	more := FunctionActions{}
	more.Merge(want)
	more.add("authorizer", "dynamodb:GetItem", "table", "USERS")
	more.add("api", "dynamodb:Query", "table", "JOB#*")
	if got, w := more.Missing(want), []string{"api dynamodb:Query table [JOB#*]", "authorizer dynamodb:GetItem table key USERS"}; !reflect.DeepEqual(got, w) {
		t.Errorf("Missing = %q, want %q", got, w)
	}
}
