package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/protocol"
	"github.com/baton-run/baton/shared/puppetrun"
	"github.com/baton-run/baton/shared/store"
)

// maxRetries bounds optimistic-concurrency retries of one update.
const maxRetries = 20

// pageSize is how many node records one step of a stop or a sweep reads and writes at once.
const pageSize = 500

// Dispatch moves a job forward: it starts the job, gives free concurrency slots to queued
// nodes, sends their requests, and ends the job when every node is done. It is safe to call
// at any time, as often as wanted and concurrently: the store hands each queued node to one
// claim only, and every write is conditional on the version read.
func (s *Service) Dispatch(ctx context.Context, jobID int64) error {
	defer s.charge(ctx, jobID)
	if h, ok := s.handoff.LoadAndDelete(jobID); ok { // this process created the job just now
		h := h.(handoff)
		sp, err := s.spec(h.job)
		if err != nil {
			return err
		}
		s.sendAll(ctx, sp, h.claimed)
		if len(h.claimed) == h.job.NodeCount {
			return nil // every node has its slot: results move the job on from here
		}
		return s.advance(ctx, h.job, -1)
	}
	job, err := s.startJob(ctx, jobID)
	if err != nil || job.State.Terminal() {
		return err
	}
	return s.advance(ctx, job, -1)
}

// SendClaimed sends the requests of nodes of job jobID claimed when the job was created
// elsewhere and handed off (WithHandoff). Nodes are sent at most once per call; a node
// whose request does not go out is recorded undelivered and offered again by the sweep.
func (s *Service) SendClaimed(ctx context.Context, jobID int64, nodes []jobs.Node) error {
	defer s.charge(ctx, jobID)
	sp, err := s.specByID(ctx, jobID)
	if err != nil {
		return err
	}
	job, err := s.store.GetJob(ctx, jobID)
	if err != nil {
		return fmt.Errorf("dispatch job %d: %w", jobID, err)
	}
	if job.State.Terminal() || job.Stop != "" {
		return nil // a stop skips or kills them; nothing to send
	}
	for i := range nodes {
		if nodes[i].JobID != jobID || !nodes[i].State.Active() {
			return fmt.Errorf("dispatch job %d: node %s of job %d in state %s is not one of its claimed nodes", jobID, nodes[i].Name, nodes[i].JobID, nodes[i].State)
		}
	}
	s.sendAll(ctx, sp, nodes)
	return nil
}

// handoff is what creating a job in this process passes to its dispatch: the job as created
// (running) and the nodes claimed with it.
type handoff struct {
	job     jobs.Job
	claimed []jobs.Node
}

// startJob moves a new job to running and returns it as stored.
func (s *Service) startJob(ctx context.Context, jobID int64) (jobs.Job, error) {
	for attempt := 0; ; attempt++ {
		job, err := s.store.GetJob(ctx, jobID)
		if err != nil {
			return job, fmt.Errorf("dispatch job %d: %w", jobID, err)
		}
		if job.State != jobs.StateNew && job.State != jobs.StateReady {
			return job, nil
		}
		started, err := jobs.ApplyJob(job, jobs.JobStart, s.clock())
		if err != nil {
			return job, err
		}
		started, err = s.store.UpdateJob(ctx, started)
		if errors.Is(err, store.ErrConflict) && attempt < maxRetries {
			continue
		}
		if err != nil {
			return job, fmt.Errorf("start job %d: %w", jobID, err)
		}
		return started, nil
	}
}

