package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/protocol"
	"github.com/baton-run/baton/shared/puppetrun"
	"github.com/baton-run/baton/shared/store"
)

// maxRetries bounds optimistic-concurrency retries of one update.
const maxRetries = 20

// Dispatch moves a job forward: it starts the job, gives free concurrency slots to queued
// nodes, sends requests to nodes whose agents are connected, and ends the job when every
// node is done. It is safe to call at any time and as often as wanted.
func (s *Service) Dispatch(ctx context.Context, jobID int64) error {
	defer s.lock(jobID)()
	defer s.charge(ctx, jobID)
	return s.dispatchLocked(ctx, jobID)
}

func (s *Service) dispatchLocked(ctx context.Context, jobID int64) error {
	for attempt := 0; ; attempt++ {
		err := s.dispatchOnce(ctx, jobID)
		if errors.Is(err, store.ErrConflict) && attempt < maxRetries {
			continue
		}
		return err
	}
}

func (s *Service) dispatchOnce(ctx context.Context, jobID int64) error {
	job, err := s.store.GetJob(ctx, jobID)
	if err != nil {
		return fmt.Errorf("dispatch job %d: %w", jobID, err)
	}
	if job.State.Terminal() {
		return nil
	}
	nodes, err := s.store.ListJobNodes(ctx, jobID)
	if err != nil {
		return fmt.Errorf("dispatch job %d: list nodes: %w", jobID, err)
	}
	now := s.clock()
	if job.State == jobs.StateNew || job.State == jobs.StateReady {
		if job, err = jobs.ApplyJob(job, jobs.JobStart, now); err != nil {
			return err
		}
		if job, err = s.store.UpdateJob(ctx, job); err != nil {
			return fmt.Errorf("start job %d: %w", jobID, err)
		}
	}
	failures := 0
	for _, n := range nodes {
		if n.State == jobs.NodeFailed || n.State == jobs.NodeErrored {
			failures++
		}
	}
	limitReached := job.MaxErrors > 0 && failures >= job.MaxErrors
	switch {
	case job.Stop != "" || limitReached:
		reason := "Skipped on %s: the job was stopped before it started"
		if job.Stop == "" {
			reason = "Skipped on %s: " + fmt.Sprintf("the error limit was reached (%d failed or errored)", failures)
		}
		for i, n := range nodes {
			if n.State == jobs.NodeNew || (n.State == jobs.NodeReady && n.StartedAt == nil) {
				msg := fmt.Sprintf(reason, n.Name)
				if nodes[i], err = s.endNode(ctx, n, jobs.NodeSkip, nil, msg); err != nil {
					return err
				}
			}
		}
	default:
		if err := s.claim(ctx, job, nodes, now); err != nil {
			return err
		}
	}
	for i, n := range nodes {
		if n.State == jobs.NodeReady {
			if nodes[i], err = s.send(ctx, job, n); err != nil {
				return err
			}
		}
	}
	if jobs.AllTerminal(nodes) {
		if limitReached {
			return s.finishJob(ctx, job, nodes, jobs.JobAbort)
		}
		return s.finishJob(ctx, job, nodes, jobs.JobComplete)
	}
	return nil
}

// claim gives free slots — within the job's concurrency and the server-wide cap on running
// actions — to queued nodes, in order.
func (s *Service) claim(ctx context.Context, job jobs.Job, nodes []jobs.Node, now time.Time) error {
	active := 0
	queued := 0
	for _, n := range nodes {
		if n.State.Active() {
			active++
		}
		if n.State == jobs.NodeNew {
			queued++
		}
	}
	if queued == 0 {
		return nil
	}
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	global, err := s.store.CountActiveNodes(ctx)
	if err != nil {
		return fmt.Errorf("count running actions: %w", err)
	}
	for i, n := range nodes {
		if n.State != jobs.NodeNew {
			continue
		}
		if job.Concurrency > 0 && active >= job.Concurrency {
			break
		}
		if s.cfg.TaskConcurrency > 0 && global >= s.cfg.TaskConcurrency {
			break
		}
		n.TransactionID = protocol.NewID()
		if n, err = jobs.ApplyNode(n, jobs.NodeClaim, now); err != nil {
			return err
		}
		if nodes[i], err = s.store.UpdateJobNode(ctx, n); err != nil {
			return fmt.Errorf("claim node %s: %w", n.Name, err)
		}
		active++
		global++
	}
	return nil
}

// send delivers node n's request; a node whose agent is not connected stays ready.
func (s *Service) send(ctx context.Context, job jobs.Job, n jobs.Node) (jobs.Node, error) {
	env, err := s.request(ctx, job, n)
	if err != nil {
		return n, err
	}
	if err := s.sender.Send(ctx, n.Name, env); err != nil {
		if !errors.Is(err, ErrNotConnected) {
			s.log.Warn("send request", "node", n, "err", err)
		}
		return n, nil
	}
	if n.State != jobs.NodeReady {
		return n, nil // a re-send of a running node's request
	}
	return s.markRunning(ctx, job, n)
}

