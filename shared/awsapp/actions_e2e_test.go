package awsapp_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/baton-run/baton/shared/awsapp"
	"github.com/baton-run/baton/shared/store/dynamo"
)

// The AWS end-to-end tests record every AWS API action each function's handler issues
// (awsapp.ActionRecorder on the emulators' clients; each handler call site of the harness
// tags its context with the function's name). infra/stack checks the committed record against
// the functions' policies in the synthesized template (TestPoliciesAllowRecordedActions).

// FunctionActionsFile is the committed record, relative to this package.
var functionActionsFile = filepath.Join("..", "..", "infra", "stack", "testdata", "function-actions.json")

// EnvWriteActions, set to 1 (make iam-actions), makes the tests write the record instead of
// checking it: run the whole package then, so that every handler path is in it.
const envWriteActions = "BATON_WRITE_IAM_ACTIONS"

// Names of the emulated resources in the record.
const (
	e2eTable  = "baton-e2e"
	e2eBucket = "baton-bucket"
)

var recorder = func() *awsapp.ActionRecorder {
	r := awsapp.NewActionRecorder(dynamo.TableSchema())
	r.Name(e2eTable, "table") // newCloud names its own table (e2eTable-N) too
	r.Name(e2eBucket, "bucket")
	return r
}()

// clouds numbers the clouds newCloud makes, for their table and queue names.
var clouds atomic.Int64

// tagged wraps a handler so that its calls are recorded as fn's.
func tagged[Req, Resp any](fn string, h func(context.Context, Req) (Resp, error)) func(context.Context, Req) (Resp, error) {
	return func(ctx context.Context, r Req) (Resp, error) { return h(awsapp.WithFunction(ctx, fn), r) }
}

// finishActions writes the record (BATON_WRITE_IAM_ACTIONS=1, only after passing tests) or
// checks that the committed record holds every action recorded; it returns the exit code.
func finishActions(passed bool) int {
	got := recorder.Actions()
	if len(got) == 0 {
		return 0 // no handler ran (e.g. -run selected none of the AWS tests)
	}
	if os.Getenv(envWriteActions) == "1" {
		if !passed {
			fmt.Fprintln(os.Stderr, "function actions: tests failed, "+functionActionsFile+" not written")
			return 1
		}
		if err := got.WriteFile(functionActionsFile); err != nil {
			fmt.Fprintln(os.Stderr, "function actions:", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "function actions: wrote %s (%d functions)\n", functionActionsFile, len(got))
		// Calls made with no function in their context: the harness's own, or a handler's
		// that lost its context on the way (then its function's policy was not checked).
		for _, acts := range recorder.Untagged() {
			for act, res := range acts {
				fmt.Fprintf(os.Stderr, "function actions: untagged (the harness, or a call without the handler's context): %s %v\n", act, res)
			}
		}
		return 0
	}
	committed, err := awsapp.ReadFunctionActions(functionActionsFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "function actions: %v (run `make iam-actions`)\n", err)
		return 1
	}
	if missing := got.Missing(committed); len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "function actions: the handlers issued AWS actions that %s does not list, so the IAM test in infra/stack has not checked them against the policies; run `make iam-actions`, then `cd infra && go test ./stack`:\n  %s\n",
			functionActionsFile, strings.Join(missing, "\n  "))
		return 1
	}
	return 0
}
