package awsapp_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/sivchari/kumo"

	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/awsapp"
	"github.com/baton-run/baton/shared/awsgw"
	"github.com/baton-run/baton/shared/awsgw/apigwtest"
	"github.com/baton-run/baton/shared/catalog/s3catalog"
	"github.com/baton-run/baton/shared/client"
	"github.com/baton-run/baton/shared/store/dynamo"
)

var agentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "baton-aws-e2e")
	if err != nil {
		panic(err)
	}
	agentBin = filepath.Join(dir, "baton-agent")
	if out, err := exec.Command("go", "build", "-o", agentBin, "../../cmd/baton-agent").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build baton-agent: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	code = max(code, finishActions(code == 0))
	os.RemoveAll(dir)
	os.Exit(code)
}

func logger() *slog.Logger {
	if os.Getenv("BATON_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// cloud is the AWS deployment on one machine: DynamoDB and S3 emulators, API Gateway
// stand-ins, and the exact handlers the Lambda mains wire.
type cloud struct {
	t *testing.T
	// app is the test's own (its direct calls). fn has a pool of instances per function
	// (lambdaPool): as on AWS, each invocation runs alone in an instance of its function,
	// with that instance's caches, so that what one invocation holds in memory (a node it
	// recorded started, a refill running, usage left over) others must read or write.
	app   *awsapp.App
	fn    map[string]*lambdaPool
	ws    *apigwtest.WebSocketAPI
	http  *apigwtest.HTTPAPI
	api   *client.Client
	meter *awsapp.Meter
	kicks sync.WaitGroup // dispatch invocations in flight
	queue *countingQueue
	token string // the admin's API token
	// probe reads the table without metering, so that waiting for a job costs the job nothing.
	probe *dynamo.Store
	// paused stops the scheduled sweep, so that a cost measurement holds only what the job
	// itself caused (the sweep is a fixed cost per minute, not per node-run).
	paused atomic.Bool
	// agents are the agent processes started, by node name: their logs go into the test's
	// output when waiting for them fails.
	agentsMu sync.Mutex
	agents   map[string]*agentProc
}

// sdkHTTP is the SDK clients' HTTP client: AWS's defaults, but at most 256 connections per
// emulator, all kept open. Both ends of each are in this process; unbounded, a storm of
// concurrent handlers (TestCapacity) would open thousands and run out of file descriptors.
var sdkHTTP = awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
	tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost = 256, 256
})

func newCloud(t *testing.T, wsOpts ...apigwtest.Option) *cloud {
	t.Helper()
	return newCloudWith(t, nil, wsOpts...)
}

