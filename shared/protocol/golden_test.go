package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/baton-run/baton/shared/protocol"
)

var update = flag.Bool("update", false, "rewrite testdata/*.json golden files from the typed values in the tests")

const (
	agentURI = "pcp://node1.example.com/agent"
	taskTxn  = "9a1c2e4f-6b8d-4a0e-8c2f-3e5a7b9d1f20"
	queryTxn = "b2c4e6a8-0d2f-4b6d-9f1a-3c5e7a9b1d30"
	taskReq  = "7c0e2a4b-6d8f-4a1c-9e3b-5d7f9b1c3e40"
	fileSHA  = "bfdeaeb08cffb6a36438bcd12dda25417e3cdd36f1e7e482a2849d539225288b"
	libSHA   = "3f9a1b5c7d9e0f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a"
)

// goldenCase is one golden file: testdata/<name>.json holds the envelope env with data, the
// JSON of the typed value data. When inner is set, data's field innerField (Params or Results)
// holds the JSON of the typed value inner, which the test decodes too. keys are the object key
// paths the file must have, written out from the reference (§3.3, §4.1, §4.5, §4.8): an
// independent check that the struct tags produce the reference's field names.
type goldenCase struct {
	name       string
	env        protocol.Envelope
	data       any
	innerField string
	inner      any
	keys       []string
}

func intPtr(i int) *int { return &i }

