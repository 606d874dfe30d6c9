package apigwtest

import (
	"context"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
)

// Frame-level limits need the frames themselves, which github.com/coder/websocket does not expose.
// So every accepted TCP connection is wrapped in a frameConn. Once a connection has been upgraded,
// its client-to-server byte stream is parsed frame by frame (RFC 6455 §5.2) as it is read: data
// frames over the frame limit, and the frames that take a message over the message limit, are
// withheld from the WebSocket library and reported, and the connection is then closed with 1009.
// Control frames always pass, so the close handshake still completes.

// frameConn is a net.Conn whose reads are inspected once activate has been called.
type frameConn struct {
	net.Conn
	active atomic.Bool

	mu      sync.Mutex // held by Read once active
	parser  frameParser
	buf     []byte
	out     []byte
	pending error
}

// activate switches the connection to frame inspection. It must be called while no WebSocket byte
// has been read yet: in the upgrade handler, before the 101 answer is written.
func (c *frameConn) activate(p frameParser) {
	c.mu.Lock()
	c.parser = p
	c.buf = make([]byte, 32*1024)
	c.mu.Unlock()
	c.active.Store(true)
}

func (c *frameConn) Read(b []byte) (int, error) {
	if !c.active.Load() {
		n, err := c.Conn.Read(b)
		if n == 0 || !c.active.Load() {
			return n, err
		}
		// Activated while this read was blocked: net/http's background read (it watches for the
		// client going away while the handler runs) can pick up the first byte the client sends
		// after the 101 answer. Such bytes are WebSocket bytes, since the client sends nothing
		// between its upgrade request and the answer, so they go through the parser too.
		c.mu.Lock()
		defer c.mu.Unlock()
		c.out = c.parser.feed(b[:n], c.out)
		k := copy(b, c.out)
		c.out = c.out[:copy(c.out, c.out[k:])]
		if err != nil && len(c.out) > 0 {
			c.pending, err = err, nil
		}
		return k, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.out) == 0 {
		if c.pending != nil {
			err := c.pending
			c.pending = nil
			return 0, err
		}
		n, err := c.Conn.Read(c.buf)
		if n > 0 {
			c.out = c.parser.feed(c.buf[:n], c.out)
		}
		if err != nil {
			if len(c.out) == 0 {
				return 0, err
			}
			c.pending = err
		}
	}
	n := copy(b, c.out)
	c.out = c.out[:copy(c.out, c.out[n:])]
	return n, nil
}

// frameListener wraps every accepted connection in a frameConn.
type frameListener struct{ net.Listener }

func (l frameListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &frameConn{Conn: c}, nil
}

type frameConnKey struct{}

// connContext makes the frameConn reachable from the requests it carries.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*frameConn); ok {
		return context.WithValue(ctx, frameConnKey{}, fc)
	}
	return ctx
}

// frameParser follows the frame boundaries of one direction of a WebSocket stream and filters it.
type frameParser struct {
	maxFrame   int64
	maxMessage int64
	// onDataFrame is called for each data frame header with its payload length.
	onDataFrame func(length int64)
	// onViolation is called once, for the first frame that breaks a limit.
	onViolation func(reason string)

	hdr       [14]byte
	hdrLen    int
	need      int // header length once known from the first two bytes, else 0
	remaining uint64
	pass      bool
	msgLen    uint64
	dropping  bool
}

// feed consumes in and appends to out the bytes that may pass.
func (p *frameParser) feed(in, out []byte) []byte {
	for len(in) > 0 {
		if p.remaining > 0 {
			n := uint64(len(in))
			if n > p.remaining {
				n = p.remaining
			}
			if p.pass {
				out = append(out, in[:n]...)
			}
			in = in[n:]
			p.remaining -= n
			continue
		}
		want := 2
		if p.need > 0 {
			want = p.need
		}
		k := copy(p.hdr[p.hdrLen:want], in)
		p.hdrLen += k
		in = in[k:]
		if p.hdrLen < want {
			continue
		}
		if p.need == 0 {
			p.need = headerLength(p.hdr[1])
			if p.hdrLen < p.need {
				continue
			}
		}
		out = p.headerDone(out)
	}
	return out
}

// headerLength is the full frame header length given its second byte.
func headerLength(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 { // masked
		n += 4
	}
	return n
}

func (p *frameParser) headerDone(out []byte) []byte {
	opcode := p.hdr[0] & 0x0f
	var length uint64
	switch code := p.hdr[1] & 0x7f; code {
	case 126:
		length = uint64(binary.BigEndian.Uint16(p.hdr[2:4]))
	case 127:
		length = binary.BigEndian.Uint64(p.hdr[2:10])
	default:
		length = uint64(code)
	}

	p.pass = true
	if opcode&0x8 == 0 { // data frame: continuation, text or binary
		if p.onDataFrame != nil {
			p.onDataFrame(int64(min(length, 1<<62)))
		}
		if opcode != 0 {
			p.msgLen = 0
		}
		p.msgLen += length
		switch {
		case p.dropping:
			p.pass = false
		case length > uint64(p.maxFrame):
			p.violate("frame too big")
		case p.msgLen > uint64(p.maxMessage):
			p.violate("message too big")
		}
	}
	if p.pass {
		out = append(out, p.hdr[:p.hdrLen]...)
	}
	p.remaining = length
	p.hdrLen, p.need = 0, 0
	return out
}

func (p *frameParser) violate(reason string) {
	p.pass = false
	p.dropping = true
	if p.onViolation != nil {
		p.onViolation(reason)
	}
}
