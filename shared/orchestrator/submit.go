package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/catalog"
	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/tasks"
)

// Scope says which nodes a job targets. Exactly one field is set.
type Scope struct {
	Nodes     []string `json:"nodes,omitempty"`
	Query     string   `json:"query,omitempty"`
	NodeGroup string   `json:"node_group,omitempty"`
}

// Common holds what every command request has.
type Common struct {
	Environment string
	Scope       Scope
	Description string
	Noop        bool
	Concurrency int // 0: unlimited
	Timeout     int // seconds per node; 0: none
	MaxErrors   MaxErrors
	// IdempotencyKey, when set, makes a repeated request return the job the first one made.
	IdempotencyKey string
	// Permit limits the nodes the caller may target (RBAC); nil allows every node.
	Permit *Permit
}

// Permit is the set of node scopes a caller holds for a request: "*" (every node),
// "group:NAME" or "query:QUERY". Nodes outside them are left out of the job, as PE does; if
// none remain the request is refused with not-permitted.
type Permit struct {
	Scopes []string
	// What names the permission in error messages, e.g. "run task demo::hello".
	What string
}

// MaxErrors is an error budget, SSM-style: Count errors (or Percent of the job's nodes,
// rounded down) are allowed; one more stops the rollout.
type MaxErrors struct {
	Set       bool
	Count     int
	Percent   int
	IsPercent bool
}

// limit is the number of failed or errored nodes that stops a job of n nodes (0: none).
func (m MaxErrors) limit(n int) int {
	if !m.Set {
		return 0
	}
	allowed := m.Count
	if m.IsPercent {
		allowed = m.Percent * n / 100
	}
	return allowed + 1
}

// TaskRequest is a request to run a task (POST /command/task).
type TaskRequest struct {
	Common
	Task   string
	Params map[string]any
	// Stream asks for the task's live output (output.go).
	Stream bool
}

// MaxTimeout bounds a job's per-node timeout (seconds).
const MaxTimeout = 7 * 24 * 3600

