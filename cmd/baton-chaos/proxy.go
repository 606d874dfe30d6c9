package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// proxy is a TCP proxy between the agents and baton serve that misbehaves on demand: it cuts
// connections, delays traffic, stalls a connection for a while (a partition that heals),
// black-holes one for good without closing it (a half-open connection: only liveness checks
// find it), and sends whole WebSocket data frames twice. It reads the HTTP upgrade and then
// the WebSocket frames in both directions (so it needs plain ws://, no TLS); other
// connections are forwarded as bytes.
type proxy struct {
	ln     net.Listener
	target string
	log    *slog.Logger

	delay atomic.Int64  // most latency added to each forwarded frame or chunk, in ns
	dup   atomic.Uint64 // math.Float64bits of the chance that a data frame is sent twice

	mu    sync.Mutex
	rnd   *rand.Rand
	conns map[*pconn]struct{}
	next  int

	accepted, cuts, blackholed, stalled atomic.Int64
	dupToServer, dupToAgent             atomic.Int64
	closed                              atomic.Bool
}

// pconn is one proxied connection.
type pconn struct {
	id             int
	client, server net.Conn
	ws             atomic.Bool  // upgraded to WebSocket: frames are parsed
	blackhole      atomic.Bool  // nothing is forwarded any more, nothing is closed
	stallUntil     atomic.Int64 // unix ns: nothing is forwarded before
	closeOnce      sync.Once
	done           chan struct{}
}

func (c *pconn) close(rst bool) {
	c.closeOnce.Do(func() {
		if rst {
			for _, conn := range []net.Conn{c.client, c.server} {
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
			}
		}
		c.client.Close()
		c.server.Close()
		close(c.done)
	})
}

// newProxy listens on a free loopback port and forwards to target.
func newProxy(target string, seed uint64, log *slog.Logger) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	p := &proxy{ln: ln, target: target, log: log.With("component", "proxy"), rnd: rand.New(rand.NewPCG(seed, 0x70c5)),
		conns: map[*pconn]struct{}{}}
	go p.serve()
	return p, nil
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if !p.closed.Load() {
				p.log.Error("accept", "err", err)
			}
			return
		}
		go p.handle(c)
	}
}

func (p *proxy) handle(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		client.Close() // the server is down: the agent sees its connect fail
		return
	}
	p.accepted.Add(1)
	c := &pconn{client: client, server: server, done: make(chan struct{})}
	p.mu.Lock()
	p.next++
	c.id = p.next
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	defer func() {
		c.close(false)
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()

	cr, sr := bufio.NewReaderSize(client, 64<<10), bufio.NewReaderSize(server, 64<<10)
	head, err := readHead(cr)
	if err != nil {
		return
	}
	upgrade := bytes.Contains(bytes.ToLower(head), []byte("upgrade: websocket"))
	if _, err := server.Write(head); err != nil {
		return
	}
	var wg sync.WaitGroup
	ended := func() {
		if !c.blackhole.Load() {
			c.close(false) // one side closed: close the other
		}
	}
	wg.Go(func() {
		defer ended()
		if upgrade {
			p.frames(c, cr, server, &p.dupToServer)
		} else {
			p.raw(c, cr, server)
		}
	})
	wg.Go(func() {
		defer ended()
		if upgrade {
			resp, err := readHead(sr)
			if err != nil {
				return
			}
			if _, err := client.Write(resp); err != nil {
				return
			}
			if bytes.HasPrefix(resp, []byte("HTTP/1.1 101")) {
				c.ws.Store(true)
				p.frames(c, sr, client, &p.dupToAgent)
				return
			}
		}
		p.raw(c, sr, client)
	})
	wg.Wait()
}

// readHead reads an HTTP request or response head, up to and including its blank line.
func readHead(r *bufio.Reader) ([]byte, error) {
	var head []byte
	for {
		line, err := r.ReadSlice('\n')
		head = append(head, line...)
		if err != nil {
			return nil, err
		}
		if len(head) > 64<<10 {
			return nil, errors.New("HTTP head too large")
		}
		if bytes.Equal(line, []byte("\r\n")) || bytes.Equal(line, []byte("\n")) {
			return head, nil
		}
	}
}

// gate holds a chunk of c's traffic while c is stalled and for the delay in force; false:
// drop it (c is black-holed).
func (p *proxy) gate(c *pconn) bool {
	for {
		if c.blackhole.Load() {
			return false
		}
		wait := time.Until(time.Unix(0, c.stallUntil.Load()))
		if wait <= 0 {
			break
		}
		select {
		case <-c.done:
			return false
		case <-time.After(min(wait, 100*time.Millisecond)):
		}
	}
	if d := p.delay.Load(); d > 0 {
		p.mu.Lock()
		w := time.Duration(p.rnd.Int64N(d))
		p.mu.Unlock()
		time.Sleep(w)
	}
	return true
}