func goldenCases(t *testing.T) []goldenCase {
	t.Helper()
	raw := func(v any) json.RawMessage {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("marshal %T: %v", v, err)
		}
		return b
	}
	envelopeKeys := func(extra ...string) []string {
		return append([]string{"id", "message_type"}, extra...)
	}

	taskParams := protocol.TaskParams{
		Task:  "package::install",
		Input: json.RawMessage(`{"name":"httpd","_noop":false}`),
		Files: []protocol.TaskFile{
			{
				Filename:  "install.sh",
				URI:       protocol.FileURI{Path: "/puppet/v3/file_content/tasks/package/install.sh", Params: map[string]string{"environment": "production"}},
				SHA256:    fileSHA,
				SizeBytes: 693,
			},
			{
				Filename:  "mymod/files/lib.sh",
				URI:       protocol.FileURI{Path: "https://files.example.com/mymod/files/lib.sh", Params: map[string]string{"expires": "1700000000", "signature": "c2lnbmF0dXJl"}},
				SHA256:    libSHA,
				SizeBytes: 120,
			},
		},
		Metadata: json.RawMessage(`{"input_method":"stdin","implementations":[{"name":"install.sh","requirements":["shell"],"input_method":"environment","files":["mymod/files/lib.sh"]}],"files":["mymod/files/"]}`),
		Timeout:  300,
	}
	statusDone := protocol.StatusResults{TransactionID: taskTxn, Status: "success", Exitcode: intPtr(0), Stdout: "hello\n"}
	statusRunning := protocol.StatusResults{TransactionID: taskTxn, Status: "running"}

	return []goldenCase{
		{
			name: "keepalive",
			env:  protocol.Envelope{ID: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", MessageType: protocol.TypeKeepalive, Target: protocol.ServerURI},
			keys: envelopeKeys("target"),
		},
		{
			name: "associate_request",
			env:  protocol.Envelope{ID: "5b1e7c3a-9d2f-4e8b-a6c0-1f3d5e7a9b10", MessageType: protocol.TypeAssociateRequest, Target: protocol.ServerURI},
			keys: envelopeKeys("target"),
		},
		{
			name: "associate_response",
			env:  protocol.Envelope{ID: "6c2f8d4b-0e3a-4f9c-b7d1-2a4e6f8b0c21", MessageType: protocol.TypeAssociateResponse, Target: agentURI, Sender: protocol.ServerURI},
			data: protocol.AssociateResponse{ID: "5b1e7c3a-9d2f-4e8b-a6c0-1f3d5e7a9b10", Success: true},
			keys: envelopeKeys("target", "sender", "data", "data.id", "data.success"),
		},
		{
			name: "associate_response_denied",
			env:  protocol.Envelope{ID: "7d3a9e5c-1f4b-4a0d-88e2-3b5f7a9c1d32", MessageType: protocol.TypeAssociateResponse, Target: agentURI, Sender: protocol.ServerURI},
			data: protocol.AssociateResponse{ID: "5b1e7c3a-9d2f-4e8b-a6c0-1f3d5e7a9b10", Success: false, Reason: "Session already associated."},
			keys: envelopeKeys("target", "sender", "data", "data.id", "data.success", "data.reason"),
		},
		{
			name: "error_message",
			env: protocol.Envelope{ID: "8e4b0f6d-2a5c-4b1e-99f3-4c6a8b0d2e43", MessageType: protocol.TypeErrorMessage, Target: agentURI, Sender: protocol.ServerURI,
				InReplyTo: "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"},
			data: "Could not decode message",
			keys: envelopeKeys("target", "sender", "in_reply_to", "data"),
		},
		{
			// Baton's extended error_message (ErrorData): the result was refused for now.
			name: "error_message_retry",
			env: protocol.Envelope{ID: "8e4b0f6d-2a5c-4b1e-99f3-4c6a8b0d2e44", MessageType: protocol.TypeErrorMessage, Target: agentURI, Sender: protocol.ServerURI,
				InReplyTo: "c28f4d0b-6e9a-4f5c-9d37-8a0e2f4b6c87"},
			data: protocol.ErrorData{ID: "c28f4d0b-6e9a-4f5c-9d37-8a0e2f4b6c87", Description: "Too many messages; retry after 250ms", Retry: true, RetryAfterMS: 250},
			keys: envelopeKeys("target", "sender", "in_reply_to", "data", "data.id", "data.description", "data.retry", "data.retry_after_ms"),
		},
		{
			name: "rpc_blocking_request",
			env:  protocol.Envelope{ID: "9f5c1a7e-3b6d-4c2f-aa04-5d7b9c1e3f54", MessageType: protocol.TypeBlockingRequest, Target: agentURI, Sender: protocol.ServerURI},
			data: protocol.BlockingRequest{TransactionID: "c3d5f7a9-1b3d-4f5a-8c7e-9a1b3c5d7e60", Module: "echo", Action: "echo", Params: json.RawMessage(`{"argument":"hello"}`)},
			keys: envelopeKeys("target", "sender", "data", "data.transaction_id", "data.module", "data.action", "data.params", "data.params.argument"),
		},
		{
			name: "rpc_blocking_response",
			env:  protocol.Envelope{ID: "a06d2b8f-4c7e-4d3a-bb15-6e8c0d2f4a65", MessageType: protocol.TypeBlockingResponse, Target: protocol.ServerURI, Sender: agentURI},
			data: protocol.BlockingResponse{TransactionID: "c3d5f7a9-1b3d-4f5a-8c7e-9a1b3c5d7e60", Results: json.RawMessage(`{"outcome":"hello"}`)},
			keys: envelopeKeys("target", "sender", "data", "data.transaction_id", "data.results", "data.results.outcome"),
		},
		{
			name: "rpc_non_blocking_request",
			env:  protocol.Envelope{ID: taskReq, MessageType: protocol.TypeNonBlockingRequest, Target: agentURI, Sender: protocol.ServerURI},
			data: protocol.NonBlockingRequest{TransactionID: taskTxn, NotifyOutcome: true, Module: protocol.ModuleTask, Action: protocol.ActionRun,
				Params: raw(taskParams)},
			innerField: "Params",
			inner:      taskParams,
			keys: envelopeKeys("target", "sender", "data", "data.transaction_id", "data.notify_outcome", "data.module", "data.action",
				"data.params", "data.params.task", "data.params.input", "data.params.input.name", "data.params.input._noop",
				"data.params.files", "data.params.files[]", "data.params.files[].filename", "data.params.files[].uri",
				"data.params.files[].uri.path", "data.params.files[].uri.params", "data.params.files[].uri.params.environment",
				"data.params.files[].uri.params.expires", "data.params.files[].uri.params.signature",
				"data.params.files[].sha256", "data.params.files[].size_bytes",
				"data.params.metadata", "data.params.metadata.input_method", "data.params.metadata.implementations",
				"data.params.metadata.implementations[]", "data.params.metadata.implementations[].name",
				"data.params.metadata.implementations[].requirements", "data.params.metadata.implementations[].requirements[]",
				"data.params.metadata.implementations[].input_method", "data.params.metadata.implementations[].files",
				"data.params.metadata.implementations[].files[]", "data.params.metadata.files", "data.params.metadata.files[]",
				"data.params.timeout"),
		},
		{
			name: "rpc_provisional_response",
			env:  protocol.Envelope{ID: "b17e3c9a-5d8f-4e4b-8c26-7f9d1e3a5b76", MessageType: protocol.TypeProvisionalResponse, Target: protocol.ServerURI, Sender: agentURI},
			data: protocol.ProvisionalResponse{TransactionID: taskTxn},
			keys: envelopeKeys("target", "sender", "data", "data.transaction_id"),
		},
		{
			name:       "rpc_non_blocking_response",
			env:        protocol.Envelope{ID: "c28f4d0b-6e9a-4f5c-9d37-8a0e2f4b6c87", MessageType: protocol.TypeNonBlockingResponse, Target: protocol.ServerURI, Sender: agentURI},
			data:       protocol.NonBlockingResponse{TransactionID: taskTxn, Results: raw(protocol.TaskResults{Exitcode: 0, Stdout: "hello\n"})},
			innerField: "Results",
			inner:      protocol.TaskResults{Exitcode: 0, Stdout: "hello\n"},
			keys:       envelopeKeys("target", "sender", "data", "data.transaction_id", "data.results", "data.results.exitcode", "data.results.stdout"),
		},
		{
			name: "rpc_non_blocking_response_timeout",
			env:  protocol.Envelope{ID: "d3905e1c-7fab-4a6d-ae48-9b1f3a5c7d98", MessageType: protocol.TypeNonBlockingResponse, Target: protocol.ServerURI, Sender: agentURI},
			data: protocol.NonBlockingResponse{TransactionID: taskTxn,
				Results: raw(protocol.TaskResults{Exitcode: -1, Stdout: "partial\n", Stderr: "Terminated\n", TimedOut: true})},
			innerField: "Results",
			inner:      protocol.TaskResults{Exitcode: -1, Stdout: "partial\n", Stderr: "Terminated\n", TimedOut: true},
			keys: envelopeKeys("target", "sender", "data", "data.transaction_id", "data.results", "data.results.exitcode",
				"data.results.stdout", "data.results.stderr", "data.results.timed_out"),
		},
		{
			// Baton extension: the agent restarted while the task ran and cannot know how it ended.
			name: "rpc_non_blocking_response_outcome_unknown",
			env:  protocol.Envelope{ID: "d3905e1c-7fab-4a6d-ae48-9b1f3a5c7d99", MessageType: protocol.TypeNonBlockingResponse, Target: protocol.ServerURI, Sender: agentURI},
			data: protocol.NonBlockingResponse{TransactionID: taskTxn,
				Results: raw(protocol.TaskResults{Exitcode: -1, OutcomeUnknown: true,
					Stdout: `{"_error":{"details":{},"kind":"baton/task-outcome-unknown","msg":"the agent restarted while the task ran; outcome unknown"}}`})},
			innerField: "Results",
			inner: protocol.TaskResults{Exitcode: -1, OutcomeUnknown: true,
				Stdout: `{"_error":{"details":{},"kind":"baton/task-outcome-unknown","msg":"the agent restarted while the task ran; outcome unknown"}}`},
			keys: envelopeKeys("target", "sender", "data", "data.transaction_id", "data.results", "data.results.exitcode",
				"data.results.stdout", "data.results.outcome_unknown"),
		},
		{
			name: "rpc_error_message",
			env:  protocol.Envelope{ID: "e4a16f2d-80bc-4b7e-bf59-0c2a4b6d8ea9", MessageType: protocol.TypeRPCError, Target: protocol.ServerURI, Sender: agentURI},
			data: protocol.RPCError{TransactionID: taskTxn, ID: taskReq,
				Description: "Failed to execute the task for the non blocking 'task run' request (transaction " + taskTxn + "). Error: no implementations match supported features: shell"},
			keys: envelopeKeys("target", "sender", "data", "data.transaction_id", "data.id", "data.description"),
		},
		{
			name:       "status_query_request",
			env:        protocol.Envelope{ID: "f5b2703e-91cd-4c8f-805a-1d3b5c7e9fba", MessageType: protocol.TypeBlockingRequest, Target: agentURI, Sender: protocol.ServerURI},
			data:       protocol.BlockingRequest{TransactionID: queryTxn, Module: protocol.ModuleStatus, Action: protocol.ActionQuery, Params: raw(protocol.StatusQueryParams{TransactionID: taskTxn})},
			innerField: "Params",
			inner:      protocol.StatusQueryParams{TransactionID: taskTxn},
			keys:       envelopeKeys("target", "sender", "data", "data.transaction_id", "data.module", "data.action", "data.params", "data.params.transaction_id"),
		},
		{
			name:       "status_query_response",
			env:        protocol.Envelope{ID: "06c3814f-a2de-4d90-916b-2e4c6d8f0acb", MessageType: protocol.TypeBlockingResponse, Target: protocol.ServerURI, Sender: agentURI},
			data:       protocol.BlockingResponse{TransactionID: queryTxn, Results: raw(statusDone)},
			innerField: "Results",
			inner:      statusDone,
			keys: envelopeKeys("target", "sender", "data", "data.transaction_id", "data.results", "data.results.transaction_id",
				"data.results.status", "data.results.exitcode", "data.results.stdout"),
		},
		{
			name:       "status_query_response_running",
			env:        protocol.Envelope{ID: "17d49250-b3ef-4ea1-a27c-3f5d7e9a1bdc", MessageType: protocol.TypeBlockingResponse, Target: protocol.ServerURI, Sender: agentURI},
			data:       protocol.BlockingResponse{TransactionID: queryTxn, Results: raw(statusRunning)},
			innerField: "Results",
			inner:      statusRunning,
			keys:       envelopeKeys("target", "sender", "data", "data.transaction_id", "data.results", "data.results.transaction_id", "data.results.status"),
		},
		{
			name: "result_ack",
			env:  protocol.Envelope{ID: "28e5a361-c4f0-4fb2-b38d-4a6e8f0b2ced", MessageType: protocol.TypeResultAck, Target: agentURI, Sender: protocol.ServerURI},
			data: protocol.ResultAck{TransactionID: taskTxn},
			keys: envelopeKeys("target", "sender", "data", "data.transaction_id"),
		},
		{
			name: "facts",
			env:  protocol.Envelope{ID: "39f6b472-d501-4ac3-849e-5b7f9a1c3dfe", MessageType: protocol.TypeFacts, Target: protocol.ServerURI, Sender: agentURI},
			data: protocol.Facts{Facts: map[string]any{
				"os":         map[string]any{"family": "Debian", "release": map[string]any{"major": "12"}},
				"processors": map[string]any{"count": float64(4)},
				"kernel":     "Linux",
				"is_virtual": true,
			}},
			keys: envelopeKeys("target", "sender", "data", "data.facts", "data.facts.os", "data.facts.os.family", "data.facts.os.release",
				"data.facts.os.release.major", "data.facts.processors", "data.facts.processors.count", "data.facts.kernel", "data.facts.is_virtual"),
		},
		{
			// Baton extension: a running task's live output (output.go).
			name: "output",
			env:  protocol.Envelope{ID: "5b18d694-f723-4ce5-a6b0-7d91bc3e5f10", MessageType: protocol.TypeOutput, Target: protocol.ServerURI, Sender: agentURI},
			data: protocol.Output{TransactionID: taskTxn, Chunks: []protocol.OutputChunk{
				{Seq: 1, Stream: protocol.StreamStdout, Data: "step 1\n"},
				{Seq: 2, Stream: protocol.StreamStderr, Data: "warning: disk 91% full\n"},
			}},
			keys: envelopeKeys("target", "sender", "data", "data.transaction_id", "data.chunks", "data.chunks[]",
				"data.chunks[].seq", "data.chunks[].stream", "data.chunks[].data"),
		},
		{
			name: "cancel",
			env:  protocol.Envelope{ID: "4a07c583-e612-4bd4-95af-6c80ab2d4e0f", MessageType: protocol.TypeCancel, Target: agentURI, Sender: protocol.ServerURI},
			data: protocol.Cancel{TransactionID: taskTxn},
			keys: envelopeKeys("target", "sender", "data", "data.transaction_id"),
		},
	}
}

