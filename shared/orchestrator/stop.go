package orchestrator

import (
	"context"
	"errors"
	"fmt"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/protocol"
	"github.com/baton-run/baton/shared/store"
)

// StopResult is the answer to a stop request: the job and its node counts by state.
type StopResult struct {
	Job    jobs.Job
	Counts jobs.StateCounts
}

// Stop stops a job (POST /command/stop). Graceful: no new node starts (queued ones end
// skipped), running ones finish, and the job ends stopped. Forced: running actions are also
// cancelled on their agents (which kill the process group) and end stopped at once.
// Stopping a stopped job, or a finished one, changes nothing. Its work follows the nodes it
// ends, a page at a time.
func (s *Service) Stop(ctx context.Context, jobID int64, force bool) (StopResult, error) {
	defer s.charge(ctx, jobID)
	mode := jobs.StopGraceful
	if force {
		mode = jobs.StopForce
	}
	var job jobs.Job
	for attempt := 0; ; attempt++ {
		var err error
		if job, err = s.store.GetJob(ctx, jobID); err != nil {
			return StopResult{}, unknownJob(jobID, err)
		}
		if job.State.Terminal() || job.Stop == jobs.StopForce || (job.Stop == jobs.StopGraceful && !force) {
			return s.stopResult(ctx, job)
		}
		now := s.clock()
		var evs []jobs.Event
		if job.State != jobs.StateStopping {
			if job, err = jobs.ApplyJob(job, jobs.JobRequestStop, now); err != nil {
				return StopResult{}, err
			}
			msg := fmt.Sprintf("Stopping job %s: no new nodes will start", job.Name())
			if force {
				msg = fmt.Sprintf("Stopping job %s: running actions are being cancelled", job.Name())
			}
			evs = append(evs, jobs.Event{Type: jobs.EventJobStopping, Timestamp: now, Message: msg, Detail: mustJSON(map[string]any{"force": force})})
		}
		job.Stop = mode
		job, err = s.store.UpdateJob(ctx, job, evs...)
		if errors.Is(err, store.ErrConflict) && attempt < maxRetries {
			continue
		}
		if err != nil {
			return StopResult{}, fmt.Errorf("stop job %d: %w", jobID, err)
		}
		break
	}
	if force {
		if err := s.cancelRunning(ctx, job); err != nil {
			return StopResult{}, err
		}
	}
	if err := s.advance(ctx, job, 0); err != nil {
		return StopResult{}, err
	}
	job, err := s.store.GetJob(ctx, jobID)
	if err != nil {
		return StopResult{}, unknownJob(jobID, err)
	}
	s.log.Info("job stop requested", "job", job, "force", force)
	return s.stopResult(ctx, job)
}

func (s *Service) stopResult(ctx context.Context, job jobs.Job) (StopResult, error) {
	counts, err := s.store.JobCounts(ctx, job.ID)
	if err != nil {
		return StopResult{}, fmt.Errorf("stop job %d: %w", job.ID, err)
	}
	return StopResult{Job: job, Counts: counts}, nil
}

// cancelRunning asks the agents of a force-stopped job's running nodes to kill their actions
// and ends those nodes stopped, a page at a time; nodes holding a slot without having
// started end skipped (through advance).
func (s *Service) cancelRunning(ctx context.Context, job jobs.Job) error {
	for stalled := 0; stalled < 3; {
		page, err := s.store.ListJobNodesInState(ctx, job.ID, jobs.NodeRunning, pageSize)
		if err != nil {
			return fmt.Errorf("stop job %d: %w", job.ID, err)
		}
		if len(page) == 0 {
			return nil
		}
		now := s.clock()
		ups := make([]store.NodeUpdate, 0, len(page))
		for _, n := range page {
			s.cancel(ctx, n)
			msg := fmt.Sprintf("Stopped on %s: the job was stopped with force", n.Name)
			res := errorResult("puppetlabs.orchestrator/job-stopped", "The action was cancelled by a forced stop", map[string]any{"node": n.Name})
			end, ev, err := endedRecord(n, jobs.NodeKill, res, msg, now)
			if err != nil {
				return err
			}
			ups = append(ups, store.NodeUpdate{Node: end, Events: []jobs.Event{ev}})
		}
		if s.writeAll(ctx, ups, "stop") == 0 {
			stalled++
		}
	}
	return nil
}

// cancel asks a node's agent to kill a transaction; an agent that is not connected is not
// running anything it could report, so there is nothing more to do.
func (s *Service) cancel(ctx context.Context, n jobs.Node) {
	e, err := protocol.New(protocol.TypeCancel, protocol.AgentURI(n.Name), protocol.Cancel{TransactionID: n.TransactionID})
	if err != nil {
		s.log.Error("cancel", "node", n, "err", err)
		return
	}
	if err := s.sender.Send(ctx, n.Name, e); err != nil && !errors.Is(err, ErrNotConnected) {
		s.log.Warn("cancel", "node", n, "err", err)
	}
}
