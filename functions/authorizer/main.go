// Command authorizer is the HTTP API's Lambda authorizer: it accepts a request whose
// X-Authentication header (or token query parameter) is a valid API token.
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
	lambda.Start(awsgw.TokenAuthorizer(app.Auth, logger))
}
