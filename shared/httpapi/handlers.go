package httpapi

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/catalog"
	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/puppetrun"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/tasks"
	"github.com/baton-run/baton/shared/usage"
)

func (a *API) root(r *http.Request, _ principal) (any, int, error) {
	base := baseURL(r)
	link := func(name, path string) map[string]string { return map[string]string{"name": name, "id": base + path} }
	return map[string]any{
		"info": map[string]any{"title": "Baton orchestrator API", "description": "PE orchestrator v1 compatible API served by Baton",
			"warning": "Baton implements a subset of the PE orchestrator API; see the README", "version": Version, "license": "Apache-2.0"},
		"status":      map[string]string{"name": "status", "id": base},
		"collections": []map[string]string{link("jobs", "/jobs"), link("inventory", "/inventory"), link("tasks", "/tasks")},
		"commands":    []map[string]string{link("deploy", "/command/deploy"), link("stop", "/command/stop"), link("task", "/command/task")},
	}, http.StatusOK, nil
}

type scopeBody struct {
	Nodes     []string `json:"nodes,omitempty"`
	Query     string   `json:"query,omitempty"`
	NodeGroup string   `json:"node_group,omitempty"`
}

// commonBody holds the keys every command request takes.
type commonBody struct {
	Environment string          `json:"environment"`
	Scope       *scopeBody      `json:"scope"`
	Description string          `json:"description"`
	Noop        bool            `json:"noop"`
	Concurrency *int            `json:"concurrency"`
	Timeout     *int            `json:"timeout"`
	MaxErrors   json.RawMessage `json:"max_errors"`
}

// IdempotencyKeyHeader names the header that makes a command request safe to repeat.
const IdempotencyKeyHeader = "Idempotency-Key"

func (c commonBody) common(r *http.Request) (orchestrator.Common, error) {
	out := orchestrator.Common{Environment: c.Environment, Description: c.Description, Noop: c.Noop,
		IdempotencyKey: r.Header.Get(IdempotencyKeyHeader)}
	if c.Scope == nil {
		return out, validation("scope is required")
	}
	out.Scope = orchestrator.Scope{Nodes: c.Scope.Nodes, Query: c.Scope.Query, NodeGroup: c.Scope.NodeGroup}
	if c.Scope.Nodes == nil && c.Scope.Query == "" && c.Scope.NodeGroup == "" {
		out.Scope.Nodes = []string{} // {} and {"nodes":[]} both mean: no nodes
	}
	if c.Concurrency != nil {
		if *c.Concurrency < 1 {
			return out, validation("concurrency must be an integer >= 1")
		}
		out.Concurrency = *c.Concurrency
	}
	if c.Timeout != nil {
		if *c.Timeout < 1 {
			return out, validation("timeout must be an integer number of seconds >= 1")
		}
		out.Timeout = *c.Timeout
	}
	if len(c.MaxErrors) > 0 && string(c.MaxErrors) != "null" {
		m, err := parseMaxErrors(c.MaxErrors)
		if err != nil {
			return out, err
		}
		out.MaxErrors = m
	}
	return out, nil
}

// parseMaxErrors reads max_errors: a count (10 or "10") or a percentage ("10%").
func parseMaxErrors(raw json.RawMessage) (orchestrator.MaxErrors, error) {
	bad := validation("max_errors must be a count >= 0 (10) or a percentage from 0%% to 100%% (\"10%%\"), got %s", raw)
	var s string
	if json.Unmarshal(raw, &s) != nil {
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			return orchestrator.MaxErrors{}, bad
		}
		s = n.String()
	}
	pct := strings.HasSuffix(s, "%")
	v, err := strconv.Atoi(strings.TrimSuffix(s, "%"))
	if err != nil || v < 0 || (pct && v > 100) {
		return orchestrator.MaxErrors{}, bad
	}
	if pct {
		return orchestrator.MaxErrors{Set: true, Percent: v, IsPercent: true}, nil
	}
	return orchestrator.MaxErrors{Set: true, Count: v}, nil
}

