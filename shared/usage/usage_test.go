package usage

import (
	"context"
	"sync"
	"testing"

	"github.com/baton-run/baton/shared/store"
)

func TestTally(t *testing.T) {
	if From(context.Background()) != nil {
		t.Fatal("a bare context has a tally")
	}
	var none *Tally
	none.Add(store.Usage{Invocations: 1}) // no-op, no panic
	if !Zero(none.Take()) {
		t.Fatal("nil tally is not zero")
	}
	ctx, tally := Start(context.Background())
	if ctx2, again := Start(ctx); again != tally || From(ctx2) != tally {
		t.Fatal("Start did not reuse the tally")
	}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			From(ctx).Add(store.Usage{Invocations: 1, MessagesIn: 2, ReadUnits: 0.5, WriteUnits: 1, S3Reads: 1})
		}()
	}
	wg.Wait()
	got := tally.Take()
	want := store.Usage{Invocations: 50, MessagesIn: 100, ReadUnits: 25, WriteUnits: 50, S3Reads: 50}
	if got != want {
		t.Fatalf("Take = %+v, want %+v", got, want)
	}
	if !Zero(tally.Take()) {
		t.Fatal("Take did not reset")
	}
}

func TestDetach(t *testing.T) {
	bare := context.Background()
	if Detach(bare) != bare {
		t.Fatal("Detach of a context without a tally made a new context")
	}
	ctx, tally := Start(bare)
	d := Detach(ctx)
	From(d).Add(store.Usage{WriteUnits: 1}) // charged to nothing
	if From(d) != nil || !Zero(tally.Take()) {
		t.Fatal("a detached context still reaches the tally")
	}
	if _, fresh := Start(d); fresh == nil || fresh == tally {
		t.Fatal("Start on a detached context did not start a tally of its own")
	}
}