// newCloudWith is newCloud with configure applied to the functions' configuration.
func newCloudWith(t *testing.T, configure func(*awsapp.Config), wsOpts ...apigwtest.Option) *cloud {
	t.Helper()
	ctx := t.Context()
	creds := credentials.NewStaticCredentialsProvider("test", "test", "")

	ddbSrv := kumo.NewServer()
	t.Cleanup(ddbSrv.Close)
	ddb := dynamodb.New(dynamodb.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(ddbSrv.URL), HTTPClient: sdkHTTP,
		DisableValidateResponseChecksum: true, APIOptions: []func(*middleware.Stack) error{recorder.APIOption}})
	// kumo's state is one per process: a table and a queue of its own keep each cloud apart.
	table := fmt.Sprintf("%s-%d", e2eTable, clouds.Add(1))
	recorder.Name(table, "table")
	if err := dynamo.CreateTable(ctx, ddb, table); err != nil {
		t.Fatal(err)
	}

	backend := s3mem.New()
	if err := backend.CreateBucket("baton-bucket"); err != nil {
		t.Fatal(err)
	}
	s3Srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(s3Srv.Close)
	s3c := s3.New(s3.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(s3Srv.URL), UsePathStyle: true,
		APIOptions: []func(*middleware.Stack) error{recorder.APIOption}})
	modules, _ := filepath.Abs("../../examples/modules")
	if _, err := s3catalog.Publish(ctx, s3c, "baton-bucket", "production", modules); err != nil {
		t.Fatal(err)
	}

	c := &cloud{t: t, meter: awsapp.NewMeter()}
	c.ws = apigwtest.NewWebSocketAPI(apigwtest.WebSocketHandlers{
		Authorizer: func(ctx context.Context, r awsgwAuthorizerRequest) (awsgwAuthorizerResponse, error) {
			var out awsgwAuthorizerResponse
			var err error
			c.fn["wsauthorizer"].invoke(func(app *awsapp.App) {
				out, err = awsgw.NodeAuthorizer(app.Auth, logger())(awsapp.WithFunction(ctx, "wsauthorizer"), r)
			})
			return out, err
		},
		Connect: func(ctx context.Context, r wsEvent) (wsResponse, error) {
			var out wsResponse
			var err error
			c.fn["wsconnect"].invoke(func(app *awsapp.App) { out, err = app.WebSocket.Connect(awsapp.WithFunction(ctx, "wsconnect"), r) })
			return out, err
		},
		Disconnect: func(ctx context.Context, r wsEvent) (wsResponse, error) {
			var out wsResponse
			var err error
			c.fn["wsdisconnect"].invoke(func(app *awsapp.App) {
				out, err = app.WebSocket.Disconnect(awsapp.WithFunction(ctx, "wsdisconnect"), r)
			})
			return out, err
		},
		Default: func(ctx context.Context, r wsEvent) (wsResponse, error) {
			var out wsResponse
			var err error
			c.fn["wsdefault"].invoke(func(app *awsapp.App) { out, err = app.Default(awsapp.WithFunction(ctx, "wsdefault"), r) })
			return out, err
		},
	}, append([]apigwtest.Option{apigwtest.WithIdentitySource("route.request.header.X-Baton-Node", "route.request.header.Authorization"),
		apigwtest.WithLogger(logger())}, wsOpts...)...)
	if err := c.ws.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.ws.Close() })

	mgmt := apigatewaymanagementapi.New(apigatewaymanagementapi.Options{Region: "us-east-1", Credentials: creds, HTTPClient: sdkHTTP,
		BaseEndpoint: aws.String(c.ws.ManagementURL()), APIOptions: []func(*middleware.Stack) error{recorder.APIOption}})
	key := make([]byte, 32)
	cfg := awsapp.Config{Table: table, Bucket: "baton-bucket", WebSocketEndpoint: c.ws.ManagementURL(), SealKey: key, ConnectTimeout: 5 * time.Second,
		TaskConcurrency: -1} // as ConfigFromEnv leaves it unset: no server-wide cap on AWS
	if configure != nil {
		configure(&cfg)
	}
	if _, err := hex.DecodeString(hex.EncodeToString(key)); err != nil {
		t.Fatal(err)
	}
	sqsc := sqs.New(sqs.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(ddbSrv.URL), HTTPClient: sdkHTTP,
		APIOptions: []func(*middleware.Stack) error{recorder.APIOption}})
	q, err := sqsc.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(table + "-dispatch")})
	if err != nil {
		t.Fatal(err)
	}
	cfg.DispatchQueue = aws.ToString(q.QueueUrl)
	recorder.Name(cfg.DispatchQueue, "queue")
	c.queue = &countingQueue{QueueSender: sqsc}
	newApp := func() *awsapp.App {
		app, err := awsapp.New(cfg, awsapp.Clients{DynamoDB: ddb, S3: s3c, Management: mgmt, SQS: c.queue}, c.meter, logger())
		if err != nil {
			panic(err) // the same configuration made the test's own App below
		}
		return app
	}
	app, err := awsapp.New(cfg, awsapp.Clients{DynamoDB: ddb, S3: s3c, Management: mgmt, SQS: c.queue}, c.meter, logger())
	if err != nil {
		t.Fatal(err)
	}
	c.app = app
	c.fn = map[string]*lambdaPool{}
	for f, reserved := range reservedConcurrency {
		c.fn[f] = &lambdaPool{new: newApp, max: reserved}
	}
	apiHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.fn["api"].invoke(func(app *awsapp.App) { app.API.ServeHTTP(w, r) })
	})
	if c.probe, err = dynamo.New(ddb, dynamo.Config{Table: table}); err != nil {
		t.Fatal(err)
	}
	pollCtx, stopPolling := context.WithCancel(context.Background())
	polled := make(chan struct{})
	go func() { defer close(polled); c.pollDispatch(pollCtx, sqsc, cfg.DispatchQueue) }()
	t.Cleanup(func() { stopPolling(); <-polled; c.kicks.Wait() })

	c.http = apigwtest.NewHTTPAPI(apigwtest.HTTPHandlers{
		Authorizer: tagged("authorizer", awsgw.TokenAuthorizer(app.Auth, logger())),
		Handler:    tagged("api", httpadapter.NewV2(apiHandler).ProxyWithContext),
	}, apigwtest.WithIdentitySource()) // none, as in infra/stack/httpapi.go: a ?token= reaches the authorizer
	if err := c.http.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.http.Close() })
	if err := app.Auth.EnsureAdmin(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	token, err := app.Auth.IssueToken(ctx, "admin", "e2e", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c.api, c.token = client.New(c.http.URL(), token), token

	// The scheduled sweep function, once a second here (every minute on AWS).
	sweepCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-sweepCtx.Done():
				return
			case <-tick.C:
				if c.paused.Load() {
					continue
				}
				c.meter.AddInvocation("sweep")
				c.fn["sweep"].invoke(func(app *awsapp.App) { _ = app.Orchestrator.Sweep(awsapp.WithFunction(sweepCtx, "sweep")) })
			}
		}
	}()
	t.Cleanup(func() { stop(); <-done })
	return c
}

