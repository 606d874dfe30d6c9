package dynamo

import (
	"context"

	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

// The methods in this file serve the orchestrator's per-node-run path and the inventory's
// targeted writes on top of the items described in the package documentation. They read a
// job's whole item collection where the SQLite store reads an index; see doc.go, "Limits".

// JobCounts implements store.Store: a query of the job's node records, counted.
func (s *Store) JobCounts(ctx context.Context, jobID int64) (jobs.StateCounts, error) {
	nodes, err := s.ListJobNodes(ctx, jobID)
	if err != nil {
		return nil, fmt.Errorf("count job %d nodes: %w", jobID, err)
	}
	if len(nodes) == 0 {
		it, err := s.get(ctx, jobCountersKey(jobID))
		if err != nil {
			return nil, fmt.Errorf("count job %d nodes: %w", jobID, err)
		}
		if it == nil {
			return nil, fmt.Errorf("count job %d nodes: %w", jobID, store.ErrNotFound)
		}
	}
	return jobs.Counts(nodes), nil
}

// ListJobNodesInState implements store.Store: the job's node records, filtered.
func (s *Store) ListJobNodesInState(ctx context.Context, jobID int64, state jobs.NodeState, limit int) ([]jobs.Node, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("list job %d nodes in state %s: limit %d must be positive", jobID, state, limit)
	}
	nodes, err := s.ListJobNodes(ctx, jobID)
	if err != nil {
		return nil, fmt.Errorf("list job %d nodes in state %s: %w", jobID, state, err)
	}
	var out []jobs.Node
	for _, n := range nodes {
		if n.State == state {
			out = append(out, n)
			if len(out) == limit {
				break
			}
		}
	}
	return out, nil
}