type taskCommand struct {
	commonBody
	Task   string         `json:"task"`
	Params map[string]any `json:"params"`
	Stream bool           `json:"stream"` // Baton: live output (output.go)
}

func jobRef(r *http.Request, name string) map[string]any {
	return map[string]any{"job": map[string]string{"id": baseURL(r) + "/jobs/" + name, "name": name}}
}

func (a *API) commandTask(r *http.Request, p principal) (any, int, error) {
	var c taskCommand
	if err := decode(r, &c); err != nil {
		return nil, 0, err
	}
	common, err := c.common(r)
	if err != nil {
		return nil, 0, err
	}
	task := c.Task
	if mod, name, err := tasks.SplitTaskName(task); err == nil && name == "init" {
		task = mod
	}
	scopes := p.Scopes(auth.ActionTasksRun, task)
	if len(scopes) == 0 {
		return nil, 0, notPermitted("You are not permitted to run task %s", c.Task)
	}
	common.Permit = &orchestrator.Permit{Scopes: scopes, What: "run task " + c.Task}
	job, err := a.orch.SubmitTask(r.Context(), orchestrator.TaskRequest{Common: common, Task: c.Task, Params: c.Params, Stream: c.Stream}, jobs.Owner{ID: p.Login, Login: p.Login})
	if err != nil {
		return nil, 0, err
	}
	return jobRef(r, job.Name()), http.StatusAccepted, nil
}

type deployCommand struct {
	commonBody
	// Environment shadows commonBody's: a deploy must name it ("" lets agents use their own).
	Environment          *string `json:"environment"`
	NoNoop               bool    `json:"no_noop"`
	EnforceEnvironment   bool    `json:"enforce_environment"`
	Debug                bool    `json:"debug"`
	Trace                bool    `json:"trace"`
	Evaltrace            bool    `json:"evaltrace"`
	Filetimeout          int     `json:"filetimeout"`
	HTTPConnectTimeout   int     `json:"http_connect_timeout"`
	HTTPKeepaliveTimeout int     `json:"http_keepalive_timeout"`
	HTTPReadTimeout      int     `json:"http_read_timeout"`
	Ordering             string  `json:"ordering"`
	SkipTags             string  `json:"skip_tags"`
	Tags                 string  `json:"tags"`
	UseCachedCatalog     bool    `json:"use_cached_catalog"`
	Usecacheonfailure    bool    `json:"usecacheonfailure"`
}

func (a *API) commandDeploy(r *http.Request, p principal) (any, int, error) {
	var c deployCommand
	if err := decode(r, &c); err != nil {
		return nil, 0, err
	}
	if c.Environment == nil {
		return nil, 0, validation("environment is required (\"\" lets each agent use its own environment)")
	}
	c.commonBody.Environment = *c.Environment
	common, err := c.common(r)
	if err != nil {
		return nil, 0, err
	}
	scopes := p.Scopes(auth.ActionPuppetRun, "*")
	if len(scopes) == 0 {
		return nil, 0, notPermitted("You are not permitted to run Puppet")
	}
	common.Permit = &orchestrator.Permit{Scopes: scopes, What: "run Puppet"}
	req := orchestrator.DeployRequest{Common: common, Puppet: puppetrun.DeployOptions{
		NoNoop: c.NoNoop, EnforceEnvironment: c.EnforceEnvironment, Debug: c.Debug, Trace: c.Trace, Evaltrace: c.Evaltrace,
		Filetimeout: c.Filetimeout, HTTPConnectTimeout: c.HTTPConnectTimeout, HTTPKeepaliveTimeout: c.HTTPKeepaliveTimeout,
		HTTPReadTimeout: c.HTTPReadTimeout, Ordering: c.Ordering, SkipTags: c.SkipTags, Tags: c.Tags,
		UseCachedCatalog: c.UseCachedCatalog, Usecacheonfailure: c.Usecacheonfailure}}
	job, err := a.orch.SubmitDeploy(r.Context(), req, jobs.Owner{ID: p.Login, Login: p.Login})
	if err != nil {
		return nil, 0, err
	}
	return jobRef(r, job.Name()), http.StatusAccepted, nil
}

