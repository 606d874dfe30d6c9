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
// this process stores) when the key is signalled.
type waiters[K comparable] struct {
	mu sync.Mutex
	m  map[K][]chan struct{}
}

// add returns a channel closed at the next wake of k, and a func that stops waiting.
func (w *waiters[K]) add(k K) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[K][]chan struct{}{}
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

// wake closes the channels of everyone waiting on k.
func (w *waiters[K]) wake(k K) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.m[k] {
		close(ch)
	}
	delete(w.m, k)
}

// WaitJob returns job id once it has ended, or as it is when d (at most MaxWait) has passed
// or ctx ends. An unknown id is an *Error of kind unknown-job.
func (s *Service) WaitJob(ctx context.Context, id int64, d time.Duration) (jobs.Job, error) {
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
			return job, err
		}
		select {
		case <-ended:
		case <-poll.C:
		case <-timer.C:
			return s.Job(ctx, id)
		case <-ctx.Done():
			return job, nil
		}
	}
}
