// Package jobs holds Baton's job model — jobs, their per-node records and events — and the job
// and node state machines (PE orchestrator states, reference §2).
//
// The transition functions are pure and deterministic: timestamps are passed in, nothing here
// reads a clock, generates an id or does I/O. Storage lives in package store, orchestration in
// package orchestrator.
package jobs
