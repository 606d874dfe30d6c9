package dynamo_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/sivchari/kumo"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/store/dynamo"
	"github.com/baton-run/baton/shared/store/storetest"
)

// tables numbers the tables: emulators started in one process share their storage, so every
// test gets a table of its own.
var tables atomic.Int64

// targets counts the DynamoDB operations sent through it, by X-Amz-Target.
type targets struct {
	base http.RoundTripper
	mu   sync.Mutex
	ops  map[string]int
	// hold, when set, is asked about every request (its operation and body): a request it
	// returns a channel for waits until that channel is closed (to make an interleaving).
	hold func(op string, body []byte) <-chan struct{}
}

func (tr *targets) RoundTrip(r *http.Request) (*http.Response, error) {
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "DynamoDB_20120810.")
	tr.mu.Lock()
	tr.ops[op]++
	hold := tr.hold
	tr.mu.Unlock()
	if hold != nil && r.Body != nil {
		body, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if wait := hold(op, body); wait != nil {
			<-wait
		}
	}
	return tr.base.RoundTrip(r)
}

// setHold sets targets.hold.
func (tr *targets) setHold(h func(op string, body []byte) <-chan struct{}) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.hold = h
}

func (tr *targets) total() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, c := range tr.ops {
		n += c
	}
	return n
}

func (tr *targets) count(op string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.ops[op]
}

// meter sums the capacity the store reports, by operation and by partition key.
type meter struct {
	mu       sync.Mutex
	rcu, wcu map[string]float64
	parts    map[partKey]units
}

// partKey is a partition key of the table (index "") or of an index.
type partKey struct{ index, pk string }

type units struct{ rcu, wcu float64 }

func newMeter() *meter {
	return &meter{rcu: map[string]float64{}, wcu: map[string]float64{}, parts: map[partKey]units{}}
}

func (m *meter) AddPartition(index, pk string, rcu, wcu float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.parts[partKey{index, pk}]
	u.rcu += rcu
	u.wcu += wcu
	m.parts[partKey{index, pk}] = u
}

func (m *meter) AddDynamo(op string, rcu, wcu float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rcu[op] += rcu
	m.wcu[op] += wcu
}

func (m *meter) totals() (rcu, wcu float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range m.rcu {
		rcu += v
	}
	for _, v := range m.wcu {
		wcu += v
	}
	return rcu, wcu
}

// env is one emulator with one table and a client that fails the test on any Scan.
type env struct {
	client *dynamodb.Client
	table  string
	ops    *targets
}

// newEnv starts an emulator for t, creates the table and checks, when t ends, that no Scan
// was sent.
func newEnv(t testing.TB) *env {
	t.Helper()
	srv := kumo.NewServer()
	t.Cleanup(srv.Close)
	ops := &targets{base: http.DefaultTransport, ops: map[string]int{}}
	client := dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(srv.URL),
		// The emulator sends a wrong CRC32; real DynamoDB clients keep the check.
		DisableValidateResponseChecksum: true,
		HTTPClient:                      &http.Client{Transport: ops},
	})
	table := fmt.Sprintf("baton-test-%d", tables.Add(1))
	if err := dynamo.CreateTable(t.Context(), client, table); err != nil {
		t.Fatalf("create table: %v", err)
	}
	t.Cleanup(func() {
		if n := ops.count("Scan"); n > 0 {
			t.Errorf("the store sent %d Scan requests", n)
		}
		// Free the emulator's memory.
		if _, err := client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)}); err != nil {
			t.Errorf("delete table: %v", err)
		}
	})
	return &env{client: client, table: table, ops: ops}
}

func (e *env) store(t testing.TB, opts ...dynamo.Option) *dynamo.Store {
	t.Helper()
	s, err := dynamo.New(e.client, dynamo.Config{Table: e.table}, opts...)
	if err != nil {
		t.Fatalf("new store: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return newEnv(t).store(t) })
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		table string
		ok    bool
	}{
		{"baton", true},
		{"baton-prod_1.jobs", true},
		{"", false},
		{"ab", false},
		{"has space", false},
		{strings.Repeat("x", 256), false},
	}
	for _, tt := range tests {
		t.Run(tt.table, func(t *testing.T) {
			err := dynamo.Config{Table: tt.table}.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate(%q) = %v, want ok=%v", tt.table, err, tt.ok)
			}
		})
	}
	if _, err := dynamo.New(nil, dynamo.Config{Table: "baton"}); err == nil {
		t.Fatal("New with a nil client succeeded")
	}
}

