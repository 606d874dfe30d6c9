// Package client is a Go client of Baton's HTTP API (the PE orchestrator v1 endpoints plus
// Baton's node enrolment). The CLI and the end-to-end tests use it; it knows nothing of the
// server's internals, only the JSON on the wire.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to one server with one token.
type Client struct {
	base  string // e.g. http://127.0.0.1:8143
	token string
	http  *http.Client
}

// New returns a client for the server at base (scheme://host:port).
func New(base, token string) *Client {
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: 60 * time.Second}}
}

// NewWithHTTP is New with the HTTP client to use (for example one that pins the server's
// certificate).
func NewWithHTTP(base, token string, hc *http.Client) *Client {
	c := New(base, token)
	c.http = hc
	return c
}

// APIError is an error answer: PE's {kind, msg, details} with the status code.
type APIError struct {
	Status  int            `json:"-"`
	Kind    string         `json:"kind"`
	Msg     string         `json:"msg"`
	Details map[string]any `json:"details"`
}

func (e *APIError) Error() string { return fmt.Sprintf("%s (%d %s)", e.Msg, e.Status, e.Kind) }

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	return c.doWith(ctx, method, path, nil, body, out)
}

// maxRateLimitRetries bounds how often a request answered 429 is repeated after Retry-After.
const maxRateLimitRetries = 5

