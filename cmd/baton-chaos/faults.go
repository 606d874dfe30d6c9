package main

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"
)

// chaos injects the faults: random ones every faultEvery on average, and the planned ones
// (server kills, disk fills) spread over the expected length of the run.
type chaos struct {
	cfg    *config
	srv    *server
	agents []*agentProc
	px     *proxy
	dbDisk *tmpfs // nil: fault off or mount not permitted
	spDisk *tmpfs
	log    *slog.Logger

	mu     sync.Mutex
	rnd    *rand.Rand
	counts map[string]int
	active map[string]bool // windows in force
	wg     sync.WaitGroup
}

func newChaos(cfg *config, srv *server, agents []*agentProc, px *proxy, dbDisk, spDisk *tmpfs) *chaos {
	return &chaos{cfg: cfg, srv: srv, agents: agents, px: px, dbDisk: dbDisk, spDisk: spDisk,
		log: cfg.log.With("component", "chaos"), rnd: rand.New(rand.NewPCG(cfg.seed, 0xc4a05)), counts: map[string]int{}, active: map[string]bool{}}
}

func (c *chaos) count(fault string) {
	c.mu.Lock()
	c.counts[fault]++
	c.mu.Unlock()
}

func (c *chaos) float() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rnd.Float64()
}

// between returns a random duration in [lo, hi).
func (c *chaos) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(c.float()*float64(hi-lo))
}

// run injects faults until ctx ends. The planned faults (server kills, disk fills) are spread
// over the workload: progress says how much of it has been submitted, from 0 to 1. It returns
// once every fault it started has been undone (the proxy calm, the disks freed); the
// processes it killed come back on their own.
func (c *chaos) run(ctx context.Context, progress func() float64) {
	type planned struct {
		at    float64
		fault string
	}
	var plan []planned
	spread := func(fault string, n int, offset float64) {
		for i := range n {
			plan = append(plan, planned{at: (float64(i) + offset) / float64(n), fault: fault})
		}
	}
	if c.cfg.on(faultServerKill) {
		spread(faultServerKill, c.cfg.serverKills, 0.5)
	}
	if c.dbDisk != nil {
		spread(faultDiskDB, c.cfg.diskFills, 0.3)
	}
	if c.spDisk != nil {
		spread(faultDiskSpool, c.cfg.diskFills, 0.7)
	}
	sort.SliceStable(plan, func(i, j int) bool { return plan[i].at < plan[j].at })
	var random []string
	for _, f := range []string{faultAgentKill, faultCut, faultDelay, faultStall, faultBlackhole, faultDup} {
		if c.cfg.on(f) {
			random = append(random, f)
		}
	}
	for {
		wait := time.Duration(c.float() * 2 * float64(c.cfg.faultEvery))
		select {
		case <-ctx.Done():
			c.wg.Wait()
			c.px.calm()
			return
		case <-time.After(wait):
		}
		// A planned fault that could not be injected now (its process is down) is tried again.
		for len(plan) > 0 && progress() >= plan[0].at && c.inject(ctx, plan[0].fault) {
			plan = plan[1:]
		}
		if len(random) > 0 {
			c.mu.Lock()
			f := random[c.rnd.IntN(len(random))]
			c.mu.Unlock()
			c.inject(ctx, f)
		}
	}
}

// inject starts one fault; those that last a while are undone in the background. false: it
// could not be injected now.
func (c *chaos) inject(ctx context.Context, fault string) bool {
	switch fault {
	case faultAgentKill:
		a := c.agents[int(c.float()*float64(len(c.agents)))]
		down := c.between(200*time.Millisecond, 5*time.Second)
		if !a.kill9(down) {
			return false
		}
		c.log.Info("kill -9 agent", "agent", a.name, "down", down.Round(time.Millisecond))
	case faultServerKill:
		down := c.between(500*time.Millisecond, 3*time.Second)
		if !c.srv.kill9(down) {
			return false
		}
		c.log.Info("kill -9 baton serve", "down", down.Round(time.Millisecond))
	case faultCut:
		n := c.px.cut(1 + int(c.float()*3))
		if n == 0 {
			return false
		}
		c.log.Info("cut connections", "n", n)
		return true // counted by the proxy, per connection
	case faultDelay:
		d, lat := c.between(3*time.Second, 10*time.Second), c.between(50*time.Millisecond, 800*time.Millisecond)
		return c.window(ctx, fault, d, func() {
			c.px.setDelay(lat)
			c.log.Info("delay traffic", "up_to", lat.Round(time.Millisecond), "for", d.Round(time.Millisecond))
		}, func() { c.px.setDelay(0) })
	case faultDup:
		d, chance := c.between(3*time.Second, 10*time.Second), 0.1+0.4*c.float()
		return c.window(ctx, fault, d, func() {
			c.px.setDup(chance)
			c.log.Info("duplicate frames", "chance", chance, "for", d.Round(time.Millisecond))
		}, func() { c.px.setDup(0) })
	case faultStall:
		d := c.between(2*time.Second, 40*time.Second)
		if !c.px.stallOne(d) {
			return false
		}
		c.log.Info("stall a connection", "for", d.Round(time.Millisecond))
	case faultBlackhole:
		if !c.px.blackholeOne(3 * time.Minute) {
			return false
		}
		c.log.Info("black-hole a connection")
	case faultDiskDB, faultDiskSpool:
		t := c.dbDisk
		if fault == faultDiskSpool {
			t = c.spDisk
		}
		d := c.between(3*time.Second, 10*time.Second)
		return c.window(ctx, fault, d, func() {
			n, err := t.fill()
			if err != nil {
				c.log.Warn("fill disk", "path", t.path, "err", err)
			}
			c.log.Info("disk full", "path", t.path, "filled_mb", n>>20, "for", d.Round(time.Millisecond))
		}, func() {
			if err := t.free(); err != nil {
				c.log.Warn("free disk", "err", err)
			}
			c.log.Info("disk freed", "path", t.path)
		})
	}
	c.count(fault)
	return true
}

// window applies a fault for d, then undoes it (at once when ctx ends); nothing (false) when
// the same fault is in force already.
func (c *chaos) window(ctx context.Context, fault string, d time.Duration, do, undo func()) bool {
	c.mu.Lock()
	if c.active[fault] {
		c.mu.Unlock()
		return false
	}
	c.active[fault] = true
	c.counts[fault]++
	c.mu.Unlock()
	do()
	c.wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
		undo()
		c.mu.Lock()
		c.active[fault] = false
		c.mu.Unlock()
	})
	return true
}

// snapshot returns the faults injected, by name.
func (c *chaos) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}
