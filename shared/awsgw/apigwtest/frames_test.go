package apigwtest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
)

// frame encodes one WebSocket frame. The mask key is written but the payload is left as it is:
// the parser only follows boundaries and never unmasks.
func frame(fin bool, opcode byte, masked bool, payload []byte) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	var m byte
	if masked {
		m = 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, m|byte(n))
	case n <= 0xffff:
		out = append(out, m|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, m|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if masked {
		out = append(out, 1, 2, 3, 4)
	}
	return append(out, payload...)
}

func TestFrameParser(t *testing.T) {
	const (
		opCont  = 0x0
		opText  = 0x1
		opClose = 0x8
		opPing  = 0x9
	)
	p := func(n int) []byte { return bytes.Repeat([]byte{'x'}, n) }
	tests := []struct {
		name                string
		maxFrame, maxMsg    int64
		frames              [][]byte
		pass                []int // indexes of the frames that must come out
		wantViolation       string
		wantDataFrameLength []int64
	}{
		{
			name: "small masked text frame", maxFrame: 10, maxMsg: 25,
			frames:              [][]byte{frame(true, opText, true, p(5))},
			pass:                []int{0},
			wantDataFrameLength: []int64{5},
		},
		{
			name: "16-bit and 64-bit lengths within limits", maxFrame: 1 << 20, maxMsg: 1 << 20,
			frames:              [][]byte{frame(true, opText, true, p(300)), frame(true, opText, false, p(70000))},
			pass:                []int{0, 1},
			wantDataFrameLength: []int64{300, 70000},
		},
		{
			name: "frame over the limit is withheld, control frames pass", maxFrame: 10, maxMsg: 25,
			frames:              [][]byte{frame(true, opText, true, p(11)), frame(true, opClose, true, []byte{3, 0xf1})},
			pass:                []int{1},
			wantViolation:       "frame too big",
			wantDataFrameLength: []int64{11},
		},
		{
			name: "fragmented message within the limit", maxFrame: 10, maxMsg: 25,
			frames: [][]byte{
				frame(false, opText, true, p(8)),
				frame(true, opPing, true, p(2)),
				frame(false, opCont, true, p(8)),
				frame(true, opCont, true, p(8)),
			},
			pass:                []int{0, 1, 2, 3},
			wantDataFrameLength: []int64{8, 8, 8},
		},
		{
			name: "fragmented message over the limit, later data dropped", maxFrame: 10, maxMsg: 25,
			frames: [][]byte{
				frame(false, opText, true, p(8)),
				frame(false, opCont, true, p(8)),
				frame(false, opCont, true, p(8)),
				frame(true, opCont, true, p(8)),
				frame(true, opText, true, p(1)),
				frame(true, opPing, true, nil),
			},
			pass:                []int{0, 1, 2, 5},
			wantViolation:       "message too big",
			wantDataFrameLength: []int64{8, 8, 8, 8, 1},
		},
		{
			name: "each message counts from zero", maxFrame: 25, maxMsg: 25,
			frames:              [][]byte{frame(true, opText, true, p(20)), frame(true, opText, true, p(20))},
			pass:                []int{0, 1},
			wantDataFrameLength: []int64{20, 20},
		},
	}
	for _, tc := range tests {
		in := slices.Concat(tc.frames...)
		var want []byte
		for _, i := range tc.pass {
			want = append(want, tc.frames[i]...)
		}
		for _, chunk := range []int{len(in), 1, 3, 7} {
			t.Run(fmt.Sprintf("%s/chunk %d", tc.name, chunk), func(t *testing.T) {
				var violations []string
				var lengths []int64
				fp := frameParser{
					maxFrame:    tc.maxFrame,
					maxMessage:  tc.maxMsg,
					onDataFrame: func(n int64) { lengths = append(lengths, n) },
					onViolation: func(r string) { violations = append(violations, r) },
				}
				var out []byte
				for rest := in; len(rest) > 0; {
					n := min(chunk, len(rest))
					out = fp.feed(rest[:n], out)
					rest = rest[n:]
				}
				if !bytes.Equal(out, want) {
					t.Errorf("output %d bytes, want %d bytes (frames %v)", len(out), len(want), tc.pass)
				}
				switch {
				case tc.wantViolation == "" && len(violations) > 0:
					t.Errorf("violations %v, want none", violations)
				case tc.wantViolation != "" && !slices.Equal(violations, []string{tc.wantViolation}):
					t.Errorf("violations %v, want exactly [%s]", violations, tc.wantViolation)
				}
				if !slices.Equal(lengths, tc.wantDataFrameLength) {
					t.Errorf("data frame lengths %v, want %v", lengths, tc.wantDataFrameLength)
				}
			})
		}
	}
}

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"arn:aws:execute-api:us-east-1:123456789012:abc/test/$connect", "arn:aws:execute-api:us-east-1:123456789012:abc/test/$connect", true},
		{"arn:aws:execute-api:*:*:abc/*", "arn:aws:execute-api:us-east-1:123456789012:abc/test/$connect", true},
		{"*", "anything/with/slashes", true},
		{"arn:aws:execute-api:us-east-1:123456789012:abc/prod/*", "arn:aws:execute-api:us-east-1:123456789012:abc/test/$connect", false},
		{"execute-api:invok?", "execute-api:invoke", true},
		{"execute-api:*", "execute-api:invoke", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"", "", true},
		{"", "x", false},
	}
	for _, tc := range tests {
		t.Run(tc.pattern+"~"+tc.s, func(t *testing.T) {
			if got := wildcardMatch(tc.pattern, tc.s); got != tc.want {
				t.Errorf("wildcardMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
			}
		})
	}
}
