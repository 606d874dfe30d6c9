//go:build unix

package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

// TestLivenessDefaults pins the bounds the defaults promise: a dead connection is noticed
// within 30 s, a keepalive goes out within API Gateway's 10-minute idle timeout (near 9
// minutes), and connections are remade before its 2-hour limit.
func TestLivenessDefaults(t *testing.T) {
	c := Config{Server: "ws://h/pcp", Name: "n", Secret: "s", CacheDir: "/c", SpoolDir: "/s"}.withDefaults()
	// Noticed within 25 s; the first reconnect starts at most 500 ms later, leaving 4.5 s of
	// the 30 for the dial.
	if bound := c.PingInterval + c.PongTimeout + min(500*time.Millisecond, c.MaxBackoff); bound > 26*time.Second {
		t.Errorf("a dead connection is noticed and re-dialled after up to %v, want ≤ 26 s", bound)
	}
	if c.KeepaliveInterval < 8*time.Minute || c.KeepaliveInterval >= 10*time.Minute {
		t.Errorf("keepalive interval %v, want near 9 minutes (under API Gateway's 10)", c.KeepaliveInterval)
	}
	if c.MaxConnectionAge >= 2*time.Hour {
		t.Errorf("max connection age %v, want under API Gateway's 2 hours", c.MaxConnectionAge)
	}
}

// TestConnectionAgeIsJittered checks that connection ages spread between 90% and 100% of
// MaxConnectionAge.
func TestConnectionAgeIsJittered(t *testing.T) {
	const max = 110 * time.Minute
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := connectionAge(max)
		if d < max*9/10 || d > max {
			t.Fatalf("connectionAge(%v) = %v, want within [%v, %v]", max, d, max*9/10, max)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Errorf("%d distinct ages in 1,000 draws: not spread out", len(seen))
	}
}

// TestDeadConnectionIsNoticedAndRemade checks that a connection the server stopped answering
// (no close, no pongs: half-open) is closed by the agent after PingInterval+PongTimeout and
// made again, and that the agent answers the server's pings.
func TestDeadConnectionIsNoticedAndRemade(t *testing.T) {
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	px := newFreezingProxy(t, strings.TrimPrefix(ts.srv.URL, "http://"))
	cfg.Server = "ws://" + px.addr() + "/pcp"
	// A ping after 100 ms of silence, but 2 s for its pong: on a loaded runner the live
	// connection's pong can take longer than 100 ms, and a spurious reconnect before the
	// freeze would leave the ping below on a closed connection. The frozen one never answers.
	cfg.PingInterval, cfg.PongTimeout = 100*time.Millisecond, 2*time.Second
	ta := startAgent(t, cfg)
	ts.waitFrame(t, 0, "facts", onConn(1, isType(protocol.TypeFacts)))

	// The agent answers pings (the server's liveness check).
	ts.mu.Lock()
	c := ts.conn
	ts.mu.Unlock()
	pctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	err := c.Ping(pctx)
	cancel()
	if err != nil {
		t.Fatalf("the agent did not answer a ping: %v", err)
	}

	px.freeze() // the connection goes dead: nothing passes, nothing is closed
	start := time.Now()
	ts.waitFrame(t, 0, "facts on a new connection", onConn(2, isType(protocol.TypeFacts)))
	// Well before anything but the liveness check would notice (TCP gives up after minutes).
	if took := time.Since(start); took > time.Minute {
		t.Errorf("the dead connection was replaced after %v", took)
	}
	waitUntil(t, "connected", ta.Connected)
	if !containsLog(ta, "no answer to a ping") {
		t.Errorf("the agent did not close the connection for want of a pong")
	}
}