func (a *API) commandStop(r *http.Request, _ principal) (any, int, error) {
	var body struct {
		Job   json.RawMessage `json:"job"`
		Force bool            `json:"force"`
	}
	if err := decode(r, &body); err != nil {
		return nil, 0, err
	}
	var name string
	if json.Unmarshal(body.Job, &name) != nil {
		var n json.Number
		if json.Unmarshal(body.Job, &n) != nil {
			return nil, 0, validation("job is required: the job's name, e.g. \"12\"")
		}
		name = n.String()
	}
	id, err := strconv.ParseInt(name, 10, 64)
	if err != nil || id < 1 {
		return nil, 0, validation("job must be a job name (a positive integer), got %s", body.Job)
	}
	res, err := a.orch.Stop(r.Context(), id, body.Force)
	if err != nil {
		return nil, 0, err
	}
	counts := map[string]int{}
	for st, c := range res.Counts {
		counts[string(st)] = c
	}
	return map[string]any{"job": map[string]any{"id": baseURL(r) + "/jobs/" + res.Job.Name(), "name": res.Job.Name(),
		"state": res.Job.State, "nodes": counts}}, http.StatusAccepted, nil
}

func jobID(r *http.Request) (int64, error) {
	s := r.PathValue("id")
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, &apiError{status: http.StatusBadRequest, body: errorBody{Kind: orchestrator.KindValidation,
			Msg: fmt.Sprintf("Job id must be a positive integer, got %q", s), Details: map[string]any{"job": s}}}
	}
	return id, nil
}

func intParam(r *http.Request, name string, def, min int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < min {
		return 0, validation("Query parameter %s must be an integer >= %d, got %q", name, min, s)
	}
	return v, nil
}

func (a *API) listJobs(r *http.Request, _ principal) (any, int, error) {
	q := store.JobQuery{}
	var err error
	if q.Limit, err = intParam(r, "limit", 0, 0); err != nil {
		return nil, 0, err
	}
	if q.Offset, err = intParam(r, "offset", 0, 0); err != nil {
		return nil, 0, err
	}
	q.OrderBy = r.URL.Query().Get("order_by")
	if q.OrderBy != "" && !slices.Contains([]string{"owner", "timestamp", "environment", "name", "state"}, q.OrderBy) {
		return nil, 0, validation("order_by must be one of owner, timestamp, environment, name, state")
	}
	switch order := r.URL.Query().Get("order"); order {
	case "", "asc":
	case "desc":
		q.Desc = true
	default:
		return nil, 0, validation("order must be asc or desc")
	}
	switch t := r.URL.Query().Get("type"); t {
	case "":
	case "task", "deploy":
		q.Type = jobs.Type(t)
	default:
		return nil, 0, validation("type must be task or deploy")
	}
	q.Task = r.URL.Query().Get("task")
	if q.Task != "" && q.Type == jobs.TypeDeploy {
		return nil, 0, validation("task cannot be combined with type=deploy")
	}
	for _, f := range []struct {
		name string
		dst  **time.Time
	}{{"min_finish_timestamp", &q.MinFinish}, {"max_finish_timestamp", &q.MaxFinish}} {
		if v := r.URL.Query().Get(f.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return nil, 0, validation("%s must be an ISO-8601 UTC timestamp like 2026-11-25T10:00:00Z, got %q", f.name, v)
			}
			*f.dst = &t
		}
	}
	list, total, err := a.orch.Jobs(r.Context(), q)
	if err != nil {
		return nil, 0, err
	}
	items := make([]jobView, 0, len(list))
	for _, j := range list {
		counts, err := a.orch.JobCounts(r.Context(), j.ID)
		if err != nil {
			return nil, 0, err
		}
		items = append(items, newJobView(baseURL(r), j, counts))
	}
	return map[string]any{"items": items, "pagination": map[string]int{"limit": q.Limit, "offset": q.Offset, "total": total}}, http.StatusOK, nil
}