// raw forwards bytes from src to dst.
func (p *proxy) raw(c *pconn, src io.Reader, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && p.gate(c) {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// frames forwards WebSocket frames from src to dst, a whole frame at a time, and sends a
// complete data frame twice with the chance in force.
func (p *proxy) frames(c *pconn, src *bufio.Reader, dst net.Conn, dups *atomic.Int64) {
	for {
		f, err := readFrame(src)
		if err != nil {
			return
		}
		if !p.gate(c) {
			continue
		}
		if _, err := dst.Write(f.raw); err != nil {
			return
		}
		if chance := math.Float64frombits(p.dup.Load()); chance > 0 && f.fin && f.rsv == 0 && (f.opcode == 1 || f.opcode == 2) {
			p.mu.Lock()
			again := p.rnd.Float64() < chance
			p.mu.Unlock()
			if again {
				dups.Add(1)
				if _, err := dst.Write(f.raw); err != nil {
					return
				}
			}
		}
	}
}

// wsFrame is one WebSocket frame as read, header and (still masked) payload.
type wsFrame struct {
	raw    []byte
	fin    bool
	rsv    byte
	opcode byte
}

// maxFrame bounds a frame the proxy holds in memory (the server's message limit is 32 MiB).
const maxFrame = 64 << 20

// readFrame reads one WebSocket frame (RFC 6455 §5.2).
func readFrame(r *bufio.Reader) (wsFrame, error) {
	var h [14]byte
	if _, err := io.ReadFull(r, h[:2]); err != nil {
		return wsFrame{}, err
	}
	f := wsFrame{fin: h[0]&0x80 != 0, rsv: h[0] & 0x70, opcode: h[0] & 0x0f}
	n := uint64(h[1] & 0x7f)
	hl := 2
	switch n {
	case 126:
		if _, err := io.ReadFull(r, h[2:4]); err != nil {
			return f, err
		}
		n, hl = uint64(binary.BigEndian.Uint16(h[2:4])), 4
	case 127:
		if _, err := io.ReadFull(r, h[2:10]); err != nil {
			return f, err
		}
		n, hl = binary.BigEndian.Uint64(h[2:10]), 10
	}
	if h[1]&0x80 != 0 { // masked (client to server)
		if _, err := io.ReadFull(r, h[hl:hl+4]); err != nil {
			return f, err
		}
		hl += 4
	}
	if n > maxFrame {
		return f, fmt.Errorf("frame of %d bytes", n)
	}
	f.raw = make([]byte, hl+int(n))
	copy(f.raw, h[:hl])
	if _, err := io.ReadFull(r, f.raw[hl:]); err != nil {
		return f, err
	}
	return f, nil
}

// pick returns up to n random WebSocket connections that are neither black-holed nor stalled.
func (p *proxy) pick(n int) []*pconn {
	p.mu.Lock()
	defer p.mu.Unlock()
	var live []*pconn
	now := time.Now().UnixNano()
	for c := range p.conns {
		if c.ws.Load() && !c.blackhole.Load() && c.stallUntil.Load() < now {
			live = append(live, c)
		}
	}
	p.rnd.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
	return live[:min(n, len(live))]
}

// cut resets up to n random agent connections; it returns how many.
func (p *proxy) cut(n int) int {
	cs := p.pick(n)
	for _, c := range cs {
		c.close(true)
	}
	p.cuts.Add(int64(len(cs)))
	return len(cs)
}

// blackholeOne stops forwarding a random agent connection for good, without closing it; it
// is closed when both its ends have closed, or after limit.
func (p *proxy) blackholeOne(limit time.Duration) bool {
	cs := p.pick(1)
	if len(cs) == 0 {
		return false
	}
	c := cs[0]
	c.blackhole.Store(true)
	p.blackholed.Add(1)
	go func() {
		select {
		case <-c.done:
		case <-time.After(limit):
			p.log.Warn("a black-holed connection is still open: closing it", "conn", c.id, "after", limit)
			c.close(true)
		}
	}()
	return true
}

// stallOne stops forwarding a random agent connection for d, then lets its traffic through.
func (p *proxy) stallOne(d time.Duration) bool {
	cs := p.pick(1)
	if len(cs) == 0 {
		return false
	}
	cs[0].stallUntil.Store(time.Now().Add(d).UnixNano())
	p.stalled.Add(1)
	return true
}

func (p *proxy) setDelay(d time.Duration) { p.delay.Store(int64(d)) }
func (p *proxy) setDup(chance float64)    { p.dup.Store(math.Float64bits(chance)) }

// calm turns off the delay, the duplication and every stall (black holes stay: their
// connections end when liveness checks find them).
func (p *proxy) calm() {
	p.setDelay(0)
	p.setDup(0)
	p.mu.Lock()
	for c := range p.conns {
		c.stallUntil.Store(0)
	}
	p.mu.Unlock()
}

func (p *proxy) close() {
	p.closed.Store(true)
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.close(false)
	}
}

// troubled counts the connections still black-holed or stalled.
func (p *proxy) troubled() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	now := time.Now().UnixNano()
	for c := range p.conns {
		if c.blackhole.Load() || c.stallUntil.Load() > now {
			n++
		}
	}
	return n
}
