// Command wsdisconnect is the WebSocket API's $disconnect route: it marks a node's connection closed (best effort, as $disconnect is).
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
	lambda.Start(app.WebSocket.Disconnect)
}