// advance moves job on after something changed. Once the job is stopped or its error limit
// is reached, the nodes that have not started end skipped; otherwise free slots go to queued
// nodes — at most maxClaims of them (every free slot when maxClaims < 0) — which are sent
// their requests. When every node is done the job ends. Its work follows what it changes:
// it reads the job's counts, never the list of its nodes.
func (s *Service) advance(ctx context.Context, job jobs.Job, maxClaims int) error {
	if job.State.Terminal() {
		return nil
	}
	counts, err := s.store.JobCounts(ctx, job.ID)
	if err != nil {
		return fmt.Errorf("advance job %d: %w", job.ID, err)
	}
	if job.Stop == "" && job.MaxErrors > 0 && counts.Failures() >= job.MaxErrors {
		if job, err = s.stopStarting(ctx, job.ID); err != nil {
			return err
		}
		if job.State.Terminal() {
			return nil
		}
	}
	switch {
	case job.Stop != "" && counts[jobs.NodeNew]+counts[jobs.NodeReady] > 0:
		if err := s.skipUnstarted(ctx, job); err != nil {
			return err
		}
		if counts, err = s.store.JobCounts(ctx, job.ID); err != nil {
			return fmt.Errorf("advance job %d: %w", job.ID, err)
		}
	case job.Stop == "" && maxClaims != 0 && counts[jobs.NodeNew] > 0 &&
		(job.Concurrency == 0 || counts.Active() < job.Concurrency):
		return s.claimAndSend(ctx, job, maxClaims) // the claimed nodes are not done: the job goes on
	}
	if counts.Unfinished() <= 0 {
		// (Below zero: a store whose counts run ahead of its records for a moment — a
		// refused write counted, then taken back — says done; its end check decides.)
		return s.finishJob(ctx, job.ID, counts)
	}
	return nil
}

// stopStarting records that job jobID reached its error limit: no new node starts.
func (s *Service) stopStarting(ctx context.Context, jobID int64) (jobs.Job, error) {
	for attempt := 0; ; attempt++ {
		job, err := s.store.GetJob(ctx, jobID)
		if err != nil {
			return job, fmt.Errorf("job %d: %w", jobID, err)
		}
		if job.State.Terminal() || job.Stop != "" {
			return job, nil
		}
		job.Stop = jobs.StopErrorLimit
		updated, err := s.store.UpdateJob(ctx, job)
		if errors.Is(err, store.ErrConflict) && attempt < maxRetries {
			continue
		}
		if err != nil {
			return job, fmt.Errorf("job %d: record its error limit: %w", jobID, err)
		}
		s.log.Info("error limit reached: no new node starts", "job", updated)
		return updated, nil
	}
}

// skipUnstarted ends skipped the nodes of a stopping job that have not started: the queued
// ones and those holding a slot whose request was not delivered.
func (s *Service) skipUnstarted(ctx context.Context, job jobs.Job) error {
	reason := "the job was stopped before it started"
	if job.Stop == jobs.StopErrorLimit {
		counts, err := s.store.JobCounts(ctx, job.ID)
		if err != nil {
			return fmt.Errorf("job %d: %w", job.ID, err)
		}
		reason = fmt.Sprintf("the error limit was reached (%d failed or errored)", counts.Failures())
	}
	for _, st := range []jobs.NodeState{jobs.NodeNew, jobs.NodeReady} {
		for stalled := 0; stalled < 3; {
			page, err := s.store.ListJobNodesInState(ctx, job.ID, st, pageSize)
			if err != nil {
				return fmt.Errorf("job %d: %w", job.ID, err)
			}
			if len(page) == 0 {
				break
			}
			now := s.clock()
			ups := make([]store.NodeUpdate, 0, len(page))
			for _, n := range page {
				msg := fmt.Sprintf("Skipped on %s: %s", n.Name, reason)
				end, ev, err := endedRecord(n, jobs.NodeSkip, nil, msg, now)
				if err != nil {
					return err
				}
				ups = append(ups, store.NodeUpdate{Node: end, Events: []jobs.Event{ev}})
			}
			written := s.writeAll(ctx, ups, "skip")
			if written == 0 {
				stalled++ // every record moved under us; look again, a few times
			}
		}
	}
	return nil
}

