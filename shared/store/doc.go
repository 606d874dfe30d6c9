// Package store is the persistence contract of the control plane: jobs, per-node job records,
// job events, the node inventory and API tokens. Backends live in sub-packages (sqlite, and on
// AWS dynamo) and all must pass the conformance suite in store/storetest.
//
// Updates are optimistic: a record carries the Version it was read at and an update whose
// Version is stale fails with ErrConflict, changing nothing.
package store
