package protocol

import (
	"reflect"
	"testing"
)

// FuzzDecodePlain checks decodePlain against decodeAny: wherever decodePlain decodes a frame,
// decodeAny accepts it and decodes the same envelope. (Where it does not, Decode falls back to
// decodeAny, so a frame decodePlain declines changes nothing.)
func FuzzDecodePlain(f *testing.F) {
	for _, b := range goldenFrames(f) {
		f.Add(b)
	}
	for _, s := range plainCases {
		f.Add([]byte(s.frame))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		plain, ok := decodePlain(b)
		if !ok {
			return
		}
		general, err := decodeAny(b)
		if err != nil {
			t.Fatalf("decodePlain decoded %q, which decodeAny refuses: %v", b, err)
		}
		if !reflect.DeepEqual(plain, general) {
			t.Fatalf("decodePlain(%q) = %+v, decodeAny = %+v", b, plain, general)
		}
	})
}

// plainCases are frames decodePlain decodes (plain true) or leaves to decodeAny.
var plainCases = []struct {
	frame string
	plain bool
}{
	{`{"id":"a","message_type":"http://puppetlabs.com/associate_request","sender":"pcp://n/agent","data":{"x":[1,"}",{"y":null}]}}`, true},
	{` { "id" : "a" , "in_reply_to" : "b", "target":"pcp:///server", "data" : 5 } `, true},
	{`{}`, true},
	{`{"id":"","data":"s"}`, true},
	{`{"id":"a\u0062"}`, false},       // an escape
	{`{"id":"é"}`, false},             // beyond ASCII
	{`{"id":"a","id":"b"}`, false},    // a repeated key: encoding/json keeps the last
	{`{"ID":"a"}`, false},             // not the exact name: refused by decodeAny
	{`{"id":"a","extra":1}`, false},   // unknown
	{`{"id":1}`, false},               // not a string
	{`{"id":null}`, false},            // null
	{`{"id":"a","data":null}`, false}, // a null data
	{`{"id":"a"} {}`, false},          // trailing data
	{`{"id":"a"`, false},              // invalid
	{`[]`, false},
	{``, false},
}

func TestDecodePlainCases(t *testing.T) {
	for _, tt := range plainCases {
		plain, ok := decodePlain([]byte(tt.frame))
		if ok != tt.plain {
			t.Errorf("decodePlain(%q): ok %v, want %v", tt.frame, ok, tt.plain)
			continue
		}
		if !ok {
			continue
		}
		general, err := decodeAny([]byte(tt.frame))
		if err != nil || !reflect.DeepEqual(plain, general) {
			t.Errorf("decodePlain(%q) = %+v; decodeAny = %+v, %v", tt.frame, plain, general, err)
		}
	}
}
