package dynamo_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/store/dynamo"
)

// getRaw reads an item of the table as stored.
func (e *env) getRaw(t *testing.T, pk, sk string) map[string]types.AttributeValue {
	t.Helper()
	out, err := e.client.GetItem(t.Context(), &dynamodb.GetItemInput{
		TableName: aws.String(e.table),
		Key: map[string]types.AttributeValue{
			dynamo.PartitionKey: &types.AttributeValueMemberS{Value: pk},
			dynamo.SortKey:      &types.AttributeValueMemberS{Value: sk},
		},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("get %s %s: %v", pk, sk, err)
	}
	return out.Item
}

// TestConnectWritesOnlyTheSmallItem: connects, disconnects and facts that did not change
// write one small item (or nothing), whatever the size of the facts, and no index entry.
func TestConnectWritesOnlyTheSmallItem(t *testing.T) {
	e := newEnv(t)
	m := newMeter()
	s := e.store(t, dynamo.WithMeter(m))
	ctx := t.Context()
	facts := map[string]any{"os": map[string]any{"family": "Debian"}}
	for i := range 400 { // about 20 KB of facts
		facts[fmt.Sprintf("fact_%03d", i)] = strings.Repeat("x", 40)
	}
	raw, err := json.Marshal(facts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateNode(ctx, inventory.Node{Name: "web1", CredentialHash: "h", Facts: raw, CreatedAt: time.Unix(1, 0)}); err != nil {
		t.Fatalf("create node: %v", err)
	}
	indexWrites := func() float64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		total := 0.0
		for k, u := range m.parts {
			if k.index != "" {
				total += u.wcu
			}
		}
		return total
	}
	step := func(what string, wantWrites int, fn func() error) {
		t.Helper()
		_, w0 := m.totals()
		i0 := indexWrites()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		_, w1 := m.totals()
		if got := w1 - w0; got != float64(wantWrites) {
			t.Errorf("%s wrote %v units, want %d", what, got, wantWrites)
		}
		if got := indexWrites() - i0; got != 0 {
			t.Errorf("%s wrote %v units of index entries, want none", what, got)
		}
	}
	at := time.Unix(100, 0)
	step("connect", 1, func() error { return s.MarkNodeConnected(ctx, "web1", "pcp://b/server", "c1", at) })
	step("disconnect", 1, func() error { return s.MarkNodeDisconnected(ctx, "web1", "c1") })
	step("same facts", 0, func() error { return s.SetNodeFacts(ctx, "web1", raw) })
	n, err := s.GetNode(ctx, "web1")
	if err != nil || string(n.Facts) != string(raw) || n.Connected {
		t.Fatalf("node after the steps: connected %v, %d facts bytes, %v", n.Connected, len(n.Facts), err)
	}
	// The connection item is small; the facts live in an item of their own.
	conn, factsIt := e.getRaw(t, "NODE#web1", "NODE"), e.getRaw(t, "NODE#web1", "FACTS")
	if _, ok := conn["facts"]; ok || len(factsIt) == 0 {
		t.Fatalf("facts are in the connection item (%v) or have no item of their own (%d attributes)", ok, len(factsIt))
	}
}

// TestInventoryIndexSharded: the names are listed from the INV#<k> partitions of GSI1,
// never from one partition, and enrolment writes one index entry per node.
func TestInventoryIndexSharded(t *testing.T) {
	e := newEnv(t)
	m := newMeter()
	s := e.store(t, dynamo.WithMeter(m))
	ctx := t.Context()
	var batch []inventory.Node
	for i := range 200 {
		batch = append(batch, inventory.Node{Name: fmt.Sprintf("n%03d", i), CreatedAt: time.Unix(1, 0)})
	}
	if err := s.CreateNodes(ctx, batch); err != nil {
		t.Fatalf("create nodes: %v", err)
	}
	names, err := s.NodeNames(ctx)
	if err != nil || len(names) != 200 || names[0] != "n000" || names[199] != "n199" {
		t.Fatalf("names: %d, %v", len(names), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	shards := 0
	for k, u := range m.parts {
		if k.index == dynamo.GSI1 && strings.HasPrefix(k.pk, "INV#") {
			shards++
			if u.wcu > 30 {
				t.Errorf("index partition %s took %v write units for 200 nodes", k.pk, u.wcu)
			}
		}
	}
	if shards < 8 {
		t.Fatalf("200 nodes went to %d inventory index partitions, want them spread over many", shards)
	}
}

// TestFactValuesCap: past the cap, query targeting is refused with store.ErrLimit before
// any facts are read.
func TestFactValuesCap(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, dynamo.WithFactValuesCap(2))
	ctx := t.Context()
	for _, name := range []string{"a", "b"} {
		if _, err := s.CreateNode(ctx, inventory.Node{Name: name, Facts: json.RawMessage(`{"role":"web"}`), CreatedAt: time.Unix(1, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.FactValues(ctx, []string{"role"}); err != nil || len(got) != 2 {
		t.Fatalf("fact values at the cap: %v, %v", got, err)
	}
	if _, err := s.CreateNode(ctx, inventory.Node{Name: "c", CreatedAt: time.Unix(1, 0)}); err != nil {
		t.Fatal(err)
	}
	gets := e.ops.count("BatchGetItem")
	if _, err := s.FactValues(ctx, []string{"role"}); !errors.Is(err, store.ErrLimit) {
		t.Fatalf("fact values past the cap: %v, want store.ErrLimit", err)
	}
	if n := e.ops.count("BatchGetItem") - gets; n != 0 {
		t.Fatalf("a refused FactValues read facts (%d BatchGetItem)", n)
	}
}

// TestBigJobCreatedInBatches: a job of thousands of nodes is created with BatchWriteItem,
// no transaction, and the job item last.
func TestBigJobCreatedInBatches(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	ctx := t.Context()
	n := map[bool]int{false: 10000, true: 2000}[raceEnabled]
	in := newJob()
	in.NodeCount, in.Concurrency = n, 0
	start := time.Now()
	j, err := s.CreateJob(ctx, in, nodes(n, jobs.NodeNew), nil)
	if err != nil {
		t.Fatalf("create job: %v", err)
	}
	t.Logf("created a %d-node job in %v: %v", n, time.Since(start), e.ops.ops)
	if e.ops.count("TransactWriteItems") != 0 {
		t.Fatal("a job was created with a transaction")
	}
	if b := e.ops.count("BatchWriteItem"); b < n/25 {
		t.Fatalf("%d nodes in %d BatchWriteItem calls", n, b)
	}
	c, err := s.JobCounts(ctx, j.ID)
	if err != nil || c[jobs.NodeNew] != n {
		t.Fatalf("counts %v, %v", c, err)
	}
	q, err := s.ListJobNodesInState(ctx, j.ID, jobs.NodeNew, 3)
	if err != nil || len(q) != 3 || q[0].Name != "node-000" || q[2].Name != "node-002" {
		t.Fatalf("first queued: %v, %v", names(q), err)
	}
	// Every item of the job expires with it.
	it := e.getRaw(t, fmt.Sprintf("JOB#%d", j.ID), "JOB")
	ttl, ok := it[dynamo.TTLAttribute].(*types.AttributeValueMemberN)
	if !ok {
		t.Fatal("the job item has no TTL")
	}
	var exp int64
	fmt.Sscan(ttl.Value, &exp)
	if want := time.Now().Add(dynamo.DefaultRetention).Unix(); exp < want-60 || exp > want+60 {
		t.Fatalf("job TTL %d, want about %d (now + retention)", exp, want)
	}
}

func names(ns []jobs.Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Name
	}
	return out
}

// TestRecountHealsCounters: a record written without its counters' update (a process that
// died in between) is counted again by RecountJob, and only once.
func TestRecountHealsCounters(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	ctx := t.Context()
	j, err := s.CreateJob(ctx, newJob(), nodes(3, jobs.NodeNew), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The record moves to finished behind the store's back, as step 1 of UpdateJobNode
	// does before a crash.
	_, err = e.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(e.table),
		Key: map[string]types.AttributeValue{
			dynamo.PartitionKey: &types.AttributeValueMemberS{Value: fmt.Sprintf("JOB#%d#0", j.ID)},
			dynamo.SortKey:      &types.AttributeValueMemberS{Value: "NODE#node-001"},
		},
		UpdateExpression:          aws.String("SET st = :s"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":s": &types.AttributeValueMemberS{Value: "finished"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := s.JobCounts(ctx, j.ID); c[jobs.NodeNew] != 3 {
		t.Fatalf("counts before the recount: %v", c)
	}
	for i, want := range []bool{true, false} {
		changed, err := s.RecountJob(ctx, j.ID)
		if err != nil || changed != want {
			t.Fatalf("recount %d: changed %v, %v; want %v", i+1, changed, err, want)
		}
	}
	c, err := s.JobCounts(ctx, j.ID)
	if err != nil || c[jobs.NodeNew] != 2 || c[jobs.NodeFinished] != 1 {
		t.Fatalf("counts after the recount: %v, %v", c, err)
	}
	// The claim cursor skips the finished record.
	got, err := s.ClaimJobNodes(ctx, j.ID, store.Claim{Limit: 3, Apply: func(n jobs.Node) (jobs.Node, []jobs.Event) {
		n.State = jobs.NodeReady
		return n, nil
	}})
	if err != nil || len(got) != 2 || got[0].Name != "node-000" || got[1].Name != "node-002" {
		t.Fatalf("claim after the recount: %v, %v", names(got), err)
	}
}

// TestEventsFollowerWaitsForAGap: an id allocated but not yet written stops ListEvents
// before it (a follower asks again from there), until the gap wait passes.
func TestEventsFollowerWaitsForAGap(t *testing.T) {
	e := newEnv(t)
	clock := time.Now()
	now := func() time.Time { return clock }
	s := e.store(t, dynamo.WithGapWait(30*time.Second, now))
	ctx := t.Context()
	j, err := s.CreateJob(ctx, newJob(), nodes(2, jobs.NodeNew), []jobs.Event{{Type: jobs.EventNodeErrored, Timestamp: time.Unix(1, 0), Node: "node-000"}})
	if err != nil {
		t.Fatal(err)
	}
	// A writer allocates id 2 and dies before writing its event.
	_, err = e.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(e.table),
		Key: map[string]types.AttributeValue{
			dynamo.PartitionKey: &types.AttributeValueMemberS{Value: fmt.Sprintf("JOB#%d", j.ID)},
			dynamo.SortKey:      &types.AttributeValueMemberS{Value: "COUNTERS"},
		},
		UpdateExpression:          aws.String("ADD ev :one, clk :one"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": &types.AttributeValueMemberN{Value: "1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.GetJobNode(ctx, j.ID, "node-001")
	if err != nil {
		t.Fatal(err)
	}
	n.State = jobs.NodeReady
	if n, err = s.UpdateJobNode(ctx, n, jobs.Event{Type: jobs.EventNodeRunning, Timestamp: time.Unix(2, 0), Node: "node-001"}); err != nil || n.LatestEventID != 3 {
		t.Fatalf("update: latest event %d, %v; want 3", n.LatestEventID, err)
	}
	ids := func(start int64) []int64 {
		evs, err := s.ListEvents(ctx, j.ID, start, 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, e := range evs {
			out = append(out, e.ID)
		}
		return out
	}
	if got := ids(1); fmt.Sprint(got) != "[1]" {
		t.Fatalf("events from 1 with id 2 missing: %v, want [1] (the follower waits at 2)", got)
	}
	clock = clock.Add(31 * time.Second)
	if got := ids(2); fmt.Sprint(got) != "[3]" {
		t.Fatalf("events from 2 once the gap wait passed: %v, want [3]", got)
	}
}

// TestLeaseItem: a lease is one PutItem to take and one DeleteItem to release.
func TestLeaseItem(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	ctx := t.Context()
	now := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	puts, dels := e.ops.count("PutItem"), e.ops.count("DeleteItem")
	if ok, err := s.TryLease(ctx, "dispatch-7", "fn-a", now, now.Add(time.Minute)); !ok || err != nil {
		t.Fatalf("take: %v, %v", ok, err)
	}
	if err := s.ReleaseLease(ctx, "dispatch-7", "fn-a"); err != nil {
		t.Fatal(err)
	}
	if p, d := e.ops.count("PutItem")-puts, e.ops.count("DeleteItem")-dels; p != 1 || d != 1 {
		t.Fatalf("take and release sent %d PutItem and %d DeleteItem, want 1 and 1", p, d)
	}
}
