package protocol_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/baton-run/baton/shared/protocol"
)

// FuzzDecode checks that Decode never panics, that every error wraps ErrInvalid, and that any
// envelope Decode accepts re-encodes to a frame that decodes to an equal envelope (and encodes
// to the same bytes again). DecodeData into every typed message must not panic either.
func FuzzDecode(f *testing.F) {
	for _, b := range protocol.GoldenFrames(f) {
		f.Add(b)
	}
	for _, s := range []string{
		``, `null`, `[]`, `{}`, `{"id":"a"}`,
		`{"id":"a","message_type":"http://puppetlabs.com/associate_request"}}`,
		`{"id":"a","message_type":"http://puppetlabs.com/associate_request","data":null}`,
		`{"ID":"a","message_type":"http://puppetlabs.com/associate_request"}`,
		`{"id":"\ud800","message_type":"https://baton.run/pxp/cancel","data":{"transaction_id":"<&>"}}`,
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := protocol.Decode(b)
		if err != nil {
			if !errors.Is(err, protocol.ErrInvalid) {
				t.Fatalf("Decode error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		for _, v := range []any{
			new(string), new(protocol.AssociateResponse), new(protocol.BlockingRequest), new(protocol.BlockingResponse),
			new(protocol.NonBlockingRequest), new(protocol.ProvisionalResponse), new(protocol.NonBlockingResponse),
			new(protocol.RPCError), new(protocol.ResultAck), new(protocol.Facts), new(protocol.Cancel),
			new(protocol.TaskParams), new(protocol.TaskResults), new(protocol.StatusQueryParams), new(protocol.StatusResults),
		} {
			if err := protocol.DecodeData(e, v); err != nil && !errors.Is(err, protocol.ErrInvalid) {
				t.Fatalf("DecodeData into %T: error does not wrap ErrInvalid: %v", v, err)
			}
		}

		frame, err := protocol.Encode(e)
		if err != nil {
			t.Fatalf("Encode of a decoded envelope: %v", err)
		}
		e2, err := protocol.Decode(frame)
		if err != nil {
			t.Fatalf("Decode of re-encoded %s: %v", frame, err)
		}
		if e2.ID != e.ID || e2.MessageType != e.MessageType || e2.Target != e.Target || e2.Sender != e.Sender || e2.InReplyTo != e.InReplyTo {
			t.Fatalf("envelope changed by a round trip:\n%+v\n%+v", e, e2)
		}
		if !jsonEqual(e.Data, e2.Data) {
			t.Fatalf("data changed by a round trip: %s -> %s", e.Data, e2.Data)
		}
		frame2, err := protocol.Encode(e2)
		if err != nil {
			t.Fatalf("second Encode: %v", err)
		}
		if !bytes.Equal(frame, frame2) {
			t.Fatalf("Encode is not stable:\n%s\n%s", frame, frame2)
		}
	})
}