// reservedConcurrency is each function's reserved concurrency in infra/stack/functions.go
// (Specs; the dispatch function's is DispatchMaxConcurrency), 0 for none. infra is a module
// of its own, which this one does not import.
var reservedConcurrency = map[string]int{
	"api": 50, "authorizer": 0, "wsauthorizer": 50, "wsconnect": 50, "wsdisconnect": 50,
	"wsdefault": 200, "dispatch": 20, "sweep": 1,
}

// lambdaPool stands in for the instances of one Lambda function: an invocation takes an idle
// instance (an App of its own, with its own caches and timers) or starts one, runs alone in
// it, and leaves it idle for the next. At most max instances run (the function's reserved
// concurrency in infra/stack; 0: no limit): one more invocation waits for one to be idle.
// AWS would throttle it instead, but there the instances answer in milliseconds, and this
// machine's slowness is not a load the functions would see (the stand-in's throttles are
// apigwtest.WithReservedConcurrency's). The instances are never shut down here.
type lambdaPool struct {
	new func() *awsapp.App
	max int

	mu        sync.Mutex
	freed     *sync.Cond
	idle      []*awsapp.App
	instances int
}

func (p *lambdaPool) invoke(f func(*awsapp.App)) {
	p.mu.Lock()
	if p.freed == nil {
		p.freed = sync.NewCond(&p.mu)
	}
	for len(p.idle) == 0 && p.max > 0 && p.instances >= p.max {
		p.freed.Wait()
	}
	var app *awsapp.App
	if n := len(p.idle); n > 0 {
		app, p.idle = p.idle[n-1], p.idle[:n-1]
		p.mu.Unlock()
	} else {
		p.instances++
		p.mu.Unlock()
		app = p.new()
	}
	defer func() {
		p.mu.Lock()
		p.idle = append(p.idle, app)
		p.freed.Signal()
		p.mu.Unlock()
	}()
	f(app)
}

// size is how many instances the pool started.
func (p *lambdaPool) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.instances
}

// countingQueue counts the dispatch messages sent and not yet handled, so that a test can
// wait until dispatch is quiet.
type countingQueue struct {
	awsapp.QueueSender
	pending atomic.Int64
}

