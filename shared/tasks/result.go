package tasks

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Error kinds and issue codes used in task results (reference §5.4).
const (
	KindTaskError        = "puppetlabs.tasks/task-error"
	KindInvalidTaskError = "bolt/invalid-task-error"
	KindGenericError     = "bolt/error"
	IssueTaskError       = "TASK_ERROR"
)

// NormalizeResult turns a finished task's exit code and output into its result value the way
// Bolt does (Result.for_task, reference §5.4); see NormalizeTaskResult. ok is true when the
// task succeeded: exit code 0 and no "_error" key.
func NormalizeResult(exitcode int, stdout, stderr string) (result map[string]any, ok bool) {
	return NormalizeTaskResult("", exitcode, stdout, stderr)
}

// NormalizeTaskResult is NormalizeResult for the named task (the name appears in the message
// for a malformed "_error"):
//  1. stdout that is not valid UTF-8 gives a task-error "_error" (and nothing else);
//  2. stdout that is a JSON object is the result (numbers kept as json.Number); otherwise the
//     result is {"_output": stdout};
//  3. a non-zero exit code with no (or a null) "_error" adds a task-error "_error" with
//     details.exit_code;
//  4. an "_error" that is not an object with a "msg" key is replaced by a
//     bolt/invalid-task-error wrapping it in details.original_error; a missing kind becomes
//     "bolt/error" and missing details become {}.
func NormalizeTaskResult(task string, exitcode int, stdout, stderr string) (result map[string]any, ok bool) {
	var value map[string]any
	if !utf8.ValidString(stdout) {
		value = map[string]any{"_error": map[string]any{
			"kind":       KindTaskError,
			"issue_code": IssueTaskError,
			"msg":        "The task result contained invalid UTF-8 on stdout",
			"details":    map[string]any{},
		}}
	} else {
		value = parseObject(stdout)
		if value == nil {
			value = map[string]any{"_output": stdout}
		}
	}

	if exitcode != 0 && value["_error"] == nil {
		var msg string
		switch {
		case stdout != "":
			msg = fmt.Sprintf("The task failed with exit code %d", exitcode)
		case stderr == "":
			msg = fmt.Sprintf("The task failed with exit code %d and no output", exitcode)
		default:
			msg = fmt.Sprintf("The task failed with exit code %d and no stdout, but stderr contained:\n%s", exitcode, stderr)
		}
		value["_error"] = map[string]any{
			"kind":       KindTaskError,
			"issue_code": IssueTaskError,
			"msg":        msg,
			"details":    map[string]any{"exit_code": exitcode},
		}
	}

	if orig, has := value["_error"]; has {
		e, isObj := orig.(map[string]any)
		if _, hasMsg := e["msg"]; !isObj || !hasMsg {
			e = map[string]any{
				"msg":     invalidErrorMsg(task, orig),
				"kind":    KindInvalidTaskError,
				"details": map[string]any{"original_error": orig},
			}
			value["_error"] = e
		}
		// Ruby's ||= replaces nil and false.
		if k := e["kind"]; k == nil || k == false {
			e["kind"] = KindGenericError
		}
		if d := e["details"]; d == nil || d == false {
			e["details"] = map[string]any{}
		}
	}
	_, failed := value["_error"]
	return value, exitcode == 0 && !failed
}

func invalidErrorMsg(task string, orig any) string {
	b, err := json.Marshal(orig)
	if err != nil {
		b = []byte(fmt.Sprint(orig))
	}
	name := ""
	if task != "" {
		name = " " + task
	}
	return fmt.Sprintf("Invalid error returned from task%s: %s. Error must be an object with a msg key.", name, b)
}

// parseObject returns stdout decoded as a single JSON object (numbers as json.Number), or nil.
func parseObject(s string) map[string]any {
	if !strings.Contains(s, "{") {
		return nil
	}
	var v any
	if err := decodeJSON([]byte(s), &v); err != nil {
		return nil
	}
	obj, _ := v.(map[string]any)
	return obj
}
