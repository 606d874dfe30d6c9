// Package catalog is the task catalog of `baton serve`: it reads Puppet tasks (Task Spec v1)
// from a modules directory per environment, reports each task's metadata and file set with
// SHA-256 sums, and serves those files over HTTP through signed, expiring URLs.
// It does not validate task parameters or run tasks (see shared/tasks and the agent), and it
// is not the S3-backed catalog used on AWS.
package catalog
