package orchestrator

import (
	"context"
	"errors"
	"fmt"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/usage"
)

func unknownJob(id int64, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Kind: KindUnknownJob, Msg: fmt.Sprintf("No job exists with id %d", id), Details: map[string]any{"job": fmt.Sprint(id)}, Err: err}
	}
	return fmt.Errorf("job %d: %w", id, err)
}

// Job returns a job; an unknown id is an *Error of kind unknown-job.
func (s *Service) Job(ctx context.Context, id int64) (jobs.Job, error) {
	j, err := s.store.GetJob(ctx, id)
	if err != nil {
		return j, unknownJob(id, err)
	}
	return j, nil
}

// Jobs lists jobs.
func (s *Service) Jobs(ctx context.Context, q store.JobQuery) ([]jobs.Job, int, error) {
	return s.store.ListJobs(ctx, q)
}

// JobNodes returns a job's nodes.
func (s *Service) JobNodes(ctx context.Context, id int64) ([]jobs.Node, error) {
	if _, err := s.Job(ctx, id); err != nil {
		return nil, err
	}
	return s.store.ListJobNodes(ctx, id)
}

// JobCounts returns how many of a job's nodes are in each state.
func (s *Service) JobCounts(ctx context.Context, id int64) (jobs.StateCounts, error) {
	c, err := s.store.JobCounts(ctx, id)
	if err != nil {
		return nil, unknownJob(id, err)
	}
	return c, nil
}

// Events returns up to limit events of a job from id start on.
func (s *Service) Events(ctx context.Context, id, start int64, limit int) ([]jobs.Event, error) {
	evs, err := s.store.ListEvents(ctx, id, start, limit)
	if err != nil {
		return nil, unknownJob(id, err)
	}
	return evs, nil
}

// Nodes returns the inventory.
func (s *Service) Nodes(ctx context.Context) ([]inventory.Node, error) { return s.store.ListNodes(ctx) }

// Node returns one inventory record; an unknown node is an *Error of kind unknown-node.
func (s *Service) Node(ctx context.Context, name string) (inventory.Node, error) {
	n, err := s.store.GetNode(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return n, &Error{Kind: KindUnknownNode, Msg: fmt.Sprintf("Unknown node %s", name), Details: map[string]any{"node": name}, Err: err}
	}
	return n, err
}

// JobUsage returns what a job caused in a metered deployment (Config.Metered; zeros elsewhere,
// without a read).
func (s *Service) JobUsage(ctx context.Context, id int64) (store.Usage, error) {
	if !s.cfg.Metered {
		return store.Usage{}, nil
	}
	u, err := s.store.JobUsage(ctx, id)
	if err != nil {
		return u, unknownJob(id, err)
	}
	return u, nil
}

// charge adds the usage accumulated in ctx (by the metered AWS adapters) to job jobID. Without
// a usage tally in ctx — baton serve — it does nothing.
func (s *Service) charge(ctx context.Context, jobID int64) {
	u := usage.From(ctx).Take()
	if usage.Zero(u) {
		return
	}
	if err := s.store.AddJobUsage(ctx, jobID, u); err != nil {
		s.log.Warn("record job usage", "job_id", jobID, "err", err)
	}
}
