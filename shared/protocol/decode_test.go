package protocol_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

var idRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestDecodeInvalid(t *testing.T) {
	const assoc = protocol.TypeAssociateRequest
	valid := `{"id":"abc","message_type":"` + assoc + `"}`
	tests := []struct {
		name   string
		in     string
		wantID string // the id Decode must still return
	}{
		{"empty input", ``, ""},
		{"not JSON", `hello`, ""},
		{"JSON array", `[{"id":"abc","message_type":"` + assoc + `"}]`, ""},
		{"JSON string", `"abc"`, ""},
		{"JSON null", `null`, ""},
		{"JSON number", `42`, ""},
		{"truncated", `{"id":"abc","message_type":"` + assoc, ""},
		{"unknown envelope field", `{"id":"abc","message_type":"` + assoc + `","expires":"1970-01-01T00:00:00.000Z"}`, "abc"},
		{"PCP v1 targets field", `{"id":"abc","message_type":"` + assoc + `","targets":["pcp:///server"]}`, "abc"},
		{"field name in other case", `{"id":"abc","Message_Type":"` + assoc + `"}`, "abc"},
		{"id in other case", `{"ID":"abc","message_type":"` + assoc + `"}`, ""},
		{"missing id", `{"message_type":"` + assoc + `"}`, ""},
		{"empty id", `{"id":"","message_type":"` + assoc + `"}`, ""},
		{"id not a string", `{"id":42,"message_type":"` + assoc + `"}`, ""},
		{"missing message_type", `{"id":"abc"}`, "abc"},
		{"empty message_type", `{"id":"abc","message_type":""}`, "abc"},
		{"message_type not a string", `{"id":"abc","message_type":1}`, "abc"},
		{"unknown message_type", `{"id":"abc","message_type":"http://puppetlabs.com/inventory_request"}`, "abc"},
		{"message_type with illegal characters", `{"id":"abc","message_type":"http://puppetlabs.com/associate request"}`, "abc"},
		{"target not a string", `{"id":"abc","message_type":"` + assoc + `","target":["pcp:///server"]}`, "abc"},
		{"trailing object", valid + ` {"id":"def","message_type":"` + assoc + `"}`, "abc"},
		{"trailing garbage", valid + `x`, "abc"},
		{"trailing close brace", valid + `}`, "abc"},
		{"trailing close bracket", valid + `]`, "abc"},
		{"trailing comma", valid + `,`, "abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := protocol.Decode([]byte(tt.in))
			if !errors.Is(err, protocol.ErrInvalid) {
				t.Fatalf("Decode(%q) err = %v, want ErrInvalid", tt.in, err)
			}
			if e.ID != tt.wantID {
				t.Errorf("Decode(%q) id = %q, want %q", tt.in, e.ID, tt.wantID)
			}
		})
	}
}

func TestDecodeValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want protocol.Envelope
	}{
		{"minimal", `{"id":"abc","message_type":"` + protocol.TypeAssociateRequest + `"}`,
			protocol.Envelope{ID: "abc", MessageType: protocol.TypeAssociateRequest}},
		{"surrounding whitespace", " \r\n\t{\"id\":\"abc\",\"message_type\":\"" + protocol.TypeCancel + "\"}\n\t \r\n",
			protocol.Envelope{ID: "abc", MessageType: protocol.TypeCancel}},
		{"string data", `{"id":"abc","message_type":"` + protocol.TypeErrorMessage + `","in_reply_to":"def","data":"oops"}`,
			protocol.Envelope{ID: "abc", MessageType: protocol.TypeErrorMessage, InReplyTo: "def", Data: json.RawMessage(`"oops"`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := protocol.Decode([]byte(tt.in))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if e.ID != tt.want.ID || e.MessageType != tt.want.MessageType || e.InReplyTo != tt.want.InReplyTo || string(e.Data) != string(tt.want.Data) {
				t.Errorf("Decode = %+v, want %+v", e, tt.want)
			}
		})
	}
}

// frame builds a valid envelope of type typ with the given data JSON ("" for none).
func frame(typ, data string) string {
	if data == "" {
		return `{"id":"abc","message_type":"` + typ + `"}`
	}
	return `{"id":"abc","message_type":"` + typ + `","data":` + data + `}`
}