func (a *API) getJob(r *http.Request, _ principal) (any, int, error) {
	id, err := jobID(r)
	if err != nil {
		return nil, 0, err
	}
	var (
		j      jobs.Job
		counts jobs.StateCounts
	)
	if w := r.URL.Query().Get("wait"); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil || d < 0 {
			return nil, 0, validation("wait must be a duration like 10s (at most %s), got %q", orchestrator.MaxWait, w)
		}
		j, counts, err = a.orch.WaitJob(r.Context(), id, d)
		if err != nil {
			return nil, 0, err
		}
	} else if j, err = a.orch.Job(r.Context(), id); err != nil {
		return nil, 0, err
	}
	if counts == nil {
		if counts, err = a.orch.JobCounts(r.Context(), id); err != nil {
			return nil, 0, err
		}
	}
	v := newJobView(baseURL(r), j, counts)
	u, err := a.orch.JobUsage(r.Context(), id)
	if err != nil {
		return nil, 0, err
	}
	if !usage.Zero(u) {
		v.Usage = &usageView{Usage: u, EstimatedCost: usage.Cost(u, usage.USEast1), Prices: "us-east-1 list prices"}
		if n := counts.Total(); n > 0 {
			v.Usage.CostPerNodeRun = v.Usage.EstimatedCost / float64(n)
		}
	}
	return v, http.StatusOK, nil
}

func (a *API) jobReport(r *http.Request, _ principal) (any, int, error) {
	id, err := jobID(r)
	if err != nil {
		return nil, 0, err
	}
	nodes, err := a.orch.JobNodes(r.Context(), id)
	if err != nil {
		return nil, 0, err
	}
	items := make([]map[string]any, 0, len(nodes))
	for _, n := range nodes {
		items = append(items, map[string]any{"node": n.Name, "state": n.State, "timestamp": nodeTimestamp(n), "events": []any{}})
	}
	return map[string]any{"items": items}, http.StatusOK, nil
}

func (a *API) jobEvents(r *http.Request, _ principal) (any, int, error) {
	id, err := jobID(r)
	if err != nil {
		return nil, 0, err
	}
	start, err := intParam(r, "start", 1, 0)
	if err != nil {
		return nil, 0, err
	}
	evs, err := a.orch.Events(r.Context(), id, int64(start), 0)
	if err != nil {
		return nil, 0, err
	}
	items := make([]eventView, 0, len(evs))
	for _, e := range evs {
		items = append(items, newEventView(e))
	}
	return map[string]any{"next-events": nextEvents(baseURL(r), id, evs, int64(start)), "items": items}, http.StatusOK, nil
}

func (a *API) environment(r *http.Request) (string, error) {
	env := r.URL.Query().Get("environment")
	if env == "" {
		env = "production"
	}
	if !slices.Contains(a.cat.Environments(), env) {
		return "", &orchestrator.Error{Kind: orchestrator.KindUnknownEnvironment, Msg: "Unknown environment " + env, Details: map[string]any{"environment": env}}
	}
	return env, nil
}

func (a *API) listTasks(r *http.Request, _ principal) (any, int, error) {
	env, err := a.environment(r)
	if err != nil {
		return nil, 0, err
	}
	list, err := a.cat.List(r.Context(), env)
	if err != nil {
		return nil, 0, catalogError(err, env, "")
	}
	// Private tasks are left out, as Bolt leaves them out of `bolt task show`, unless
	// ?include_private=true; they still run, and GET /tasks/{module}/{task} shows them.
	includePrivate := false
	if v := r.URL.Query().Get("include_private"); v != "" {
		if includePrivate, err = strconv.ParseBool(v); err != nil {
			return nil, 0, validation("include_private must be true or false")
		}
	}
	list = catalog.Listed(list, includePrivate)
	items := make([]map[string]any, 0, len(list))
	for _, t := range list {
		mod, task, _ := tasks.SplitTaskName(t.Name)
		items = append(items, map[string]any{"id": baseURL(r) + "/tasks/" + mod + "/" + task, "name": t.Name,
			"description": t.Description, "private": t.Private})
	}
	return map[string]any{"environment": map[string]any{"name": env, "code_id": nil}, "items": items}, http.StatusOK, nil
}

