package tasks

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestNormalizeResult(t *testing.T) {
	taskErr := func(msg string, code int) map[string]any {
		return map[string]any{"kind": KindTaskError, "issue_code": IssueTaskError, "msg": msg, "details": map[string]any{"exit_code": code}}
	}
	tests := []struct {
		name           string
		exit           int
		stdout, stderr string
		want           map[string]any
		ok             bool
	}{
		{
			name: "plain output", exit: 0, stdout: "hello\n",
			want: map[string]any{"_output": "hello\n"}, ok: true,
		},
		{
			name: "empty output", exit: 0,
			want: map[string]any{"_output": ""}, ok: true,
		},
		{
			name: "JSON object", exit: 0, stdout: ` {"status": "installed", "version": "1.2", "count": 3} ` + "\n",
			want: map[string]any{"status": "installed", "version": "1.2", "count": json.Number("3")}, ok: true,
		},
		{
			name: "JSON array is output", exit: 0, stdout: `[1, 2]`,
			want: map[string]any{"_output": `[1, 2]`}, ok: true,
		},
		{
			name: "JSON scalar is output", exit: 0, stdout: `"x"`,
			want: map[string]any{"_output": `"x"`}, ok: true,
		},
		{
			name: "two JSON objects are output", exit: 0, stdout: `{"a":1}{"b":2}`,
			want: map[string]any{"_output": `{"a":1}{"b":2}`}, ok: true,
		},
		{
			name: "broken JSON is output", exit: 0, stdout: `{"a":`,
			want: map[string]any{"_output": `{"a":`}, ok: true,
		},
		{
			name: "failure with output", exit: 3, stdout: "partial\n", stderr: "boom",
			want: map[string]any{"_output": "partial\n", "_error": taskErr("The task failed with exit code 3", 3)},
		},
		{
			name: "failure with no output", exit: 1,
			want: map[string]any{"_output": "", "_error": taskErr("The task failed with exit code 1 and no output", 1)},
		},
		{
			name: "failure with only stderr", exit: 127, stderr: "sh: foo: not found",
			want: map[string]any{"_output": "", "_error": taskErr("The task failed with exit code 127 and no stdout, but stderr contained:\nsh: foo: not found", 127)},
		},
		{
			name: "failure with JSON object", exit: 2, stdout: `{"changed": false}`,
			want: map[string]any{"changed": false, "_error": taskErr("The task failed with exit code 2", 2)},
		},
		{
			name: "task-provided error kept", exit: 1, stdout: `{"_error": {"kind": "mymod/oops", "msg": "it broke", "details": {"n": 1}}}`,
			want: map[string]any{"_error": map[string]any{"kind": "mymod/oops", "msg": "it broke", "details": map[string]any{"n": json.Number("1")}}},
		},
		{
			name: "task-provided error with exit 0 is a failure", exit: 0, stdout: `{"_error": {"kind": "k", "msg": "m", "details": {}}}`,
			want: map[string]any{"_error": map[string]any{"kind": "k", "msg": "m", "details": map[string]any{}}},
		},
		{
			name: "missing kind and details", exit: 0, stdout: `{"_error": {"msg": "m"}}`,
			want: map[string]any{"_error": map[string]any{"kind": KindGenericError, "msg": "m", "details": map[string]any{}}},
		},
		{
			name: "null kind and false details", exit: 0, stdout: `{"_error": {"msg": "m", "kind": null, "details": false}}`,
			want: map[string]any{"_error": map[string]any{"kind": KindGenericError, "msg": "m", "details": map[string]any{}}},
		},
		{
			name: "error without msg", exit: 0, stdout: `{"_error": {"kind": "k"}}`,
			want: map[string]any{"_error": map[string]any{
				"kind":    KindInvalidTaskError,
				"msg":     `Invalid error returned from task: {"kind":"k"}. Error must be an object with a msg key.`,
				"details": map[string]any{"original_error": map[string]any{"kind": "k"}},
			}},
		},
		{
			name: "string error", exit: 1, stdout: `{"_error": "bad"}`,
			want: map[string]any{"_error": map[string]any{
				"kind":    KindInvalidTaskError,
				"msg":     `Invalid error returned from task: "bad". Error must be an object with a msg key.`,
				"details": map[string]any{"original_error": "bad"},
			}},
		},
		{
			name: "null error with exit 0", exit: 0, stdout: `{"_error": null}`,
			want: map[string]any{"_error": map[string]any{
				"kind":    KindInvalidTaskError,
				"msg":     `Invalid error returned from task: null. Error must be an object with a msg key.`,
				"details": map[string]any{"original_error": nil},
			}},
		},
		{
			name: "null error with non-zero exit", exit: 4, stdout: `{"_error": null}`,
			want: map[string]any{"_error": taskErr("The task failed with exit code 4", 4)},
		},
		{
			name: "invalid UTF-8", exit: 0, stdout: "ok \xff\xfe",
			want: map[string]any{"_error": map[string]any{"kind": KindTaskError, "issue_code": IssueTaskError,
				"msg": "The task result contained invalid UTF-8 on stdout", "details": map[string]any{}}},
		},
		{
			name: "invalid UTF-8 and non-zero exit", exit: 9, stdout: "\xff",
			want: map[string]any{"_error": map[string]any{"kind": KindTaskError, "issue_code": IssueTaskError,
				"msg": "The task result contained invalid UTF-8 on stdout", "details": map[string]any{}}},
		},
		{
			name: "negative exit code", exit: -1,
			want: map[string]any{"_output": "", "_error": taskErr("The task failed with exit code -1 and no output", -1)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := NormalizeResult(tc.exit, tc.stdout, tc.stderr)
			if ok != tc.ok {
				t.Errorf("ok = %v, want %v", ok, tc.ok)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("result:\n got  %#v\n want %#v", got, tc.want)
			}
		})
	}
}

// TestNormalizeResultNumbers checks that numbers survive a JSON round trip unchanged.
func TestNormalizeResultNumbers(t *testing.T) {
	stdout := `{"big":12345678901234567890,"f":0.1000000000000000055511151231257827,"neg":-0,"exp":1E+400,"nested":[{"n":1.50}]}`
	got, ok := NormalizeResult(0, stdout, "")
	if !ok {
		t.Fatalf("not ok: %v", got)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"big":12345678901234567890,"exp":1E+400,"f":0.1000000000000000055511151231257827,"neg":-0,"nested":[{"n":1.50}]}`; string(b) != want {
		t.Fatalf("round trip:\n got  %s\n want %s", b, want)
	}
}

func TestNormalizeTaskResultNamesTask(t *testing.T) {
	got, ok := NormalizeTaskResult("mymod::thing", 0, `{"_error": 5}`, "")
	if ok {
		t.Fatal("ok for a task error")
	}
	e := got["_error"].(map[string]any)
	if want := "Invalid error returned from task mymod::thing: 5. Error must be an object with a msg key."; e["msg"] != want {
		t.Fatalf("msg = %q, want %q", e["msg"], want)
	}
}