func goldenPath(name string) string { return filepath.Join("testdata", name+".json") }

// writeGolden renders c as its golden file: the envelope as Encode produces it, indented.
func writeGolden(t *testing.T, c goldenCase) {
	t.Helper()
	e := c.env
	if c.data != nil {
		b, err := json.Marshal(c.data)
		if err != nil {
			t.Fatalf("marshal data: %v", err)
		}
		e.Data = b
	}
	frame, err := protocol.Encode(e)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, frame, "", "  "); err != nil {
		t.Fatalf("indent: %v", err)
	}
	out.WriteByte('\n')
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goldenPath(c.name), out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestGoldenRoundTrip(t *testing.T) {
	for _, c := range goldenCases(t) {
		t.Run(c.name, func(t *testing.T) {
			if *update {
				writeGolden(t, c)
			}
			golden, err := os.ReadFile(goldenPath(c.name))
			if err != nil {
				t.Fatalf("read golden (run with -update to create it): %v", err)
			}
			e, err := protocol.Decode(golden)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			gotHeader, wantHeader := e, c.env
			gotHeader.Data, wantHeader.Data = nil, nil
			if !reflect.DeepEqual(gotHeader, wantHeader) {
				t.Fatalf("envelope = %+v, want %+v", gotHeader, wantHeader)
			}

			// Re-build the frame from typed values only: the typed data (and, for requests and
			// responses that carry them, the typed params or results inside it).
			var out any
			if c.data == nil {
				if len(e.Data) != 0 {
					t.Fatalf("data = %s, want none", e.Data)
				}
				var v map[string]any
				if err := protocol.DecodeData(e, &v); !errors.Is(err, protocol.ErrInvalid) {
					t.Fatalf("DecodeData of a message without data: err = %v, want ErrInvalid", err)
				}
			} else {
				ptr := reflect.New(reflect.TypeOf(c.data))
				if err := protocol.DecodeData(e, ptr.Interface()); err != nil {
					t.Fatalf("DecodeData into %T: %v", c.data, err)
				}
				got := ptr.Elem()
				if !equalJSONAware(got, reflect.ValueOf(c.data)) {
					t.Errorf("data = %s\nwant %s", show(got.Interface()), show(c.data))
				}
				if c.innerField != "" {
					field := got.FieldByName(c.innerField)
					innerPtr := reflect.New(reflect.TypeOf(c.inner))
					sub := protocol.Envelope{ID: e.ID, MessageType: e.MessageType, Data: field.Bytes()}
					if err := protocol.DecodeData(sub, innerPtr.Interface()); err != nil {
						t.Fatalf("DecodeData %s into %T: %v", c.innerField, c.inner, err)
					}
					if !equalJSONAware(innerPtr.Elem(), reflect.ValueOf(c.inner)) {
						t.Errorf("%s = %s\nwant %s", c.innerField, show(innerPtr.Elem().Interface()), show(c.inner))
					}
					b, err := json.Marshal(innerPtr.Interface())
					if err != nil {
						t.Fatalf("marshal %s: %v", c.innerField, err)
					}
					field.SetBytes(b)
				}
				out = got.Interface()
			}

			re, err := protocol.New(e.MessageType, e.Target, out)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if !idRE.MatchString(re.ID) {
				t.Errorf("New gave id %q, want a UUID v4", re.ID)
			}
			re.ID, re.Sender, re.InReplyTo = e.ID, e.Sender, e.InReplyTo
			frame, err := protocol.Encode(re)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !jsonEqual(frame, golden) {
				t.Errorf("re-encoded frame differs from golden\n got: %s\nwant: %s", frame, compact(t, golden))
			}
		})
	}
}

