// Package tasks implements the Puppet Task Spec v1 pieces the orchestrator needs: metadata
// parsing and validation, implementation selection, the Puppet type expressions used for task
// parameters (parser and value validator), parameter validation and redaction, and Bolt's
// normalisation of a task's exit code and output into a result value.
// It does not load task files from disk or S3 (see shared/catalog) and does not run tasks.
package tasks
