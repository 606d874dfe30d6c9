// Package orchestrator holds Baton's use cases: submit a task job, dispatch nodes within the
// job's concurrency, take agents' messages (provisional responses, results, errors, facts),
// and sweep for timeouts. It is the same code in `baton serve` and in the AWS functions; it
// sees no HTTP request, WebSocket or AWS event — adapters call it — and declares the small
// ports it needs (Sender, Catalog, FileURLs, Sealer) next to the code that uses them.
package orchestrator