func (a *API) getTask(r *http.Request, _ principal) (any, int, error) {
	env, err := a.environment(r)
	if err != nil {
		return nil, 0, err
	}
	mod, name := r.PathValue("module"), r.PathValue("task")
	full := mod + "::" + name
	if name == "init" {
		full = mod
	}
	if !tasks.ValidTaskName(full) {
		return nil, 0, validation("invalid task name %s::%s", mod, name)
	}
	t, err := a.cat.Task(r.Context(), env, full)
	if err != nil {
		return nil, 0, catalogError(err, env, full)
	}
	files := make([]map[string]any, 0, len(t.Files))
	for _, f := range t.Files {
		uri, err := a.urls.FileURI(r.Context(), env, t.Module, f.Filename, f.SHA256)
		if err != nil {
			return nil, 0, fmt.Errorf("sign %s: %w", f.Filename, err)
		}
		files = append(files, map[string]any{"filename": f.Filename, "uri": uri, "sha256": f.SHA256, "size_bytes": f.SizeBytes})
	}
	meta := json.RawMessage(t.RawMetadata)
	if len(meta) == 0 {
		meta = json.RawMessage("{}")
	}
	return map[string]any{"id": baseURL(r) + "/tasks/" + mod + "/" + name, "name": t.Name,
		"environment": map[string]any{"name": env, "code_id": nil}, "metadata": meta, "files": files}, http.StatusOK, nil
}

func catalogError(err error, env, task string) error {
	switch {
	case errors.Is(err, catalog.ErrUnknownEnvironment):
		return &orchestrator.Error{Kind: orchestrator.KindUnknownEnvironment, Msg: "Unknown environment " + env, Details: map[string]any{"environment": env}}
	case errors.Is(err, catalog.ErrUnknownTask):
		return &orchestrator.Error{Kind: orchestrator.KindUnknownTask, Msg: fmt.Sprintf("Unknown task %s in environment %s", task, env), Details: map[string]any{"task": task, "environment": env}}
	case errors.Is(err, catalog.ErrInvalidTask):
		return &orchestrator.Error{Kind: orchestrator.KindValidation, Msg: err.Error(), Details: map[string]any{"task": task, "environment": env}}
	}
	return err
}

func (a *API) listInventory(r *http.Request, _ principal) (any, int, error) {
	nodes, err := a.orch.Nodes(r.Context())
	if err != nil {
		return nil, 0, err
	}
	items := make([]inventoryView, 0, len(nodes))
	for _, n := range nodes {
		items = append(items, newInventoryView(n, false))
	}
	return map[string]any{"items": items}, http.StatusOK, nil
}

func (a *API) getInventory(r *http.Request, _ principal) (any, int, error) {
	n, err := a.orch.Node(r.Context(), r.PathValue("node"))
	if err != nil {
		return nil, 0, err
	}
	return a.withSourcedFacts(r.Context(), n, newInventoryView(n, true)), http.StatusOK, nil
}

