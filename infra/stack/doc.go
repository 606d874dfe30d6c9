// Package stack is Baton's AWS deployment as a CDK stack: NewBatonStack assembles one
// construct per concern — Storage (table, bucket, seal-key secret), Functions (the eight
// Lambda functions and their least-privilege roles), Broker (the agents' WebSocket API),
// API (the HTTP API) and SweepSchedule — and the stack outputs named by the Output constants.
// It does not build the functions' bootstrap zips (`make lambdas` does) and it does not deploy
// anything: the CDK CLI pinned in infra/package.json does.
package stack
