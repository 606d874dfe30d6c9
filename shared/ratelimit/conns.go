package ratelimit

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// ConnLimiter caps the connections a listener holds at once per client address (an IPv6
// client by its /64 network, as ClientAddress keys it). A connection over the cap is closed
// as soon as it is accepted, before a byte is read from it (so before any TLS handshake),
// and the listener goes on accepting.
type ConnLimiter struct {
	net.Listener
	max     int
	exempt  func(netip.Addr) bool
	refused func(netip.Addr)

	mu    sync.Mutex
	conns map[netip.Addr]int
}

// ConnOption configures a ConnLimiter.
type ConnOption func(*ConnLimiter)

// WithExempt leaves the addresses exempt reports true for uncapped (by default none are).
func WithExempt(exempt func(netip.Addr) bool) ConnOption {
	return func(l *ConnLimiter) { l.exempt = exempt }
}

// WithRefused is called with the client address of each connection closed for the cap.
func WithRefused(f func(netip.Addr)) ConnOption { return func(l *ConnLimiter) { l.refused = f } }

// LimitConns wraps ln so that it holds at most perAddress connections from one client
// address at a time. A connection counts until it is closed, hijacked ones included.
func LimitConns(ln net.Listener, perAddress int, opts ...ConnOption) (*ConnLimiter, error) {
	if perAddress < 1 {
		return nil, fmt.Errorf("%w: connections per address must be at least 1, got %d", ErrInvalidConfig, perAddress)
	}
	l := &ConnLimiter{Listener: ln, max: perAddress, conns: map[netip.Addr]int{}}
	for _, o := range opts {
		o(l)
	}
	return l, nil
}

// Accept returns the next connection within the cap.
func (l *ConnLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
		if err != nil { // not an IP connection (a pipe in a test): nothing to key it by
			return c, nil
		}
		addr := ap.Addr().Unmap()
		if l.exempt != nil && l.exempt(addr) {
			return c, nil
		}
		key := clientKey(addr)
		l.mu.Lock()
		if l.conns[key] >= l.max {
			l.mu.Unlock()
			c.Close()
			if l.refused != nil {
				l.refused(addr)
			}
			continue
		}
		l.conns[key]++
		l.mu.Unlock()
		return &countedConn{Conn: c, release: func() { l.release(key) }}, nil
	}
}

// Conns is how many connections from addr's client are open.
func (l *ConnLimiter) Conns(addr netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns[clientKey(addr.Unmap())]
}

func (l *ConnLimiter) release(key netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[key]--; l.conns[key] <= 0 {
		delete(l.conns, key)
	}
}

// countedConn gives its slot back when it is closed, once however often Close is called.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
