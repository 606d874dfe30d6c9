// Package usage attributes metered work to jobs: an operation on a job carries a Tally in its
// context, the AWS adapters add what each call costs (capacity units, messages, requests) to
// the Tally they find there, and the orchestrator charges the total to the job when the
// operation ends. Where nothing is metered (baton serve) there is no Tally and nothing is done.
package usage

import (
	"context"
	"sync"

	"github.com/baton-run/baton/shared/store"
)

type key struct{}

// Tally accumulates usage; its methods are safe for concurrent use and on a nil Tally.
type Tally struct {
	mu sync.Mutex
	u  store.Usage
}

// Start returns ctx with a Tally (the one already there, if any).
func Start(ctx context.Context) (context.Context, *Tally) {
	if t := From(ctx); t != nil {
		return ctx, t
	}
	t := &Tally{}
	return context.WithValue(ctx, key{}, t), t
}

// Detach returns ctx without its Tally: what is done under it is charged to no job (the write
// that records a job's usage, which its caller charges itself).
func Detach(ctx context.Context) context.Context {
	if From(ctx) == nil {
		return ctx
	}
	return context.WithValue(ctx, key{}, (*Tally)(nil))
}

// From returns ctx's Tally, or nil.
func From(ctx context.Context) *Tally {
	t, _ := ctx.Value(key{}).(*Tally)
	return t
}

// Add adds u.
func (t *Tally) Add(u store.Usage) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.u = Sum(t.u, u)
}

// Sum is a and b added up.
func Sum(a, b store.Usage) store.Usage {
	a.Invocations += b.Invocations
	a.MessagesIn += b.MessagesIn
	a.MessagesOut += b.MessagesOut
	a.MessageUnits += b.MessageUnits
	a.ReadUnits += b.ReadUnits
	a.WriteUnits += b.WriteUnits
	a.S3Writes += b.S3Writes
	a.S3Reads += b.S3Reads
	return a
}

// Take returns what was added since the last Take and resets the Tally.
func (t *Tally) Take() store.Usage {
	if t == nil {
		return store.Usage{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	u := t.u
	t.u = store.Usage{}
	return u
}

// Zero reports whether u counts nothing.
func Zero(u store.Usage) bool { return u == store.Usage{} }
