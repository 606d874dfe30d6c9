// Command sweep runs on a schedule: it ends nodes whose agents never connected or whose
// results are overdue, and dispatches every unfinished job (recovering lost kicks).
package main

import (
	"context"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/baton-run/baton/shared/awsapp"
)

// runBudget bounds one run well inside the function's 60 s timeout and the one-minute
// schedule (the function's reserved concurrency is 1, so runs never overlap): a run ends
// cleanly instead of being cut off, and what it leaves is the next run's.
const runBudget = 45 * time.Second

func main() {
	logger := lambdacontext.NewLogger()
	app, err := awsapp.Boot(context.Background(), logger)
	if err != nil {
		logger.Error("start", "err", err)
		os.Exit(1)
	}
	lambda.Start(func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, runBudget)
		defer cancel()
		return app.Orchestrator.Sweep(ctx)
	})
}