func TestCreateTable(t *testing.T) {
	e := newEnv(t) // created once already
	if err := dynamo.CreateTable(t.Context(), e.client, e.table); err != nil {
		t.Fatalf("second CreateTable: %v", err)
	}
	out, err := e.client.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(e.table)})
	if err != nil {
		t.Fatalf("describe table: %v", err)
	}
	if len(out.Table.GlobalSecondaryIndexes) != len(dynamo.TableSchema().GSIs) {
		t.Fatalf("table has %d indexes, want %d", len(out.Table.GlobalSecondaryIndexes), len(dynamo.TableSchema().GSIs))
	}
	if bm := out.Table.BillingModeSummary; bm == nil || bm.BillingMode != types.BillingModePayPerRequest {
		t.Fatalf("billing mode = %+v, want on-demand", bm)
	}
	ttl, err := e.client.DescribeTimeToLive(t.Context(), &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(e.table)})
	if err != nil {
		t.Fatalf("describe TTL: %v", err)
	}
	if d := ttl.TimeToLiveDescription; d.TimeToLiveStatus != types.TimeToLiveStatusEnabled || aws.ToString(d.AttributeName) != dynamo.TTLAttribute {
		t.Fatalf("TTL = %s on %q, want enabled on %q", d.TimeToLiveStatus, aws.ToString(d.AttributeName), dynamo.TTLAttribute)
	}

	// A table with another design is refused, not used.
	otherName := e.table + "-other"
	_, err = e.client.CreateTable(t.Context(), &dynamodb.CreateTableInput{
		TableName:   aws.String(otherName),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		t.Fatalf("create other table: %v", err)
	}
	err = dynamo.CreateTable(t.Context(), e.client, otherName)
	if !errors.Is(err, dynamo.ErrSchemaMismatch) {
		t.Fatalf("CreateTable on another design = %v, want ErrSchemaMismatch", err)
	}
	if err := dynamo.CreateTable(t.Context(), e.client, "x"); err == nil {
		t.Fatal("CreateTable with an invalid name succeeded")
	}
}