func (s *Service) markRunning(ctx context.Context, job jobs.Job, n jobs.Node) (jobs.Node, error) {
	now := s.clock()
	n, err := jobs.ApplyNode(n, jobs.NodeSend, now)
	if err != nil {
		return n, err
	}
	var noop bool
	var opts struct {
		Noop bool   `json:"noop"`
		Task string `json:"task"`
	}
	if json.Unmarshal(job.Options, &opts) == nil {
		noop = opts.Noop
	}
	msg := fmt.Sprintf("Started %s on %s", describe(job, opts.Task), n.Name)
	n.Message = msg
	ev := jobs.Event{Type: jobs.EventNodeRunning, Timestamp: now, Node: n.Name, Message: msg,
		Detail: mustJSON(map[string]any{"noop": noop})}
	n, err = s.store.UpdateJobNode(ctx, n, ev)
	if err != nil {
		return n, fmt.Errorf("mark %s running: %w", n.Name, err)
	}
	return n, nil
}

func describe(job jobs.Job, task string) string {
	if job.Type == jobs.TypeDeploy {
		return "puppet run"
	}
	return "task " + task
}

// request builds node n's PXP request from the job's sealed payload, with fresh file URLs.
func (s *Service) request(ctx context.Context, job jobs.Job, n jobs.Node) (protocol.Envelope, error) {
	plain, err := s.sealer.Open(job.Payload)
	if err != nil {
		return protocol.Envelope{}, fmt.Errorf("job %d: open payload: %w", job.ID, err)
	}
	var p payload
	if err := json.Unmarshal(plain, &p); err != nil {
		return protocol.Envelope{}, fmt.Errorf("job %d: decode payload: %w", job.ID, err)
	}
	if job.Type == jobs.TypeDeploy {
		if p.Flags == nil {
			p.Flags = []string{} // pxp-module-puppet requires the list, even empty
		}
		return protocol.New(protocol.TypeNonBlockingRequest, protocol.AgentURI(n.Name), protocol.NonBlockingRequest{
			TransactionID: n.TransactionID, NotifyOutcome: true, Module: protocol.ModulePuppet, Action: protocol.ActionRun,
			Params: mustJSON(puppetrun.Input{Flags: p.Flags, Job: job.Name(), Timeout: job.Timeout}),
		})
	}
	input, err := json.Marshal(p.Input)
	if err != nil {
		return protocol.Envelope{}, fmt.Errorf("job %d: encode input: %w", job.ID, err)
	}
	params := protocol.TaskParams{Task: p.Task, Input: input, Metadata: p.Metadata, Timeout: job.Timeout}
	if s.uploads != nil {
		url, key, err := s.uploads.ResultUploadURL(ctx, n.TransactionID)
		if err != nil {
			return protocol.Envelope{}, fmt.Errorf("job %d: result upload URL: %w", job.ID, err)
		}
		params.ResultUpload = &protocol.ResultUpload{URL: url, Key: key}
	}
	for _, f := range p.Files {
		uri, err := s.urls.FileURI(ctx, p.Environment, p.Module, f.Filename, f.SHA256)
		if err != nil {
			return protocol.Envelope{}, fmt.Errorf("job %d: sign %s: %w", job.ID, f.Filename, err)
		}
		params.Files = append(params.Files, protocol.TaskFile{Filename: f.Filename, URI: uri, SHA256: f.SHA256, SizeBytes: f.SizeBytes})
	}
	return protocol.New(protocol.TypeNonBlockingRequest, protocol.AgentURI(n.Name), protocol.NonBlockingRequest{
		TransactionID: n.TransactionID, NotifyOutcome: true, Module: protocol.ModuleTask, Action: protocol.ActionRun,
		Params: mustJSON(params),
	})
}

// finishJob ends a job whose nodes are all done.
func (s *Service) finishJob(ctx context.Context, job jobs.Job, nodes []jobs.Node, ev jobs.JobEvent) error {
	now := s.clock()
	job, err := jobs.ApplyJob(job, ev, now)
	if err != nil {
		return err
	}
	counts := jobs.Counts(nodes)
	evType, verb := jobs.EventJobFinished, "finished"
	switch job.State {
	case jobs.StateStopped:
		evType, verb = jobs.EventJobAborted, "stopped"
	case jobs.StateFailed:
		evType, verb = jobs.EventJobAborted, "failed (error limit reached)"
	}
	msg := fmt.Sprintf("Job %s %s: %s", job.Name(), verb, summarize(counts))
	e := jobs.Event{Type: evType, Timestamp: now, Message: msg, Detail: mustJSON(map[string]any{"node_states": counts})}
	if _, err := s.store.UpdateJob(ctx, job, e); err != nil {
		return fmt.Errorf("finish job %d: %w", job.ID, err)
	}
	s.log.Info("job ended", "job", job, "node_states", counts)
	return nil
}

func summarize(counts map[jobs.NodeState]int) string {
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
