// Package ratelimit is a token-bucket rate limiter keyed by a string (an API token's hash, a
// node name, a remote IP), with bounded memory, an injectable clock, and an http.Handler
// middleware that answers 429 with Retry-After and a PE-style JSON error body.
// It is not a distributed limiter: each process (each Lambda instance) keeps its own buckets,
// so on AWS it caps one instance's rate; API Gateway throttling caps the whole deployment.
package ratelimit