func (a *API) queryInventory(r *http.Request, _ principal) (any, int, error) {
	var body struct {
		Nodes []string `json:"nodes"`
	}
	if err := decode(r, &body); err != nil {
		return nil, 0, err
	}
	if body.Nodes == nil {
		return nil, 0, validation("nodes is required: a list of node names")
	}
	items := make([]inventoryView, 0, len(body.Nodes))
	for _, name := range body.Nodes {
		n, err := a.orch.Node(r.Context(), name)
		if oe, ok := orchestrator.AsError(err); ok && oe.Kind == orchestrator.KindUnknownNode {
			items = append(items, inventoryView{Name: name})
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		items = append(items, newInventoryView(n, false))
	}
	return map[string]any{"items": items}, http.StatusOK, nil
}

func (a *API) enrollNode(r *http.Request, _ principal) (any, int, error) {
	var body struct {
		Name string `json:"name"`
		// Enrollment asks for a one-time enrolment token (the agent then makes its own key)
		// instead of a secret; EnrollmentTTL bounds its use (e.g. "1h"; default 1h).
		Enrollment    bool   `json:"enrollment"`
		EnrollmentTTL string `json:"enrollment_ttl"`
	}
	if err := decode(r, &body); err != nil {
		return nil, 0, err
	}
	body.Name = strings.TrimSpace(body.Name)
	if body.Enrollment {
		var ttl time.Duration
		if body.EnrollmentTTL != "" {
			d, err := parseLifetime(body.EnrollmentTTL)
			if err != nil {
				return nil, 0, validation("enrollment_ttl: %v", err)
			}
			ttl = d
		}
		token, exp, err := a.auth.CreateEnrollment(r.Context(), body.Name, ttl)
		switch {
		case errors.Is(err, store.ErrExists):
			return nil, 0, &orchestrator.Error{Kind: orchestrator.KindConflict, Msg: fmt.Sprintf("Node %s is already enrolled", body.Name), Details: map[string]any{"node": body.Name}}
		case errors.Is(err, auth.ErrInvalidName):
			return nil, 0, validation("%s", err.Error())
		case err != nil:
			return nil, 0, err
		}
		return map[string]any{"name": body.Name, "enrollment_token": token, "expires_at": exp}, http.StatusCreated, nil
	}
	secret, err := a.auth.EnrollNode(r.Context(), body.Name)
	switch {
	case errors.Is(err, store.ErrExists):
		return nil, 0, &orchestrator.Error{Kind: orchestrator.KindConflict, Msg: fmt.Sprintf("Node %s is already enrolled", body.Name), Details: map[string]any{"node": body.Name}}
	case errors.Is(err, auth.ErrInvalidName):
		return nil, 0, validation("%s", err.Error())
	case err != nil:
		return nil, 0, err
	}
	return map[string]any{"name": body.Name, "secret": secret}, http.StatusCreated, nil
}

type groupView struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Nodes       []string  `json:"nodes,omitempty"`
	Query       string    `json:"query,omitempty"`
	CreatedAt   time.Time `json:"created_timestamp"`
}

func newGroupView(g inventory.Group) groupView {
	return groupView{Name: g.Name, Description: g.Description, Nodes: g.Nodes, Query: g.Query, CreatedAt: g.CreatedAt}
}

// enrollNodes enrols many nodes in one call (Baton's bulk enrolment): all of them, each with
// its own one-time enrolment token, or none.
func (a *API) enrollNodes(r *http.Request, _ principal) (any, int, error) {
	var body struct {
		Names         []string `json:"names"`
		EnrollmentTTL string   `json:"enrollment_ttl"`
	}
	if err := decode(r, &body); err != nil {
		return nil, 0, err
	}
	var ttl time.Duration
	if body.EnrollmentTTL != "" {
		d, err := parseLifetime(body.EnrollmentTTL)
		if err != nil {
			return nil, 0, validation("enrollment_ttl: %v", err)
		}
		ttl = d
	}
	for i := range body.Names {
		body.Names[i] = strings.TrimSpace(body.Names[i])
	}
	list, err := a.auth.CreateEnrollments(r.Context(), body.Names, ttl)
	var taken *auth.TakenError
	switch {
	case errors.As(err, &taken):
		return nil, 0, &orchestrator.Error{Kind: orchestrator.KindConflict, Msg: taken.Error(), Details: map[string]any{"nodes": taken.Names}}
	case errors.Is(err, auth.ErrInvalidName), errors.Is(err, auth.ErrInvalid):
		return nil, 0, validation("%s", err.Error())
	case err != nil:
		return nil, 0, err
	}
	items := make([]map[string]any, len(list))
	for i, e := range list {
		items[i] = map[string]any{"name": e.Name, "enrollment_token": e.Token, "expires_at": e.ExpiresAt}
	}
	return map[string]any{"enrollments": items}, http.StatusCreated, nil
}