// writeAll writes ups and returns how many were written; conflicts (another writer got
// there first) are expected and not logged.
func (s *Service) writeAll(ctx context.Context, ups []store.NodeUpdate, what string) int {
	_, errs := s.store.UpdateJobNodes(ctx, ups)
	written := 0
	for i, err := range errs {
		switch {
		case err == nil:
			written++
		case !errors.Is(err, store.ErrConflict):
			s.log.Warn(what, "node", ups[i].Node, "err", err)
		}
	}
	return written
}

// claimAndSend gives up to maxClaims free slots (all of them when maxClaims < 0) to queued
// nodes and sends them their requests.
func (s *Service) claimAndSend(ctx context.Context, job jobs.Job, maxClaims int) error {
	sp, err := s.spec(job)
	if err != nil {
		return err
	}
	global := s.cfg.TaskConcurrency
	if global < 0 {
		global = 0
	}
	for claimed := 0; maxClaims < 0 || claimed < maxClaims; {
		limit := s.cfg.ClaimBatch
		if maxClaims >= 0 {
			limit = min(limit, maxClaims-claimed)
		}
		attempts := 0
		if maxClaims >= 0 {
			attempts = 1 // a refill: when another claim has the turn, it takes the free slots
		}
		// The time is read when the store applies the claim, after it counted the free
		// slots: a time read before the call could precede the end of the node whose slot
		// the claim takes (a busy store), and the records would show more nodes running at
		// once than the caps allow.
		nodes, err := s.store.ClaimJobNodes(ctx, job.ID, store.Claim{Limit: limit, GlobalCap: global, Attempts: attempts,
			Apply: func(n jobs.Node) (jobs.Node, []jobs.Event) { return s.claimedRecord(sp, s.presence, n, s.clock()) }})
		if err != nil {
			return fmt.Errorf("claim nodes of job %d: %w", job.ID, err)
		}
		claimed += len(nodes)
		s.sendAll(ctx, sp, nodes)
		if len(nodes) < limit {
			return nil
		}
	}
	return nil
}

// claimedRecord is queued node n taking a slot at now. When presence says its agent is
// connected, the node is recorded running at once, with its node_running event, so that
// sending it costs no second write (should the send fail, it is recorded undelivered and
// offered again); otherwise it is ready, due to be offered again after ConnectRetry.
func (s *Service) claimedRecord(sp *jobSpec, presence Presence, n jobs.Node, now time.Time) (jobs.Node, []jobs.Event) {
	n.TransactionID = jobs.TransactionID(n.JobID, protocol.NewID())
	n, err := jobs.ApplyNode(n, jobs.NodeClaim, now)
	if err != nil { // a queued record can always be claimed
		panic(fmt.Sprintf("claim %s: %v", n.Name, err))
	}
	if presence != nil && presence.Connected(n.Name) {
		run, ev, err := s.runningRecord(sp, n, now)
		if err == nil {
			return run, []jobs.Event{ev}
		}
	}
	due := now.Add(min(s.cfg.ConnectRetry, s.cfg.ConnectTimeout))
	n.DueAt = &due
	return n, nil
}

