package dynamo_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

// TestOutputItems checks the layout output.go promises: one node's output is one partition
// key, the chunks written together one item (one PutItem) keyed by its last seq, carrying
// the job's TTL.
func TestOutputItems(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t)
	s := e.store(t)
	j, err := s.CreateJob(ctx, jobs.Job{Type: jobs.TypeTask, State: jobs.StateRunning, Task: "demo::hello", NodeCount: 1},
		[]jobs.Node{{Name: "web1", State: jobs.NodeRunning}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var cs []store.OutputChunk
	for seq := int64(1); seq <= 30; seq++ {
		cs = append(cs, store.OutputChunk{Seq: seq, Stream: "stdout", Data: fmt.Sprintf("line %d\n", seq)})
	}
	puts, batches := e.ops.count("PutItem"), e.ops.count("BatchWriteItem")
	if err := s.PutOutput(ctx, j.ID, "web1", cs); err != nil {
		t.Fatal(err)
	}
	if err := s.PutOutput(ctx, j.ID, "web1", cs[20:]); err != nil { // sent again
		t.Fatal(err)
	}
	if n := e.ops.count("PutItem") - puts; n != 2 || e.ops.count("BatchWriteItem") != batches {
		t.Errorf("30 chunks, then 10 again, took %d PutItem calls and %d BatchWriteItem, want 2 and 0", n, e.ops.count("BatchWriteItem")-batches)
	}
	pk := fmt.Sprintf("JOB#%d#O#web1", j.ID)
	out, err := e.client.Query(ctx, &dynamodb.QueryInput{TableName: aws.String(e.table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: pk}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Items) != 1 {
		t.Fatalf("partition %s holds %d items, want 1", pk, len(out.Items))
	}
	if sk := out.Items[0]["sk"].(*types.AttributeValueMemberS).Value; sk != "O#00000000000000000030" {
		t.Errorf("the run's sort key is %s, want its last seq O#00000000000000000030", sk)
	}
	jobItem, err := e.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(e.table),
		Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: fmt.Sprintf("JOB#%d", j.ID)}, "sk": &types.AttributeValueMemberS{Value: "JOB"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := jobItem.Item["expires_at"].(*types.AttributeValueMemberN).Value
	for _, it := range out.Items {
		sk := it["sk"].(*types.AttributeValueMemberS).Value
		if !strings.HasPrefix(sk, "O#") {
			t.Fatalf("item %s in the output partition", sk)
		}
		if got, ok := it["expires_at"].(*types.AttributeValueMemberN); !ok || got.Value != want {
			t.Fatalf("chunk %s expires_at = %v, want the job's %s", sk, it["expires_at"], want)
		}
	}
}
