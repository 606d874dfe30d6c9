package apigwtest

import (
	"maps"
	"sync"
	"time"
)

// Stats meters a WebSocketAPI the way AWS bills and counts it.
type Stats struct {
	// Invocations counts Lambda invocations by route key ("$connect", "$default",
	// "$disconnect") plus "authorizer".
	Invocations map[string]int
	// Connections counts upgraded connections; Rejected counts upgrades refused by the identity
	// check, the authorizer or $connect; OpenConnections are those not yet finished.
	Connections, Rejected, OpenConnections int
	// MessagesIn are client messages received; MessagesOut are messages sent to clients
	// (@connections posts and gateway error messages).
	MessagesIn, MessagesOut int
	// BillingUnitsIn/Out count messages in 32 KB increments, as AWS meters them.
	BillingUnitsIn, BillingUnitsOut int
	// Throttled counts client messages refused by the throttle (WithThrottle).
	Throttled int
	// Dropped counts client messages lost without a word (WithDrop).
	Dropped int
	// LambdaThrottles counts invocations refused by a function's reserved concurrency
	// (WithReservedConcurrency), by function as in Invocations; they are not in Invocations.
	LambdaThrottles map[string]int
	// Running counts the executions in use now, by function with a reserved concurrency: a
	// handler's execution is released only after it returns.
	Running map[string]int
	// FramesIn counts client data frames; LargestFrameIn is the largest payload among them.
	FramesIn       int
	LargestFrameIn int64
	// ManagementCalls counts @connections requests by HTTP method.
	ManagementCalls map[string]int
	// ConnectionTime is the summed duration of all connections (open ones up to now);
	// ConnectionMinutes rounds each connection up to whole minutes, as billed.
	ConnectionTime    time.Duration
	ConnectionMinutes int
}

// HTTPStats meters an HTTPAPI.
type HTTPStats struct {
	Requests int
	// Invocations counts Lambda invocations: "authorizer" and the route key.
	Invocations map[string]int
}

type meter struct {
	mu sync.Mutex
	s  Stats
}

func newMeter() *meter {
	return &meter{s: Stats{Invocations: map[string]int{}, ManagementCalls: map[string]int{}, LambdaThrottles: map[string]int{}}}
}

func (m *meter) update(f func(*Stats)) {
	m.mu.Lock()
	f(&m.s)
	m.mu.Unlock()
}

func (m *meter) throttled() { m.update(func(s *Stats) { s.Throttled++ }) }

func (m *meter) dropped() { m.update(func(s *Stats) { s.Dropped++ }) }

func (m *meter) invocation(route string) { m.update(func(s *Stats) { s.Invocations[route]++ }) }

func (m *meter) lambdaThrottled(fn string) { m.update(func(s *Stats) { s.LambdaThrottles[fn]++ }) }

func (m *meter) message(in bool, size int) {
	units := billingUnits(size)
	m.update(func(s *Stats) {
		if in {
			s.MessagesIn++
			s.BillingUnitsIn += units
		} else {
			s.MessagesOut++
			s.BillingUnitsOut += units
		}
	})
}

func (m *meter) frame(length int64) {
	m.update(func(s *Stats) {
		s.FramesIn++
		s.LargestFrameIn = max(s.LargestFrameIn, length)
	})
}

func (m *meter) connectionEnded(d time.Duration) {
	m.update(func(s *Stats) {
		s.OpenConnections--
		s.ConnectionTime += d
		s.ConnectionMinutes += billedMinutes(d)
	})
}

// snapshot returns a copy, adding the time of the connections still open (started at the given
// times) up to now.
func (m *meter) snapshot(open []time.Time, now time.Time) Stats {
	m.mu.Lock()
	s := m.s
	s.Invocations = maps.Clone(m.s.Invocations)
	s.ManagementCalls = maps.Clone(m.s.ManagementCalls)
	s.LambdaThrottles = maps.Clone(m.s.LambdaThrottles)
	m.mu.Unlock()
	for _, t := range open {
		d := now.Sub(t)
		s.ConnectionTime += d
		s.ConnectionMinutes += billedMinutes(d)
	}
	return s
}

func billingUnits(size int) int {
	return max(1, (size+BillingUnit-1)/BillingUnit)
}

func billedMinutes(d time.Duration) int {
	return max(1, int((d+time.Minute-1)/time.Minute))
}
