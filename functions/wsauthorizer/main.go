// Command wsauthorizer is the WebSocket API's $connect authorizer: it admits an agent whose
// X-Baton-Node and Authorization headers carry a valid node credential, and binds the
// connection to that node. It reads only node credentials and records connect nonces
// in the table: it builds no App and never reads the seal key.
package main

import (
	"context"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/awsapp"
	"github.com/baton-run/baton/shared/awsgw"
	"github.com/baton-run/baton/shared/store/dynamo"
)

func main() {
	logger := lambdacontext.NewLogger()
	ctx := context.Background()
	cfg, err := awsapp.ConfigFromEnv()
	if err != nil {
		logger.Error("start", "err", err)
		os.Exit(1)
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		logger.Error("start: aws config", "err", err)
		os.Exit(1)
	}
	st, err := dynamo.New(dynamodb.NewFromConfig(awsCfg), dynamo.Config{Table: cfg.Table}, dynamo.WithLogger(logger))
	if err != nil {
		logger.Error("start", "err", err)
		os.Exit(1)
	}
	lambda.Start(awsgw.NodeAuthorizer(auth.New(st, time.Now), logger))
}
