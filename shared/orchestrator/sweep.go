package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/protocol"
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
	ids := make(map[int64]bool, len(unfinished))
	for _, job := range unfinished {
		ids[job.ID] = true
		if err := s.advance(ctx, job, s.cfg.ClaimBatch); err != nil {
			errs = append(errs, fmt.Errorf("sweep job %d: %w", job.ID, err))
		}
		if err := s.recountIfQuiet(ctx, job, now); err != nil {
			errs = append(errs, fmt.Errorf("sweep job %d: %w", job.ID, err))
		}
		if s.cfg.StatusScan {
			if err := s.scanStatus(ctx, job, now); err != nil {
				errs = append(errs, fmt.Errorf("sweep job %d: %w", job.ID, err))
			}
		}
		s.charge(ctx, job.ID)
	}
	s.recounts.keep(ids)
	return errors.Join(errs...)
}

// sweepNode handles one due record.
func (s *Service) sweepNode(ctx context.Context, n jobs.Node, now time.Time) error {
	defer s.charge(ctx, n.JobID)
	sp, err := s.specByID(ctx, n.JobID)
	if err != nil {
		return err
	}
	var deadline *time.Time // when a running node's job timeout (plus grace) has passed
	if n.State == jobs.NodeRunning && n.StartedAt != nil {
		deadline = s.timeoutDeadline(sp, *n.StartedAt)
	}
	switch {
	case n.State == jobs.NodeReady, n.State == jobs.NodeRunning && n.StartedAt == nil:
		// Holding a slot, its request not delivered yet.
		if limit := n.ReadyAt; limit != nil && !now.Before(limit.Add(s.cfg.ConnectTimeout)) {
			if s.cfg.NoResultAck && (n.DueAt == nil || !n.DueAt.After(limit.Add(s.cfg.ConnectTimeout))) &&
				(s.presence == nil || s.presence.Connected(n.Name)) {
				// The request may have reached the agent with the write that records it
				// running lost, and with no_ack no provisional response comes to record it:
				// offer it once more (a repeat is answered with a provisional response, a
				// request never had is run), and end the node ConnectRetry later if it has
				// not moved by then.
				return s.offerOnceMore(ctx, n, now)
			}
			return s.notConnected(ctx, n)
		}
		return s.offerAgain(ctx, n, now, n.ReadyAt)
	case deadline != nil && !now.Before(*deadline) && s.cfg.NoResultAck && s.cfg.StatusInterval > 0 &&
		(n.DueAt == nil || !n.DueAt.After(*deadline)):
		// No acknowledgement on the wire: the agent's result (its own timeout report, say) may
		// have been lost without a word. Ask once, however late this sweep is, and end the
		// node StatusInterval later (a due time past the deadline says it was asked).
		last := now.Add(s.cfg.StatusInterval)
		return s.checkStatus(ctx, n, now, &last)
	case deadline != nil && !now.Before(*deadline):
		msg := fmt.Sprintf("No result from %s within the %d second timeout", n.Name, sp.job.Timeout)
		res := errorResult("puppetlabs.tasks/task-timeout", msg, map[string]any{"timeout": sp.job.Timeout, "node": n.Name})
		return ignoreConflict(s.endNode(ctx, n, jobs.NodeFail, res, msg))
	case n.State == jobs.NodeRunning:
		return s.checkStatus(ctx, n, now, deadline)
	case n.State == jobs.NodeStopped:
		return s.sweepStopped(ctx, n, now)
	}
	// No longer due (it ended, or the clock stepped): take it off the schedule.
	n.DueAt = nil
	return ignoreConflict(s.store.UpdateJobNode(ctx, n))
}

// checkStatus handles a running node that has been silent since it was last due: it asks
// the agent for the transaction's status (the answer moves it on: see onStatus) and makes
// the node due again after StatusInterval, or at its deadline when that is sooner. An
// agent that is not connected is asked next time; the node keeps running until its result
// or its job's timeout.
func (s *Service) checkStatus(ctx context.Context, n jobs.Node, now time.Time, deadline *time.Time) error {
	var next *time.Time
	if s.cfg.StatusInterval > 0 {
		t := now.Add(s.cfg.StatusInterval)
		next = &t
		if s.presence == nil || s.presence.Connected(n.Name) {
			if err := s.queryStatus(ctx, n); err != nil && !errors.Is(err, ErrNotConnected) {
				s.log.Warn("status query", "node", n, "err", err)
			}
		}
	}
	if deadline != nil && (next == nil || deadline.Before(*next)) {
		next = deadline
	}
	n.DueAt = next
	return ignoreConflict(s.store.UpdateJobNode(ctx, n))
}

