// Command dispatch moves one job forward: the API function invokes it asynchronously after
// recording a job, so job creation answers fast whatever the fan-out.
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
	lambda.Start(app.Dispatch)
}