// dataCase is one DecodeData call: data is the JSON of the envelope's data ("" for none) and
// into returns a fresh pointer to decode into.
type dataCase struct {
	name string
	typ  string
	data string
	into func() any
}

func checkDataInvalid(t *testing.T, tests []dataCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := protocol.Decode([]byte(frame(tt.typ, tt.data)))
			if err != nil {
				t.Fatalf("Decode of the envelope: %v", err)
			}
			v := tt.into()
			err = protocol.DecodeData(e, v)
			if !errors.Is(err, protocol.ErrInvalid) {
				t.Fatalf("DecodeData(%s) into %T: err = %v, want ErrInvalid", tt.data, v, err)
			}
			if !strings.Contains(err.Error(), tt.typ) {
				t.Errorf("error %q does not name the message type", err)
			}
		})
	}
}

func TestDecodeDataInvalid(t *testing.T) {
	const txn = `"transaction_id":"t1"`
	taskFile := `{"filename":"init","uri":{"path":"/tasks/echo/init"},"sha256":"` + fileSHA + `","size_bytes":10}`
	params := func(body string) dataCase {
		return dataCase{typ: protocol.TypeNonBlockingRequest, data: body, into: func() any { return new(protocol.TaskParams) }}
	}
	named := func(name string, c dataCase) dataCase { c.name = name; return c }

	checkDataInvalid(t, []dataCase{
		{"missing data", protocol.TypeCancel, "", func() any { return new(protocol.Cancel) }},
		{"null data", protocol.TypeCancel, `null`, func() any { return new(protocol.Cancel) }},
		{"data of the wrong kind", protocol.TypeCancel, `"t1"`, func() any { return new(protocol.Cancel) }},
		{"unknown data field", protocol.TypeCancel, `{` + txn + `,"force":true}`, func() any { return new(protocol.Cancel) }},
		{"data field in other case", protocol.TypeCancel, `{"Transaction_ID":"t1"}`, func() any { return new(protocol.Cancel) }},
		{"data field of the wrong type", protocol.TypeCancel, `{"transaction_id":7}`, func() any { return new(protocol.Cancel) }},
		{"blocking request without module", protocol.TypeBlockingRequest, `{` + txn + `,"action":"query"}`, func() any { return new(protocol.BlockingRequest) }},
		{"blocking request without action", protocol.TypeBlockingRequest, `{` + txn + `,"module":"status"}`, func() any { return new(protocol.BlockingRequest) }},
		{"non-blocking request without module", protocol.TypeNonBlockingRequest, `{` + txn + `,"notify_outcome":true,"action":"run"}`, func() any { return new(protocol.NonBlockingRequest) }},
		{"non-blocking request without action", protocol.TypeNonBlockingRequest, `{` + txn + `,"notify_outcome":true,"module":"task"}`, func() any { return new(protocol.NonBlockingRequest) }},
		{"blocking response without results", protocol.TypeBlockingResponse, `{` + txn + `}`, func() any { return new(protocol.BlockingResponse) }},
		{"non-blocking response without results", protocol.TypeNonBlockingResponse, `{` + txn + `}`, func() any { return new(protocol.NonBlockingResponse) }},
		{"rpc error without description", protocol.TypeRPCError, `{` + txn + `,"id":"abc"}`, func() any { return new(protocol.RPCError) }},
		{"associate response without id", protocol.TypeAssociateResponse, `{"success":true}`, func() any { return new(protocol.AssociateResponse) }},
		{"facts without facts", protocol.TypeFacts, `{}`, func() any { return new(protocol.Facts) }},
		{"facts null", protocol.TypeFacts, `{"facts":null}`, func() any { return new(protocol.Facts) }},
		{"facts not an object", protocol.TypeFacts, `{"facts":[1]}`, func() any { return new(protocol.Facts) }},
		{"status results with unknown status", protocol.TypeBlockingResponse, `{` + txn + `,"status":"undetermined"}`, func() any { return new(protocol.StatusResults) }},
		{"status results without status", protocol.TypeBlockingResponse, `{` + txn + `}`, func() any { return new(protocol.StatusResults) }},
		{"task results exitcode not a number", protocol.TypeNonBlockingResponse, `{"exitcode":"0"}`, func() any { return new(protocol.TaskResults) }},
		{"task results unknown field", protocol.TypeNonBlockingResponse, `{"exitcode":0,"output":"x"}`, func() any { return new(protocol.TaskResults) }},
		named("task params without files", params(`{"task":"echo","input":{}}`)),
		named("task params with empty files", params(`{"task":"echo","input":{},"files":[]}`)),
		named("task params with null files", params(`{"task":"echo","input":{},"files":null}`)),
		named("task params without task", params(`{"input":{},"files":[`+taskFile+`]}`)),
		named("task file without filename", params(`{"task":"echo","input":{},"files":[{"uri":{"path":"/x"},"sha256":"`+fileSHA+`"}]}`)),
		named("task file without uri path", params(`{"task":"echo","input":{},"files":[{"filename":"init","uri":{},"sha256":"`+fileSHA+`"}]}`)),
		named("task file without sha256", params(`{"task":"echo","input":{},"files":[{"filename":"init","uri":{"path":"/x"}}]}`)),
		named("task file with unknown field", params(`{"task":"echo","input":{},"files":[{"filename":"init","uri":{"path":"/x"},"sha256":"`+fileSHA+`","kind":"file"}]}`)),
		named("task file field in other case", params(`{"task":"echo","input":{},"files":[{"filename":"init","uri":{"path":"/x"},"SHA256":"`+fileSHA+`"}]}`)),
		named("task file uri with unknown field", params(`{"task":"echo","input":{},"files":[{"filename":"init","uri":{"path":"/x","query":"a=b"},"sha256":"`+fileSHA+`"}]}`)),
		named("task file uri params not strings", params(`{"task":"echo","input":{},"files":[{"filename":"init","uri":{"path":"/x","params":{"n":1}},"sha256":"`+fileSHA+`"}]}`)),
		named("task file size not a number", params(`{"task":"echo","input":{},"files":[{"filename":"init","uri":{"path":"/x"},"sha256":"`+fileSHA+`","size_bytes":"10"}]}`)),
		named("task params with unknown field", params(`{"task":"echo","input":{},"files":[`+taskFile+`],"input_method":"stdin"}`)),
		named("task params timeout not an integer", params(`{"task":"echo","input":{},"files":[`+taskFile+`],"timeout":1.5}`)),
	})
}