// sendAll sends the requests of claimed nodes, SendWorkers at a time. Ready nodes that were
// delivered are recorded running in one write; a running node whose request did not go out
// is made due for the sweep to offer it again. A node whose agent is not connected keeps its
// slot until the sweep offers it again or its connect timeout ends it.
func (s *Service) sendAll(ctx context.Context, sp *jobSpec, nodes []jobs.Node) {
	if len(nodes) == 0 {
		return
	}
	// A node recorded running when claimed is held as started before its request goes out:
	// its result can come back before the other requests are sent, and then needs no read.
	for _, n := range nodes {
		if n.State == jobs.NodeRunning {
			s.started.add(n)
		}
	}
	delivered := make([]bool, len(nodes))
	send := func(i int) { delivered[i] = s.deliver(ctx, sp, nodes[i]) }
	if workers := min(s.cfg.SendWorkers, len(nodes)); workers == 1 {
		for i := range nodes {
			send(i)
		}
	} else {
		next := make(chan int)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := range next {
					send(i)
				}
			})
		}
		for i := range nodes {
			next <- i
		}
		close(next)
		wg.Wait()
	}
	now := s.clock()
	ups := make([]store.NodeUpdate, 0, len(nodes))
	for i, n := range nodes {
		if n.State == jobs.NodeRunning {
			if !delivered[i] {
				// Recorded running when claimed, but the request did not go out: it is
				// undelivered (no start time) and offered again, its connect timeout
				// counting from the claim.
				s.started.remove(n.TransactionID)
				due := now.Add(s.cfg.ConnectRetry)
				n.DueAt, n.StartedAt = &due, nil
				ups = append(ups, store.NodeUpdate{Node: n})
			}
			continue
		}
		if !delivered[i] {
			continue
		}
		run, ev, err := s.runningRecord(sp, n, now)
		if err != nil {
			s.log.Error("mark running", "node", n, "err", err)
			continue
		}
		ups = append(ups, store.NodeUpdate{Node: run, Events: []jobs.Event{ev}})
	}
	if len(ups) == 0 {
		return // every node was recorded running when claimed, and delivered
	}
	out, errs := s.store.UpdateJobNodes(ctx, ups)
	for i, err := range errs {
		switch {
		case err == nil:
			if out[i].State == jobs.NodeRunning {
				s.started.add(out[i])
			}
		case !errors.Is(err, store.ErrConflict):
			s.log.Warn("mark running", "node", ups[i].Node, "err", err)
		}
	}
}

// deliver sends node n's request; false when it did not reach the agent.
func (s *Service) deliver(ctx context.Context, sp *jobSpec, n jobs.Node) bool {
	env, err := s.request(ctx, sp, n)
	if err != nil {
		s.log.Error("build request", "node", n, "err", err)
		return false
	}
	if err := s.sender.Send(ctx, n.Name, env); err != nil {
		if !errors.Is(err, ErrNotConnected) {
			s.log.Warn("send request", "node", n, "err", err)
		}
		return false
	}
	return true
}

// runningRecord is node n once its request was delivered at now, and the event saying so.
func (s *Service) runningRecord(sp *jobSpec, n jobs.Node, now time.Time) (jobs.Node, jobs.Event, error) {
	n, err := jobs.ApplyNode(n, jobs.NodeSend, now)
	if err != nil {
		return n, jobs.Event{}, err
	}
	msg := fmt.Sprintf("Started %s on %s", sp.describe(), n.Name)
	n.Message = msg
	n.DueAt = s.runningDue(sp, now)
	ev := jobs.Event{Type: jobs.EventNodeRunning, Timestamp: now, Node: n.Name, Message: msg,
		Detail: mustJSON(map[string]any{"noop": sp.noop})}
	return n, ev, nil
}

// timeoutDeadline is when a node of sp that started running at started is past its job's
// timeout plus TimeoutGrace (the server ends it failed); nil for a job without a timeout.
func (s *Service) timeoutDeadline(sp *jobSpec, started time.Time) *time.Time {
	if sp.job.Timeout <= 0 {
		return nil
	}
	t := started.Add(time.Duration(sp.job.Timeout)*time.Second + s.cfg.TimeoutGrace)
	return &t
}

// runningDue is when a node that started running at now is next due: its first status
// check, or its job's timeout (plus grace) when that comes first; nil when neither applies.
func (s *Service) runningDue(sp *jobSpec, now time.Time) *time.Time {
	due := s.timeoutDeadline(sp, now)
	if s.cfg.StatusInterval > 0 && !s.cfg.StatusScan {
		if t := now.Add(s.cfg.StatusInterval); due == nil || t.Before(*due) {
			due = &t
		}
	}
	return due
}

