// Package sqlite is the embedded store.Store backend: one SQLite database file in WAL mode,
// written through a single connection and read through a pool, using the pure-Go driver
// modernc.org/sqlite. The schema is created and migrated on Open.
//
// It is not a general SQL layer and not for shared or network file systems: one process owns
// the file. The DynamoDB backend lives in package dynamo.
package sqlite
