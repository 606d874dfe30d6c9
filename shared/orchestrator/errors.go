package orchestrator

import (
	"errors"
	"fmt"
)

// PE error kinds (reference §1.0) returned in Error.Kind.
const (
	KindValidation         = "puppetlabs.orchestrator/validation-error"
	KindUnknownEnvironment = "puppetlabs.orchestrator/unknown-environment"
	KindUnknownJob         = "puppetlabs.orchestrator/unknown-job"
	KindUnknownTask        = "puppetlabs.orchestrator/unknown-task"
	KindUnknownNode        = "puppetlabs.orchestrator/unknown-node"
	KindEmptyTarget        = "puppetlabs.orchestrator/empty-target"
	KindQueryError         = "puppetlabs.orchestrator/query-error"
	KindPuppetDBError      = "puppetlabs.orchestrator/puppetdb-error" // PuppetDB unreachable or failing
	KindNotPermitted       = "puppetlabs.orchestrator/not-permitted"
	KindConflict           = "puppetlabs.orchestrator/conflict"
)

// Error is a failure the caller caused, with a PE error kind and details for the response.
type Error struct {
	Kind    string
	Msg     string
	Details map[string]any
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func newError(kind string, details map[string]any, format string, args ...any) *Error {
	if details == nil {
		details = map[string]any{}
	}
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...), Details: details}
}

// AsError returns the *Error in err's chain, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
