// Package s3catalog is the task catalog of the AWS deployment: Publish uploads a modules
// directory to S3 (content-addressed files, one index object per task, an index per
// environment), and Catalog reads those indexes and hands out presigned file URLs, plus
// presigned upload URLs for task results too large for one WebSocket message.
// It does not parse or validate tasks itself (Publish reuses catalog.Local) and it does not
// manage the bucket, its policies or lifecycle rules (that is the CDK stack's job).
package s3catalog
