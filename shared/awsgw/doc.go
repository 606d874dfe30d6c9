// Package awsgw adapts API Gateway to the control plane: the Lambda authorizers of the agents'
// WebSocket API ($connect) and of the HTTP API, the $connect/$disconnect/$default handlers that
// play the PCP broker for one frame at a time, and a Sender that posts to agents through the
// @connections API. It is the only place AWS event types are seen; it holds no business logic and
// no state of its own (connection ids live in the inventory). `baton serve` uses shared/gateway.
package awsgw
