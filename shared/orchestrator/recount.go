package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

// recountQuiet is how long a job's counts must stay the same, sweep after sweep, before the
// sweep recounts its records (stores whose counts a lost write can leave wrong: see
// store.Recounter). A job whose counts are wrong stops moving — a count of active records
// that no record holds keeps it from ending, a record missing from the counts is never
// claimed — so quiet counts are what a wrong count looks like; a recount that finds them
// right costs one read of the job's records, once per quiet spell.
const recountQuiet = 2 * time.Minute

// recountWatch remembers, per unfinished job, its counts as the sweep last saw them, since
// when, and whether they were recounted since: the sweep's memory (one per process; a new
// process starts watching afresh).
type recountWatch struct {
	mu   sync.Mutex
	jobs map[int64]watched
}

type watched struct {
	counts    string
	since     time.Time
	recounted bool
}

// due records counts of job id seen at now and reports whether the job is due a recount:
// its counts unchanged for recountQuiet and not recounted since they last changed.
func (w *recountWatch) due(id int64, counts jobs.StateCounts, now time.Time) bool {
	k := countsKey(counts)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.jobs == nil {
		w.jobs = map[int64]watched{}
	}
	cur, ok := w.jobs[id]
	if !ok || cur.counts != k {
		w.jobs[id] = watched{counts: k, since: now}
		return false
	}
	return !cur.recounted && !now.Before(cur.since.Add(recountQuiet))
}

// recounted marks job id recounted; counts are what the recount left.
func (w *recountWatch) recounted(id int64, counts jobs.StateCounts, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.jobs[id] = watched{counts: countsKey(counts), since: now, recounted: true}
}

// keep forgets the jobs not in ids (they ended).
func (w *recountWatch) keep(ids map[int64]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id := range w.jobs {
		if !ids[id] {
			delete(w.jobs, id)
		}
	}
}

func countsKey(c jobs.StateCounts) string {
	parts := make([]string, 0, len(c))
	for st, n := range c {
		if n != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", st, n))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// recountIfQuiet is the sweep's safety net for stores that keep a job's counts apart from
// its records (store.Recounter): a job whose counts stayed the same for recountQuiet is
// recounted once; when that changed them, the job is moved on again.
func (s *Service) recountIfQuiet(ctx context.Context, job jobs.Job, now time.Time) error {
	rc, ok := s.store.(store.Recounter)
	if !ok || job.State.Terminal() {
		return nil
	}
	counts, err := s.store.JobCounts(ctx, job.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recount job %d: %w", job.ID, err)
	}
	if !s.recounts.due(job.ID, counts, now) {
		return nil
	}
	changed, err := rc.RecountJob(ctx, job.ID)
	if errors.Is(err, store.ErrConflict) {
		return nil // a record moved a moment ago, or the counts did: the job is not quiet
	}
	if err != nil {
		return err
	}
	after := counts
	if changed {
		if after, err = s.store.JobCounts(ctx, job.ID); err != nil {
			return fmt.Errorf("recount job %d: %w", job.ID, err)
		}
		s.log.Warn("job counts repaired by a recount", "job_id", job.ID, "counts_were", counts, "counts", after)
	}
	s.recounts.recounted(job.ID, after, now)
	if !changed {
		return nil
	}
	cur, err := s.store.GetJob(ctx, job.ID)
	if err != nil {
		return fmt.Errorf("recount job %d: %w", job.ID, err)
	}
	return s.advance(ctx, cur, s.cfg.ClaimBatch)
}