// payload is the sealed dispatch input of a job: what is sent to every node. Task jobs fill
// the task fields, deploy jobs Flags.
type payload struct {
	Task        string          `json:"task,omitempty"`
	Environment string          `json:"environment"`
	Module      string          `json:"module,omitempty"`
	Input       map[string]any  `json:"input,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	Files       []payloadFile   `json:"files,omitempty"`
	Flags       []string        `json:"flags,omitempty"`
	Stream      bool            `json:"stream,omitempty"` // live output asked for (output.go)
}

type payloadFile struct {
	Filename  string `json:"filename"`
	SHA256    string `json:"sha256"`
	SizeBytes int64  `json:"size_bytes"`
}

// taskOptions is the job's public, redacted options record (PE's job "options").
type taskOptions struct {
	Description string         `json:"description"`
	Environment string         `json:"environment"`
	Noop        bool           `json:"noop"`
	Scope       Scope          `json:"scope"`
	Task        string         `json:"task"`
	Params      map[string]any `json:"params"`
	Sensitive   []string       `json:"sensitive"`
	Transport   string         `json:"transport"`
	Concurrency *int           `json:"concurrency"`
	Timeout     *int           `json:"timeout"`
	// Unenrolled: what the scope's query matched in PuppetDB that the job leaves out.
	Unenrolled *UnenrolledMatches `json:"unenrolled_matches,omitempty"`
}

// SubmitTask validates a task request, records the job and its nodes, and kicks dispatch.
// Nothing is written unless the whole request is valid.
func (s *Service) SubmitTask(ctx context.Context, req TaskRequest, owner jobs.Owner) (jobs.Job, error) {
	if req.Environment == "" {
		req.Environment = "production"
	}
	if job, found, err := s.byIdempotencyKey(ctx, owner, req.IdempotencyKey); found || err != nil {
		return job, err
	}
	if req.Task == "" {
		return jobs.Job{}, newError(KindValidation, map[string]any{"field": "task"}, "task is required")
	}
	if !tasks.ValidTaskName(req.Task) {
		return jobs.Job{}, newError(KindValidation, map[string]any{"task": req.Task}, "invalid task name %q: want module::task or module", req.Task)
	}
	if err := req.Common.validate(); err != nil {
		return jobs.Job{}, err
	}
	names, unenrolled, err := s.resolveTargets(ctx, req.Scope)
	if err != nil {
		return jobs.Job{}, err
	}
	if names, err = s.permitted(ctx, names, req.Permit); err != nil {
		return jobs.Job{}, err
	}
	task, err := s.catalog.Task(ctx, req.Environment, req.Task)
	switch {
	case errors.Is(err, catalog.ErrUnknownEnvironment):
		return jobs.Job{}, newError(KindUnknownEnvironment, map[string]any{"environment": req.Environment}, "Unknown environment %s", req.Environment)
	case errors.Is(err, catalog.ErrUnknownTask):
		return jobs.Job{}, newError(KindUnknownTask, map[string]any{"task": req.Task, "environment": req.Environment}, "Unknown task %s in environment %s", req.Task, req.Environment)
	case errors.Is(err, catalog.ErrInvalidTask):
		return jobs.Job{}, &Error{Kind: KindValidation, Msg: fmt.Sprintf("Task %s cannot be run: %v", req.Task, err),
			Details: map[string]any{"task": req.Task, "environment": req.Environment}}
	case err != nil:
		return jobs.Job{}, fmt.Errorf("load task %s: %w", req.Task, err)
	}
	if req.Noop && !task.Metadata.SupportsNoop {
		return jobs.Job{}, newError(KindValidation, map[string]any{"task": task.Name}, "Task %s does not support noop", task.Name)
	}
	if req.Params == nil {
		req.Params = map[string]any{}
	}
	params, err := tasks.ValidateParams(task.Metadata, req.Params)
	if err != nil {
		var pe *tasks.ParamsError
		if errors.As(err, &pe) {
			return jobs.Job{}, &Error{Kind: KindValidation, Msg: fmt.Sprintf("Task %s: parameters do not match: %s", task.Name, pe.Error()),
				Details: map[string]any{"task": task.Name, "problems": pe.Problems}}
		}
		return jobs.Job{}, fmt.Errorf("validate params: %w", err)
	}

	input := make(map[string]any, len(params)+1)
	for k, v := range params {
		input[k] = v
	}
	if req.Noop {
		input["_noop"] = true
	}
	p := payload{Task: task.Name, Environment: req.Environment, Module: task.Module, Input: input, Metadata: task.RawMetadata, Stream: req.Stream}
	if len(p.Metadata) == 0 {
		p.Metadata = mustJSON(task.Metadata)
	}
	for _, f := range task.Files {
		p.Files = append(p.Files, payloadFile{Filename: f.Filename, SHA256: f.SHA256, SizeBytes: f.SizeBytes})
	}
	plain, err := json.Marshal(p)
	if err != nil {
		return jobs.Job{}, fmt.Errorf("encode payload: %w", err)
	}
	sealed, err := s.sealer.Seal(plain)
	if err != nil {
		return jobs.Job{}, fmt.Errorf("seal payload: %w", err)
	}
	opts := taskOptions{Description: req.Description, Environment: req.Environment, Noop: req.Noop, Scope: req.Scope,
		Task: task.Name, Params: tasks.Redact(task.Metadata, params), Sensitive: tasks.SensitiveNames(task.Metadata), Transport: "pxp", Unenrolled: unenrolled}
	if opts.Sensitive == nil {
		opts.Sensitive = []string{}
	}
	if req.Concurrency > 0 {
		opts.Concurrency = &req.Concurrency
	}
	if req.Timeout > 0 {
		opts.Timeout = &req.Timeout
	}
	job := jobs.Job{Type: jobs.TypeTask, Task: task.Name, Options: mustJSON(opts), Payload: sealed}
	return s.createJob(ctx, req.Common, owner, job, names)
}

// permitted keeps the names the permit covers, in order.
func (s *Service) permitted(ctx context.Context, names []string, p *Permit) ([]string, error) {
	if p == nil || slices.Contains(p.Scopes, "*") {
		return names, nil
	}
	allowed := map[string]bool{}
	for _, scope := range p.Scopes {
		var members []string
		var err error
		switch {
		case strings.HasPrefix(scope, "group:"):
			members, err = s.resolveExtendedScope(ctx, Scope{NodeGroup: strings.TrimPrefix(scope, "group:")})
		case strings.HasPrefix(scope, "query:"):
			members, err = s.resolveQuery(ctx, strings.TrimPrefix(scope, "query:"))
		}
		if err != nil {
			if e, ok := AsError(err); ok && e.Kind != KindPuppetDBError {
				continue // a scope naming a deleted group or matching nothing grants nothing
			}
			return nil, err
		}
		for _, m := range members {
			allowed[m] = true
		}
	}
	var out []string
	for _, n := range names {
		if allowed[n] {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, newError(KindNotPermitted, map[string]any{"permission": p.What},
			"You are not permitted to %s on any of the targeted nodes", p.What)
	}
	return out, nil
}

func (c Common) validate() error {
	if c.Concurrency < 0 {
		return newError(KindValidation, map[string]any{"field": "concurrency"}, "concurrency must be an integer >= 1")
	}
	if c.Timeout < 0 || c.Timeout > MaxTimeout {
		return newError(KindValidation, map[string]any{"field": "timeout"}, "timeout must be between 1 and %d seconds", MaxTimeout)
	}
	if c.MaxErrors.Set && (c.MaxErrors.Count < 0 || c.MaxErrors.Percent < 0 || c.MaxErrors.Percent > 100) {
		return newError(KindValidation, map[string]any{"field": "max_errors"}, "max_errors must be a count >= 0 or a percentage from 0%% to 100%%")
	}
	if len(c.IdempotencyKey) > 255 {
		return newError(KindValidation, map[string]any{"field": "Idempotency-Key"}, "the idempotency key is longer than 255 characters")
	}
	return nil
}

func (s *Service) byIdempotencyKey(ctx context.Context, owner jobs.Owner, key string) (jobs.Job, bool, error) {
	if key == "" {
		return jobs.Job{}, false, nil
	}
	job, err := s.store.GetJobByIdempotencyKey(ctx, owner.Login, key)
	if errors.Is(err, store.ErrNotFound) {
		return jobs.Job{}, false, nil
	}
	if err != nil {
		return jobs.Job{}, false, fmt.Errorf("idempotency key: %w", err)
	}
	return job, true, nil
}

// createJob fills in what every job has, records it with its nodes, and kicks dispatch.
func (s *Service) createJob(ctx context.Context, c Common, owner jobs.Owner, job jobs.Job, names []string) (jobs.Job, error) {
	now := s.clock()
	job.Environment, job.Description, job.Owner = c.Environment, c.Description, owner
	job.Concurrency, job.Timeout, job.NodeCount = c.Concurrency, c.Timeout, len(names)
	job.MaxErrors, job.IdempotencyKey = c.MaxErrors.limit(len(names)), c.IdempotencyKey
	job = jobs.NewJob(job, now)
	// Dispatch begins as soon as the job is recorded: record it running already, which saves
	// the dispatcher a write of its own (the status history still shows it ready first).
	started, err := jobs.ApplyJob(job, jobs.JobStart, now)
	if err != nil {
		return jobs.Job{}, err
	}
	job = started
	nodes, events, err := s.initialNodes(ctx, names, now)
	if err != nil {
		return jobs.Job{}, err
	}
	created, err := s.create(ctx, job, nodes, events)
	if errors.Is(err, store.ErrExists) && c.IdempotencyKey != "" {
		if prior, found, err := s.byIdempotencyKey(ctx, owner, c.IdempotencyKey); found || err != nil {
			return prior, err
		}
	}
	if err != nil {
		return jobs.Job{}, fmt.Errorf("create job: %w", err)
	}
	s.log.Info("job created", "job", created, "type", created.Type, "task", created.Task, "nodes", len(names), "owner", owner.Login)
	s.dispatchSoon(ctx, created.ID)
	s.charge(ctx, created.ID)
	return created, nil
}

// create records the job. When this process holds the agents' connections, the job's first
// nodes are claimed in the same write (those whose agent is connected recorded running),
// and handed to the dispatch that follows, which sends them their requests. With a remote
// handoff (WithHandoff), every node the job's limits allow is claimed, against a snapshot of
// which agents are connected.
func (s *Service) create(ctx context.Context, job jobs.Job, nodes []jobs.Node, events []jobs.Event) (jobs.Job, error) {
	if s.presence == nil && s.remote == nil {
		return s.store.CreateJob(ctx, job, nodes, events)
	}
	sp, err := s.newSpec(job)
	if err != nil {
		return jobs.Job{}, err
	}
	global := max(s.cfg.TaskConcurrency, 0)
	limit, presence := s.cfg.ClaimBatch, s.presence
	if s.remote != nil {
		names := make([]string, len(nodes))
		for i, n := range nodes {
			names[i] = n.Name
		}
		connected, err := s.remote.connected(ctx, names)
		if err != nil {
			return jobs.Job{}, fmt.Errorf("look up connected agents: %w", err)
		}
		limit, presence = max(len(nodes), 1), snapshot(connected)
	}
	now := s.clock()
	created, claimed, err := s.store.CreateJobClaiming(ctx, job, nodes, events, store.Claim{Limit: limit, GlobalCap: global,
		Apply: func(n jobs.Node) (jobs.Node, []jobs.Event) { return s.claimedRecord(sp, presence, n, now) }})
	if err != nil {
		return created, err
	}
	sp.job = created
	s.specs.put(sp)
	s.handoff.Store(created.ID, handoff{job: created, claimed: claimed})
	return created, nil
}

func (s *Service) dispatchSoon(ctx context.Context, jobID int64) {
	if s.remote != nil {
		h, ok := s.handoff.LoadAndDelete(jobID)
		if !ok {
			return
		}
		if err := s.remote.handoff(ctx, h.(handoff).job, h.(handoff).claimed); err != nil {
			// The claimed nodes are due for a status check (runningRecord), which sends
			// what never went out; the sweep moves the rest of the job on.
			s.log.Error("hand off dispatch", "job_id", jobID, "err", err)
		}
		return
	}
	if s.kick != nil {
		s.kick(jobID)
		return
	}
	if err := s.Dispatch(ctx, jobID); err != nil {
		s.log.Error("dispatch", "job_id", jobID, "err", err)
	}
}

// MaxScopeNodes caps the nodes one job targets: a scope that names more, or whose query or
// node group resolves to more, is refused. Twice the 10,000 agents one baton serve is built
// to hold.
const MaxScopeNodes = 20000

func scopeTooLarge(n int, how string) error {
	return newError(KindValidation, map[string]any{"field": "scope", "limit": MaxScopeNodes, "count": n},
		"The scope %s %d nodes; a job may target at most %d: split it into several jobs", how, n, MaxScopeNodes)
}

// resolveScope turns a scope into a de-duplicated list of node names (in the order given),
// in time linear in the scope's size.
func (s *Service) resolveScope(ctx context.Context, sc Scope) ([]string, error) {
	set := 0
	if sc.Nodes != nil {
		set++
	}
	if sc.Query != "" {
		set++
	}
	if sc.NodeGroup != "" {
		set++
	}
	if set != 1 {
		return nil, newError(KindValidation, map[string]any{"field": "scope"}, "scope must have exactly one of nodes, query or node_group")
	}
	if sc.Query != "" || sc.NodeGroup != "" {
		names, err := s.resolveExtendedScope(ctx, sc)
		if err == nil && len(names) > MaxScopeNodes {
			return nil, scopeTooLarge(len(names), "resolves to")
		}
		return names, err
	}
	// Checked before any work per name, and before the caller's permissions are: the work
	// of refusing is bounded too.
	if len(sc.Nodes) > MaxScopeNodes {
		return nil, scopeTooLarge(len(sc.Nodes), "names")
	}
	names := make([]string, 0, len(sc.Nodes))
	seen := make(map[string]bool, len(sc.Nodes))
	for _, n := range sc.Nodes {
		n = strings.TrimSpace(n)
		if !auth.ValidNodeName(n) {
			return nil, newError(KindValidation, map[string]any{"node": n}, "invalid node name %q", n)
		}
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, newError(KindEmptyTarget, map[string]any{"scope": sc}, "The scope resolves to no nodes")
	}
	return names, nil
}

// initialNodes builds the job's node records; nodes that are not enrolled end errored at once.
// The inventory is asked about all names in one call.
func (s *Service) initialNodes(ctx context.Context, names []string, now time.Time) ([]jobs.Node, []jobs.Event, error) {
	enrolled, err := s.store.EnrolledNodes(ctx, names)
	if err != nil {
		return nil, nil, fmt.Errorf("look up nodes: %w", err)
	}
	nodes := make([]jobs.Node, 0, len(names))
	var events []jobs.Event
	for _, name := range names {
		n := jobs.Node{Name: name, State: jobs.NodeNew}
		if !enrolled[name] {
			msg := fmt.Sprintf("Node %s is not enrolled with this orchestrator", name)
			n, _ = jobs.ApplyNode(n, jobs.NodeError, now)
			n.Result = mustJSON(errorResult(KindUnknownNode, msg, map[string]any{"node": name}))
			n.Message = msg
			events = append(events, jobs.Event{Type: jobs.EventNodeErrored, Timestamp: now, Node: name, Message: msg, Detail: mustJSON(map[string]any{})})
		}
		nodes = append(nodes, n)
	}
	return nodes, events, nil
}

func errorResult(kind, msg string, details map[string]any) map[string]any {
	if details == nil {
		details = map[string]any{}
	}
	return map[string]any{"_error": map[string]any{"kind": kind, "msg": msg, "details": details}}
}
