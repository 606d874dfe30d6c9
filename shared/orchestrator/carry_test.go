package orchestrator

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/usage"
)

// usageWrites is a store that records AddJobUsage calls (the only method carry uses).
type usageWrites struct {
	store.Store
	mu     sync.Mutex
	writes map[int64][]store.Usage
}

func (w *usageWrites) AddJobUsage(_ context.Context, jobID int64, u store.Usage) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.writes == nil {
		w.writes = map[int64][]store.Usage{}
	}
	w.writes[jobID] = append(w.writes[jobID], u)
	return nil
}

func (w *usageWrites) count(jobID int64) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.writes[jobID])
}

// TestCarriedUsage: with UsageCarry a result's usage left over is not written but taken by the
// job's next result; it is written at once once this process ended the job, and otherwise
// when the carry time is up; without UsageCarry every charge is a write.
func TestCarriedUsage(t *testing.T) {
	w := &usageWrites{}
	s := &Service{store: w, log: slog.New(slog.DiscardHandler), cfg: Config{UsageCarry: time.Hour}}
	result := func(jobID int64, u store.Usage) context.Context {
		ctx, tally := usage.Start(context.Background())
		s.takeCarried(ctx, jobID)
		tally.Add(u)
		return ctx
	}
	one := store.Usage{Invocations: 1, WriteUnits: 1, ReadUnits: 2}

	// Ten results of job 1: none writes; each takes what the one before left.
	for i := range 10 {
		ctx := result(1, one)
		if i > 0 {
			if got := usage.From(ctx).Take(); got.Invocations != 2 {
				t.Fatalf("result %d carries %+v, want its own and the one before's", i, got)
			}
			usage.From(ctx).Add(one) // what this one leaves
		}
		s.chargeResult(ctx, 1)
	}
	if n := w.count(1); n != 0 {
		t.Fatalf("ten results wrote usage %d times, want none", n)
	}
	// Another job's result does not take job 1's.
	if got := usage.From(result(2, store.Usage{})).Take(); !usage.Zero(got) {
		t.Fatalf("job 2's result took %+v", got)
	}
	// A flush before the carry time is up writes nothing; after it, what is left is written,
	// once per job.
	s.chargeResult(result(2, one), 2)
	s.flushCarried()
	if w.count(1) != 0 || w.count(2) != 0 {
		t.Fatalf("a flush before the carry time wrote %v", w.writes)
	}
	s.cfg.UsageCarry = time.Nanosecond
	s.flushCarried()
	s.cfg.UsageCarry = time.Hour
	if w.count(1) != 1 || w.count(2) != 1 || w.writes[1][0] != one {
		t.Fatalf("flush wrote %v, want job 1's and job 2's left over once each", w.writes)
	}
	s.flushCarried()
	if w.count(1) != 1 {
		t.Fatal("a second flush wrote again")
	}
	// A job this process ended: its results' usage is written at once.
	s.jobEndedHere(1)
	s.chargeResult(result(1, one), 1)
	if w.count(1) != 2 {
		t.Fatalf("a result of an ended job wrote %d times in all, want 2", w.count(1))
	}
	// The ended jobs kept are bounded.
	for id := int64(100); id < 100+maxEndedKept+1; id++ {
		s.jobEndedHere(id)
	}
	if s.carried.isEnded(100) || !s.carried.isEnded(100+maxEndedKept) || len(s.carried.ended) != maxEndedKept {
		t.Fatalf("ended jobs kept: %d, the oldest still there: %v", len(s.carried.ended), s.carried.isEnded(100))
	}
	// Without UsageCarry, every charge is a write.
	s.cfg.UsageCarry = 0
	s.chargeResult(result(3, one), 3)
	if w.count(3) != 1 {
		t.Fatalf("without UsageCarry a result wrote %d times, want 1", w.count(3))
	}
}

// TestCarriedUsageFlushesByItself: usage left over is written UsageCarry later without any
// further call (the timer).
func TestCarriedUsageFlushesByItself(t *testing.T) {
	w := &usageWrites{}
	s := &Service{store: w, log: slog.New(slog.DiscardHandler), cfg: Config{UsageCarry: 10 * time.Millisecond}}
	ctx, tally := usage.Start(context.Background())
	tally.Add(store.Usage{Invocations: 1})
	s.chargeResult(ctx, 5)
	for deadline := time.Now().Add(10 * time.Second); w.count(5) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("usage left over was not written")
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}
