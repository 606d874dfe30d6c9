// Command api is the HTTP API function: the same http.Handler as `baton serve`, adapted to
// API Gateway HTTP API (payload 2.0) events.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/baton-run/baton/shared/awsapp"
)

func main() {
	logger := lambdacontext.NewLogger()
	app, err := awsapp.Boot(context.Background(), logger)
	if err != nil {
		logger.Error("start", "err", err)
		os.Exit(1)
	}
	lambda.Start(httpadapter.NewV2(app.API).ProxyWithContext)
}
