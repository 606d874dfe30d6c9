package ratelimit_test

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/ratelimit"
)

// fakeListener hands out the connections queued on it, then fails with net.ErrClosed.
type fakeListener struct {
	conns chan net.Conn
}

func (l *fakeListener) Accept() (net.Conn, error) {
	c, ok := <-l.conns
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}
func (l *fakeListener) Close() error   { return nil }
func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8143} }

// fakeConn is a connection from remote that records whether it was closed.
type fakeConn struct {
	net.Conn
	remote string
	mu     sync.Mutex
	closed bool
}

func (c *fakeConn) RemoteAddr() net.Addr {
	return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(c.remote))
}
func (c *fakeConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}
func (c *fakeConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func TestLimitConns(t *testing.T) {
	fl := &fakeListener{conns: make(chan net.Conn, 32)}
	var refused []netip.Addr
	ln, err := ratelimit.LimitConns(fl, 2,
		ratelimit.WithExempt(func(a netip.Addr) bool { return a.IsLoopback() }),
		ratelimit.WithRefused(func(a netip.Addr) { refused = append(refused, a) }))
	if err != nil {
		t.Fatal(err)
	}
	queue := func(remote string) *fakeConn {
		c := &fakeConn{remote: remote}
		fl.conns <- c
		return c
	}
	accept := func() net.Conn {
		t.Helper()
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a1, a2 := queue("192.0.2.1:1000"), queue("192.0.2.1:1001")
	c1, c2 := accept(), accept()
	// A third from the same address is closed unread; the next one in line, from another
	// address, is what Accept returns.
	a3 := queue("192.0.2.1:1002")
	b1 := queue("198.51.100.7:1000")
	if got := accept(); got.RemoteAddr().String() != "198.51.100.7:1000" {
		t.Fatalf("accepted %s, want the other address's connection", got.RemoteAddr())
	}
	if !a3.isClosed() || a1.isClosed() || a2.isClosed() || b1.isClosed() {
		t.Errorf("closed: a1 %v a2 %v a3 %v b1 %v; want only a3", a1.isClosed(), a2.isClosed(), a3.isClosed(), b1.isClosed())
	}
	if len(refused) != 1 || refused[0] != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("refused %v, want [192.0.2.1]", refused)
	}
	// IPv6 clients count by /64: two addresses of one /64 fill it.
	queue("[2001:db8::1]:1")
	queue("[2001:db8::2]:1")
	v6 := queue("[2001:db8::3]:1")
	accept()
	accept()
	queue("[2001:db8:1::1]:1") // another /64
	if got := accept(); got.RemoteAddr().String() != "[2001:db8:1::1]:1" {
		t.Fatalf("accepted %s, want the other /64's connection", got.RemoteAddr())
	}
	if !v6.isClosed() {
		t.Error("a third connection from one IPv6 /64 was accepted")
	}
	// Loopback is exempt.
	for range 5 {
		queue("127.0.0.1:2000")
		accept()
	}
	// Closing gives the slot back, once however often it is closed.
	c1.Close()
	c1.Close()
	if n := ln.Conns(netip.MustParseAddr("192.0.2.1")); n != 1 {
		t.Errorf("after a close: %d connections counted, want 1", n)
	}
	queue("192.0.2.1:1003")
	c3 := accept()
	if c3.RemoteAddr().String() != "192.0.2.1:1003" {
		t.Errorf("accepted %s", c3.RemoteAddr())
	}
	c2.Close()
	c3.Close()
	if n := ln.Conns(netip.MustParseAddr("192.0.2.1")); n != 0 {
		t.Errorf("all closed: %d connections counted", n)
	}
	close(fl.conns)
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on a closed listener: %v", err)
	}
}

// TestLimitConnsTCP holds real connections to a capped listener: the one over the cap is
// closed by the server before it sends anything, and a slot freed by a close is taken again.
func TestLimitConnsTCP(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := ratelimit.LimitConns(tcp, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", tcp.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var held []net.Conn
	for range 3 {
		dial()
		held = append(held, <-accepted)
	}
	over := dial()
	over.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := over.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("a fourth connection read %v; want it closed by the server", err)
	}
	held[0].Close()
	dial()
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("a connection within the cap again was not accepted")
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

func TestLimitConnsRejectsBadConfig(t *testing.T) {
	if _, err := ratelimit.LimitConns(&fakeListener{}, 0); !errors.Is(err, ratelimit.ErrInvalidConfig) {
		t.Errorf("a cap of 0: %v", err)
	}
}