func (q *countingQueue) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	q.pending.Add(int64(len(in.Entries)))
	out, err := q.QueueSender.SendMessageBatch(ctx, in, opts...)
	if err != nil {
		q.pending.Add(-int64(len(in.Entries)))
	} else {
		q.pending.Add(-int64(len(out.Failed)))
	}
	return out, err
}

// pollDispatch stands in for the dispatch queue's event source mapping: it receives up to ten
// messages at a time, invokes the dispatch function's handler with them (each batch in its
// own invocation, concurrently) and deletes those the handler did not report failed.
func (c *cloud) pollDispatch(ctx context.Context, q *sqs.Client, url string) {
	for ctx.Err() == nil {
		out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
			WaitTimeSeconds: 1, VisibilityTimeout: 30})
		if err != nil || len(out.Messages) == 0 {
			if err != nil && ctx.Err() == nil {
				c.t.Logf("receive dispatch messages: %v", err)
				time.Sleep(100 * time.Millisecond) // back off before polling again
			}
			continue
		}
		c.kicks.Add(1)
		go func() {
			defer c.kicks.Done()
			ev := events.SQSEvent{}
			for _, m := range out.Messages {
				ev.Records = append(ev.Records, events.SQSMessage{MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body)})
			}
			c.meter.AddInvocation("dispatch")
			var resp events.SQSEventResponse
			var err error
			c.fn["dispatch"].invoke(func(app *awsapp.App) {
				resp, err = app.DispatchMessages(awsapp.WithFunction(context.Background(), "dispatch"), ev)
			})
			if err != nil {
				c.t.Logf("dispatch: %v", err)
				return
			}
			failed := map[string]bool{}
			for _, f := range resp.BatchItemFailures {
				failed[f.ItemIdentifier] = true
			}
			for _, m := range out.Messages {
				if failed[aws.ToString(m.MessageId)] {
					continue
				}
				if _, err := q.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
					c.t.Logf("delete dispatch message: %v", err)
					continue
				}
				c.queue.pending.Add(-1)
			}
		}()
	}
}

type agentProc struct {
	cmd *exec.Cmd
	out *bytes.Buffer
}

// startAgent runs a real baton-agent process against the WebSocket API.
func (c *cloud) startAgent(name, dir string, extra ...string) *agentProc {
	c.t.Helper()
	secret, err := c.app.Auth.EnrollNode(c.t.Context(), name)
	if err != nil && !strings.Contains(err.Error(), "exists") {
		c.t.Fatal(err)
	}
	cred := filepath.Join(dir, name+".cred")
	if secret != "" {
		if err := auth.WriteCredential(cred, auth.Credential{Name: name, Secret: secret, Server: c.ws.URL()}); err != nil {
			c.t.Fatal(err)
		}
	}
	args := append([]string{"--credential", cred, "--cache-dir", filepath.Join(dir, name, "cache"),
		"--spool-dir", filepath.Join(dir, name, "spool"), "--log-level", "debug"}, extra...)
	p := &agentProc{cmd: exec.Command(agentBin, args...), out: &bytes.Buffer{}}
	p.cmd.Stderr = &lockedWriter{w: p.out}
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { p.stop() })
	c.agentsMu.Lock()
	if c.agents == nil {
		c.agents = map[string]*agentProc{}
	}
	c.agents[name] = p
	c.agentsMu.Unlock()
	return p
}

func (p *agentProc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond) // polling interval
	}
}

