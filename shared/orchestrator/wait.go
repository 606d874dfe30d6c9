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

// finishers wakes the waiters of jobs this process ends.
type finishers struct {
	mu      sync.Mutex
	waiters map[int64][]chan struct{}
}

func (f *finishers) add(id int64) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.waiters == nil {
		f.waiters = map[int64][]chan struct{}{}
	}
	f.waiters[id] = append(f.waiters[id], ch)
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		list := f.waiters[id]
		for i, c := range list {
			if c == ch {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(f.waiters, id)
		} else {
			f.waiters[id] = list
		}
	}
}

func (f *finishers) done(id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.waiters[id] {
		close(ch)
	}
	delete(f.waiters, id)
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
