// Command wsauthorizer is the WebSocket API's $connect authorizer: it admits an agent whose
// X-Baton-Node and Authorization headers carry a valid node credential, and binds the
// connection to that node.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/baton-run/baton/shared/awsapp"
	"github.com/baton-run/baton/shared/awsgw"
)

func main() {
	logger := lambdacontext.NewLogger()
	app, err := awsapp.Boot(context.Background(), logger)
	if err != nil {
		logger.Error("start", "err", err)
		os.Exit(1)
	}
	lambda.Start(awsgw.NodeAuthorizer(app.Auth, logger))
}