// endedRecord is node n moved by ev to a terminal state at now with its result, and the event.
func endedRecord(n jobs.Node, ev jobs.NodeEvent, result map[string]any, msg string, now time.Time) (jobs.Node, jobs.Event, error) {
	n, err := jobs.ApplyNode(n, ev, now)
	if err != nil {
		return n, jobs.Event{}, err
	}
	n.Result = mustJSON(result)
	n.Message = msg
	n.DueAt = nil
	detail := map[string]any{}
	if n.StartedAt != nil {
		detail["run-time"] = now.Sub(*n.StartedAt).Seconds()
	}
	e := jobs.Event{Type: jobs.NodeEventType(n.State), Timestamp: now, Node: n.Name, Message: msg, Detail: mustJSON(detail)}
	return n, e, nil
}

// endNode moves n to a terminal state with its result and the matching event.
func (s *Service) endNode(ctx context.Context, n jobs.Node, ev jobs.NodeEvent, result map[string]any, msg string) (jobs.Node, error) {
	end, e, err := endedRecord(n, ev, result, msg, s.clock())
	if err != nil {
		return n, err
	}
	end, err = s.store.UpdateJobNode(ctx, end, e)
	if err != nil {
		return n, fmt.Errorf("end node %s: %w", n.Name, err)
	}
	return end, nil
}

// request builds node n's PXP request from the job's spec, with fresh file URLs.
func (s *Service) request(ctx context.Context, sp *jobSpec, n jobs.Node) (protocol.Envelope, error) {
	job, p := sp.job, sp.payload
	if job.Type == jobs.TypeDeploy {
		return protocol.New(protocol.TypeNonBlockingRequest, protocol.AgentURI(n.Name), protocol.NonBlockingRequest{
			TransactionID: n.TransactionID, NotifyOutcome: true, Module: protocol.ModulePuppet, Action: protocol.ActionRun,
			Params: mustJSON(puppetrun.Input{Flags: p.Flags, Job: job.Name(), Timeout: job.Timeout}), NoAck: s.cfg.NoResultAck,
		})
	}
	raw, err := s.taskParams(ctx, sp, n)
	if err != nil {
		return protocol.Envelope{}, err
	}
	return protocol.New(protocol.TypeNonBlockingRequest, protocol.AgentURI(n.Name), protocol.NonBlockingRequest{
		TransactionID: n.TransactionID, NotifyOutcome: true, Module: protocol.ModuleTask, Action: protocol.ActionRun,
		Params: raw, NoAck: s.cfg.NoResultAck,
	})
}

// paramsReuse is how long a task job's encoded params (with their signed file URLs) serve
// its next requests: well under any URL lifetime, so that a URL an agent gets has most of
// its lifetime left.
const paramsReuse = 20 * time.Second

// taskParams returns the encoded params of node n's task request. They are the same for
// every node of a job, but for a per-transaction result upload URL (AWS): without one, they
// are encoded once and reused for a while.
func (s *Service) taskParams(ctx context.Context, sp *jobSpec, n jobs.Node) (json.RawMessage, error) {
	job, p := sp.job, sp.payload
	now := s.clock()
	if s.uploads == nil {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		if sp.params != nil && now.Sub(sp.paramsAt) < paramsReuse && !now.Before(sp.paramsAt) {
			return sp.params, nil
		}
	}
	params := protocol.TaskParams{Task: p.Task, Input: sp.input, Metadata: p.Metadata, Timeout: job.Timeout, Stream: s.streams(p)}
	if s.uploads != nil {
		url, key, err := s.uploads.ResultUploadURL(ctx, n.TransactionID)
		if err != nil {
			return nil, fmt.Errorf("job %d: result upload URL: %w", job.ID, err)
		}
		params.ResultUpload = &protocol.ResultUpload{URL: url, Key: key}
	}
	for _, f := range p.Files {
		uri, err := s.urls.FileURI(ctx, p.Environment, p.Module, f.Filename, f.SHA256)
		if err != nil {
			return nil, fmt.Errorf("job %d: sign %s: %w", job.ID, f.Filename, err)
		}
		params.Files = append(params.Files, protocol.TaskFile{Filename: f.Filename, URI: uri, SHA256: f.SHA256, SizeBytes: f.SizeBytes})
	}
	raw := mustJSON(params)
	if s.uploads == nil {
		sp.params, sp.paramsAt = raw, now
	}
	return raw, nil
}

