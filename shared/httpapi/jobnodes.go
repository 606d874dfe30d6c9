package httpapi

import (
	"net/http"
	"slices"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/orchestrator"
)

// GET /orchestrator/v1/jobs/{id}/nodes[?state=S][&limit=N][&offset=M]
//
// As PE's: the job's nodes in the order they were added (those in state S only, when given),
// from offset M (0-based), at most N of them (all when limit is absent or 0), with
// `pagination: {limit, offset, total}` (total: the nodes that match, before limit and offset;
// limit and offset as applied) and `next-events`, the start of the job's events after the
// newest one about any of its nodes, so that a client that reads pages and then follows the
// events misses no change.
//
// The store has no paginated read of a job's nodes (ListJobNodes returns them all), so the
// handler slices: a request costs one read of the job's records whatever the page. That read is
// bounded: a job targets at most orchestrator.MaxScopeNodes (20,000) nodes, and next-events
// needs every record's latest event anyway. The answer, which is what a browser parses and
// holds, is one page.

// maxNodesLimit caps limit: a job has no more nodes than this, so a larger limit means "all".
const maxNodesLimit = orchestrator.MaxScopeNodes

func (a *API) jobNodes(r *http.Request, _ principal) (any, int, error) {
	id, err := jobID(r)
	if err != nil {
		return nil, 0, err
	}
	q := r.URL.Query()
	state := q.Get("state")
	if state != "" && !slices.Contains(jobs.AllNodeStates, jobs.NodeState(state)) {
		return nil, 0, validation("unknown node state %q", state)
	}
	limit, err := intParam(r, "limit", 0, 0)
	if err != nil {
		return nil, 0, err
	}
	offset, err := intParam(r, "offset", 0, 0)
	if err != nil {
		return nil, 0, err
	}
	limit = min(limit, maxNodesLimit)
	nodes, err := a.orch.JobNodes(r.Context(), id)
	if err != nil {
		return nil, 0, err
	}
	// Events after the newest one about a node are job-level (job_stopping, job_finished, ...):
	// reading from there finds the next event id without reading the whole history.
	from := int64(1)
	for _, n := range nodes {
		from = max(from, n.LatestEventID)
	}
	evs, err := a.orch.Events(r.Context(), id, from, 0)
	if err != nil {
		return nil, 0, err
	}
	matched := nodes
	if state != "" {
		matched = slices.DeleteFunc(slices.Clone(nodes), func(n jobs.Node) bool { return string(n.State) != state })
	}
	page := matched[min(offset, len(matched)):]
	if limit > 0 {
		page = page[:min(limit, len(page))]
	}
	items := make([]nodeView, 0, len(page))
	for _, n := range page {
		items = append(items, newNodeView(n, a.clock()))
	}
	return map[string]any{
		"next-events": nextEvents(baseURL(r), id, evs, from),
		"items":       items,
		"pagination":  map[string]int{"limit": limit, "offset": offset, "total": len(matched)},
	}, http.StatusOK, nil
}
