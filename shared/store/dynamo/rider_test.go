package dynamo_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/store/dynamo"
	"github.com/baton-run/baton/shared/usage"
)

// TestUsageRidesOnCounterUpdates: a record update that moves its job's counters carries the
// usage its caller's tally holds in that same UpdateItem (no write of its own), for a job with
// one counters item and for one with counter shards; the tally keeps only what came after;
// an update that moves no counter writes no usage and leaves the tally as it was. JobUsage
// adds the usage shards and the counters.
func TestUsageRidesOnCounterUpdates(t *testing.T) {
	for _, size := range []int{3, 600} { // 600: counter shards (WithCounterShardsFrom's default 500)
		t.Run(strconv.Itoa(size)+" nodes", func(t *testing.T) {
			e := newEnv(t)
			s := e.store(t, dynamo.WithMeter(newMeter()))
			ctx := t.Context()
			now := time.Now()
			j, err := s.CreateJob(ctx, newJob(), nodes(size, jobs.NodeNew), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.AddJobUsage(ctx, j.ID, store.Usage{Invocations: 1, WriteUnits: 20}); err != nil { // the creation's
				t.Fatal(err)
			}
			nd, err := s.GetJobNode(ctx, j.ID, "node-001")
			if err != nil {
				t.Fatal(err)
			}
			tctx, tally := usage.Start(ctx)

			// Nothing counted moves: the record alone is written, and the tally keeps what
			// it held (plus that write).
			tally.Add(store.Usage{Invocations: 1, MessagesIn: 1})
			updates := e.ops.count("UpdateItem")
			same := nd
			same.Message = "still queued"
			if nd, err = s.UpdateJobNode(tctx, same); err != nil {
				t.Fatal(err)
			}
			if n := e.ops.count("UpdateItem") - updates; n != 1 {
				t.Fatalf("an update that moves no counter sent %d UpdateItem requests, want 1 (the record)", n)
			}
			kept := tally.Take()
			if kept.Invocations != 1 || kept.MessagesIn != 1 || kept.WriteUnits != 1 {
				t.Fatalf("the tally holds %+v after an update that moves no counter, want the invocation, the message and the record's write", kept)
			}
			if u, err := s.JobUsage(ctx, j.ID); err != nil || u.Invocations != 1 || u.WriteUnits != 20 {
				t.Fatalf("usage = %+v, %v: usage was written without a counter update", u, err)
			}

			// The node runs: its counters' update carries the tally.
			tally.Add(kept)
			nd.State, nd.TransactionID, nd.StartedAt = jobs.NodeRunning, jobs.TransactionID(j.ID, "t1"), &now
			updates = e.ops.count("UpdateItem")
			if _, err := s.UpdateJobNode(tctx, nd, jobs.Event{Type: jobs.EventNodeRunning, Timestamp: now, Node: nd.Name}); err != nil {
				t.Fatal(err)
			}
			after := tally.Take()
			if after.Invocations != 0 || after.MessagesIn != 0 || after.WriteUnits < 1 {
				t.Fatalf("the tally holds %+v after the counters' update, want only the writes from that update on", after)
			}
			u, err := s.JobUsage(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			// The creation's 20 units, the first update's record write and this one's
			// (which came before the counters' update).
			if u.Invocations != 2 || u.MessagesIn != 1 || u.WriteUnits != 22 {
				t.Fatalf("usage = %+v, want 2 invocations, 1 message in, 22 write units", u)
			}
			// No usage shard was written but by AddJobUsage: the usage rode on the counters.
			for k := range 4 {
				out, err := e.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(e.table), ConsistentRead: aws.Bool(true),
					Key: map[string]types.AttributeValue{
						dynamo.PartitionKey: &types.AttributeValueMemberS{Value: fmt.Sprintf("JOB#%d#U%d", j.ID, k)},
						dynamo.SortKey:      &types.AttributeValueMemberS{Value: "USAGE"},
					}})
				if err != nil {
					t.Fatal(err)
				}
				if v, ok := out.Item["uinv"].(*types.AttributeValueMemberN); ok && v.Value != "1" {
					t.Fatalf("usage shard %d counts %s invocations, want the creation's alone", k, v.Value)
				}
			}
			if n := e.ops.count("UpdateItem") - updates; n > 4 {
				t.Fatalf("the update sent %d UpdateItem requests, want at most 4 (record, counters, latest event id, quota)", n)
			}
		})
	}
}
