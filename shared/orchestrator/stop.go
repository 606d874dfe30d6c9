package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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
			kill := KillRequested
			if !s.cancel(ctx, n) {
				kill = KillPending
			}
			msg := fmt.Sprintf("Stopped on %s: the job was stopped with force", n.Name)
			end, ev, err := endedRecord(n, jobs.NodeKill, stoppedResult(n.Name, kill), msg, now)
			if err != nil {
				return err
			}
			if kill == KillPending { // the sweep sends the cancel when the agent is back
				due := now.Add(s.cfg.ConnectRetry)
				end.DueAt = &due
			}
			ups = append(ups, store.NodeUpdate{Node: end, Events: []jobs.Event{ev}})
		}
		if s.writeAll(ctx, ups, "stop") == 0 {
			stalled++
		}
	}
	return nil
}

// cancel asks a node's agent to kill a transaction and reports whether the request went out.
func (s *Service) cancel(ctx context.Context, n jobs.Node) bool {
	e, err := protocol.New(protocol.TypeCancel, protocol.AgentURI(n.Name), protocol.Cancel{TransactionID: n.TransactionID})
	if err != nil {
		s.log.Error("cancel", "node", n, "err", err)
		return false
	}
	if err := s.sender.Send(ctx, n.Name, e); err != nil {
		if !errors.Is(err, ErrNotConnected) {
			s.log.Warn("cancel", "node", n, "err", err)
		}
		return false
	}
	return true
}

// What a force-stopped node's result says of the kill of its action (details.kill):
const (
	// KillPending: the agent was not reachable; the cancel is sent when it is back.
	KillPending = "pending"
	// KillRequested: the cancel reached the agent; its answer has not come yet.
	KillRequested = "requested"
	// KillConfirmed: the agent reported the end of the cancelled transaction.
	KillConfirmed = "confirmed"
	// KillUndelivered: the agent did not come back within KillRetention of the stop.
	KillUndelivered = "undelivered"
)

// KillRetention is how long after a forced stop a cancel waits for an agent that is away.
const KillRetention = 24 * time.Hour

func stoppedResult(node, kill string) map[string]any {
	return errorResult("puppetlabs.orchestrator/job-stopped", "The action was cancelled by a forced stop",
		map[string]any{"node": node, "kill": kill})
}

// killState returns what stopped node n's result says of its kill ("" if nothing).
func killState(n jobs.Node) string {
	var r struct {
		Error struct {
			Kind    string `json:"kind"`
			Details struct {
				Kill string `json:"kill"`
			} `json:"details"`
		} `json:"_error"`
	}
	if n.State != jobs.NodeStopped || json.Unmarshal(n.Result, &r) != nil || r.Error.Kind != "puppetlabs.orchestrator/job-stopped" {
		return ""
	}
	return r.Error.Details.Kill
}

// setKill records kill in stopped node n's result (conflicts: someone else moved it first).
func (s *Service) setKill(ctx context.Context, n jobs.Node, kill string, due *time.Time) error {
	n.Result, n.DueAt = mustJSON(stoppedResult(n.Name, kill)), due
	_, err := s.store.UpdateJobNode(ctx, n)
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("record the kill of %s: %w", n.Name, err)
	}
	return nil
}

// sweepStopped sends the cancel of a force-stopped node whose agent was away, once the agent
// is reachable, until KillRetention after the stop.
func (s *Service) sweepStopped(ctx context.Context, n jobs.Node, now time.Time) error {
	if killState(n) != KillPending {
		return s.setKill(ctx, n, killState(n), nil)
	}
	if n.FinishedAt != nil && !now.Before(n.FinishedAt.Add(KillRetention)) {
		return s.setKill(ctx, n, KillUndelivered, nil)
	}
	if (s.presence == nil || s.presence.Connected(n.Name)) && s.cancel(ctx, n) {
		return s.setKill(ctx, n, KillRequested, nil)
	}
	next := now.Add(s.cfg.ConnectRetry)
	return s.setKill(ctx, n, KillPending, &next)
}

// confirmKill records that the agent reported the end of force-stopped node n's transaction.
func (s *Service) confirmKill(ctx context.Context, n jobs.Node) error {
	if k := killState(n); k == KillPending || k == KillRequested {
		return s.setKill(ctx, n, KillConfirmed, nil)
	}
	return nil
}
