// Package agent is the Baton node agent as a library: it holds one WebSocket to the control
// plane (reconnecting with backoff), reports facts, answers PXP requests (`task run`,
// `status query`, and modules plugged in with WithModule), keeps every outcome in an on-disk
// spool until the server acknowledges it, and runs task files from a SHA-256-checked cache.
//
// It is not the binary (cmd/baton-agent) and knows nothing about jobs or the server's storage.
package agent
