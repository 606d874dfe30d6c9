package orchestrator

import (
	"context"
	"sync"
	"time"

	"github.com/baton-run/baton/shared/jobs"
)

// MaxWait bounds how long WaitJob waits: under API Gateway's 29-second integration limit.
const MaxWait = 25 * time.Second

// waitPoll is how often WaitJob reads the job again: a job that another process (another
// Lambda instance) ends is seen this late at most; one this process ends is seen at once.
const waitPoll = 250 * time.Millisecond

// waiters wakes the goroutines waiting on a key (a job this process ends, a node's output
// this process stores) when the key is signalled, handing each the value the wake carries.
type waiters[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K][]chan V
}

// add returns a channel that receives the next wake's value for k, and a func that stops
// waiting.
func (w *waiters[K, V]) add(k K) (<-chan V, func()) {
	ch := make(chan V, 1) // a wake never blocks: each channel gets one value, then is dropped
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[K][]chan V{}
	}
	w.m[k] = append(w.m[k], ch)
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		list := w.m[k]
		for i, c := range list {
			if c == ch {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(w.m, k)
		} else {
			w.m[k] = list
		}
	}
}

// wake gives v to everyone waiting on k.
func (w *waiters[K, V]) wake(k K, v V) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.m[k] {
		ch <- v
	}
	delete(w.m, k)
}

// endedJob is a job as this process wrote its end, with its nodes' counts then: what a
// waiter would read back.
type endedJob struct {
	job    jobs.Job
	counts jobs.StateCounts
}

// WaitJob returns job id once it has ended, or as it is when d (at most MaxWait) has passed
// or ctx ends. An unknown id is an *Error of kind unknown-job. When this process ended the
// job, the job comes as written, with its node counts (nil otherwise: the caller reads
// them), without a read.
func (s *Service) WaitJob(ctx context.Context, id int64, d time.Duration) (jobs.Job, jobs.StateCounts, error) {
	d = min(d, MaxWait)
	ended, forget := s.finished.add(id)
	defer forget()
	timer := time.NewTimer(d)
	defer timer.Stop()
	poll := time.NewTicker(waitPoll)
	defer poll.Stop()
	for {
		job, err := s.Job(ctx, id)
		if err != nil || job.State.Terminal() || d <= 0 {
			return job, nil, err
		}
		select {
		case e := <-ended:
			return e.job, e.counts, nil
		case <-poll.C:
		case <-timer.C:
			job, err := s.Job(ctx, id)
			return job, nil, err
		case <-ctx.Done():
			return job, nil, nil
		}
	}
}