func TestMeterReceivesUnits(t *testing.T) {
	e := newEnv(t)
	m := newMeter()
	s := e.store(t, dynamo.WithMeter(m))
	ctx := t.Context()
	j, err := s.CreateJob(ctx, newJob(), nodes(3, jobs.NodeNew), nil)
	if err != nil {
		t.Fatalf("create job: %v", err)
	}
	n, err := s.GetJobNode(ctx, j.ID, "node-000")
	if err != nil {
		t.Fatalf("get job node: %v", err)
	}
	n.State = jobs.NodeReady
	due := time.Unix(100, 0)
	n.DueAt = &due
	if _, err := s.UpdateJobNode(ctx, n, jobs.Event{Type: jobs.EventNodeRunning, Timestamp: time.Unix(10, 0), Node: n.Name}); err != nil {
		t.Fatalf("update job node: %v", err)
	}
	if _, _, err := s.ListJobs(ctx, store.JobQuery{}); err != nil {
		t.Fatalf("list jobs: %v", err)
	}
	if _, err := s.JobCounts(ctx, j.ID); err != nil {
		t.Fatalf("job counts: %v", err)
	}
	// The transport that guards against Scan sees every operation by its X-Amz-Target.
	if e.ops.count("BatchWriteItem") == 0 || e.ops.count("Query") == 0 {
		t.Fatalf("the transport saw no BatchWriteItem or Query: %v", e.ops.ops)
	}
	if n := e.ops.count("TransactWriteItems"); n != 0 {
		t.Fatalf("creating a job and updating a record sent %d transactions, want none", n)
	}
	rcu, wcu := m.totals()
	if rcu <= 0 || wcu <= 0 {
		t.Fatalf("meter got rcu=%v wcu=%v, want both above 0", rcu, wcu)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, op := range []string{"UpdateItem", "BatchWriteItem", "PutItem"} {
		if m.wcu[op] <= 0 {
			t.Errorf("%s reported %v write units, want more than 0 (all: %v)", op, m.wcu[op], m.wcu)
		}
	}
	for _, op := range []string{"GetItem", "Query"} {
		if m.rcu[op] <= 0 {
			t.Errorf("%s reported %v read units, want more than 0 (all: %v)", op, m.rcu[op], m.rcu)
		}
	}
	// The partition meter got the same units, by key: the record's shard, the job's
	// counters, the due index entry the update created and the job listing's index.
	var prcu, pwcu float64
	for _, u := range m.parts {
		prcu += u.rcu
		pwcu += u.wcu
	}
	if math.Abs(prcu-rcu) > 1e-9 || math.Abs(pwcu-wcu) > 1e-9 {
		t.Errorf("partition units rcu=%v wcu=%v, want the totals rcu=%v wcu=%v", prcu, pwcu, rcu, wcu)
	}
	id := fmt.Sprint(j.ID)
	for _, k := range []partKey{{"", "JOB#" + id + "#0"}, {"", "JOB#" + id}, {dynamo.GSI3, "JOBS"}} {
		if u := m.parts[k]; u.wcu <= 0 && u.rcu <= 0 {
			t.Errorf("partition %+v got no units (all: %v)", k, m.parts)
		}
	}
	dueWrites := 0.0
	for k, u := range m.parts {
		if k.index == dynamo.GSI2 && strings.HasPrefix(k.pk, "DUE#") {
			dueWrites += u.wcu
		}
	}
	if dueWrites != 1 {
		t.Errorf("the due index took %v write units for one entry created, want 1 (all: %v)", dueWrites, m.parts)
	}
}

func newJob() jobs.Job {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	return jobs.Job{
		Type: jobs.TypeTask, State: jobs.StateRunning, Environment: "production", Task: "package::install",
		Owner: jobs.Owner{ID: "1", Login: "admin"}, Options: json.RawMessage(`{"task":"package::install"}`),
		Payload: []byte("sealed"), CreatedAt: now, UpdatedAt: now,
		Status: []jobs.StatusEntry{{State: jobs.StateRunning, EnterTime: now}},
	}
}

// nodes returns n node records named node-000, node-001, ... in state.
func nodes(n int, state jobs.NodeState) []jobs.Node {
	out := make([]jobs.Node, n)
	for i := range out {
		out[i] = jobs.Node{Name: fmt.Sprintf("node-%03d", i), State: state}
	}
	return out
}

func TestBigJobIsCreatedWhole(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	ctx := t.Context()
	const count = 250
	ns := nodes(count, jobs.NodeNew)
	for i := 0; i < count; i += 5 {
		ns[i].State = jobs.NodeReady // 50 active
	}
	var events []jobs.Event
	for i := range 30 {
		events = append(events, jobs.Event{Type: jobs.EventNodeErrored, Timestamp: time.Unix(int64(i), 0), Node: ns[i*7].Name})
	}
	in := newJob()
	in.NodeCount = count
	in.IdempotencyKey = "big"
	j, err := s.CreateJob(ctx, in, ns, events)
	if err != nil {
		t.Fatalf("create job: %v", err)
	}
	if e.ops.count("BatchWriteItem") == 0 {
		t.Fatal("a job of 282 items was written without staging: the test does not exercise the big-job path")
	}
	got, err := s.ListJobNodes(ctx, j.ID)
	if err != nil {
		t.Fatalf("list job nodes: %v", err)
	}
	if len(got) != count {
		t.Fatalf("listed %d nodes, want %d", len(got), count)
	}
	for i, n := range got {
		if n.Name != ns[i].Name || n.State != ns[i].State || n.JobID != j.ID || n.Version != 1 {
			t.Fatalf("node %d = %+v, want %s in state %s of job %d at version 1", i, n, ns[i].Name, ns[i].State, j.ID)
		}
	}
	evs, err := s.ListEvents(ctx, j.ID, 0, 0)
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	if len(evs) != len(events) || evs[len(evs)-1].ID != int64(len(events)) {
		t.Fatalf("got %d events, want %d numbered from 1", len(evs), len(events))
	}
	if n, err := s.GetJobNode(ctx, j.ID, ns[29*7].Name); err != nil || n.LatestEventID != 30 {
		t.Fatalf("node named by the last event: %+v, %v; want LatestEventID 30", n, err)
	}
	if active, err := s.CountActiveNodes(ctx); err != nil || active != count/5 {
		t.Fatalf("active nodes = %d, %v; want %d", active, err, count/5)
	}

	// A big job refused for its idempotency key leaves nothing behind.
	dup := newJob()
	dup.IdempotencyKey = "big"
	_, err = s.CreateJob(ctx, dup, nodes(count, jobs.NodeReady), events)
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("create duplicate big job = %v, want ErrExists", err)
	}
	next, err := s.CreateJob(ctx, newJob(), nil, nil)
	if err != nil {
		t.Fatalf("create job: %v", err)
	}
	for id := j.ID + 1; id < next.ID; id++ {
		if left, err := s.ListJobNodes(ctx, id); err != nil || len(left) != 0 {
			t.Fatalf("refused job %d left %d node records (%v)", id, len(left), err)
		}
		if _, err := s.ListEvents(ctx, id, 0, 0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("events of refused job %d: %v, want ErrNotFound", id, err)
		}
	}
	if active, err := s.CountActiveNodes(ctx); err != nil || active != count/5 {
		t.Fatalf("active nodes after the refused job = %d, %v; want %d", active, err, count/5)
	}
}

