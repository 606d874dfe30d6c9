package orchestrator

// StatusDue is statusDue, for tests.
var StatusDue = statusDue
