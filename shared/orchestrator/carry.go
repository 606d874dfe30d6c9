package orchestrator

import (
	"context"
	"sync"
	"time"

	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/usage"
)

// carried is the usage that result invocations of this process left for the next result of
// the same job to carry (Config.UsageCarry). Recording a result updates the job's counters,
// and the metered store adds the usage tallied so far to that update (no write of its own);
// what the invocation does after it — its events, its read of the counts, the counter
// update itself — would cost a write of the job's usage, one per node-run. Instead it is
// left here and the next result of the job in this process takes it into its tally, so
// that its counter update carries it. What is left when no result comes is written:
//   - at once, by a result whose invocation ended the job (nothing more will carry it);
//   - otherwise once no result of the job has come here for UsageCarry (a write per job and
//     process, when its results stop: on AWS when the instance next runs).
//
// An AWS Lambda instance that is shut down with usage left loses it: at most what one
// invocation did after its counter update, per instance and job (about 1 write unit and 1–5
// read units), so a job's baton_usage can fall short of the meter by that much.
type carried struct {
	mu      sync.Mutex
	left    map[int64]leftover
	ended   map[int64]bool // jobs this process ended: the last maxEndedKept, oldest first in order
	order   []int64
	pending bool // a flush is scheduled
}

// maxEndedKept bounds the jobs carried remembers as ended here.
const maxEndedKept = 1024

// leftover is a job's usage left over, and when it was last left (the process's own clock:
// it only times the flush).
type leftover struct {
	u  store.Usage
	at time.Time
}

// take removes and returns the usage left for job jobID.
func (c *carried) take(jobID int64) store.Usage {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.left[jobID].u
	delete(c.left, jobID)
	return u
}

// leave adds u to job jobID's usage left over, at now; it is true when the caller must
// schedule a flush (none is).
func (c *carried) leave(jobID int64, u store.Usage, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left == nil {
		c.left = map[int64]leftover{}
	}
	c.left[jobID] = leftover{u: usage.Sum(c.left[jobID].u, u), at: now}
	if c.pending {
		return false
	}
	c.pending = true
	return true
}

// end records that this process ended job jobID.
func (c *carried) end(jobID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended == nil {
		c.ended = map[int64]bool{}
	}
	if c.ended[jobID] {
		return
	}
	c.ended[jobID] = true
	c.order = append(c.order, jobID)
	if len(c.order) > maxEndedKept {
		delete(c.ended, c.order[0])
		c.order = c.order[1:]
	}
}

func (c *carried) isEnded(jobID int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended[jobID]
}

// drain removes and returns the usage left over of every job that no result took or added
// to since before (a job whose results keep coming keeps carrying its own), and how long
// until the next of the others is due (0: none is left, no flush is scheduled).
func (c *carried) drain(before time.Time, carry time.Duration) (map[int64]store.Usage, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int64]store.Usage{}
	next := time.Duration(0)
	for id, l := range c.left {
		if !l.at.After(before) {
			out[id] = l.u
			delete(c.left, id)
			continue
		}
		if d := l.at.Sub(before); next == 0 || d < next {
			next = d
		}
	}
	c.pending = next > 0
	return out, min(next, carry)
}

// takeCarried adds the usage left for job jobID to ctx's tally, for this result's counter
// update to carry.
func (s *Service) takeCarried(ctx context.Context, jobID int64) {
	if s.cfg.UsageCarry > 0 {
		if u := s.carried.take(jobID); !usage.Zero(u) {
			usage.From(ctx).Add(u)
		}
	}
}

// chargeResult is charge for a result's invocation: with UsageCarry, what its tally still
// holds is left for the job's next result, unless this process ended the job.
func (s *Service) chargeResult(ctx context.Context, jobID int64) {
	if s.cfg.UsageCarry <= 0 || s.carried.isEnded(jobID) {
		s.charge(ctx, jobID)
		return
	}
	u := usage.From(ctx).Take()
	if usage.Zero(u) {
		return
	}
	// The process's own clock and a timer, not the injected clock: they only time the
	// flush (on AWS the timer fires when the instance next runs).
	if s.carried.leave(jobID, u, time.Now()) {
		time.AfterFunc(s.cfg.UsageCarry, s.flushCarried)
	}
}

// flushCarried writes the usage left over of the jobs whose results stopped coming here
// UsageCarry ago, and schedules itself again for the others.
func (s *Service) flushCarried() {
	due, next := s.carried.drain(time.Now().Add(-s.cfg.UsageCarry), s.cfg.UsageCarry)
	for jobID, u := range due {
		if err := s.store.AddJobUsage(context.Background(), jobID, u); err != nil {
			// Kept for the next flush (or the job's next result here).
			s.log.Warn("record job usage", "job_id", jobID, "err", err)
			if s.carried.leave(jobID, u, time.Now()) {
				next = s.cfg.UsageCarry
			}
		}
	}
	if next > 0 {
		time.AfterFunc(next, s.flushCarried)
	}
}

// jobEndedHere records that this process ended job jobID: its results' usage is written, not
// left over.
func (s *Service) jobEndedHere(jobID int64) {
	if s.cfg.UsageCarry > 0 {
		s.carried.end(jobID)
	}
}