// TestKeepaliveOnlyWhenIdle checks that a keepalive goes out only after the agent has sent
// nothing for KeepaliveInterval: while idle, one per interval; while it answers requests,
// none. The bounds use only times that precede the agent's sends (its upgrade request, the
// server's requests) and times that follow them (the server's reads), so a loaded runner's
// delays cannot break them: the gap between two frames as the server read them can.
func TestKeepaliveOnlyWhenIdle(t *testing.T) {
	const interval = 300 * time.Millisecond
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	cfg.KeepaliveInterval = interval
	startAgent(t, cfg)
	// Idle: the n-th keepalive goes out no sooner than n intervals after the agent connected
	// (after its upgrade request came in), and the server reads it later still. Three of them,
	// so that an agent sending twice as often fails the bound.
	const idle = 3
	ts.waitFrame(t, 0, "keepalives while idle", func(frame) bool { return ts.countLocked(isType(protocol.TypeKeepalive)) >= idle })
	// Busy: each answer goes out after its request was sent, so a keepalive that follows an
	// answer is read at least an interval after that request was sent.
	var requested []time.Time // when each status query was sent, in order
	for deadline := time.Now().Add(4 * interval); time.Now().Before(deadline); {
		requested = append(requested, time.Now())
		ts.statusQuery(t, "txn-none") // the agent answers: it is not idle
	}
	ts.mu.Lock()
	frames, connected := slices.Clone(ts.frames), ts.upgrades[0]
	ts.mu.Unlock()
	keepalives, answers := 0, 0
	for i, f := range frames {
		if f.conn != 1 {
			t.Fatalf("the agent reconnected (frame %d on connection %d): %s", i, f.conn, ts.dump())
		}
		switch f.env.MessageType {
		case protocol.TypeBlockingResponse:
			answers++
		case protocol.TypeKeepalive:
			keepalives++
			if i > 0 && frames[i-1].env.MessageType == protocol.TypeBlockingResponse { // the agent's message before it
				if after := f.at.Sub(requested[answers-1]); after < interval {
					t.Errorf("a keepalive read %v after the request the agent had just answered was sent, want at least %v", after, interval)
				}
			} else if after := f.at.Sub(connected); after < time.Duration(keepalives)*interval {
				t.Errorf("keepalive %d while idle read %v after the agent connected, want at least %v", keepalives, after, time.Duration(keepalives)*interval)
			}
		}
	}
	if answers != len(requested) {
		t.Fatalf("%d answers to %d status queries", answers, len(requested))
	}
}

func containsLog(ta *testAgent, s string) bool { return strings.Contains(ta.logs.String(), s) }

// freezingProxy forwards TCP connections to an upstream address until freeze, after which the
// connections it holds pass nothing either way and are never closed (a half-open connection,
// a black hole); connections made after freeze pass normally.
type freezingProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	frozen chan struct{} // closed by freeze: current connections stop
	done   chan struct{}
}

func newFreezingProxy(t *testing.T, upstream string) *freezingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln, frozen: make(chan struct{}), done: make(chan struct{})}
	var conns sync.WaitGroup
	t.Cleanup(func() {
		close(p.done)
		ln.Close()
		conns.Wait()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			frozen := p.frozen
			p.mu.Unlock()
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			conns.Add(2)
			pipe := func(dst, src net.Conn) {
				defer conns.Done()
				buf := make([]byte, 32<<10)
				for {
					_ = src.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
					n, err := src.Read(buf)
					select {
					case <-frozen: // hold everything, close nothing, until the test ends
						<-p.done
						dst.Close()
						src.Close()
						return
					default:
					}
					if n > 0 {
						if _, werr := dst.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
						dst.Close()
						src.Close()
						return
					}
				}
			}
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
	return p
}

func (p *freezingProxy) addr() string { return p.ln.Addr().String() }

// freeze makes every connection the proxy holds now go dead; later ones pass.
func (p *freezingProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.frozen)
	p.frozen = make(chan struct{})
}

// TestCachedFactsGoOutAtOnceAfterRestart checks that a restarted agent sends the facts its
// previous process gathered (within FactsTTL) at once, without waiting for facter, then fresh
// ones: on AWS the facts are what bring an agent its waiting work.
func TestCachedFactsGoOutAtOnceAfterRestart(t *testing.T) {
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	cfg.Facts = func(context.Context) (map[string]any, error) { return map[string]any{"gen": "first"}, nil }
	first := startAgent(t, cfg)
	ts.waitFrame(t, 0, "facts", onConn(1, isType(protocol.TypeFacts)))
	first.stop()

	release := make(chan struct{})
	cfg.Facts = func(ctx context.Context) (map[string]any, error) {
		select { // facter takes as long as the test wants
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return map[string]any{"gen": "second"}, nil
	}
	startAgent(t, cfg)
	gen := func(f frame) string {
		var d protocol.Facts
		_ = json.Unmarshal(f.env.Data, &d)
		s, _ := d.Facts["gen"].(string)
		return s
	}
	f, i := ts.waitFrame(t, 0, "cached facts on the new process's connection", onConn(2, isType(protocol.TypeFacts)))
	if g := gen(f); g != "first" {
		t.Fatalf("first facts after the restart are %q, want the cached ones", g)
	}
	close(release)
	f, _ = ts.waitFrame(t, i+1, "fresh facts", onConn(2, isType(protocol.TypeFacts)))
	if g := gen(f); g != "second" {
		t.Errorf("then facts %q, want fresh ones", g)
	}
}
