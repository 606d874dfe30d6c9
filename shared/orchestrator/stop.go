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
	Counts map[jobs.NodeState]int
}

// Stop stops a job (POST /command/stop). Graceful: no new node starts (queued ones end
// skipped), running ones finish, and the job ends stopped. Forced: running actions are also
// cancelled on their agents (which kill the process group) and end stopped at once.
// Stopping a stopped job, or a finished one, changes nothing.
func (s *Service) Stop(ctx context.Context, jobID int64, force bool) (StopResult, error) {
	defer s.lock(jobID)()
	defer s.charge(ctx, jobID)
	for attempt := 0; ; attempt++ {
		res, err := s.stopOnce(ctx, jobID, force)
		if errors.Is(err, store.ErrConflict) && attempt < maxRetries {
			continue
		}
		return res, err
	}
}

func (s *Service) stopOnce(ctx context.Context, jobID int64, force bool) (StopResult, error) {
	job, err := s.store.GetJob(ctx, jobID)
	if err != nil {
		return StopResult{}, unknownJob(jobID, err)
	}
	nodes, err := s.store.ListJobNodes(ctx, jobID)
	if err != nil {
		return StopResult{}, fmt.Errorf("stop job %d: %w", jobID, err)
	}
	if job.State.Terminal() || job.Stop == "force" || (job.Stop == "graceful" && !force) {
		return StopResult{Job: job, Counts: jobs.Counts(nodes)}, nil
	}
	now := s.clock()
	mode := "graceful"
	if force {
		mode = "force"
	}
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
	if job, err = s.store.UpdateJob(ctx, job, evs...); err != nil {
		return StopResult{}, fmt.Errorf("stop job %d: %w", jobID, err)
	}
	if force {
		for i, n := range nodes {
			if n.State != jobs.NodeRunning && n.State != jobs.NodeReady {
				continue
			}
			s.cancel(ctx, n)
			if n.State == jobs.NodeRunning {
				msg := fmt.Sprintf("Stopped on %s: the job was stopped with force", n.Name)
				res := errorResult("puppetlabs.orchestrator/job-stopped", "The action was cancelled by a forced stop", map[string]any{"node": n.Name})
				if nodes[i], err = s.endNode(ctx, n, jobs.NodeKill, res, msg); err != nil {
					return StopResult{}, err
				}
			}
		}
	}
	if err := s.dispatchLocked(ctx, jobID); err != nil {
		return StopResult{}, err
	}
	if job, err = s.store.GetJob(ctx, jobID); err != nil {
		return StopResult{}, err
	}
	if nodes, err = s.store.ListJobNodes(ctx, jobID); err != nil {
		return StopResult{}, err
	}
	s.log.Info("job stop requested", "job", job, "force", force)
	return StopResult{Job: job, Counts: jobs.Counts(nodes)}, nil
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
