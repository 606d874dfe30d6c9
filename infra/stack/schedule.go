package stack

import (
	"errors"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// SweepRate is the schedule expression of the sweep.
const SweepRate = "rate(1 minute)"

// SweepScheduleProps configures SweepSchedule.
type SweepScheduleProps struct {
	Function awslambda.IFunction
}

// SweepSchedule is the EventBridge rule that runs the sweep function every minute (connect
// timeouts, job timeouts, undelivered requests, jobs whose dispatch kick was lost). A missed
// run is not retried: the next one does the same work.
type SweepSchedule struct {
	constructs.Construct
	Rule awsevents.Rule
}

// NewSweepSchedule declares the rule.
func NewSweepSchedule(scope constructs.Construct, id string, props SweepScheduleProps) (*SweepSchedule, error) {
	if props.Function == nil {
		return nil, errors.New("sweep schedule: no function")
	}
	s := &SweepSchedule{Construct: constructs.NewConstruct(scope, jsii.String(id))}
	s.Rule = awsevents.NewRule(s.Construct, jsii.String("Rule"), &awsevents.RuleProps{
		Description: jsii.String("Runs the Baton sweep every minute"),
		Schedule:    awsevents.Schedule_Expression(jsii.String(SweepRate)),
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(props.Function, &awseventstargets.LambdaFunctionProps{
			RetryAttempts: jsii.Number(0),
			MaxEventAge:   awscdk.Duration_Minutes(jsii.Number(1)),
		})},
	})
	return s, nil
}