// waitConnected waits until every named node is connected and has reported its facts. An
// agent gathers them with facter when Puppet is installed, which takes seconds per agent on
// a busy machine: the wait is generous, and on failure the agents' logs are shown.
func (c *cloud) waitConnected(names ...string) {
	c.t.Helper()
	const timeout = 90 * time.Second
	deadline := time.Now().Add(timeout)
	for {
		var missing []string
		for _, n := range names {
			node, err := c.app.Store.GetNode(c.t.Context(), n)
			if err != nil || !node.Connected || string(node.Facts) == "{}" {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.agentsMu.Lock()
			for _, n := range missing {
				if p := c.agents[n]; p != nil {
					out := p.output()
					c.t.Logf("agent %s's log (last 4 KiB):\n%s", n, out[max(0, len(out)-4096):])
				}
			}
			c.agentsMu.Unlock()
			c.t.Fatalf("timed out after %s waiting for agents %v to connect and report their facts", timeout, missing)
		}
		time.Sleep(25 * time.Millisecond) // polling interval
	}
}

func (c *cloud) waitJob(name string) (client.Job, []client.Node) {
	c.t.Helper()
	var job client.Job
	eventually(c.t, "job "+name, 60*time.Second, func() bool {
		var err error
		job, err = c.api.Job(c.t.Context(), name)
		return err == nil && job.Done()
	})
	nodes, err := c.api.JobNodes(c.t.Context(), name)
	if err != nil {
		c.t.Fatal(err)
	}
	return job, nodes
}

// waitQuiet waits for a job to end by reading the table without metering.
func (c *cloud) waitQuiet(name string) {
	c.t.Helper()
	id, err := strconv.ParseInt(name, 10, 64)
	if err != nil {
		c.t.Fatal(err)
	}
	eventually(c.t, "job "+name, 60*time.Second, func() bool {
		j, err := c.probe.GetJob(c.t.Context(), id)
		return err == nil && j.State.Terminal() && c.queue.pending.Load() == 0
	})
	c.kicks.Wait()
}

// usage is everything billable so far: the App's meter plus the gateways' invocations.
func (c *cloud) usage() awsapp.Usage {
	u := c.meter.Snapshot()
	for route, n := range c.ws.Stats().Invocations {
		u.Invocations["ws"+route] += n
	}
	for route, n := range c.http.Stats().Invocations {
		u.Invocations["http "+route] += n
	}
	return u
}

type (
	awsgwAuthorizerRequest  = events.APIGatewayCustomAuthorizerRequestTypeRequest
	awsgwAuthorizerResponse = events.APIGatewayCustomAuthorizerResponse
	wsEvent                 = events.APIGatewayWebsocketProxyRequest
	wsResponse              = events.APIGatewayProxyResponse
)

func TestAWSEndToEnd(t *testing.T) {
	c := newCloud(t)
	dir := t.TempDir()
	names := []string{"web1", "web2", "db1"}
	for _, n := range names {
		c.startAgent(n, dir)
	}
	c.waitConnected(names...)

	t.Run("a task job on three agents", func(t *testing.T) {
		c.paused.Store(true)
		defer c.paused.Store(false)
		before := c.usage()
		ref, err := c.api.RunTask(t.Context(), client.TaskRequest{Task: "demo::hello", Params: map[string]any{"name": "AWS"}, Scope: client.Scope{Nodes: names}})
		if err != nil {
			t.Fatal(err)
		}
		c.waitQuiet(ref.Name)
		perRun := c.usage().Sub(before)
		job, nodes := c.waitJob(ref.Name)
		if job.State != "finished" || job.NodeStates["finished"] != 3 {
			t.Fatalf("job %s %v", job.State, job.NodeStates)
		}
		for _, n := range nodes {
			if !strings.Contains(string(n.Result), `"hello AWS"`) {
				t.Errorf("%s: %s", n.Name, n.Result)
			}
		}
		// The job shows what it cost (GET /jobs/{id}, Baton's baton_usage extension). Each
		// invocation charges the job when it ends, so the last result's invocation (which ended
		// the job) is charged just after the job ended: wait for it.
		u := job.Usage
		// The meter's write units so far: the test's own reads of the job write nothing, so
		// once every invocation of the job has ended these are the job's.
		meterWCU := func() float64 { return c.usage().Sub(before).DynamoWCU }
		settled := func(u *client.Usage) bool {
			return u != nil && u.Invocations >= 3 && u.MessagesIn >= 3 && u.MessagesOut >= 3 && u.WriteUnits >= meterWCU() && u.ReadUnits > 0 && u.EstimatedCost > 0
		}
		for deadline := time.Now().Add(30 * time.Second); !settled(u) && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond) // polling interval
			if j, err := c.api.Job(t.Context(), ref.Name); err == nil {
				u = j.Usage
			}
		}
		if !settled(u) {
			t.Errorf("job usage %+v", u)
		} else if w := meterWCU(); u.WriteUnits != w {
			// Every write the job caused is charged to it once, the writes of its usage too.
			t.Errorf("the job's usage says %.1f write units, the meter %.1f", u.WriteUnits, w)
		} else if u.MessagesOut != 3 {
			// One request per node and nothing else: the results are not acknowledged (no_ack).
			t.Errorf("the job sent %d messages to its 3 agents, want 3 (the requests; no acknowledgements)", u.MessagesOut)
		} else {
			t.Logf("GET /jobs/%s baton_usage: %+v ($%.2f per million node-runs)", ref.Name, *u, u.CostPerNodeRun*1e6)
		}
		// The test's own polling of GET /jobs is the client's business, not the job's: count
		// one HTTP API request (the POST) and its authorizer call.
		perRun.Invocations["http $default"], perRun.Invocations["http authorizer"] = 1, 1
		reportCost(t, "task", perRun, len(nodes))
	})

	t.Run("output too large for one message goes to S3", func(t *testing.T) {
		ref, err := c.api.RunTask(t.Context(), client.TaskRequest{Task: "demo::bigoutput", Params: map[string]any{"kib": 300}, Scope: client.Scope{Nodes: []string{"web1"}}})
		if err != nil {
			t.Fatal(err)
		}
		_, nodes := c.waitJob(ref.Name)
		var res map[string]any
		if err := json.Unmarshal(nodes[0].Result, &res); err != nil {
			t.Fatal(err)
		}
		obj, _ := res["_output_object"].(map[string]any)
		if nodes[0].State != "finished" || obj == nil {
			t.Fatalf("node %s result keys %v", nodes[0].State, keys(res))
		}
		size, sum, _, tail, err := c.app.Catalog.ReadResult(t.Context(), obj["key"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if float64(size) != obj["size_bytes"].(float64) || sum != obj["sha256"] || size < 300<<10 {
			t.Errorf("uploaded object size %d sha %s, job says %v", size, sum, obj)
		}
		if !bytes.Contains(tail, []byte("END-OF-OUTPUT")) {
			t.Errorf("the uploaded object's tail %q does not end the output", tail[max(0, len(tail)-40):])
		}
		if out, _ := res["_output"].(string); !strings.Contains(out, "bytes omitted") || len(out) > 64<<10 {
			t.Errorf("inline output is %d bytes", len(out))
		}
	})
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// reportCost prints what one node-run cost and the dollars per million node-runs.
func reportCost(t *testing.T, what string, u awsapp.Usage, nodeRuns int) {
	t.Helper()
	per := u.Cost(awsapp.USEast1) / float64(nodeRuns)
	t.Logf("COST %s: %d node-runs: %s", what, nodeRuns, u)
	t.Logf("COST %s: $%.2f per million node-runs at us-east-1 list prices (%v)", what, per*1e6, u.Invocations)
	if os.Getenv("BATON_COST_OUT") != "" {
		f, err := os.OpenFile(os.Getenv("BATON_COST_OUT"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(f, "%s\t%d\t%.2f\t%s\n", what, nodeRuns, per*1e6, u)
			f.Close()
		}
	}
}

// TestAWSConnectionLoss: a connection that vanished without $disconnect makes the next send
// see 410, the node goes offline, and the agent — back on a new connection — gets its work and
// delivers a result spooled while it was away exactly once.
func TestAWSConnectionLoss(t *testing.T) {
	c := newCloud(t)
	dir := t.TempDir()
	p := c.startAgent("n1", dir)
	c.waitConnected("n1")
	ctx := t.Context()

	t.Run("a vanished connection is found by the next send", func(t *testing.T) {
		node, _ := c.app.Store.GetNode(ctx, "n1")
		oldConn := node.Connection
		p.cmd.Process.Signal(syscall.SIGSTOP) // the agent cannot reconnect while stopped
		if err := c.ws.Kill(oldConn); err != nil {
			t.Fatal(err)
		}
		if node, _ := c.app.Store.GetNode(ctx, "n1"); !node.Connected {
			t.Fatal("the inventory lost the connection without a send or $disconnect")
		}
		ref, err := c.api.RunTask(ctx, client.TaskRequest{Task: "demo::hello", Scope: client.Scope{Nodes: []string{"n1"}}})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "the node to be marked offline after a 410", 10*time.Second, func() bool {
			n, err := c.app.Store.GetNode(ctx, "n1")
			return err == nil && !n.Connected
		})
		if c.ws.Stats().ManagementCalls["POST"] == 0 {
			t.Error("no @connections POST was made")
		}
		p.cmd.Process.Signal(syscall.SIGCONT)
		job, nodes := c.waitJob(ref.Name)
		if job.State != "finished" || nodes[0].State != "finished" {
			t.Fatalf("after reconnect: %s %s %s", job.State, nodes[0].State, nodes[0].Result)
		}
		if n, _ := c.app.Store.GetNode(ctx, "n1"); !n.Connected || n.Connection == oldConn {
			t.Errorf("inventory after reconnect: connected %v conn %s (old %s)", n.Connected, n.Connection, oldConn)
		}
	})

	t.Run("a result finished while disconnected is delivered once", func(t *testing.T) {
		ref, err := c.api.RunTask(ctx, client.TaskRequest{Task: "demo::sleep", Params: map[string]any{"seconds": 2}, Scope: client.Scope{Nodes: []string{"n1"}}})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "node running", 10*time.Second, func() bool {
			nodes, err := c.api.JobNodes(ctx, ref.Name)
			return err == nil && nodes[0].State == "running"
		})
		node, _ := c.app.Store.GetNode(ctx, "n1")
		if err := c.ws.Kill(node.Connection); err != nil { // the agent notices and reconnects
			t.Fatal(err)
		}
		job, nodes := c.waitJob(ref.Name)
		if job.State != "finished" || nodes[0].State != "finished" || !strings.Contains(string(nodes[0].Result), `"slept"`) {
			t.Fatalf("job %s node %s %s", job.State, nodes[0].State, nodes[0].Result)
		}
		evs, _, err := c.api.Events(ctx, ref.Name, 1)
		if err != nil {
			t.Fatal(err)
		}
		finished := 0
		for _, e := range evs {
			if e.Type == "node_finished" {
				finished++
			}
		}
		if finished != 1 {
			t.Errorf("node_finished events: %d", finished)
		}
	})
}

// TestAWSRevokeNode: revoking a node deletes its API Gateway connection and the $connect
// authorizer refuses it from then on.
func TestAWSRevokeNode(t *testing.T) {
	c := newCloud(t)
	p := c.startAgent("r1", t.TempDir())
	c.waitConnected("r1")
	if err := c.api.RevokeNode(t.Context(), "r1"); err != nil {
		t.Fatal(err)
	}
	if c.ws.Stats().ManagementCalls["DELETE"] != 1 {
		t.Errorf("@connections calls %v, want one DELETE", c.ws.Stats().ManagementCalls)
	}
	eventually(t, "the agent's reconnects to be refused", 15*time.Second, func() bool {
		return c.ws.Stats().Rejected > 0
	})
	if n, _ := c.app.Store.GetNode(t.Context(), "r1"); n.Connected {
		t.Error("the revoked node is still connected in the inventory")
	}
	p.stop()
}

// TestAWSKeepaliveAndReconnect: agents keep their connection open under API Gateway's idle
// timeout with keepalive messages (pings do not count there), and reconnect on their own before
// its connection-duration limit, without losing a result.
func TestAWSKeepaliveAndReconnect(t *testing.T) {
	t.Run("keepalives beat the idle timeout", func(t *testing.T) {
		c := newCloud(t, apigwtest.WithIdleTimeout(time.Second))
		c.startAgent("k1", t.TempDir(), "--keepalive-interval", "200ms")
		c.waitConnected("k1")
		first := c.ws.Stats().Connections
		// Watch through three idle timeouts: any new connection means the old one was closed.
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if got := c.ws.Stats().Connections; got != first {
				t.Fatalf("connections went from %d to %d: the idle timeout closed the agent's connection", first, got)
			}
		}
	})
	t.Run("agents reconnect before the duration limit, results survive", func(t *testing.T) {
		c := newCloud(t, apigwtest.WithMaxConnectionDuration(30*time.Second))
		c.startAgent("a1", t.TempDir(), "--max-connection-age", "700ms")
		c.waitConnected("a1")
		ref, err := c.api.RunTask(t.Context(), client.TaskRequest{Task: "demo::sleep", Params: map[string]any{"seconds": 2}, Scope: client.Scope{Nodes: []string{"a1"}}})
		if err != nil {
			t.Fatal(err)
		}
		job, nodes := c.waitJob(ref.Name)
		if job.State != "finished" || nodes[0].State != "finished" {
			t.Fatalf("job across reconnects: %s %s %s", job.State, nodes[0].State, nodes[0].Result)
		}
		if got := c.ws.Stats().Connections; got < 2 {
			t.Errorf("the agent connected %d times in over 2 s with a 700 ms maximum age", got)
		}
		evs, _, _ := c.api.Events(t.Context(), ref.Name, 1)
		finished := 0
		for _, e := range evs {
			if e.Type == "node_finished" {
				finished++
			}
		}
		if finished != 1 {
			t.Errorf("node_finished events: %d", finished)
		}
	})
}