// TestGoldenKeys checks every golden file's object key paths against the lists written out
// from the reference, so a renamed struct tag cannot pass by regenerating the golden files.
func TestGoldenKeys(t *testing.T) {
	for _, c := range goldenCases(t) {
		t.Run(c.name, func(t *testing.T) {
			golden, err := os.ReadFile(goldenPath(c.name))
			if err != nil {
				t.Fatalf("read golden: %v", err)
			}
			var v any
			if err := json.Unmarshal(golden, &v); err != nil {
				t.Fatalf("golden is not JSON: %v", err)
			}
			got := keyPaths(v, "")
			want := slices.Clone(c.keys)
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Errorf("key paths:\n got %q\nwant %q", got, want)
			}
		})
	}
}

// TestGoldenFilesAllTested fails on a golden file that no case covers (a stale file after a rename).
func TestGoldenFilesAllTested(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, c := range goldenCases(t) {
		names[goldenPath(c.name)] = true
	}
	for _, f := range files {
		if !names[f] {
			t.Errorf("%s is not covered by goldenCases", f)
		}
	}
	if len(files) != len(names) {
		t.Errorf("%d golden files for %d cases", len(files), len(names))
	}
}

// TestGoldenCoversEveryType makes sure a new message type gets a golden file.
func TestGoldenCoversEveryType(t *testing.T) {
	all := []string{
		protocol.TypeAssociateRequest, protocol.TypeAssociateResponse, protocol.TypeErrorMessage,
		protocol.TypeBlockingRequest, protocol.TypeBlockingResponse, protocol.TypeNonBlockingRequest,
		protocol.TypeProvisionalResponse, protocol.TypeNonBlockingResponse, protocol.TypeRPCError,
		protocol.TypeResultAck, protocol.TypeFacts, protocol.TypeCancel, protocol.TypeOutput,
	}
	covered := map[string]bool{}
	for _, c := range goldenCases(t) {
		covered[c.env.MessageType] = true
	}
	for _, typ := range all {
		if !protocol.KnownType(typ) {
			t.Errorf("KnownType(%q) = false", typ)
		}
		if !covered[typ] {
			t.Errorf("no golden file for %s", typ)
		}
	}
	if protocol.KnownType("http://puppetlabs.com/inventory_request") {
		t.Error("KnownType(inventory_request) = true; Baton does not implement it")
	}
}

