package stack

import (
	"testing"
)

func TestSweepSchedule(t *testing.T) {
	s := synth(t, defaultVariant)
	ruleID, rule := s.only(t, "AWS::Events::Rule")
	p := props(rule)
	if p["ScheduleExpression"] != SweepRate || p["State"] != "ENABLED" {
		t.Errorf("rule = %v, want %s, enabled", p, SweepRate)
	}
	targets := list(p["Targets"])
	if len(targets) != 1 {
		t.Fatalf("%d targets, want 1", len(targets))
	}
	target := targets[0].(map[string]any)
	sweep := s.functionID(t, FunctionSweep)
	if got := render(target["Arn"]); got != "${"+sweep+".Arn}" {
		t.Errorf("target = %s, want the sweep function", got)
	}
	if retry, _ := target["RetryPolicy"].(map[string]any); retry["MaximumRetryAttempts"] != float64(0) {
		t.Errorf("RetryPolicy = %v, want no retries", target["RetryPolicy"])
	}
	var allowed bool
	for _, perm := range s.resources("AWS::Lambda::Permission") {
		pp := props(perm)
		if pp["Principal"] == "events.amazonaws.com" {
			if render(pp["FunctionName"]) != "${"+sweep+".Arn}" || render(pp["SourceArn"]) != "${"+ruleID+".Arn}" {
				t.Errorf("EventBridge may invoke %v from %v, want only the sweep from its rule", pp["FunctionName"], pp["SourceArn"])
			}
			allowed = true
		}
	}
	if !allowed {
		t.Error("EventBridge has no permission to invoke the sweep")
	}
}