// TestAWSPuppetRun runs an on-demand Puppet run (masterless puppet apply) through the AWS
// handlers.
func TestAWSPuppetRun(t *testing.T) {
	if _, err := exec.LookPath("puppet"); err != nil {
		if os.Getenv("BATON_REQUIRE_PUPPET") != "" {
			t.Fatalf("puppet is required: %v", err)
		}
		t.Skip("puppet is not installed")
	}
	c := newCloud(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "motd")
	manifest := filepath.Join(dir, "site.pp")
	os.WriteFile(manifest, []byte("file { '"+target+"': content => \"from AWS\\n\" }\n"), 0o644)
	var args []string
	for _, d := range []string{"confdir", "vardir", "codedir", "logdir", "rundir", "ssldir", "publicdir"} {
		p := filepath.Join(dir, "puppet", d)
		os.MkdirAll(p, 0o700)
		args = append(args, "--"+d, p)
	}
	c.startAgent("p1", dir, "--puppet-mode", "apply", "--puppet-manifest", manifest, "--puppet-args", strings.Join(args, ","))
	c.waitConnected("p1")
	c.paused.Store(true)
	before := c.usage()
	ref, err := c.api.Deploy(t.Context(), client.DeployRequest{Environment: "production", Scope: client.Scope{Nodes: []string{"p1"}}})
	if err != nil {
		t.Fatal(err)
	}
	c.waitQuiet(ref.Name)
	u := c.usage().Sub(before)
	job, nodes := c.waitJob(ref.Name)
	var r struct {
		Status  string         `json:"status"`
		Metrics map[string]int `json:"metrics"`
	}
	json.Unmarshal(nodes[0].Result, &r)
	if job.State != "finished" || nodes[0].State != "finished" || r.Status != "changed" || r.Metrics["changed"] != 1 {
		t.Fatalf("deploy: %s %s %s", job.State, nodes[0].State, nodes[0].Result)
	}
	if b, _ := os.ReadFile(target); string(b) != "from AWS\n" {
		t.Errorf("target %q", b)
	}
	// A Puppet run takes longer than the agent's provisional delay, but a no_ack request gets
	// no provisional response: the agent sends its result and nothing else.
	if u.MessagesIn != 1 || u.MessagesOut != 1 {
		t.Errorf("the run took %d messages in and %d out, want 1 and 1 (the request and the result)", u.MessagesIn, u.MessagesOut)
	}
	u.Invocations["http $default"], u.Invocations["http authorizer"] = 1, 1
	reportCost(t, "puppet run", u, 1)
}
