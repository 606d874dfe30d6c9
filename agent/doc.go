// Package agent is the Baton node agent as a library: it holds one WebSocket to the control
// plane (reconnecting with backoff, pinging a silent connection), reports facts, answers PXP
// requests (`task run`, `status query`, and modules plugged in with WithModule), keeps every
// outcome in an on-disk spool and sends it until the server acknowledges it, and runs task
// files from a SHA-256-checked cache — each task under a supervisor (the agent's supervisor
// process, RunSupervisor; else SupervisorScript, a shell script per task) so that it outlives a
// restart of the agent, which then reports its real outcome.
//
// It is not the binary (cmd/baton-agent) and knows nothing about jobs or the server's storage.
package agent