// scanStatus asks about the running nodes of job whose time running crossed StatusInterval ×
// 2^k since the previous sweep (StatusScan). It reads the job's node records, only for a job
// that has running nodes and started at least StatusInterval ago: about one read of each
// record a sweep period (a minute on AWS) while such a job runs.
func (s *Service) scanStatus(ctx context.Context, job jobs.Job, now time.Time) error {
	if s.cfg.StatusInterval <= 0 || job.State.Terminal() || job.CreatedAt.After(now.Add(-s.cfg.StatusInterval)) {
		return nil
	}
	counts, err := s.store.JobCounts(ctx, job.ID)
	if err != nil || counts[jobs.NodeRunning] == 0 {
		return err
	}
	nodes, err := s.store.ListJobNodes(ctx, job.ID)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if n.State == jobs.NodeRunning && n.StartedAt != nil && statusDue(now.Sub(*n.StartedAt), s.cfg.SweepPeriod, s.cfg.StatusInterval) {
			if err := s.queryStatus(ctx, n); err != nil && !errors.Is(err, ErrNotConnected) {
				s.log.Warn("status query", "node", n, "err", err)
			}
		}
	}
	return nil
}

// statusDue reports whether a node running for age crossed interval × 2^k (k ≥ 0) within
// the last period: the moments a scan asks about it.
func statusDue(age, period, interval time.Duration) bool {
	for mark := interval; mark <= age; mark *= 2 {
		if age-mark < period {
			return true
		}
	}
	return false
}

// queryStatus sends node n's agent a PXP status query for n's transaction.
func (s *Service) queryStatus(ctx context.Context, n jobs.Node) error {
	env, err := protocol.New(protocol.TypeBlockingRequest, protocol.AgentURI(n.Name), protocol.BlockingRequest{
		TransactionID: protocol.NewID(), Module: protocol.ModuleStatus, Action: protocol.ActionQuery,
		Params: mustJSON(protocol.StatusQueryParams{TransactionID: n.TransactionID}),
	})
	if err != nil {
		return err
	}
	return s.sender.Send(ctx, n.Name, env)
}

// offerAgain sends a ready node's request again and, when that did not move it on, makes it
// due again after ConnectRetry (but no later than its connect deadline).
func (s *Service) offerAgain(ctx context.Context, n jobs.Node, now time.Time, since *time.Time) error {
	if err := s.resend(ctx, n); err != nil {
		return err
	}
	cur, err := s.store.GetJobNode(ctx, n.JobID, n.Name)
	if err != nil || cur.State != n.State || cur.Version != n.Version {
		return err // sent (or moved on by someone else)
	}
	return s.offerLater(ctx, cur, now, since)
}

// notConnected ends ready node n errored: its agent did not connect within ConnectTimeout.
func (s *Service) notConnected(ctx context.Context, n jobs.Node) error {
	msg := fmt.Sprintf("Node %s did not connect within %s", n.Name, s.cfg.ConnectTimeout)
	res := errorResult("puppetlabs.orchestrator/node-unavailable", msg, map[string]any{"node": n.Name})
	return ignoreConflict(s.endNode(ctx, n, jobs.NodeError, res, msg))
}

// offerOnceMore sends a ready node's request again past its connect deadline and, when that
// did not move it on, makes it due ConnectRetry later: a due time past the deadline says it
// was offered once more, and the next sweep ends it. A request that cannot be sent (no
// connection) ends the node at once.
func (s *Service) offerOnceMore(ctx context.Context, n jobs.Node, now time.Time) error {
	sent, err := s.resendDelivered(ctx, n)
	if err != nil {
		return err
	}
	if !sent {
		return s.notConnected(ctx, n) // its agent is not connected: what the connect timeout is for
	}
	cur, err := s.store.GetJobNode(ctx, n.JobID, n.Name)
	if err != nil || cur.State != n.State || cur.Version != n.Version {
		return err // sent (or moved on by someone else)
	}
	next := now.Add(s.cfg.ConnectRetry)
	cur.DueAt = &next
	return ignoreConflict(s.store.UpdateJobNode(ctx, cur))
}

// offerLater makes n due again after ConnectRetry, capped at since plus ConnectTimeout.
func (s *Service) offerLater(ctx context.Context, n jobs.Node, now time.Time, since *time.Time) error {
	next := now.Add(s.cfg.ConnectRetry)
	if since != nil {
		if limit := since.Add(s.cfg.ConnectTimeout); limit.Before(next) {
			next = limit
		}
	}
	n.DueAt = &next
	return ignoreConflict(s.store.UpdateJobNode(ctx, n))
}

// ignoreConflict drops ErrConflict: another writer moved the record first, which is fine.
func ignoreConflict(_ jobs.Node, err error) error {
	if errors.Is(err, store.ErrConflict) {
		return nil
	}
	return err
}
