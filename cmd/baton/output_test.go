package main

import (
	"bytes"
	"testing"

	"github.com/baton-run/baton/shared/client"
)

// TestLineStreamer: chunks become whole lines prefixed by their node, stdout and stderr apart;
// a line split over chunks is printed once complete, and what is left at the end as a line.
func TestLineStreamer(t *testing.T) {
	var out, errOut bytes.Buffer
	l := newLineStreamer(&out, &errOut)
	for _, c := range []struct {
		node string
		ch   client.OutputChunk
	}{
		{"web1", client.OutputChunk{Seq: 1, Stream: "stdout", Data: "one\ntw"}},
		{"web2", client.OutputChunk{Seq: 1, Stream: "stdout", Data: "alpha\n"}},
		{"web1", client.OutputChunk{Seq: 2, Stream: "stderr", Data: "oops\n"}},
		{"web1", client.OutputChunk{Seq: 3, Stream: "stdout", Data: "o\nthree"}},
		{"web2", client.OutputChunk{Seq: 2, Stream: "stdout", Data: "beta"}},
	} {
		l.chunk(c.node, c.ch)
	}
	if want := "[web1] one\n[web2] alpha\n[web1] two\n"; out.String() != want {
		t.Fatalf("stdout %q, want %q", out.String(), want)
	}
	l.end("web1")
	l.end("web2")
	l.end("web2") // twice: nothing more
	if want := "[web1] one\n[web2] alpha\n[web1] two\n[web1] three\n[web2] beta\n"; out.String() != want {
		t.Fatalf("stdout after the end %q, want %q", out.String(), want)
	}
	if want := "[web1] oops\n"; errOut.String() != want {
		t.Fatalf("stderr %q, want %q", errOut.String(), want)
	}
}