// keyPaths lists the object key paths of v, sorted; array elements add "[]".
func keyPaths(v any, prefix string) []string {
	set := map[string]bool{}
	var walk func(v any, prefix string)
	walk = func(v any, prefix string) {
		switch v := v.(type) {
		case map[string]any:
			for k, sub := range v {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				set[p] = true
				walk(sub, p)
			}
		case []any:
			for _, sub := range v {
				set[prefix+"[]"] = true
				walk(sub, prefix+"[]")
			}
		}
	}
	walk(v, prefix)
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// equalJSONAware is reflect.DeepEqual except that json.RawMessage values compare as JSON
// (whitespace and key order do not matter).
func equalJSONAware(a, b reflect.Value) bool {
	if a.Type() != b.Type() {
		return false
	}
	if a.Type() == rawMessageType {
		return jsonEqual(a.Bytes(), b.Bytes())
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalJSONAware(a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if !equalJSONAware(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !equalJSONAware(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			bv := b.MapIndex(k)
			if !bv.IsValid() || !equalJSONAware(a.MapIndex(k), bv) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// jsonEqual reports whether a and b hold the same JSON value (both empty counts as equal).
func jsonEqual(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	va, errA := decodeAny(a)
	vb, errB := decodeAny(b)
	return errA == nil && errB == nil && reflect.DeepEqual(va, vb)
}

func decodeAny(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// show renders v as JSON for failure messages (%#v prints json.RawMessage as bytes).
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v (%v)", v, err)
	}
	return string(b)
}

func compact(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("compact: %v", err)
	}
	return buf.Bytes()
}
