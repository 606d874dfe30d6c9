// Command wsdefault is the WebSocket API's $default route, the PCP broker: it hands every agent message to the orchestrator.
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
	lambda.Start(app.Default)
}