func (a *API) createGroup(r *http.Request, _ principal) (any, int, error) {
	var body struct {
		Name        string   `json:"name"`
		Description string   `json:"description"`
		Nodes       []string `json:"nodes"`
		Query       string   `json:"query"`
	}
	if err := decode(r, &body); err != nil {
		return nil, 0, err
	}
	g, err := a.orch.CreateGroup(r.Context(), inventory.Group{Name: body.Name, Description: body.Description, Nodes: body.Nodes, Query: body.Query})
	if err != nil {
		return nil, 0, err
	}
	return newGroupView(g), http.StatusCreated, nil
}

func (a *API) listGroups(r *http.Request, _ principal) (any, int, error) {
	gs, err := a.orch.Groups(r.Context())
	if err != nil {
		return nil, 0, err
	}
	items := make([]groupView, 0, len(gs))
	for _, g := range gs {
		items = append(items, newGroupView(g))
	}
	return map[string]any{"items": items}, http.StatusOK, nil
}

func (a *API) getGroup(r *http.Request, _ principal) (any, int, error) {
	g, err := a.orch.Group(r.Context(), r.PathValue("name"))
	if err != nil {
		return nil, 0, err
	}
	return newGroupView(g), http.StatusOK, nil
}

func (a *API) deleteGroup(r *http.Request, _ principal) (any, int, error) {
	if err := a.orch.DeleteGroup(r.Context(), r.PathValue("name")); err != nil {
		return nil, 0, err
	}
	return map[string]any{"deleted": r.PathValue("name")}, http.StatusOK, nil
}

func (a *API) issueToken(r *http.Request, p principal) (any, int, error) {
	var body struct {
		Login    string `json:"login"`
		Label    string `json:"label"`
		Lifetime string `json:"lifetime"`
	}
	if err := decode(r, &body); err != nil {
		return nil, 0, err
	}
	var lifetime time.Duration
	if body.Lifetime != "" {
		d, err := parseLifetime(body.Lifetime)
		if err != nil {
			return nil, 0, validation("lifetime: %v", err)
		}
		lifetime = d
	}
	secret, info, err := a.auth.IssueTokenFor(r.Context(), p, body.Login, body.Label, lifetime)
	if err != nil {
		return nil, 0, err
	}
	return map[string]any{"token": secret, "info": info}, http.StatusCreated, nil
}

// parseLifetime reads PE's lifetime format: <n>[y|d|h|m|s] (no unit: seconds), or a Go duration.
func parseLifetime(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	units := map[byte]time.Duration{'y': 365 * 24 * time.Hour, 'd': 24 * time.Hour, 'h': time.Hour, 'm': time.Minute, 's': time.Second}
	unit, num := time.Second, s
	if u, ok := units[s[len(s)-1]]; ok {
		unit, num = u, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("want a lifetime like 1h, 7d or 3600, got %q", s)
	}
	if n > math.MaxInt64/int64(unit) {
		return 0, fmt.Errorf("lifetime %q is too long", s)
	}
	return time.Duration(n) * unit, nil
}

func (a *API) listTokens(r *http.Request, p principal) (any, int, error) {
	ts, err := a.auth.ListTokens(r.Context(), p)
	if err != nil {
		return nil, 0, err
	}
	return map[string]any{"items": ts}, http.StatusOK, nil
}