func TestDecodeDataTransactionIDs(t *testing.T) {
	bad := map[string]string{
		"empty":                 "",
		"parent directory":      "../x",
		"slash":                 "a/b",
		"space":                 "a b",
		"leading dot":           ".hidden",
		"leading dash":          "-x",
		"newline":               "x\n",
		"non-ASCII":             "tränsaction",
		"200 characters":        strings.Repeat("a", 200),
		"129 characters":        strings.Repeat("a", 129),
		"backslash (Windows)":   `a\b`,
		"NUL byte":              "a\x00b",
		"colon (Windows drive)": "c:x",
	}
	kinds := []struct {
		typ  string
		body func(txn string) string
		into func() any
	}{
		{protocol.TypeBlockingRequest, func(x string) string { return `{"transaction_id":` + x + `,"module":"status","action":"query"}` }, func() any { return new(protocol.BlockingRequest) }},
		{protocol.TypeBlockingResponse, func(x string) string { return `{"transaction_id":` + x + `,"results":{}}` }, func() any { return new(protocol.BlockingResponse) }},
		{protocol.TypeNonBlockingRequest, func(x string) string {
			return `{"transaction_id":` + x + `,"notify_outcome":true,"module":"task","action":"run"}`
		}, func() any { return new(protocol.NonBlockingRequest) }},
		{protocol.TypeProvisionalResponse, func(x string) string { return `{"transaction_id":` + x + `}` }, func() any { return new(protocol.ProvisionalResponse) }},
		{protocol.TypeNonBlockingResponse, func(x string) string { return `{"transaction_id":` + x + `,"results":{"exitcode":0}}` }, func() any { return new(protocol.NonBlockingResponse) }},
		{protocol.TypeRPCError, func(x string) string { return `{"transaction_id":` + x + `,"id":"abc","description":"boom"}` }, func() any { return new(protocol.RPCError) }},
		{protocol.TypeResultAck, func(x string) string { return `{"transaction_id":` + x + `}` }, func() any { return new(protocol.ResultAck) }},
		{protocol.TypeCancel, func(x string) string { return `{"transaction_id":` + x + `}` }, func() any { return new(protocol.Cancel) }},
		{protocol.TypeBlockingRequest + "#params", func(x string) string { return `{"transaction_id":` + x + `}` }, func() any { return new(protocol.StatusQueryParams) }},
		{protocol.TypeBlockingResponse + "#results", func(x string) string { return `{"transaction_id":` + x + `,"status":"running"}` }, func() any { return new(protocol.StatusResults) }},
	}
	quote := func(s string) string {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, k := range kinds {
		typ, _, _ := strings.Cut(k.typ, "#")
		t.Run(k.typ, func(t *testing.T) {
			for _, good := range []string{"t1", taskTxn, "A.b_c-9", strings.Repeat("a", 128)} {
				e, err := protocol.Decode([]byte(frame(typ, k.body(quote(good)))))
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if err := protocol.DecodeData(e, k.into()); err != nil {
					t.Errorf("transaction id %q rejected: %v", good, err)
				}
			}
			for name, txn := range bad {
				t.Run(name, func(t *testing.T) {
					if protocol.ValidTransactionID(txn) {
						t.Errorf("ValidTransactionID(%q) = true", txn)
					}
					e, err := protocol.Decode([]byte(frame(typ, k.body(quote(txn)))))
					if err != nil {
						t.Fatalf("Decode: %v", err)
					}
					if err := protocol.DecodeData(e, k.into()); !errors.Is(err, protocol.ErrInvalid) {
						t.Errorf("transaction id %q: err = %v, want ErrInvalid", txn, err)
					}
				})
			}
		})
	}
}

func TestDecodeDataTrailing(t *testing.T) {
	// Decode never yields such data, but DecodeData is also used on nested raw params.
	for _, data := range []string{`{"transaction_id":"t1"} {}`, `{"transaction_id":"t1"}}`, `{"transaction_id":"t1"}]`, `{"transaction_id":"t1"}x`} {
		t.Run(data, func(t *testing.T) {
			e := protocol.Envelope{ID: "abc", MessageType: protocol.TypeCancel, Data: json.RawMessage(data)}
			var c protocol.Cancel
			if err := protocol.DecodeData(e, &c); !errors.Is(err, protocol.ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
	e := protocol.Envelope{ID: "abc", MessageType: protocol.TypeCancel, Data: json.RawMessage(" {\"transaction_id\":\"t1\"}\n ")}
	var c protocol.Cancel
	if err := protocol.DecodeData(e, &c); err != nil || c.TransactionID != "t1" {
		t.Errorf("surrounding whitespace: %+v, %v", c, err)
	}
}

func TestDecodeDataFreeForm(t *testing.T) {
	// Free-form parts (params input, task metadata, facts) keep any keys, in any case.
	e, err := protocol.Decode([]byte(frame(protocol.TypeFacts, `{"facts":{"OS":{"Family":"Debian"},"os":{"family":"Debian"}}}`)))
	if err != nil {
		t.Fatal(err)
	}
	var f protocol.Facts
	if err := protocol.DecodeData(e, &f); err != nil {
		t.Fatalf("DecodeData: %v", err)
	}
	if len(f.Facts) != 2 {
		t.Errorf("facts = %v, want both OS and os", f.Facts)
	}
	params := `{"task":"echo","input":{"Message":"hi","message":"hi"},"metadata":{"Anything":[{"Goes":1}]},"files":[{"filename":"init","uri":{"path":"/x","params":{"Environment":"production"}},"sha256":"` + fileSHA + `"}]}`
	var p protocol.TaskParams
	if err := protocol.DecodeData(protocol.Envelope{MessageType: protocol.TypeNonBlockingRequest, Data: json.RawMessage(params)}, &p); err != nil {
		t.Fatalf("DecodeData params: %v", err)
	}
	if p.Files[0].URI.Params["Environment"] != "production" || p.Timeout != 0 || p.Files[0].SizeBytes != 0 {
		t.Errorf("params = %+v", p)
	}
}

func TestEncode(t *testing.T) {
	for _, e := range []protocol.Envelope{
		{MessageType: protocol.TypeCancel},
		{ID: "abc"},
		{},
	} {
		if _, err := protocol.Encode(e); !errors.Is(err, protocol.ErrInvalid) {
			t.Errorf("Encode(%+v) err = %v, want ErrInvalid", e, err)
		}
	}
	b, err := protocol.Encode(protocol.Envelope{ID: "abc", MessageType: protocol.TypeAssociateRequest})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"abc","message_type":"` + protocol.TypeAssociateRequest + `"}`; string(b) != want {
		t.Errorf("Encode = %s, want %s (empty optional fields omitted)", b, want)
	}
	if _, err := protocol.Encode(protocol.Envelope{ID: "abc", MessageType: protocol.TypeFacts, Data: json.RawMessage(`{bad`)}); err == nil {
		t.Error("Encode with invalid raw data succeeded")
	}
}

func TestNew(t *testing.T) {
	e, err := protocol.New(protocol.TypeCancel, protocol.AgentURI("n1"), protocol.Cancel{TransactionID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if !idRE.MatchString(e.ID) || e.MessageType != protocol.TypeCancel || e.Target != "pcp://n1/agent" || e.Sender != "" || e.InReplyTo != "" {
		t.Errorf("New = %+v", e)
	}
	if string(e.Data) != `{"transaction_id":"t1"}` {
		t.Errorf("data = %s", e.Data)
	}
	e, err = protocol.New(protocol.TypeAssociateRequest, protocol.ServerURI, nil)
	if err != nil || e.Data != nil {
		t.Errorf("New with nil data = %+v, %v; want no data", e, err)
	}
	if _, err := protocol.New(protocol.TypeFacts, "", protocol.Facts{Facts: map[string]any{"f": func() {}}}); err == nil {
		t.Error("New with unmarshallable data succeeded")
	}
}

func TestNewID(t *testing.T) {
	seen := make(map[string]bool, 1000)
	for range 1000 {
		id := protocol.NewID()
		if !idRE.MatchString(id) {
			t.Fatalf("NewID() = %q, not a lowercase UUID v4", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestNewErrorMessage(t *testing.T) {
	tests := []struct {
		inReplyTo, description string
	}{
		{"1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "Could not decode message"},
		{"", "invalid message: trailing data after message"},
		{"abc", "quotes \" and <html> & newlines\n and unicode é"},
	}
	for _, tt := range tests {
		t.Run(tt.description, func(t *testing.T) {
			e := protocol.NewErrorMessage(tt.inReplyTo, tt.description)
			if !idRE.MatchString(e.ID) || e.MessageType != protocol.TypeErrorMessage || e.InReplyTo != tt.inReplyTo {
				t.Fatalf("NewErrorMessage = %+v", e)
			}
			b, err := protocol.Encode(e)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			var shape map[string]json.RawMessage
			if err := json.Unmarshal(b, &shape); err != nil {
				t.Fatal(err)
			}
			var data string
			if err := json.Unmarshal(shape["data"], &data); err != nil {
				t.Fatalf("data %s is not a JSON string: %v", shape["data"], err)
			}
			if data != tt.description {
				t.Errorf("data = %q, want %q", data, tt.description)
			}
			_, hasReply := shape["in_reply_to"]
			if hasReply != (tt.inReplyTo != "") {
				t.Errorf("frame %s: in_reply_to present = %v", b, hasReply)
			}
			back, err := protocol.Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			var s string
			if err := protocol.DecodeData(back, &s); err != nil || s != tt.description || back.InReplyTo != tt.inReplyTo {
				t.Errorf("decoded back: %q, %+v, %v", s, back, err)
			}
		})
	}
}

func TestURIs(t *testing.T) {
	for _, name := range []string{"node1.example.com", "n1", "web-01.prod.example.org", "UPPER.example.com"} {
		uri := protocol.AgentURI(name)
		if uri != "pcp://"+name+"/agent" {
			t.Errorf("AgentURI(%q) = %q", name, uri)
		}
		got, err := protocol.NodeFromURI(uri)
		if err != nil || got != name {
			t.Errorf("NodeFromURI(AgentURI(%q)) = %q, %v", name, got, err)
		}
	}
	tests := []struct {
		uri, want string
		ok        bool
	}{
		{"pcp://node1.example.com/agent", "node1.example.com", true},
		{"pcp://orch.example.com/orchestrator", "orch.example.com", true},
		{"pcp://node1/controller", "node1", true},
		{protocol.ServerURI, "", false},
		{"pcp://node1", "", false},
		{"pcp://node1/", "", false},
		{"pcp://node1/agent/extra", "", false},
		{"pcp:///agent", "", false},
		{"pcp://", "", false},
		{"http://node1/agent", "", false},
		{"PCP://node1/agent", "", false},
		{"node1", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			got, err := protocol.NodeFromURI(tt.uri)
			if tt.ok {
				if err != nil || got != tt.want {
					t.Errorf("NodeFromURI(%q) = %q, %v; want %q", tt.uri, got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, protocol.ErrInvalid) {
				t.Errorf("NodeFromURI(%q) = %q, %v; want ErrInvalid", tt.uri, got, err)
			}
		})
	}
}

func ExampleNodeFromURI() {
	name, err := protocol.NodeFromURI(protocol.AgentURI("node1.example.com"))
	fmt.Println(name, err)
	// Output: node1.example.com <nil>
}

// TestDecodeErrorMessage reads both forms of error_message: PCP v2's description string and
// Baton's ErrorData object, which says whether to retry.
func TestDecodeErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     protocol.Envelope
		want    protocol.ErrorData
		wantErr string
	}{
		{"plain PCP string", protocol.NewErrorMessage("m1", "Could not decode message"),
			protocol.ErrorData{ID: "m1", Description: "Could not decode message"}, ""},
		{"retryable with a wait", protocol.NewRetryableError("m2", "Too many messages", 1500*time.Microsecond),
			protocol.ErrorData{ID: "m2", Description: "Too many messages", Retry: true, RetryAfterMS: 2}, ""},
		{"retryable without a wait", protocol.NewRetryableError("m3", "internal error", 0),
			protocol.ErrorData{ID: "m3", Description: "internal error", Retry: true}, ""},
		{"object without id takes in_reply_to", protocol.Envelope{ID: "x", MessageType: protocol.TypeErrorMessage, InReplyTo: "m4",
			Data: json.RawMessage(`{"description":"no","retry":false}`)}, protocol.ErrorData{ID: "m4", Description: "no"}, ""},
		{"unknown field", protocol.Envelope{ID: "x", MessageType: protocol.TypeErrorMessage,
			Data: json.RawMessage(`{"description":"no","retry_later":true}`)}, protocol.ErrorData{}, "unknown field"},
		{"no description", protocol.Envelope{ID: "x", MessageType: protocol.TypeErrorMessage,
			Data: json.RawMessage(`{"retry":true}`)}, protocol.ErrorData{}, "description is required"},
		{"negative wait", protocol.Envelope{ID: "x", MessageType: protocol.TypeErrorMessage,
			Data: json.RawMessage(`{"description":"d","retry":true,"retry_after_ms":-1}`)}, protocol.ErrorData{}, "must not be negative"},
		{"not an error_message", protocol.Envelope{ID: "x", MessageType: protocol.TypeKeepalive}, protocol.ErrorData{}, "is not an error_message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Through the wire: encode, decode the envelope, then its data.
			b, err := protocol.Encode(tc.env)
			if err != nil {
				t.Fatal(err)
			}
			e, err := protocol.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			got, err := protocol.DecodeErrorMessage(e)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, protocol.ErrInvalid) {
					t.Fatalf("DecodeErrorMessage = %+v, %v; want an ErrInvalid containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("DecodeErrorMessage = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestMessageID(t *testing.T) {
	for in, want := range map[string]string{
		`{"id":"abc","message_type":"x","data":{"big":[1,2,3]}}`: "abc",
		`{"message_type":"x"}`: "",
		`not json`:             "",
		`{"id":7}`:             "",
	} {
		if got := protocol.MessageID([]byte(in)); got != want {
			t.Errorf("MessageID(%s) = %q, want %q", in, got, want)
		}
	}
}
