package awsapp

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Boot builds the App a function runs: configuration from the environment, AWS clients from
// the Lambda execution role, the seal key from Secrets Manager when it is not given directly.
// The load options go to config.LoadDefaultConfig (tests add client middleware with
// config.WithAPIOptions).
func Boot(ctx context.Context, logger *slog.Logger, load ...func(*config.LoadOptions) error) (*App, error) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("aws config: %w", err)
	}
	if len(cfg.SealKey) == 0 && cfg.SealKeySecret != "" {
		out, err := secretsmanager.NewFromConfig(awsCfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(cfg.SealKeySecret)})
		if err != nil {
			return nil, fmt.Errorf("seal key secret: %w", err)
		}
		if cfg.SealKey, err = hex.DecodeString(strings.TrimSpace(aws.ToString(out.SecretString))); err != nil {
			return nil, fmt.Errorf("seal key secret: not hex: %w", err)
		}
	}
	clients := Clients{
		DynamoDB: dynamodb.NewFromConfig(awsCfg),
		S3:       s3.NewFromConfig(awsCfg),
		Management: apigatewaymanagementapi.NewFromConfig(awsCfg, func(o *apigatewaymanagementapi.Options) {
			o.BaseEndpoint = aws.String(cfg.WebSocketEndpoint)
		}),
	}
	if cfg.DispatchQueue != "" {
		clients.SQS = sqs.NewFromConfig(awsCfg)
	}
	return New(cfg, clients, nil, logger)
}
