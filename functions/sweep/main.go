// Command sweep runs on a schedule: it ends nodes whose agents never connected or whose
// results are overdue, and dispatches every unfinished job (recovering lost kicks).
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/baton-run/baton/shared/awsapp"
)

func main() {
	logger := lambdacontext.NewLogger()
	app, err := awsapp.Boot(context.Background(), logger)
	if err != nil {
		logger.Error("start", "err", err)
		os.Exit(1)
	}
	lambda.Start(func(ctx context.Context) error { return app.Orchestrator.Sweep(ctx) })
}