// finishJob ends job jobID, whose nodes are all done (counts), unless it has ended already.
func (s *Service) finishJob(ctx context.Context, jobID int64, counts jobs.StateCounts) error {
	if dc, ok := s.store.(endChecker); ok {
		may, err := dc.MayEndJob(ctx, jobID)
		if err != nil {
			return fmt.Errorf("finish job %d: %w", jobID, err)
		}
		if !may {
			// Another caller is checking, or the counts ran ahead of the records: a write
			// of a record is on its way (its result's handler checks again once it is
			// written), or a process died between its counters' update and its record's
			// write (priorUpdater): the sweep recounts a job whose counts stay still
			// (recountIfQuiet) and asks its running nodes about their results.
			s.log.Debug("the job's counts say it is done; not ended here", "job_id", jobID, "node_states", counts)
			return nil
		}
	}
	for attempt := 0; ; attempt++ {
		job, err := s.store.GetJob(ctx, jobID)
		if err != nil {
			return fmt.Errorf("finish job %d: %w", jobID, err)
		}
		if job.State.Terminal() {
			return nil
		}
		ended, e, err := s.endedJob(job, counts, s.clock())
		if err != nil {
			return err
		}
		written, err := s.store.UpdateJob(ctx, ended, e)
		if errors.Is(err, store.ErrConflict) && attempt < maxRetries {
			continue
		}
		if err != nil {
			return fmt.Errorf("finish job %d: %w", jobID, err)
		}
		s.jobEndedHere(jobID)
		s.finished.wake(jobID, endedJob{written, counts})
		s.log.Info("job ended", "job", ended, "node_states", counts)
		return nil
	}
}

// endChecker is a store whose job counts can run ahead of its records (see priorUpdater):
// finishJob asks it before it ends a job on its counts, and ends it only when told that every
// node record of the job is done and that this caller is the one to end it.
type endChecker interface {
	MayEndJob(ctx context.Context, jobID int64) (bool, error)
}

// endedJob is job ended at now, every node done (counts), and the event saying so.
func (s *Service) endedJob(job jobs.Job, counts jobs.StateCounts, now time.Time) (jobs.Job, jobs.Event, error) {
	ev := jobs.JobComplete
	if job.Stop == jobs.StopErrorLimit {
		ev = jobs.JobAbort
	}
	ended, err := jobs.ApplyJob(job, ev, now)
	if err != nil {
		return job, jobs.Event{}, err
	}
	evType, verb := jobs.EventJobFinished, "finished"
	switch ended.State {
	case jobs.StateStopped:
		evType, verb = jobs.EventJobAborted, "stopped"
	case jobs.StateFailed:
		evType, verb = jobs.EventJobAborted, "failed (error limit reached)"
	}
	msg := fmt.Sprintf("Job %s %s: %s", ended.Name(), verb, summarize(counts))
	e := jobs.Event{Type: evType, Timestamp: now, Message: msg, Detail: mustJSON(map[string]any{"node_states": counts})}
	return ended, e, nil
}

func summarize(counts jobs.StateCounts) string {
	out := ""
	for _, st := range jobs.AllNodeStates {
		if c := counts[st]; c > 0 {
			if out != "" {
				out += ", "
			}
			out += fmt.Sprintf("%d %s", c, st)
		}
	}
	if out == "" {
		return "no nodes"
	}
	return out
}
