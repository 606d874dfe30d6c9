package protocol

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

// checkKeysByDecoding is the key check as first written — decoding every object again into a
// map — kept to test checkKeys (one pass over the bytes) against.
func checkKeysByDecoding(b []byte, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessageType {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		fields := jsonFields(t)
		for k, v := range m {
			ft, ok := fields[k]
			if !ok {
				return fmt.Errorf("json: unknown field %q", k)
			}
			if err := checkKeysByDecoding(v, ft); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Kind() == reflect.Slice {
			return nil
		}
		var items []json.RawMessage
		if err := json.Unmarshal(b, &items); err != nil {
			return err
		}
		for _, v := range items {
			if err := checkKeysByDecoding(v, t.Elem()); err != nil {
				return err
			}
		}
	case reflect.Map:
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		for _, v := range m {
			if err := checkKeysByDecoding(v, t.Elem()); err != nil {
				return err
			}
		}
	}
	return nil
}

var keyCheckTypes = []reflect.Type{
	envelopeType, reflect.TypeFor[NonBlockingRequest](), reflect.TypeFor[TaskParams](), reflect.TypeFor[TaskResults](),
	reflect.TypeFor[Facts](), reflect.TypeFor[StatusResults](), reflect.TypeFor[RPCError](), reflect.TypeFor[[]TaskFile](),
	reflect.TypeFor[map[string]TaskFile](),
}

// keysAgree checks both key checks on b for every type b decodes into.
func keysAgree(t *testing.T, b []byte) {
	t.Helper()
	for _, typ := range keyCheckTypes {
		if json.Unmarshal(b, reflect.New(typ).Interface()) != nil {
			continue // checkKeys only ever sees JSON that decoded into its type
		}
		got, want := checkKeys(b, typ), checkKeysByDecoding(b, typ)
		if (got == nil) != (want == nil) {
			t.Fatalf("%s as %s: checkKeys = %v, by decoding = %v", b, typ, got, want)
		}
	}
}

func TestCheckKeysAgreesWithDecoding(t *testing.T) {
	for _, b := range goldenFrames(t) {
		keysAgree(t, b)
		var e Envelope
		if json.Unmarshal(b, &e) == nil && len(e.Data) > 0 {
			keysAgree(t, e.Data)
		}
	}
	for _, s := range []string{
		`{"id":"a","message_type":"x","data":{"Transaction_ID":"t"}}`,
		`{"transaction_id":"t","module":"task","action":"run","params":{"Anything":[{"x":1}]},"notify_outcome":true}`,
		`{"task":"a::b","input":{},"files":[{"filename":"f","uri":{"path":"/x","params":{}},"sha256":"00","size_bytes":1}]}`,
		`{"task":"a::b","files":[{"filename":"f","URI":{}}]}`,
		`{"task":"a::b","files":[{"filename":"f","uri":{"Path":"/x"}}]}`,
		`{"exitcode":0,"stdout":"\"}{][","stderr":"\\\\"}`,
		`{"exitcode":0,"std\u006fut":"escaped key"}`,
		`{"exitcode":0,"Stdout":"x"}`,
		` { "exitcode" : 0 , "stdout" : "spaced" } `,
		`{"a":{"filename":"x"},"b":{"Filename":"y"}}`,
		`[]`, `{}`, `[{"filename":"a"},{"bad":1}]`,
	} {
		keysAgree(t, []byte(s))
	}
}

func FuzzCheckKeys(f *testing.F) {
	for _, s := range []string{
		`{"id":"a","message_type":"x","data":{"transaction_id":"t"}}`,
		`{"task":"a::b","files":[{"filename":"f","uri":{"path":"/x"}}]}`,
		`{"exitcode":0,"std\u006fut":"x","Stderr":"y"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { keysAgree(t, b) })
}
