package stack

import (
	"errors"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// Settings of the dispatch queue and its event source mapping.
const (
	// DispatchBatchSize is how many messages one dispatch invocation gets; it reports the
	// ones it failed (ReportBatchItemFailures), which alone come back.
	DispatchBatchSize = 10
	// DispatchMaxConcurrency caps the dispatch instances the queue keeps busy (and is the
	// function's reserved concurrency): 20 instances, each sending one shard's requests with
	// 64 parallel sends, are far more than 1,000 node-runs a second need, and bound the
	// @connections and DynamoDB load a burst of big jobs makes.
	DispatchMaxConcurrency = 20
	// DispatchVisibilityFactor: a received message stays hidden for this many times the
	// dispatch function's timeout (AWS's advice for Lambda event sources is at least six), so
	// that a slow batch is not handed to a second instance while the first still works on it.
	DispatchVisibilityFactor = 6
	// DispatchMaxReceives is how often a message is tried before it goes to the dead-letter
	// queue.
	DispatchMaxReceives = 5
	// DeadLetterRetentionDays is how long dead letters are kept (SQS's maximum).
	DeadLetterRetentionDays = 14
)

// DispatchConsumeActions are what Lambda's event source mapping does with the dispatch
// function's role: it polls the queue, deletes what the function processed and reads the
// queue's attributes.
var DispatchConsumeActions = []string{"sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"}

// DispatchQueueProps configures DispatchQueue.
type DispatchQueueProps struct {
	Functions *Functions
}

// DispatchQueue is how jobs are dispatched: the api sends a new job's claimed nodes to Queue
// (SSE, TLS only) in shares (shared/awsapp.DispatchMessage); an event source mapping hands them to the dispatch function in
// batches of DispatchBatchSize with partial batch failures, at most DispatchMaxConcurrency
// at once; a message that fails DispatchMaxReceives times goes to DeadLetters, kept
// DeadLetterRetentionDays, and DeadLetterAlarm goes off when any is there. It sets
// BATON_DISPATCH_QUEUE (the queue URL) on the functions whose Access.Enqueues is set (the
// api) and allows them sqs:SendMessage on the queue only.
type DispatchQueue struct {
	constructs.Construct
	Queue, DeadLetters awssqs.Queue
	Mapping            awslambda.EventSourceMapping
	DeadLetterAlarm    awscloudwatch.Alarm
}

// NewDispatchQueue declares the queue, its dead-letter queue, the event source mapping, the
// alarm, and the senders' environment and permissions.
func NewDispatchQueue(scope constructs.Construct, id string, props DispatchQueueProps) (*DispatchQueue, error) {
	fns := props.Functions
	if fns == nil {
		return nil, errors.New("dispatch queue: no functions")
	}
	dispatch, ok := fns.ByName[FunctionDispatch]
	if !ok {
		return nil, errors.New("dispatch queue: no dispatch function")
	}
	var timeout float64
	for _, sp := range fns.Specs() {
		if sp.Name == FunctionDispatch {
			timeout = sp.Timeout.Seconds()
		}
	}
	q := &DispatchQueue{Construct: constructs.NewConstruct(scope, jsii.String(id))}
	q.DeadLetters = awssqs.NewQueue(q.Construct, jsii.String("DeadLetters"), &awssqs.QueueProps{
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(DeadLetterRetentionDays)),
	})
	q.Queue = awssqs.NewQueue(q.Construct, jsii.String("Queue"), &awssqs.QueueProps{
		Encryption:        awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		VisibilityTimeout: awscdk.Duration_Seconds(jsii.Number(DispatchVisibilityFactor * timeout)),
		DeadLetterQueue:   &awssqs.DeadLetterQueue{Queue: q.DeadLetters, MaxReceiveCount: jsii.Number(DispatchMaxReceives)},
	})
	q.Mapping = awslambda.NewEventSourceMapping(q.Construct, jsii.String("Mapping"), &awslambda.EventSourceMappingProps{
		Target:                  dispatch,
		EventSourceArn:          q.Queue.QueueArn(),
		BatchSize:               jsii.Number(DispatchBatchSize),
		ReportBatchItemFailures: jsii.Bool(true),
		MaxConcurrency:          jsii.Number(DispatchMaxConcurrency),
	})
	// Listed by hand rather than with GrantConsumeMessages, which adds
	// ChangeMessageVisibility and GetQueueUrl that the mapping does not use.
	fns.Roles[FunctionDispatch].AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("DispatchQueueConsume"),
		Actions:   jsii.Strings(DispatchConsumeActions...),
		Resources: &[]*string{q.Queue.QueueArn()},
	}))
	// The mapping is created once the role allows it to read the queue.
	q.Mapping.Node().AddDependency(fns.Roles[FunctionDispatch])
	for _, name := range fns.Enqueuers() {
		fns.Roles[name].AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("DispatchQueueSend"),
			Actions:   jsii.Strings("sqs:SendMessage"),
			Resources: &[]*string{q.Queue.QueueArn()},
		}))
		fns.ByName[name].AddEnvironment(jsii.String(EnvDispatchQueue), q.Queue.QueueUrl(), nil)
	}
	q.DeadLetterAlarm = awscloudwatch.NewAlarm(q.Construct, jsii.String("DeadLetterAlarm"), &awscloudwatch.AlarmProps{
		AlarmDescription: jsii.String("Baton: dispatch messages failed " + strconv.Itoa(DispatchMaxReceives) +
			" times and were set aside in the dead-letter queue (their jobs are recovered by the sweep; look at the dispatch function's logs)"),
		Metric: q.DeadLetters.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{
			Period:    awscdk.Duration_Minutes(jsii.Number(5)),
			Statistic: jsii.String("Maximum"),
		}),
		Threshold:          jsii.Number(1),
		EvaluationPeriods:  jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	return q, nil
}
