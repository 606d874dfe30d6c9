package protocol_test

import (
	"encoding/json"
	"testing"

	"github.com/baton-run/baton/shared/protocol"
)

// BenchmarkDecodeResult decodes what a server reads most at fleet scale: a task's result.
func BenchmarkDecodeResult(b *testing.B) {
	e, err := protocol.New(protocol.TypeNonBlockingResponse, protocol.ServerURI, protocol.NonBlockingResponse{
		TransactionID: "17.1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
		Results:       json.RawMessage(`{"stdout":"{\"node\":\"s1234\",\"run\":42}","stderr":"","exitcode":0}`)})
	if err != nil {
		b.Fatal(err)
	}
	raw, err := protocol.Encode(e)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		got, err := protocol.Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		var r protocol.NonBlockingResponse
		if err := protocol.DecodeData(got, &r); err != nil {
			b.Fatal(err)
		}
	}
}
