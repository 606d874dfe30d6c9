package awsapp

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/awsgw"
	"github.com/baton-run/baton/shared/catalog/s3catalog"
	"github.com/baton-run/baton/shared/console"
	"github.com/baton-run/baton/shared/httpapi"
	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/puppetdb"
	"github.com/baton-run/baton/shared/seal"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/store/dynamo"
	"github.com/baton-run/baton/shared/usage"
)

// Config is what the functions read from their environment.
type Config struct {
	Table             string        // BATON_TABLE
	Bucket            string        // BATON_BUCKET
	WebSocketEndpoint string        // BATON_WS_ENDPOINT: https://{api-id}.execute-api.{region}.amazonaws.com/{stage}
	DispatchQueue     string        // BATON_DISPATCH_QUEUE: URL of the SQS queue the dispatch function consumes
	SealKey           []byte        // 32 bytes; from BATON_SEAL_KEY (hex) or the secret BATON_SEAL_KEY_SECRET names
	SealKeySecret     string        // BATON_SEAL_KEY_SECRET: Secrets Manager secret id holding the hex key
	ConnectTimeout    time.Duration // BATON_CONNECT_TIMEOUT (default 30s)
	// TaskConcurrency caps running actions across all jobs (PE's task_concurrency):
	// BATON_TASK_CONCURRENCY; unset or negative: no cap (the default on AWS, where there is no
	// broker process to protect and the cap would cost writes on every node-run).
	TaskConcurrency int
	// StatusInterval is how long a running node may stay silent before the sweep asks its
	// agent for the transaction's status: BATON_STATUS_INTERVAL, default 60s (the sweep runs
	// every minute).
	StatusInterval time.Duration
	// APIRate and APIBurst limit API requests per user, per function instance:
	// BATON_API_RATE and BATON_API_BURST (httpapi's defaults; a negative rate: no limit).
	APIRate  float64
	APIBurst int
	// PuppetDB, when its URL is set, takes scope queries as full PQL (instead of the built-in
	// subset) and supplies facts of nodes whose agent reported none: BATON_PUPPETDB_URL,
	// BATON_PUPPETDB_CA_FILE or BATON_PUPPETDB_CA (PEM text), BATON_PUPPETDB_CERT and
	// BATON_PUPPETDB_KEY (files, e.g. from a Lambda layer), BATON_PUPPETDB_TIMEOUT.
	PuppetDB puppetdb.Config
}

// ConfigFromEnv reads Config from the environment (only mains call it).
func ConfigFromEnv() (Config, error) {
	c := Config{Table: os.Getenv("BATON_TABLE"), Bucket: os.Getenv("BATON_BUCKET"),
		WebSocketEndpoint: os.Getenv("BATON_WS_ENDPOINT"), DispatchQueue: os.Getenv("BATON_DISPATCH_QUEUE"),
		SealKeySecret: os.Getenv("BATON_SEAL_KEY_SECRET")}
	if v := os.Getenv("BATON_SEAL_KEY"); v != "" {
		k, err := hex.DecodeString(strings.TrimSpace(v))
		if err != nil {
			return c, fmt.Errorf("BATON_SEAL_KEY: %w", err)
		}
		c.SealKey = k
	}
	for _, v := range []struct {
		name string
		dst  *time.Duration
	}{{"BATON_CONNECT_TIMEOUT", &c.ConnectTimeout}, {"BATON_STATUS_INTERVAL", &c.StatusInterval}} {
		if s := os.Getenv(v.name); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil {
				return c, fmt.Errorf("%s: %w", v.name, err)
			}
			*v.dst = d
		}
	}
	c.TaskConcurrency = -1
	for _, v := range []struct {
		name string
		dst  *int
	}{{"BATON_TASK_CONCURRENCY", &c.TaskConcurrency}, {"BATON_API_BURST", &c.APIBurst}} {
		if s := os.Getenv(v.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				return c, fmt.Errorf("%s: %w", v.name, err)
			}
			*v.dst = n
		}
	}
	c.PuppetDB = puppetdb.Config{URL: os.Getenv("BATON_PUPPETDB_URL"), CAFile: os.Getenv("BATON_PUPPETDB_CA_FILE"),
		CAPEM: []byte(os.Getenv("BATON_PUPPETDB_CA")), CertFile: os.Getenv("BATON_PUPPETDB_CERT"), KeyFile: os.Getenv("BATON_PUPPETDB_KEY")}
	if s := os.Getenv("BATON_PUPPETDB_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return c, fmt.Errorf("BATON_PUPPETDB_TIMEOUT: %w", err)
		}
		c.PuppetDB.Timeout = d
	}
	if v := os.Getenv("BATON_API_RATE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return c, fmt.Errorf("BATON_API_RATE: %w", err)
		}
		c.APIRate = f
	}
	return c, nil
}

