package protocol_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/baton-run/baton/shared/protocol"
)

func TestOutputDecode(t *testing.T) {
	frame := func(data string) []byte {
		return []byte(`{"id":"abc","message_type":"` + protocol.TypeOutput + `","data":` + data + `}`)
	}
	big := strings.Repeat("x", protocol.MaxOutputData)
	tests := []struct {
		name string
		data string
		want *protocol.Output // nil: refused with ErrInvalid
	}{
		{"one chunk", `{"transaction_id":"t1","chunks":[{"seq":1,"stream":"stdout","data":"hi\n"}]}`,
			&protocol.Output{TransactionID: "t1", Chunks: []protocol.OutputChunk{{Seq: 1, Stream: "stdout", Data: "hi\n"}}}},
		{"both streams, contiguous", `{"transaction_id":"t1","chunks":[{"seq":7,"stream":"stdout","data":"a"},{"seq":8,"stream":"stderr","data":"b"}]}`,
			&protocol.Output{TransactionID: "t1", Chunks: []protocol.OutputChunk{{Seq: 7, Stream: "stdout", Data: "a"}, {Seq: 8, Stream: "stderr", Data: "b"}}}},
		{"a full message", `{"transaction_id":"t1","chunks":[{"seq":1,"stream":"stdout","data":"` + big + `"}]}`,
			&protocol.Output{TransactionID: "t1", Chunks: []protocol.OutputChunk{{Seq: 1, Stream: "stdout", Data: big}}}},
		{"no chunks", `{"transaction_id":"t1","chunks":[]}`, nil},
		{"seq 0", `{"transaction_id":"t1","chunks":[{"seq":0,"stream":"stdout","data":"a"}]}`, nil},
		{"seq not contiguous", `{"transaction_id":"t1","chunks":[{"seq":1,"stream":"stdout","data":"a"},{"seq":3,"stream":"stdout","data":"b"}]}`, nil},
		{"seq going back", `{"transaction_id":"t1","chunks":[{"seq":2,"stream":"stdout","data":"a"},{"seq":1,"stream":"stdout","data":"b"}]}`, nil},
		{"unknown stream", `{"transaction_id":"t1","chunks":[{"seq":1,"stream":"stdin","data":"a"}]}`, nil},
		{"bad transaction id", `{"transaction_id":"../x","chunks":[{"seq":1,"stream":"stdout","data":"a"}]}`, nil},
		{"unknown field", `{"transaction_id":"t1","chunks":[{"seq":1,"stream":"stdout","data":"a","eof":true}]}`, nil},
		{"key in other case", `{"transaction_id":"t1","Chunks":[{"seq":1,"stream":"stdout","data":"a"}]}`, nil},
		{"too much data", `{"transaction_id":"t1","chunks":[{"seq":1,"stream":"stdout","data":"` + big + `"},{"seq":2,"stream":"stdout","data":"y"}]}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := protocol.Decode(frame(tt.data))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			var o protocol.Output
			err = protocol.DecodeData(e, &o)
			if tt.want == nil {
				if !errors.Is(err, protocol.ErrInvalid) {
					t.Fatalf("DecodeData err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeData: %v", err)
			}
			got, _ := json.Marshal(o)
			want, _ := json.Marshal(tt.want)
			if string(got) != string(want) {
				t.Errorf("decoded %s, want %s", got, want)
			}
		})
	}
}

// TestOutputMessageFitsAPIGateway: the agent bounds a message by the JSON-encoded size of its
// data (MaxOutputData; see agent/stream.go): such a message, with the longest transaction id
// and the worst data (every byte escaped as \u00XX), fits API Gateway's 128 KB message limit.
func TestOutputMessageFitsAPIGateway(t *testing.T) {
	e, err := protocol.New(protocol.TypeOutput, protocol.ServerURI, protocol.Output{TransactionID: strings.Repeat("t", 128),
		Chunks: []protocol.OutputChunk{{Seq: 1 << 40, Stream: protocol.StreamStderr, Data: strings.Repeat("\x01", protocol.MaxOutputData/6)}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := protocol.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 128<<10 {
		t.Fatalf("a message of %d bytes of data encodes to %d bytes, over API Gateway's 128 KB", protocol.MaxOutputData, len(b))
	}
}

func TestTaskParamsStreamIsOptional(t *testing.T) {
	b, _ := json.Marshal(protocol.TaskParams{Task: "a::b"})
	if strings.Contains(string(b), "stream") {
		t.Errorf("params without streaming carry a stream key: %s", b)
	}
	b, _ = json.Marshal(protocol.TaskParams{Task: "a::b", Stream: true})
	if !strings.Contains(string(b), `"stream":true`) {
		t.Errorf("params with streaming: %s", b)
	}
}