func (c *Client) doWith(ctx context.Context, method, path string, hdr http.Header, body, out any) error {
	for attempt := 0; ; attempt++ {
		err := c.doOnce(ctx, method, path, hdr, body, out)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests || attempt >= maxRateLimitRetries {
			return err
		}
		wait := time.Second
		if n, ok := ae.Details["retry_after"].(json.Number); ok {
			if secs, err := n.Int64(); err == nil && secs > 0 && secs < 60 {
				wait = time.Duration(secs) * time.Second
			}
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

func (c *Client) doOnce(ctx context.Context, method, path string, hdr http.Header, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("X-Authentication", c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		ae := &APIError{Status: resp.StatusCode}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if dec.Decode(ae) != nil || ae.Kind == "" {
			ae.Kind, ae.Msg = "unknown", strings.TrimSpace(string(b))
		}
		return ae
	}
	if out == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

// Scope selects nodes.
type Scope struct {
	Nodes     []string `json:"nodes,omitempty"`
	Query     string   `json:"query,omitempty"`
	NodeGroup string   `json:"node_group,omitempty"`
}

// TaskRequest is the body of POST /command/task.
type TaskRequest struct {
	Environment string         `json:"environment,omitempty"`
	Task        string         `json:"task"`
	Params      map[string]any `json:"params"`
	Scope       Scope          `json:"scope"`
	Description string         `json:"description,omitempty"`
	Noop        bool           `json:"noop,omitempty"`
	Concurrency int            `json:"concurrency,omitempty"`
	Timeout     int            `json:"timeout,omitempty"`
	// MaxErrors is a count ("3") or a percentage ("10%"); "" for none.
	MaxErrors string `json:"max_errors,omitempty"`
	// IdempotencyKey is sent as the Idempotency-Key header.
	IdempotencyKey string `json:"-"`
	// Stream asks for the task's live output (Baton; see JobOutput).
	Stream bool `json:"stream,omitempty"`
}

// JobRef names a job.
type JobRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// RunTask starts a task job.
func (c *Client) RunTask(ctx context.Context, r TaskRequest) (JobRef, error) {
	if r.Params == nil {
		r.Params = map[string]any{}
	}
	var out struct {
		Job JobRef `json:"job"`
	}
	err := c.doWith(ctx, http.MethodPost, "/orchestrator/v1/command/task", idemHeader(r.IdempotencyKey), r, &out)
	return out.Job, err
}

func idemHeader(key string) http.Header {
	if key == "" {
		return nil
	}
	return http.Header{"Idempotency-Key": {key}}
}

// DeployRequest is the body of POST /command/deploy (an on-demand Puppet run).
type DeployRequest struct {
	Environment          string `json:"environment"`
	Scope                Scope  `json:"scope"`
	Description          string `json:"description,omitempty"`
	Noop                 bool   `json:"noop,omitempty"`
	NoNoop               bool   `json:"no_noop,omitempty"`
	Concurrency          int    `json:"concurrency,omitempty"`
	Timeout              int    `json:"timeout,omitempty"`
	MaxErrors            string `json:"max_errors,omitempty"`
	EnforceEnvironment   bool   `json:"enforce_environment,omitempty"`
	Debug                bool   `json:"debug,omitempty"`
	Trace                bool   `json:"trace,omitempty"`
	Evaltrace            bool   `json:"evaltrace,omitempty"`
	Filetimeout          int    `json:"filetimeout,omitempty"`
	HTTPConnectTimeout   int    `json:"http_connect_timeout,omitempty"`
	HTTPKeepaliveTimeout int    `json:"http_keepalive_timeout,omitempty"`
	HTTPReadTimeout      int    `json:"http_read_timeout,omitempty"`
	Ordering             string `json:"ordering,omitempty"`
	SkipTags             string `json:"skip_tags,omitempty"`
	Tags                 string `json:"tags,omitempty"`
	UseCachedCatalog     bool   `json:"use_cached_catalog,omitempty"`
	Usecacheonfailure    bool   `json:"usecacheonfailure,omitempty"`
	IdempotencyKey       string `json:"-"`
}

// Deploy starts a Puppet run job.
func (c *Client) Deploy(ctx context.Context, r DeployRequest) (JobRef, error) {
	var out struct {
		Job JobRef `json:"job"`
	}
	err := c.doWith(ctx, http.MethodPost, "/orchestrator/v1/command/deploy", idemHeader(r.IdempotencyKey), r, &out)
	return out.Job, err
}

// StopResult is the answer to a stop request.
type StopResult struct {
	ID    string         `json:"id"`
	Name  string         `json:"name"`
	State string         `json:"state"`
	Nodes map[string]int `json:"nodes"`
}

// Stop stops a job; force also cancels running actions.
func (c *Client) Stop(ctx context.Context, name string, force bool) (StopResult, error) {
	var out struct {
		Job StopResult `json:"job"`
	}
	err := c.do(ctx, http.MethodPost, "/orchestrator/v1/command/stop", map[string]any{"job": name, "force": force}, &out)
	return out.Job, err
}

// Group is a named node group.
type Group struct {
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Nodes       []string  `json:"nodes,omitempty"`
	Query       string    `json:"query,omitempty"`
	CreatedAt   time.Time `json:"created_timestamp,omitzero"`
}

// CreateGroup creates a node group.
func (c *Client) CreateGroup(ctx context.Context, g Group) (Group, error) {
	var out Group
	err := c.do(ctx, http.MethodPost, "/baton/v1/groups", g, &out)
	return out, err
}

// Groups lists node groups.
func (c *Client) Groups(ctx context.Context) ([]Group, error) {
	var out struct {
		Items []Group `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, "/baton/v1/groups", nil, &out)
	return out.Items, err
}

// Group returns one node group.
func (c *Client) Group(ctx context.Context, name string) (Group, error) {
	var out Group
	err := c.do(ctx, http.MethodGet, "/baton/v1/groups/"+url.PathEscape(name), nil, &out)
	return out, err
}

// DeleteGroup removes a node group.
func (c *Client) DeleteGroup(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/baton/v1/groups/"+url.PathEscape(name), nil, nil)
}

// StatusEntry is one visited job state.
type StatusEntry struct {
	State     string     `json:"state"`
	EnterTime time.Time  `json:"enter_time"`
	ExitTime  *time.Time `json:"exit_time"`
}

// Job is a job record.
type Job struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	State       string            `json:"state"`
	Command     string            `json:"command"`
	Type        string            `json:"type"`
	Options     map[string]any    `json:"options"`
	Owner       map[string]any    `json:"owner"`
	Description string            `json:"description"`
	Environment map[string]string `json:"environment"`
	Timestamp   time.Time         `json:"timestamp"`
	Created     time.Time         `json:"created_timestamp"`
	NodeCount   int               `json:"node_count"`
	NodeStates  map[string]int    `json:"node_states"`
	Status      []StatusEntry     `json:"status"`
	// Usage is what the job cost on AWS (Baton extension; nil elsewhere).
	Usage *Usage `json:"baton_usage,omitempty"`
}

// Usage is a job's metered AWS usage and its estimated cost.
type Usage struct {
	Invocations    int64   `json:"lambda_invocations"`
	MessagesIn     int64   `json:"websocket_messages_in"`
	MessagesOut    int64   `json:"websocket_messages_out"`
	MessageUnits   int64   `json:"websocket_billing_units"`
	ReadUnits      float64 `json:"dynamodb_read_units"`
	WriteUnits     float64 `json:"dynamodb_write_units"`
	S3Writes       int64   `json:"s3_put_requests"`
	S3Reads        int64   `json:"s3_get_requests"`
	EstimatedCost  float64 `json:"estimated_cost_usd"`
	CostPerNodeRun float64 `json:"estimated_cost_usd_per_node_run"`
}

// Done reports whether the job is in a terminal state.
func (j Job) Done() bool { return j.State == "finished" || j.State == "stopped" || j.State == "failed" }

// Job returns a job.
func (c *Client) Job(ctx context.Context, name string) (Job, error) {
	var j Job
	err := c.do(ctx, http.MethodGet, "/orchestrator/v1/jobs/"+url.PathEscape(name), nil, &j)
	return j, err
}

// WaitJob returns a job once it has ended, or as it is after d (the server waits at most
// 25 s; call again to wait longer).
func (c *Client) WaitJob(ctx context.Context, name string, d time.Duration) (Job, error) {
	var j Job
	err := c.do(ctx, http.MethodGet, "/orchestrator/v1/jobs/"+url.PathEscape(name)+"?wait="+url.QueryEscape(d.String()), nil, &j)
	return j, err
}

// JobList is a page of jobs.
type JobList struct {
	Items      []Job          `json:"items"`
	Pagination map[string]int `json:"pagination"`
}

// Jobs lists jobs; query holds PE's list parameters (limit, offset, order_by, order, type).
func (c *Client) Jobs(ctx context.Context, query url.Values) (JobList, error) {
	var l JobList
	path := "/orchestrator/v1/jobs"
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	err := c.do(ctx, http.MethodGet, path, nil, &l)
	return l, err
}

// Node is one node's record in a job.
type Node struct {
	Name            string          `json:"name"`
	State           string          `json:"state"`
	StartTimestamp  *time.Time      `json:"start_timestamp"`
	FinishTimestamp *time.Time      `json:"finish_timestamp"`
	Duration        *float64        `json:"duration"`
	LatestEventID   *int64          `json:"latest-event-id"`
	Details         map[string]any  `json:"details"`
	Result          json.RawMessage `json:"result"`
}

// JobNodes returns a job's nodes.
func (c *Client) JobNodes(ctx context.Context, name string) ([]Node, error) {
	var out struct {
		Items []Node `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, "/orchestrator/v1/jobs/"+url.PathEscape(name)+"/nodes", nil, &out)
	return out.Items, err
}

// Event is a job event.
type Event struct {
	ID        string         `json:"id"`
	Type      string         `json:"type"`
	Timestamp time.Time      `json:"timestamp"`
	Details   map[string]any `json:"details"`
	Message   string         `json:"message"`
}

// Events returns a job's events from id start on, and the id to continue from.
func (c *Client) Events(ctx context.Context, name string, start int) ([]Event, int, error) {
	var out struct {
		Next  map[string]string `json:"next-events"`
		Items []Event           `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, fmt.Sprintf("/orchestrator/v1/jobs/%s/events?start=%d", url.PathEscape(name), start), nil, &out)
	if err != nil {
		return nil, start, err
	}
	next, err := strconv.Atoi(out.Next["event"])
	if err != nil {
		return nil, start, fmt.Errorf("events: bad next-events %q", out.Next["event"])
	}
	return out.Items, next, nil
}

// TaskSummary is one entry of the task list.
type TaskSummary struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Private     bool   `json:"private"`
}

// Tasks lists an environment's tasks ("" = production).
func (c *Client) Tasks(ctx context.Context, env string) ([]TaskSummary, error) {
	var out struct {
		Items []TaskSummary `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, "/orchestrator/v1/tasks"+envQuery(env), nil, &out)
	return out.Items, err
}

// TaskFile is one file of a task.
type TaskFile struct {
	Filename  string         `json:"filename"`
	URI       map[string]any `json:"uri"`
	SHA256    string         `json:"sha256"`
	SizeBytes int64          `json:"size_bytes"`
}

// Task is a task's metadata and files.
type Task struct {
	ID       string          `json:"id"`
	Name     string          `json:"name"`
	Metadata json.RawMessage `json:"metadata"`
	Files    []TaskFile      `json:"files"`
}

// Task returns one task (name module::task or module).
func (c *Client) Task(ctx context.Context, env, name string) (Task, error) {
	mod, task, found := strings.Cut(name, "::")
	if !found {
		task = "init"
	}
	var t Task
	err := c.do(ctx, http.MethodGet, "/orchestrator/v1/tasks/"+url.PathEscape(mod)+"/"+url.PathEscape(task)+envQuery(env), nil, &t)
	return t, err
}

func envQuery(env string) string {
	if env == "" {
		return ""
	}
	return "?environment=" + url.QueryEscape(env)
}

// InventoryNode is a node's connection record.
type InventoryNode struct {
	Name      string          `json:"name"`
	Connected bool            `json:"connected"`
	Broker    string          `json:"broker"`
	Timestamp *time.Time      `json:"timestamp"`
	Facts     json.RawMessage `json:"facts"`
	// Features and PuppetVersion are what the node's agent reported (task features, Puppet).
	Features      []string `json:"features,omitempty"`
	PuppetVersion string   `json:"puppet_version,omitempty"`
}

// Inventory lists every node.
func (c *Client) Inventory(ctx context.Context) ([]InventoryNode, error) {
	var out struct {
		Items []InventoryNode `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, "/orchestrator/v1/inventory", nil, &out)
	return out.Items, err
}

// InventoryNode returns one node with its facts.
func (c *Client) InventoryNode(ctx context.Context, name string) (InventoryNode, error) {
	var n InventoryNode
	err := c.do(ctx, http.MethodGet, "/orchestrator/v1/inventory/"+url.PathEscape(name), nil, &n)
	return n, err
}

// EnrollNode creates a node and returns its secret.
func (c *Client) EnrollNode(ctx context.Context, name string) (string, error) {
	var out struct {
		Secret string `json:"secret"`
	}
	err := c.do(ctx, http.MethodPost, "/baton/v1/nodes", map[string]string{"name": name}, &out)
	return out.Secret, err
}

// BaseURL is the server URL the client talks to.
func (c *Client) BaseURL() string { return c.base }

// TokenInfo describes a token without its secret.
type TokenInfo struct {
	ID        string     `json:"id"`
	Login     string     `json:"login"`
	Label     string     `json:"label"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
	Revoked   bool       `json:"revoked"`
}

// IssueToken issues a token for login ("" = the caller) valid for lifetime (PE format: 1h,
// 7d, 3600; "" = the server's default).
func (c *Client) IssueToken(ctx context.Context, login, label, lifetime string) (string, TokenInfo, error) {
	var out struct {
		Token string    `json:"token"`
		Info  TokenInfo `json:"info"`
	}
	err := c.do(ctx, http.MethodPost, "/baton/v1/tokens", map[string]string{"login": login, "label": label, "lifetime": lifetime}, &out)
	return out.Token, out.Info, err
}

// Tokens lists the caller's tokens (everyone's for a token manager).
func (c *Client) Tokens(ctx context.Context) ([]TokenInfo, error) {
	var out struct {
		Items []TokenInfo `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, "/baton/v1/tokens", nil, &out)
	return out.Items, err
}

// RevokeToken revokes a token by its id.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/baton/v1/tokens/"+url.PathEscape(id), nil, nil)
}

// Role is a named set of permissions, each ACTION[=INSTANCE][@SCOPE].
type Role struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Permissions []string `json:"permissions"`
}

// CreateRole creates a role.
func (c *Client) CreateRole(ctx context.Context, r Role) error {
	return c.do(ctx, http.MethodPost, "/baton/v1/roles", r, nil)
}

// Roles lists the roles.
func (c *Client) Roles(ctx context.Context) ([]Role, error) {
	var out struct {
		Items []Role `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, "/baton/v1/roles", nil, &out)
	return out.Items, err
}

// DeleteRole removes a role.
func (c *Client) DeleteRole(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/baton/v1/roles/"+url.PathEscape(name), nil, nil)
}

// User is a login and its roles.
type User struct {
	Login string   `json:"login"`
	Roles []string `json:"roles"`
}

// SetUserRoles gives login exactly roles.
func (c *Client) SetUserRoles(ctx context.Context, login string, roles []string) error {
	return c.do(ctx, http.MethodPut, "/baton/v1/users/"+url.PathEscape(login), map[string]any{"roles": roles}, nil)
}

// Users lists the users.
func (c *Client) Users(ctx context.Context) ([]User, error) {
	var out struct {
		Items []User `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, "/baton/v1/users", nil, &out)
	return out.Items, err
}

// RevokeNode revokes a node's credential and closes its live connection.
func (c *Client) RevokeNode(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/baton/v1/nodes/"+url.PathEscape(name), nil, nil)
}

// Enrollment is a node's one-time enrolment token.
type Enrollment struct {
	Name            string    `json:"name"`
	EnrollmentToken string    `json:"enrollment_token"`
	ExpiresAt       time.Time `json:"expires_at"`
}

// EnrollNodeToken enrols a node with a one-time enrolment token valid for ttl (PE lifetime
// format; "" = 1h): its agent makes its own key pair on first start.
func (c *Client) EnrollNodeToken(ctx context.Context, name, ttl string) (Enrollment, error) {
	var out Enrollment
	err := c.do(ctx, http.MethodPost, "/baton/v1/nodes", map[string]any{"name": name, "enrollment": true, "enrollment_ttl": ttl}, &out)
	return out, err
}

// EnrollNodes enrols many nodes in one call, each with its own one-time enrolment token valid
// for ttl (PE lifetime format; "" = 1h): all of them, or none (an *APIError says why).
func (c *Client) EnrollNodes(ctx context.Context, names []string, ttl string) ([]Enrollment, error) {
	var out struct {
		Enrollments []Enrollment `json:"enrollments"`
	}
	err := c.do(ctx, http.MethodPost, "/baton/v1/nodes/enrollments", map[string]any{"names": names, "enrollment_ttl": ttl}, &out)
	return out.Enrollments, err
}
