// Package httpapi is Baton's HTTP API as one http.Handler: the PE orchestrator v1 endpoints
// under /orchestrator/v1 (commands, jobs, events, tasks, inventory) with PE's JSON shapes and
// {kind, msg, details} errors, plus Baton's own node enrolment under /baton/v1. `baton serve`
// mounts it on net/http; on AWS the api function adapts it to API Gateway events. Handlers
// decode, call the orchestrator and return; one wrapper maps errors to status codes.
package httpapi