// ClaimJobNodes implements store.Store. Each record is claimed by UpdateJobNode, conditional on
// the version read, so that concurrent claims never take the same record; the caps are
// checked against counts read under a mutex of this process, so they hold among the claims
// of one process.
func (s *Store) ClaimJobNodes(ctx context.Context, jobID int64, c store.Claim) ([]jobs.Node, error) {
	fail := func(err error) ([]jobs.Node, error) { return nil, fmt.Errorf("claim job %d nodes: %w", jobID, err) }
	if c.Limit <= 0 || c.Apply == nil {
		return fail(errors.New("a positive limit and an Apply function are required"))
	}
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	job, err := s.GetJob(ctx, jobID)
	if err != nil {
		return fail(err)
	}
	if job.State.Terminal() || job.Stop != "" {
		return nil, nil
	}
	nodes, err := s.ListJobNodes(ctx, jobID)
	if err != nil {
		return fail(err)
	}
	free := c.Limit
	if job.Concurrency > 0 {
		free = min(free, job.Concurrency-jobs.Counts(nodes).Active())
	}
	if c.GlobalCap > 0 && free > 0 {
		global, err := s.CountActiveNodes(ctx)
		if err != nil {
			return fail(err)
		}
		free = min(free, c.GlobalCap-global)
	}
	var out []jobs.Node
	for _, q := range nodes {
		if len(out) >= free {
			break
		}
		if q.State != jobs.NodeNew {
			continue
		}
		n, evs := c.Apply(q)
		if n.JobID != q.JobID || n.Name != q.Name || !n.State.Active() {
			return fail(fmt.Errorf("claim of %s made %s record %d/%s: want an active record of the same node", q.Name, n.State, n.JobID, n.Name))
		}
		n.Version = q.Version
		n, err := s.UpdateJobNode(ctx, n, evs...)
		if errors.Is(err, store.ErrConflict) {
			continue // another writer moved it first
		}
		if err != nil {
			return out, fmt.Errorf("claim job %d nodes: %w", jobID, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// UpdateJobNodes implements store.Store: UpdateJobNode for each.
func (s *Store) UpdateJobNodes(ctx context.Context, ups []store.NodeUpdate) ([]jobs.Node, []error) {
	out := make([]jobs.Node, len(ups))
	errs := make([]error, len(ups))
	for i, u := range ups {
		out[i], errs[i] = s.UpdateJobNode(ctx, u.Node, u.Events...)
	}
	return out, errs
}

// ListDueJobNodes implements store.Store: the node records of the unfinished jobs, filtered.
func (s *Store) ListDueJobNodes(ctx context.Context, now time.Time, limit int) ([]jobs.Node, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("list due job nodes: limit %d must be positive", limit)
	}
	refs, err := s.unfinishedJobs(ctx)
	if err != nil {
		return nil, fmt.Errorf("list due job nodes: %w", err)
	}
	var out []jobs.Node
	for _, r := range refs {
		nodes, err := s.ListJobNodes(ctx, r.id)
		if err != nil {
			return nil, fmt.Errorf("list due job nodes: %w", err)
		}
		for _, n := range nodes {
			if n.DueAt != nil && !n.DueAt.After(now) {
				out = append(out, n)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b jobs.Node) int { return a.DueAt.Compare(*b.DueAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// EnrolledNodes implements store.Store: BatchGetItem of the names' inventory items.
func (s *Store) EnrolledNodes(ctx context.Context, names []string) (map[string]bool, error) {
	keys := make([]item, 0, len(names))
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		keys = append(keys, key(pkNodes, n))
	}
	got, err := s.batchGet(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("look up nodes: %w", err)
	}
	out := make(map[string]bool, len(got))
	for _, it := range got {
		out[str(it[SortKey])] = true
	}
	return out, nil
}

// NodeNames implements store.Store.
func (s *Store) NodeNames(ctx context.Context) ([]string, error) {
	nodes, err := s.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Name
	}
	return out, nil
}

// updateInv reads node name, lets change edit it (false: nothing to write) and writes it on
// the version read, again when another write won.
func (s *Store) updateInv(ctx context.Context, name string, change func(*inventory.Node) bool) error {
	for attempt := 0; ; attempt++ {
		n, err := s.GetNode(ctx, name)
		if err != nil {
			return err
		}
		if !change(&n) {
			return nil
		}
		_, err = s.UpdateNode(ctx, n)
		if errors.Is(err, store.ErrConflict) && attempt+1 < s.maxAttempts {
			continue
		}
		return err
	}
}

// SetNodeFacts implements store.Store.
func (s *Store) SetNodeFacts(ctx context.Context, name string, facts []byte) error {
	err := s.updateInv(ctx, name, func(n *inventory.Node) bool {
		if string(n.Facts) == string(facts) {
			return false
		}
		n.Facts = facts
		return true
	})
	if err != nil {
		return fmt.Errorf("set facts of node %s: %w", name, err)
	}
	return nil
}

// FactValues implements store.Store: every node's facts, decoded.
func (s *Store) FactValues(ctx context.Context, path []string) (map[string]any, error) {
	nodes, err := s.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for _, n := range nodes {
		m, err := inventory.DecodeFacts(n.Facts)
		if err != nil {
			continue
		}
		if v, ok := inventory.FactAt(m, path); ok {
			out[n.Name] = v
		}
	}
	return out, nil
}

// MarkNodeConnected implements store.Store.
func (s *Store) MarkNodeConnected(ctx context.Context, name, broker, conn string, at time.Time) error {
	t := at.UTC()
	err := s.updateInv(ctx, name, func(n *inventory.Node) bool {
		n.Connected, n.Broker, n.Connection, n.ConnectedAt = true, broker, conn, &t
		return true
	})
	if err != nil {
		return fmt.Errorf("mark node %s connected: %w", name, err)
	}
	return nil
}

// MarkNodeDisconnected implements store.Store.
func (s *Store) MarkNodeDisconnected(ctx context.Context, name, conn string) error {
	err := s.updateInv(ctx, name, func(n *inventory.Node) bool {
		if !n.Connected || (conn != "" && n.Connection != conn) {
			return false
		}
		n.Connected = false
		return true
	})
	if err != nil {
		return fmt.Errorf("mark node %s disconnected: %w", name, err)
	}
	return nil
}

// MarkAllNodesDisconnected implements store.Store.
func (s *Store) MarkAllNodesDisconnected(ctx context.Context) error {
	nodes, err := s.ListNodes(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range nodes {
		if n.Connected {
			if err := s.MarkNodeDisconnected(ctx, n.Name, ""); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// CreateNodes implements store.Store: transactions of up to maxTxItems conditional puts (the
// name must not exist). When one fails, the nodes the earlier ones wrote are deleted again,
// so that none of them stays.
func (s *Store) CreateNodes(ctx context.Context, nodes []inventory.Node) error {
	fail := func(err error) error { return fmt.Errorf("create %d nodes: %w", len(nodes), err) }
	seen := make(map[string]bool, len(nodes))
	items := make([]item, 0, len(nodes))
	for _, n := range nodes {
		if n.Name == "" {
			return fail(errEmptyName)
		}
		if seen[n.Name] {
			return fail(fmt.Errorf("node %s given twice: %w", n.Name, store.ErrExists))
		}
		seen[n.Name] = true
		n.Version = 1
		it, err := invItem(n)
		if err != nil {
			return fail(err)
		}
		items = append(items, it)
	}
	var written []item
	for start := 0; start < len(items); start += maxTxItems {
		chunk := items[start:min(start+maxTxItems, len(items))]
		tx := make([]types.TransactWriteItem, len(chunk))
		for i, it := range chunk {
			var e expr
			tx[i] = s.txPut(it, e.notExists(PartitionKey), &e)
		}
		err := s.transactRetry(ctx, tx)
		if err != nil {
			if len(written) > 0 {
				reqs := make([]types.WriteRequest, len(written))
				for i, it := range written {
					reqs[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key(str(it[PartitionKey]), str(it[SortKey]))}}
				}
				if derr := s.batchWrite(context.WithoutCancel(ctx), reqs); derr != nil {
					s.log.Error("undo a partial node enrolment", "nodes", len(written), "err", derr)
				}
			}
			if tc, ok := canceled(err); ok && slices.Contains(tc.codes, "ConditionalCheckFailed") {
				return fail(store.ErrExists)
			}
			return fail(err)
		}
		written = append(written, chunk...)
	}
	return nil
}

// CreateJobClaiming implements store.Store: CreateJob, then ClaimJobNodes.
func (s *Store) CreateJobClaiming(ctx context.Context, j jobs.Job, nodes []jobs.Node, events []jobs.Event, c store.Claim) (jobs.Job, []jobs.Node, error) {
	if c.Limit <= 0 || c.Apply == nil {
		return jobs.Job{}, nil, errors.New("create job: a claim needs a positive limit and an Apply function")
	}
	created, err := s.CreateJob(ctx, j, nodes, events)
	if err != nil {
		return created, nil, err
	}
	claimed, err := s.ClaimJobNodes(ctx, created.ID, c)
	if err != nil {
		return created, nil, fmt.Errorf("create job %d: %w", created.ID, err)
	}
	return created, claimed, nil
}

// UpdateJobNodeAndJob implements store.Store in two writes: the record, then the job.
func (s *Store) UpdateJobNodeAndJob(ctx context.Context, n jobs.Node, nodeEvents []jobs.Event, j jobs.Job, jobEvents []jobs.Event) (jobs.Node, jobs.Job, error) {
	out, err := s.UpdateJobNode(ctx, n, nodeEvents...)
	if err != nil {
		return jobs.Node{}, jobs.Job{}, err
	}
	updated, err := s.UpdateJob(ctx, j, jobEvents...)
	if err != nil {
		return out, jobs.Job{}, err
	}
	return out, updated, nil
}
