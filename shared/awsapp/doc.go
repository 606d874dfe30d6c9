// Package awsapp composes Baton's AWS deployment: the same orchestrator, HTTP API and
// authentication as `baton serve`, wired to DynamoDB (job state), S3 (task files and large
// results), API Gateway's WebSocket @connections (sending to agents) and Lambda (async
// dispatch). Each function under functions/ builds an App and hands one of its handlers to
// lambda.Start; the end-to-end tests build the same App against emulators. It also meters what
// the AWS services are asked to do, for cost per node-run.
package awsapp