func (a *API) revokeToken(r *http.Request, p principal) (any, int, error) {
	if err := a.auth.RevokeToken(r.Context(), p, r.PathValue("id")); err != nil {
		return nil, 0, err
	}
	return map[string]any{"revoked": r.PathValue("id")}, http.StatusOK, nil
}

type roleView struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Permissions []string `json:"permissions"`
}

func (a *API) listRoles(r *http.Request, _ principal) (any, int, error) {
	rs, err := a.auth.Roles(r.Context())
	if err != nil {
		return nil, 0, err
	}
	items := make([]roleView, 0, len(rs))
	for _, role := range rs {
		v := roleView{Name: role.Name, Description: role.Description, Permissions: []string{}}
		for _, perm := range role.Permissions {
			v.Permissions = append(v.Permissions, auth.FormatPermission(perm))
		}
		items = append(items, v)
	}
	return map[string]any{"items": items}, http.StatusOK, nil
}

func (a *API) createRole(r *http.Request, p principal) (any, int, error) {
	var body roleView
	if err := decode(r, &body); err != nil {
		return nil, 0, err
	}
	role := store.Role{Name: body.Name, Description: body.Description}
	for _, s := range body.Permissions {
		perm, err := auth.ParsePermission(s)
		if err != nil {
			return nil, 0, validation("%v", err)
		}
		role.Permissions = append(role.Permissions, perm)
	}
	if _, err := a.auth.CreateRole(r.Context(), p, role); err != nil {
		return nil, 0, err
	}
	return body, http.StatusCreated, nil
}

func (a *API) deleteRole(r *http.Request, p principal) (any, int, error) {
	if err := a.auth.DeleteRole(r.Context(), p, r.PathValue("name")); err != nil {
		return nil, 0, err
	}
	return map[string]any{"deleted": r.PathValue("name")}, http.StatusOK, nil
}

func (a *API) listUsers(r *http.Request, _ principal) (any, int, error) {
	us, err := a.auth.Users(r.Context())
	if err != nil {
		return nil, 0, err
	}
	items := make([]map[string]any, 0, len(us))
	for _, u := range us {
		roles := u.Roles
		if roles == nil {
			roles = []string{}
		}
		items = append(items, map[string]any{"login": u.Login, "roles": roles})
	}
	return map[string]any{"items": items}, http.StatusOK, nil
}

func (a *API) setUser(r *http.Request, p principal) (any, int, error) {
	var body struct {
		Roles []string `json:"roles"`
	}
	if err := decode(r, &body); err != nil {
		return nil, 0, err
	}
	u, err := a.auth.SetUserRoles(r.Context(), p, r.PathValue("login"), body.Roles)
	if err != nil {
		return nil, 0, err
	}
	return map[string]any{"login": u.Login, "roles": u.Roles}, http.StatusOK, nil
}

func (a *API) revokeNode(r *http.Request, _ principal) (any, int, error) {
	name := r.PathValue("name")
	if _, err := a.orch.Node(r.Context(), name); err != nil {
		return nil, 0, err
	}
	if err := a.auth.RevokeNode(r.Context(), name); err != nil {
		return nil, 0, err
	}
	if err := a.orch.DisconnectNode(r.Context(), name); err != nil {
		return nil, 0, err
	}
	return map[string]any{"revoked": name}, http.StatusOK, nil
}

func (a *API) enroll(r *http.Request) (any, int, error) {
	var body struct {
		Name      string `json:"name"`
		Token     string `json:"token"`
		PublicKey string `json:"public_key"`
	}
	if err := decode(r, &body); err != nil {
		return nil, 0, err
	}
	pub, err := base64.StdEncoding.DecodeString(body.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, 0, validation("public_key must be a base64 Ed25519 public key")
	}
	if err := a.auth.Enroll(r.Context(), body.Name, body.Token, pub); err != nil {
		return nil, 0, err
	}
	return map[string]any{"name": body.Name, "enrolled": true}, http.StatusOK, nil
}