func TestLargeValues(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	ctx := t.Context()
	j, err := s.CreateJob(ctx, newJob(), nodes(1, jobs.NodeRunning), nil)
	if err != nil {
		t.Fatalf("create job: %v", err)
	}
	n, err := s.GetJobNode(ctx, j.ID, "node-000")
	if err != nil {
		t.Fatalf("get job node: %v", err)
	}

	// 600 KB of task output that compresses well is stored (compressed) and read back.
	output := strings.Repeat("Notice: /Stage[main]/Package[openssl]/ensure: ensure changed\n", 10_000)
	result, err := json.Marshal(map[string]string{"_output": output})
	if err != nil {
		t.Fatal(err)
	}
	n.State, n.Result = jobs.NodeFinished, result
	n, err = s.UpdateJobNode(ctx, n)
	if err != nil {
		t.Fatalf("store a large compressible result: %v", err)
	}
	got, err := s.GetJobNode(ctx, j.ID, n.Name)
	if err != nil {
		t.Fatalf("get job node: %v", err)
	}
	if !bytes.Equal(got.Result, result) {
		t.Fatalf("result read back is %d bytes, want the %d bytes written", len(got.Result), len(result))
	}

	// 530 KB that does not compress is refused with ErrItemTooLarge and changes nothing.
	noise := make([]byte, 400*1024)
	if _, err := rand.Read(noise); err != nil {
		t.Fatal(err)
	}
	n.Result, err = json.Marshal(map[string]string{"_output": base64.StdEncoding.EncodeToString(noise)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateJobNode(ctx, n); !errors.Is(err, dynamo.ErrItemTooLarge) {
		t.Fatalf("store an incompressible 530 KB result: %v, want ErrItemTooLarge", err)
	}
	if again, err := s.GetJobNode(ctx, j.ID, n.Name); err != nil || again.Version != n.Version || !bytes.Equal(again.Result, result) {
		t.Fatalf("node after the refused update: version %d, %d result bytes, %v; want version %d and the earlier result",
			again.Version, len(again.Result), err, n.Version)
	}
}

// TestActiveCountExactUnderConcurrency races node transitions against the job ending and
// checks the counter against a recount.
func TestActiveCountExactUnderConcurrency(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	ctx := t.Context()
	const workers = 6
	jobIDs := make([]int64, 2)
	for i := range jobIDs {
		j, err := s.CreateJob(ctx, newJob(), nodes(workers, jobs.NodeNew), nil)
		if err != nil {
			t.Fatalf("create job: %v", err)
		}
		jobIDs[i] = j.ID
	}
	steps := []jobs.NodeState{jobs.NodeReady, jobs.NodeRunning, jobs.NodeFailed, jobs.NodeNew, jobs.NodeReady}
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers+1)
	for _, id := range jobIDs {
		for w := range workers {
			wg.Go(func() {
				name := fmt.Sprintf("node-%03d", w)
				for k := 0; k < len(steps); {
					n, err := s.GetJobNode(ctx, id, name)
					if err != nil {
						errs <- err
						return
					}
					n.State = steps[k]
					_, err = s.UpdateJobNode(ctx, n, jobs.Event{Type: jobs.EventNodeRunning, Timestamp: time.Unix(int64(k), 0), Node: name})
					if errors.Is(err, store.ErrConflict) {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					k++
				}
			})
		}
	}
	var ended atomic.Bool
	wg.Go(func() {
		for {
			j, err := s.GetJob(ctx, jobIDs[0])
			if err != nil {
				errs <- err
				return
			}
			j.State = jobs.StateFailed
			_, err = s.UpdateJob(ctx, j, jobs.Event{Type: jobs.EventJobAborted, Timestamp: time.Unix(99, 0)})
			if errors.Is(err, store.ErrConflict) {
				continue
			}
			if err != nil {
				errs <- err
				return
			}
			ended.Store(true)
			return
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent update: %v", err)
	}
	if !ended.Load() {
		t.Fatal("job 1 did not end")
	}
	want := 0
	for _, id := range jobIDs[1:] { // the first job is terminal: none of its records count
		ns, err := s.ListJobNodes(ctx, id)
		if err != nil {
			t.Fatalf("list job nodes: %v", err)
		}
		for _, n := range ns {
			if n.State.Active() {
				want++
			}
		}
	}
	got, err := s.CountActiveNodes(ctx)
	if err != nil {
		t.Fatalf("count active nodes: %v", err)
	}
	if got != want || want != workers {
		t.Fatalf("active nodes = %d, recount = %d, want both %d", got, want, workers)
	}
	evs, err := s.ListEvents(ctx, jobIDs[0], 0, 0)
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	if len(evs) != workers*len(steps)+1 || evs[len(evs)-1].ID != int64(len(evs)) {
		t.Fatalf("job 1 has %d events, want %d numbered without gaps", len(evs), workers*len(steps)+1)
	}
}

func BenchmarkUpdateJobNode(b *testing.B) {
	e := newEnv(b)
	m := newMeter()
	s := e.store(b, dynamo.WithMeter(m))
	ctx := b.Context()
	j, err := s.CreateJob(ctx, newJob(), nodes(1, jobs.NodeNew), nil)
	if err != nil {
		b.Fatalf("create job: %v", err)
	}
	n, err := s.GetJobNode(ctx, j.ID, "node-000")
	if err != nil {
		b.Fatalf("get job node: %v", err)
	}
	r0, w0 := m.totals()
	states := []jobs.NodeState{jobs.NodeReady, jobs.NodeRunning, jobs.NodeNew}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		n.State = states[i%len(states)]
		n.Message = fmt.Sprintf("step %d", i)
		n, err = s.UpdateJobNode(ctx, n, jobs.Event{Type: jobs.EventNodeRunning, Timestamp: time.Unix(int64(i), 0), Node: n.Name})
		if err != nil {
			b.Fatalf("update job node: %v", err)
		}
	}
	r1, w1 := m.totals()
	b.ReportMetric((r1-r0)/float64(b.N), "RCU/op")
	b.ReportMetric((w1-w0)/float64(b.N), "WCU/op")
}

func BenchmarkCreateJob100Nodes(b *testing.B) {
	e := newEnv(b)
	m := newMeter()
	s := e.store(b, dynamo.WithMeter(m))
	ctx := b.Context()
	ns := nodes(100, jobs.NodeNew)
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.CreateJob(ctx, newJob(), ns, nil); err != nil {
			b.Fatalf("create job: %v", err)
		}
	}
	r, w := m.totals()
	b.ReportMetric(r/float64(b.N), "RCU/op")
	b.ReportMetric(w/float64(b.N), "WCU/op")
}

func TestUseNonceItem(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	ctx := t.Context()
	now := time.Date(2100, time.March, 1, 12, 0, 0, 0, time.UTC)
	expires := now.Add(time.Hour).Add(500 * time.Millisecond)
	puts := e.ops.count("PutItem")
	if err := s.UseNonce(ctx, "n1", now, expires); err != nil {
		t.Fatalf("use nonce: %v", err)
	}
	if err := s.UseNonce(ctx, "n1", now, expires); !errors.Is(err, store.ErrExists) {
		t.Fatalf("reuse nonce: error = %v, want ErrExists", err)
	}
	if n := e.ops.count("PutItem") - puts; n != 2 {
		t.Fatalf("two uses sent %d PutItem requests, want 2 (one each)", n)
	}
	out, err := e.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(e.table),
		Key: map[string]types.AttributeValue{
			dynamo.PartitionKey: &types.AttributeValueMemberS{Value: "NONCE#n1"},
			dynamo.SortKey:      &types.AttributeValueMemberS{Value: "NONCE"},
		},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("get nonce item: %v", err)
	}
	ttl, ok := out.Item[dynamo.TTLAttribute].(*types.AttributeValueMemberN)
	// The expiry is rounded up to the second, so that TTL never deletes the record early.
	if want := fmt.Sprint(expires.Unix() + 1); !ok || ttl.Value != want {
		t.Fatalf("nonce item %s = %v, want %s", dynamo.TTLAttribute, out.Item[dynamo.TTLAttribute], want)
	}

	if err := s.UseNonce(ctx, "", now, expires); err == nil || errors.Is(err, store.ErrExists) {
		t.Fatalf("UseNonce(\"\"): error = %v, want a refusal", err)
	}
}

func TestJobUsageItem(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	ctx := t.Context()
	j, err := s.CreateJob(ctx, jobs.Job{
		Type: jobs.TypeTask, State: jobs.StateRunning, Environment: "production",
		Owner: jobs.Owner{ID: "42", Login: "admin"}, CreatedAt: time.Now(), UpdatedAt: time.Now(),
	}, nil, nil)
	if err != nil {
		t.Fatalf("create job: %v", err)
	}
	shard := func(id int64, k int) map[string]types.AttributeValue {
		t.Helper()
		out, err := e.client.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: aws.String(e.table),
			Key: map[string]types.AttributeValue{
				dynamo.PartitionKey: &types.AttributeValueMemberS{Value: fmt.Sprintf("JOB#%d#U%d", id, k)},
				dynamo.SortKey:      &types.AttributeValueMemberS{Value: "USAGE"},
			},
			ConsistentRead: aws.Bool(true),
		})
		if err != nil {
			t.Fatalf("get usage item: %v", err)
		}
		return out.Item
	}

	updates, batches := e.ops.count("UpdateItem"), e.ops.count("BatchGetItem")
	add := store.Usage{Invocations: 1, ReadUnits: 0.25, WriteUnits: 0.75}
	for range 8 {
		if err := s.AddJobUsage(ctx, j.ID, add); err != nil {
			t.Fatalf("add usage: %v", err)
		}
	}
	u, err := s.JobUsage(ctx, j.ID)
	if want := (store.Usage{Invocations: 8, ReadUnits: 2, WriteUnits: 6}); err != nil || u != want {
		t.Fatalf("usage = %+v, %v; want %+v", u, err, want)
	}
	if n := e.ops.count("UpdateItem") - updates; n != 8 {
		t.Fatalf("8 adds sent %d UpdateItem requests, want 8 (one each)", n)
	}
	if n := e.ops.count("BatchGetItem") - batches; n != 1 {
		t.Fatalf("JobUsage sent %d BatchGetItem requests, want 1", n)
	}
	// The capacity units are plain decimal numbers on the job's usage shards.
	total := 0.0
	for k := range 4 {
		if v, ok := shard(j.ID, k)["uwcu"].(*types.AttributeValueMemberN); ok {
			var f float64
			if _, err := fmt.Sscan(v.Value, &f); err != nil {
				t.Fatalf("shard %d uwcu = %q: %v", k, v.Value, err)
			}
			total += f
		}
	}
	if total != 6 {
		t.Fatalf("usage shards hold %v write units, want 6", total)
	}

	// An add to an unknown job fails its condition and creates no item.
	if err := s.AddJobUsage(ctx, j.ID+1, add); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("add usage to an unknown job: error = %v, want ErrNotFound", err)
	}
	for k := range 4 {
		if it := shard(j.ID+1, k); len(it) != 0 {
			t.Fatalf("add to an unknown job wrote an item: %v", it)
		}
	}

	// Units DynamoDB numbers cannot hold are refused before any request.
	updates = e.ops.count("UpdateItem")
	bad := []struct {
		name string
		u    store.Usage
	}{
		{"NaN read units", store.Usage{ReadUnits: math.NaN()}},
		{"infinite write units", store.Usage{WriteUnits: math.Inf(1)}},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			if err := s.AddJobUsage(ctx, j.ID, b.u); err == nil {
				t.Fatal("AddJobUsage succeeded")
			}
		})
	}
	if n := e.ops.count("UpdateItem") - updates; n != 0 {
		t.Fatalf("refused adds sent %d UpdateItem requests", n)
	}
}
