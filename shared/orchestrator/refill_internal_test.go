package orchestrator

import "testing"

// TestRefillsCoalesce: while a job's refill runs, other results' requests are counted for
// its next round instead of running refills of their own; another job is not held up.
func TestRefillsCoalesce(t *testing.T) {
	var r refills
	steps := []struct {
		name string
		do   func() int
		want int
	}{
		{"the first result runs the refill", func() int { return b2i(r.ask(1)) }, 1},
		{"its first round takes its own request", func() int { return r.take(1) }, 1},
		{"a second result while it runs does not run one", func() int { return b2i(r.ask(1)) }, 0},
		{"a third neither", func() int { return b2i(r.ask(1)) }, 0},
		{"another job's result runs its own", func() int { return b2i(r.ask(2)) }, 1},
		{"the next round takes both requests", func() int { return r.take(1) }, 2},
		{"then there is nothing left: the refill ends", func() int { return r.take(1) }, 0},
		{"a later result runs a refill again", func() int { return b2i(r.ask(1)) }, 1},
	}
	for _, s := range steps {
		if got := s.do(); got != s.want {
			t.Fatalf("%s: got %d, want %d", s.name, got, s.want)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
