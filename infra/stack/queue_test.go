package stack

import (
	"slices"
	"testing"
)

// TestDispatchQueue pins the dispatch queue: encrypted, a dead-letter queue after
// DispatchMaxReceives receives kept 14 days, a visibility timeout of at least six times the
// dispatch function's timeout, and the event source mapping to dispatch in batches of 10 with
// partial batch failures and a maximum concurrency equal to dispatch's reserved concurrency.
func TestDispatchQueue(t *testing.T) {
	s := synth(t, defaultVariant)
	queueID := cfnID(t, s.stack.Stack, s.stack.Dispatch.Queue.Node().DefaultChild())
	dlqID := cfnID(t, s.stack.Stack, s.stack.Dispatch.DeadLetters.Node().DefaultChild())
	queues := s.resources("AWS::SQS::Queue")
	q, dlq := props(queues[queueID]), props(queues[dlqID])
	if q == nil || dlq == nil {
		t.Fatalf("queues %v", queues)
	}
	var dispatch Spec
	for _, sp := range Specs() {
		if sp.Name == FunctionDispatch {
			dispatch = sp
		}
	}
	if vis, _ := q["VisibilityTimeout"].(float64); vis < 6*dispatch.Timeout.Seconds() {
		t.Errorf("VisibilityTimeout = %v s, want at least 6 × the dispatch timeout (%v s)", q["VisibilityTimeout"], dispatch.Timeout.Seconds())
	}
	redrive, _ := q["RedrivePolicy"].(map[string]any)
	if render(redrive["deadLetterTargetArn"]) != "${"+dlqID+".Arn}" || redrive["maxReceiveCount"] != float64(5) {
		t.Errorf("RedrivePolicy = %v, want the dead-letter queue after 5 receives", redrive)
	}
	if dlq["MessageRetentionPeriod"] != float64(14*24*3600) {
		t.Errorf("dead-letter retention = %v s, want 14 days", dlq["MessageRetentionPeriod"])
	}
	for id, p := range map[string]map[string]any{queueID: q, dlqID: dlq} {
		if p["SqsManagedSseEnabled"] != true {
			t.Errorf("queue %s is not encrypted (SqsManagedSseEnabled %v)", id, p["SqsManagedSseEnabled"])
		}
	}

	_, m := s.only(t, "AWS::Lambda::EventSourceMapping")
	mp := props(m)
	if render(mp["EventSourceArn"]) != "${"+queueID+".Arn}" || render(mp["FunctionName"]) != "${"+s.functionID(t, FunctionDispatch)+"}" {
		t.Errorf("event source mapping from %v to %v, want the queue to dispatch", mp["EventSourceArn"], mp["FunctionName"])
	}
	if mp["BatchSize"] != float64(10) || render(mp["FunctionResponseTypes"]) != "[ReportBatchItemFailures]" {
		t.Errorf("mapping batch %v, response types %v: want 10 and ReportBatchItemFailures", mp["BatchSize"], mp["FunctionResponseTypes"])
	}
	sc, _ := mp["ScalingConfig"].(map[string]any)
	if sc["MaximumConcurrency"] != float64(DispatchMaxConcurrency) || dispatch.ReservedConcurrency != DispatchMaxConcurrency {
		t.Errorf("mapping maximum concurrency %v, dispatch reserved %d: want both %d", sc["MaximumConcurrency"], dispatch.ReservedConcurrency, DispatchMaxConcurrency)
	}

	// The queue's URL goes to the functions that send to it, and only to them.
	var senders []string
	for _, sp := range Specs() {
		fn := props(s.resources("AWS::Lambda::Function")[s.functionID(t, sp.Name)])
		env := fn["Environment"].(map[string]any)["Variables"].(map[string]any)
		if v, ok := env[EnvDispatchQueue]; ok {
			if render(v) != "${"+queueID+"}" {
				t.Errorf("%s: %s = %s, want the queue's URL", sp.Name, EnvDispatchQueue, render(v))
			}
			senders = append(senders, sp.Name)
		}
	}
	if want := []string{FunctionAPI}; !slices.Equal(senders, want) {
		t.Errorf("%s is given to %v, want %v", EnvDispatchQueue, senders, want)
	}

	_, alarm := s.only(t, "AWS::CloudWatch::Alarm")
	ap := props(alarm)
	dims := list(ap["Dimensions"])
	if ap["MetricName"] != "ApproximateNumberOfMessagesVisible" || ap["Threshold"] != float64(1) || len(dims) != 1 ||
		render(dims[0].(map[string]any)["Value"]) != "${"+dlqID+".QueueName}" {
		t.Errorf("alarm %v, want one on the dead-letter queue's visible messages ≥ 1", ap)
	}
}

// TestReservedConcurrencyFitsTheAccount: what Specs reserve leaves the 100 unreserved
// instances Lambda requires of a default 1,000-instance account, and NoReservedConcurrency
// reserves nothing.
func TestReservedConcurrencyFitsTheAccount(t *testing.T) {
	total := 0
	for _, sp := range Specs() {
		total += sp.ReservedConcurrency
	}
	if total > 900 {
		t.Errorf("Specs reserve %d instances: a default account (1,000) would keep fewer than 100 unreserved", total)
	}
	t.Logf("reserved: %d of a default 1,000", total)
	st := synth(t, noReservedVariant)
	for id, fn := range st.resources("AWS::Lambda::Function") {
		if v := props(fn)["ReservedConcurrentExecutions"]; v != nil {
			t.Errorf("function %s reserves %v with NoReservedConcurrency", id, v)
		}
	}
}

// TestFunctionSizes pins each function's memory (see Specs for why).
func TestFunctionSizes(t *testing.T) {
	want := map[string]int{
		FunctionAuthorizer: 128, FunctionWSAuthorizer: 128, FunctionWSConnect: 128, FunctionWSDisconnect: 128,
		FunctionWSDefault: 256, FunctionAPI: 512, FunctionDispatch: 512, FunctionSweep: 512,
	}
	for _, sp := range Specs() {
		if sp.MemoryMB != want[sp.Name] {
			t.Errorf("%s: %d MB, want %d", sp.Name, sp.MemoryMB, want[sp.Name])
		}
	}
}
