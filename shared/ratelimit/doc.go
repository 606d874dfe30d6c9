// Package ratelimit is a token-bucket rate limiter keyed by a string (a user's login, a client
// address, a connection), with bounded memory, an injectable clock, buckets that can hold a
// byte budget (AllowN), an http.Handler middleware that answers 429 with Retry-After and a
// PE-style JSON error body, and a listener that caps the connections each client address holds
// at once (LimitConns). Client addresses are keyed as ClientAddress does: an IPv6 client by its
// /64. It is not a distributed limiter: each process (each Lambda instance) keeps its own
// buckets, so on AWS it caps one instance's rate; API Gateway throttling caps the whole deployment.
package ratelimit
