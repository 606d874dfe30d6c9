package orchestrator

import (
	"context"
	"sync"

	"github.com/baton-run/baton/shared/jobs"
)

// refills coalesces the refills that results of one job ask for. A result that frees a slot
// asks for a refill; when none of its job is running in this process, its caller runs it,
// and keeps running refills while results that arrived meanwhile asked for more, each round
// claiming up to RefillBatch nodes for every result it answers. Other callers only count
// their request and return. At fleet scale (hundreds of results a second for one job) this
// turns one claim per result — each a write of its own — into a claim per round, taking the
// slots freed since the last one together; a lone result is refilled at once, as before.
// (On AWS each invocation is alone in its process: every result runs its own refill.)
type refills struct {
	mu      sync.Mutex
	pending map[int64]int // job id → refills asked for since its running refill's last round
}

// ask records a refill asked for job jobID. It is true when the caller must run the refills
// (none was running), false when the running one will take it.
func (r *refills) ask(jobID int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == nil {
		r.pending = map[int64]int{}
	}
	if n, running := r.pending[jobID]; running {
		r.pending[jobID] = n + 1
		return false
	}
	r.pending[jobID] = 1
	return true
}

// take returns how many refills of job jobID were asked for since the last take, and ends
// the running refill when there are none.
func (r *refills) take(jobID int64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.pending[jobID]
	if n == 0 {
		delete(r.pending, jobID)
		return 0
	}
	r.pending[jobID] = 0
	return n
}

// refill moves job on after a result of one of its nodes was recorded: free slots go to
// queued nodes, and the job ends when every node is done (see refills). The first round's
// error is returned; a later round's, for other callers' results, is logged (the sweep
// moves a job on that a refill left behind).
func (s *Service) refill(ctx context.Context, job jobs.Job) error {
	if !s.refills.ask(job.ID) {
		return nil
	}
	// Rounds after the first serve other callers' results: they must not end when this
	// caller's connection does.
	ctx = context.WithoutCancel(ctx)
	var first error
	for round := 0; ; round++ {
		n := s.refills.take(job.ID)
		if n == 0 {
			return first
		}
		err := s.advance(ctx, job, min(n*s.cfg.RefillBatch, max(s.cfg.ClaimBatch, s.cfg.RefillBatch)))
		switch {
		case err == nil:
		case round == 0:
			first = err
		default:
			s.log.Warn("refill", "job", job.ID, "err", err)
		}
	}
}
