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

// Sweep ends nodes whose agent never connected within the connect timeout (errored) and nodes
// that ran past their job's timeout plus a grace period without a result (failed), then
// dispatches every unfinished job. `baton serve` runs it every second; on AWS a schedule does.
func (s *Service) Sweep(ctx context.Context) error {
	unfinished, err := s.store.ListUnfinishedJobs(ctx)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	usage.From(ctx).Take() // listing the jobs is the sweep's own cost, not a job's
	var errs []error
	for _, job := range unfinished {
		if err := s.sweepJob(ctx, job.ID); err != nil {
			errs = append(errs, fmt.Errorf("sweep job %d: %w", job.ID, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Service) sweepJob(ctx context.Context, jobID int64) error {
	defer s.lock(jobID)()
	defer s.charge(ctx, jobID)
	job, err := s.store.GetJob(ctx, jobID)
	if err != nil {
		return err
	}
	nodes, err := s.store.ListJobNodes(ctx, jobID)
	if err != nil {
		return err
	}
	now := s.clock()
	for _, n := range nodes {
		switch {
		case n.State == jobs.NodeReady && n.ReadyAt != nil && !now.Before(n.ReadyAt.Add(s.cfg.ConnectTimeout)):
			msg := fmt.Sprintf("Node %s did not connect within %s", n.Name, s.cfg.ConnectTimeout)
			res := errorResult("puppetlabs.orchestrator/node-unavailable", msg, map[string]any{"node": n.Name})
			if _, err := s.endNode(ctx, n, jobs.NodeError, res, msg); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
		case n.State == jobs.NodeRunning && job.Timeout > 0 && n.StartedAt != nil &&
			!now.Before(n.StartedAt.Add(time.Duration(job.Timeout)*time.Second+s.cfg.TimeoutGrace)):
			msg := fmt.Sprintf("No result from %s within the %d second timeout", n.Name, job.Timeout)
			res := errorResult("puppetlabs.tasks/task-timeout", msg, map[string]any{"timeout": job.Timeout, "node": n.Name})
			if _, err := s.endNode(ctx, n, jobs.NodeFail, res, msg); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
		}
	}
	return s.dispatchLocked(ctx, jobID)
}
