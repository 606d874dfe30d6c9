// Package storetest is the behavioural conformance suite of the store.Store contract. Every
// backend calls Run from its own tests with a constructor for a fresh, empty store.
//
// It tests only what the contract in package store promises (ids, versions, conflicts, event
// numbering, ordering and filters, idempotency keys, active-node counts, node groups, API
// tokens, roles and users, connect nonces, job usage counters, concurrency), never a
// backend's storage details.
package storetest
