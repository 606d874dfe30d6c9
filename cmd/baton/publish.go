package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/baton-run/baton/shared/catalog/s3catalog"
)

// cmdTaskPublish uploads a modules directory's tasks to the S3 bucket of an AWS deployment.
// It uses the AWS SDK's default configuration (credentials, region, AWS_ENDPOINT_URL).
func cmdTaskPublish(args []string) error {
	fs := newFlagSet("task publish")
	env := fs.String("environment", "production", "environment to publish the tasks as")
	bucket := fs.String("bucket", os.Getenv("BATON_BUCKET"), "the deployment's bucket (stack output BucketName; env BATON_BUCKET)")
	pathStyle := fs.Bool("path-style", false, "use path-style S3 URLs (LocalStack and other S3 emulators)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *bucket == "" {
		return usageError("usage: baton task publish --bucket B [--environment E] MODULES_DIR")
	}
	ctx := context.Background()
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("aws config: %w", err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = *pathStyle })
	rep, err := s3catalog.Publish(ctx, client, *bucket, *env, pos[0])
	if err != nil {
		return err
	}
	fmt.Printf("Published %d tasks to s3://%s (environment %s): %d files uploaded (%d bytes), %d unchanged, %d tasks removed\n",
		rep.Tasks, *bucket, *env, rep.FilesUploaded, rep.BytesUploaded, rep.FilesSkipped, rep.TasksRemoved)
	return nil
}
