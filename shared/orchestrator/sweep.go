package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/usage"
)

// maxSweepPages bounds the pages of due records one sweep handles; the rest wait for the next.
const maxSweepPages = 20

// Sweep handles the node records that are due — a node holding a slot is offered to its agent
// again, or ends errored once its connect timeout has passed; a running node ends failed
// once its job's timeout plus a grace period has passed without a result — then moves every
// unfinished job on (free slots for queued nodes, skips, ends). Its work follows the records
// that are due and the unfinished jobs, not the size of any job. `baton serve` runs it every
// second; on AWS a schedule does.
func (s *Service) Sweep(ctx context.Context) error {
	now := s.clock()
	var errs []error
	for page := 0; page < maxSweepPages; page++ {
		due, err := s.store.ListDueJobNodes(ctx, now, pageSize)
		if err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
		for _, n := range due {
			if err := s.sweepNode(ctx, n, now); err != nil {
				errs = append(errs, fmt.Errorf("sweep job %d node %s: %w", n.JobID, n.Name, err))
			}
		}
		if len(due) < pageSize {
			break
		}
	}
	unfinished, err := s.store.ListUnfinishedJobs(ctx)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("sweep: %w", err))...)
	}
	usage.From(ctx).Take() // listing is the sweep's own cost, not a job's
	for _, job := range unfinished {
		if err := s.advance(ctx, job, s.cfg.ClaimBatch); err != nil {
			errs = append(errs, fmt.Errorf("sweep job %d: %w", job.ID, err))
		}
		s.charge(ctx, job.ID)
	}
	return errors.Join(errs...)
}

// sweepNode handles one due record.
func (s *Service) sweepNode(ctx context.Context, n jobs.Node, now time.Time) error {
	defer s.charge(ctx, n.JobID)
	sp, err := s.specByID(ctx, n.JobID)
	if err != nil {
		return err
	}
	switch {
	case n.State == jobs.NodeReady && n.ReadyAt != nil && !now.Before(n.ReadyAt.Add(s.cfg.ConnectTimeout)):
		msg := fmt.Sprintf("Node %s did not connect within %s", n.Name, s.cfg.ConnectTimeout)
		res := errorResult("puppetlabs.orchestrator/node-unavailable", msg, map[string]any{"node": n.Name})
		return ignoreConflict(s.endNode(ctx, n, jobs.NodeError, res, msg))
	case n.State == jobs.NodeReady:
		if err := s.resend(ctx, n); err != nil {
			return err
		}
		cur, err := s.store.GetJobNode(ctx, n.JobID, n.Name)
		if err != nil || cur.State != jobs.NodeReady || cur.Version != n.Version {
			return err // sent (or moved on by someone else)
		}
		next := now.Add(s.cfg.ConnectRetry)
		if n.ReadyAt != nil {
			if deadline := n.ReadyAt.Add(s.cfg.ConnectTimeout); deadline.Before(next) {
				next = deadline
			}
		}
		cur.DueAt = &next
		return ignoreConflict(s.store.UpdateJobNode(ctx, cur))
	case n.State == jobs.NodeRunning && sp.job.Timeout > 0 && n.StartedAt != nil &&
		!now.Before(n.StartedAt.Add(time.Duration(sp.job.Timeout)*time.Second+s.cfg.TimeoutGrace)):
		msg := fmt.Sprintf("No result from %s within the %d second timeout", n.Name, sp.job.Timeout)
		res := errorResult("puppetlabs.tasks/task-timeout", msg, map[string]any{"timeout": sp.job.Timeout, "node": n.Name})
		return ignoreConflict(s.endNode(ctx, n, jobs.NodeFail, res, msg))
	}
	// Due too early (a clock step) or no longer due: put the record back on its schedule.
	var next *time.Time
	if n.State == jobs.NodeRunning && sp.job.Timeout > 0 && n.StartedAt != nil {
		t := n.StartedAt.Add(time.Duration(sp.job.Timeout)*time.Second + s.cfg.TimeoutGrace)
		next = &t
	}
	if n.State == jobs.NodeReady {
		t := now.Add(s.cfg.ConnectRetry)
		next = &t
	}
	n.DueAt = next
	return ignoreConflict(s.store.UpdateJobNode(ctx, n))
}

// ignoreConflict drops ErrConflict: another writer moved the record first, which is fine.
func ignoreConflict(_ jobs.Node, err error) error {
	if errors.Is(err, store.ErrConflict) {
		return nil
	}
	return err
}