// Validate checks what every function needs.
func (c Config) Validate() error {
	var errs []error
	if c.Table == "" {
		errs = append(errs, errors.New("BATON_TABLE is required"))
	}
	if c.Bucket == "" {
		errs = append(errs, errors.New("BATON_BUCKET is required"))
	}
	if c.WebSocketEndpoint == "" {
		errs = append(errs, errors.New("BATON_WS_ENDPOINT is required"))
	}
	if len(c.SealKey) != 32 {
		errs = append(errs, errors.New("a 32-byte seal key is required (BATON_SEAL_KEY or BATON_SEAL_KEY_SECRET)"))
	}
	return errors.Join(errs...)
}

// Clients are the AWS service clients the App uses; mains build them from the Lambda
// environment, tests point them at emulators.
type Clients struct {
	DynamoDB   *dynamodb.Client
	S3         *s3.Client
	Management *apigatewaymanagementapi.Client // the WebSocket API's @connections endpoint
	// SQS sends to the dispatch queue (Config.DispatchQueue); nil, or no queue configured:
	// a new job is dispatched in the function that creates it.
	SQS QueueSender
}

// App is the control plane wired for AWS.
type App struct {
	Store        *dynamo.Store
	Catalog      *s3catalog.Catalog
	Auth         *auth.Service
	Orchestrator *orchestrator.Service
	Sender       *awsgw.Sender
	WebSocket    *awsgw.WebSocket
	API          http.Handler
	Meter        *Meter
	log          *slog.Logger
}

// lateInbox breaks the construction cycle between the sender (which reports gone
// connections to the orchestrator) and the orchestrator (which sends through the sender).
type lateInbox struct{ orch *orchestrator.Service }

func (l *lateInbox) NodeDisconnected(ctx context.Context, node, conn string) error {
	return l.orch.NodeDisconnected(ctx, node, conn)
}

// connections looks up a node's live connection in the inventory.
type connections struct{ st *dynamo.Store }

func (c connections) Connection(ctx context.Context, node string) (string, bool, error) {
	if id, ok := knownConnection(ctx, node); ok {
		return id, true, nil // looked up when the job was created (DispatchMessage.Conns)
	}
	// The connection item alone (a read unit; GetNode reads the facts too): every send and
	// every acknowledgement looks it up.
	got, err := c.st.Connections(ctx, []string{node})
	if err != nil {
		return "", false, err
	}
	id, ok := got[node]
	return id, ok, nil
}

// Default is the $default route (awsgw.WebSocket.Default) knowing the connection the
// message came in on: what this invocation sends to the same node — the acknowledgement of
// a result, above all — goes over it with no read of the inventory. Should the agent have
// reconnected meanwhile, the send finds the connection gone (410), which changes nothing
// recorded for the node's newer connection, and the agent sends its unacknowledged result
// again.
func (a *App) Default(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	if node := authorizedNode(req.RequestContext.Authorizer); node != "" && req.RequestContext.ConnectionID != "" {
		ctx = withKnownConnections(ctx, map[string]string{node: req.RequestContext.ConnectionID})
	}
	return a.WebSocket.Default(ctx, req)
}

// authorizedNode reads the node name the $connect authorizer put in the request's context
// (a map[string]any decoded from the Lambda event, a map[string]string built in Go).
func authorizedNode(a any) string {
	switch m := a.(type) {
	case map[string]any:
		s, _ := m[awsgw.ContextNode].(string)
		return s
	case map[string]string:
		return m[awsgw.ContextNode]
	}
	return ""
}

