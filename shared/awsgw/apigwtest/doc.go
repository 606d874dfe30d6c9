// Package apigwtest is an in-process stand-in for Amazon API Gateway, for end-to-end tests on one
// machine: a WebSocket API (Lambda REQUEST authorizer, $connect/$default/$disconnect, the
// @connections management endpoint, 128 KB message / 32 KB frame limits, idle and maximum-duration
// timeouts, metering) and an HTTP API (payload format 2.0, simple-response Lambda authorizer). It
// calls Go handler functions with the real aws-lambda-go event types. It is test infrastructure,
// not a production gateway: it signs nothing, verifies no SigV4 signature and throttles only when
// told to (WithThrottle, WithReservedConcurrency).
package apigwtest
