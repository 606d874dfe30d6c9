package inventory

import "time"

// Group is a named set of nodes that a job scope can target (Baton's stand-in for PE's
// classifier node groups). It is either a static list (Nodes) or a scope query string
// (Query) resolved against the inventory when a job is created; exactly one of the two is
// set, which the caller validates — the store keeps what it is given.
type Group struct {
	Name        string
	Description string
	Nodes       []string // node names, in the order given
	Query       string   // a scope query string
	CreatedAt   time.Time
	// Version is the optimistic-concurrency version, managed by the store.
	Version int64
}
