// Command dispatch consumes the dispatch queue: each message is a share of a new job's
// claimed nodes to send their requests to, or a job to move on. The API function queues a
// job's nodes when it records the job, so job creation answers fast whatever the fan-out.
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
	lambda.Start(app.DispatchMessages)
}