// New wires an App.
func New(cfg Config, c Clients, meter *Meter, logger *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if meter == nil {
		meter = NewMeter()
	}
	st, err := dynamo.New(c.DynamoDB, dynamo.Config{Table: cfg.Table}, dynamo.WithMeter(meter), dynamo.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	cat, err := s3catalog.New(c.S3, nil, cfg.Bucket, s3catalog.WithMeter(meter), s3catalog.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	sealer, err := seal.New(cfg.SealKey)
	if err != nil {
		return nil, err
	}
	inbox := &lateInbox{}
	sender := awsgw.NewSender(c.Management, connections{st}, inbox, awsgw.WithMeter(meter), awsgw.WithLogger(logger))
	a := &App{Store: st, Catalog: cat, Auth: auth.New(st, time.Now), Sender: sender, Meter: meter, log: logger}
	opts := []orchestrator.Option{
		orchestrator.WithLogger(logger),
		orchestrator.WithConfig(orchestrator.Config{ConnectTimeout: cfg.ConnectTimeout, TaskConcurrency: cfg.TaskConcurrency,
			StatusInterval: cmp.Or(cfg.StatusInterval, time.Minute), StatusScan: true, SweepPeriod: time.Minute, Metered: true,
			// No acknowledgement on the wire: a message ($1 per million) less per node-run.
			NoResultAck: true, UsageCarry: UsageCarry, Broker: "pcp://" + cfg.WebSocketEndpoint + "/server"}),
		orchestrator.WithResultUploads(cat),
		// A reader following a node's output (GET .../output?wait=) reads it again once a
		// second, not four times: each read is a DynamoDB query, and at 250 ms a follower cost
		// about 116 RCU per node-run followed (TestAWSStreamedOutput).
		orchestrator.WithOutputPoll(OutputPoll),
	}
	var apiOpts []httpapi.Option
	if cfg.PuppetDB.URL != "" {
		pdb, err := puppetdb.New(cfg.PuppetDB)
		if err != nil {
			return nil, err
		}
		opts = append(opts, orchestrator.WithQueryResolver(pdb))
		apiOpts = append(apiOpts, httpapi.WithFactSource(pdb))
	}
	if c.SQS != nil && cfg.DispatchQueue != "" {
		// A job is claimed whole when it is created, and its claimed nodes go to the dispatch
		// queue in shares (DispatchMessage): see DispatchMessages.
		conns := newConnCache()
		opts = append(opts, orchestrator.WithHandoff(queueHandoff(c.SQS, cfg.DispatchQueue, conns), connectedLookup(st, conns)))
	}
	a.Orchestrator = orchestrator.New(usageCharged{st}, cat, cat, sender, sealer, opts...)
	inbox.orch = a.Orchestrator
	a.WebSocket = awsgw.NewWebSocket(a.Orchestrator, sender, logger)
	// Per-user limits are per Lambda instance here; the API Gateway stage's throttling is the
	// account-wide control (infra/).
	limits, err := httpapi.NewLimits(cfg.APIRate, cfg.APIBurst, 0, 0)
	if err != nil {
		return nil, err
	}
	api, err := console.WithAPI(httpapi.New(a.Orchestrator, cat, cat, a.Auth, logger, append(apiOpts, httpapi.WithLimits(limits))...)) // the web console at /, as on baton serve
	if err != nil {
		return nil, err
	}
	a.API = charged(api)
	return a, nil
}

// Logger is the App's logger.
func (a *App) Logger() *slog.Logger { return a.log }

// UsageCarry is how long a result's invocation leaves the usage it caused after its counter
// update for the job's next result in the same instance to carry, before it is written
// (orchestrator.Config.UsageCarry): a write unit less per node-run.
const UsageCarry = 5 * time.Second

// OutputPoll is how often a waiting output request reads the node's output again on AWS.
const OutputPoll = time.Second

// charged counts the api function's invocation into the request's usage tally, so that a
// command request's cost is charged to the job it creates. Each request also gets a read
// cache of connection items (dynamo.WithReadCache): creating a job checks that its nodes
// are enrolled and then looks up their connections, from one read of each.
func charged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, tally := usage.Start(dynamo.WithReadCache(r.Context()))
		tally.Add(store.Usage{Invocations: 1})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// usageCharged is the store with AddJobUsage charging the job for the write that records its
// usage too (without it a job's baton_usage missed a write unit per invocation). The write
// itself runs without the tally, which would otherwise count it again in the next charge of
// the same invocation.
type usageCharged struct{ *dynamo.Store }

// usageWriteUnits is what AddJobUsage's own write costs: a usage shard is a few numbers, far
// under the 1 KB of one write unit.
const usageWriteUnits = 1

func (s usageCharged) AddJobUsage(ctx context.Context, jobID int64, u store.Usage) error {
	u.WriteUnits += usageWriteUnits
	return s.Store.AddJobUsage(usage.Detach(ctx), jobID, u)
}
