package httpapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/catalog"
	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/protocol"
	"github.com/baton-run/baton/shared/ratelimit"
	"github.com/baton-run/baton/shared/store"
)

// Orchestrator is what the API needs from the control plane.
type Orchestrator interface {
	SubmitTask(ctx context.Context, req orchestrator.TaskRequest, owner jobs.Owner) (jobs.Job, error)
	SubmitDeploy(ctx context.Context, req orchestrator.DeployRequest, owner jobs.Owner) (jobs.Job, error)
	Job(ctx context.Context, id int64) (jobs.Job, error)
	// WaitJob returns the job once it has ended, or when d has passed (Baton's ?wait=),
	// with its node counts when it knows them without a read (nil otherwise).
	WaitJob(ctx context.Context, id int64, d time.Duration) (jobs.Job, jobs.StateCounts, error)
	Jobs(ctx context.Context, q store.JobQuery) ([]jobs.Job, int, error)
	JobNodes(ctx context.Context, id int64) ([]jobs.Node, error)
	JobCounts(ctx context.Context, id int64) (jobs.StateCounts, error)
	Events(ctx context.Context, id, start int64, limit int) ([]jobs.Event, error)
	Nodes(ctx context.Context) ([]inventory.Node, error)
	Node(ctx context.Context, name string) (inventory.Node, error)
	Stop(ctx context.Context, id int64, force bool) (orchestrator.StopResult, error)
	CreateGroup(ctx context.Context, g inventory.Group) (inventory.Group, error)
	Groups(ctx context.Context) ([]inventory.Group, error)
	Group(ctx context.Context, name string) (inventory.Group, error)
	DeleteGroup(ctx context.Context, name string) error
	DisconnectNode(ctx context.Context, node string) error
	JobUsage(ctx context.Context, id int64) (store.Usage, error)
}

// Catalog lists and loads tasks.
type Catalog interface {
	Environments() []string
	List(ctx context.Context, env string) ([]catalog.Summary, error)
	Task(ctx context.Context, env, name string) (catalog.Task, error)
}

// FileURLs signs task file URLs.
type FileURLs interface {
	FileURI(ctx context.Context, env, module, filename, sha256 string) (protocol.FileURI, error)
}

// Authenticator checks API tokens, enrols nodes, and manages tokens, roles and users.
type Authenticator interface {
	AuthenticateToken(ctx context.Context, token string) (auth.Principal, error)
	EnrollNode(ctx context.Context, name string) (string, error)
	RevokeNode(ctx context.Context, name string) error
	CreateEnrollment(ctx context.Context, name string, ttl time.Duration) (string, time.Time, error)
	CreateEnrollments(ctx context.Context, names []string, ttl time.Duration) ([]auth.Enrollment, error)
	Enroll(ctx context.Context, name, token string, pub ed25519.PublicKey) error
	IssueTokenFor(ctx context.Context, caller auth.Principal, login, label string, lifetime time.Duration) (string, auth.TokenInfo, error)
	ListTokens(ctx context.Context, caller auth.Principal) ([]auth.TokenInfo, error)
	RevokeToken(ctx context.Context, caller auth.Principal, id string) error
	CreateRole(ctx context.Context, caller auth.Principal, r store.Role) (store.Role, error)
	Roles(ctx context.Context) ([]store.Role, error)
	DeleteRole(ctx context.Context, caller auth.Principal, name string) error
	SetUserRoles(ctx context.Context, caller auth.Principal, login string, roles []string) (store.User, error)
	Users(ctx context.Context) ([]store.User, error)
}

// MaxBodyBytes caps request bodies.
const MaxBodyBytes = 1 << 20

// Version is reported by the root endpoint.
var Version = "0.1.0"

// API is the HTTP API.
type API struct {
	orch   Orchestrator
	cat    Catalog
	urls   FileURLs
	auth   Authenticator
	log    *slog.Logger
	mux    *http.ServeMux
	clock  func() time.Time
	limits Limits
	facts  FactSource // facts of nodes whose agent reported none (WithFactSource)
}

// Limits are the API's request rate limits; a nil limiter limits nothing. A request over a
// limit is answered 429 with Retry-After.
type Limits struct {
	// Principal limits each authenticated user, by login, whichever of its tokens it uses.
	Principal *ratelimit.Limiter
	// Anonymous limits, by client address, the requests that carry no valid credential:
	// enrolment, unknown paths and failed authentication.
	Anonymous *ratelimit.Limiter
}

// Default request rates: an operator's scripts and CI pipelines (thousands of requests a
// second from one user, polling included) are not limited in practice, while a caller
// without a valid credential gets a small budget per address.
const (
	DefaultPrincipalRate  = 2000 // requests a second per user
	DefaultPrincipalBurst = 4000
	DefaultAnonymousRate  = 50 // requests a second per client address
	DefaultAnonymousBurst = 200
)

// NewLimits builds Limits from rates (requests a second) and bursts; 0 takes the default, a
// negative rate means no limit.
func NewLimits(principalRate float64, principalBurst int, anonymousRate float64, anonymousBurst int) (Limits, error) {
	build := func(rate float64, burst int, defRate float64, defBurst int) (*ratelimit.Limiter, error) {
		if rate < 0 {
			return nil, nil
		}
		if rate == 0 {
			rate = defRate
		}
		if burst <= 0 {
			burst = max(defBurst, int(rate))
		}
		return ratelimit.New(rate, burst)
	}
	var l Limits
	var err error
	if l.Principal, err = build(principalRate, principalBurst, DefaultPrincipalRate, DefaultPrincipalBurst); err != nil {
		return Limits{}, fmt.Errorf("per-user rate limit: %w", err)
	}
	if l.Anonymous, err = build(anonymousRate, anonymousBurst, DefaultAnonymousRate, DefaultAnonymousBurst); err != nil {
		return Limits{}, fmt.Errorf("anonymous rate limit: %w", err)
	}
	return l, nil
}

// Option configures an API.
type Option func(*API)

// WithLimits sets the request rate limits.
func WithLimits(l Limits) Option { return func(a *API) { a.limits = l } }

// New returns the API handler.
func New(orch Orchestrator, cat Catalog, urls FileURLs, authn Authenticator, logger *slog.Logger, opts ...Option) *API {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &API{orch: orch, cat: cat, urls: urls, auth: authn, log: logger.With("component", "httpapi"), mux: http.NewServeMux(), clock: time.Now}
	for _, o := range opts {
		o(a)
	}
	const v1 = "/orchestrator/v1"
	view, manageNodes := auth.ActionJobsView, auth.ActionNodesManage
	a.handle("GET "+v1, "", a.root)
	a.handle("GET "+v1+"/{$}", "", a.root)
	a.handle("POST "+v1+"/command/task", "", a.commandTask) // checked per task and node
	a.handle("POST "+v1+"/command/deploy", "", a.commandDeploy)
	a.handle("POST "+v1+"/command/stop", auth.ActionJobsStop, a.commandStop)
	a.handle("GET "+v1+"/jobs", view, a.listJobs)
	a.handle("GET "+v1+"/jobs/{id}", view, a.getJob)
	a.handle("GET "+v1+"/jobs/{id}/nodes", view, a.jobNodes)
	a.handle("GET "+v1+"/jobs/{id}/report", view, a.jobReport)
	a.handle("GET "+v1+"/jobs/{id}/events", view, a.jobEvents)
	a.outputRoutes() // GET /baton/v1/jobs/{id}/nodes/{node}/output (output.go)
	a.handle("GET "+v1+"/tasks", view, a.listTasks)
	a.handle("GET "+v1+"/tasks/{module}/{task}", view, a.getTask)
	a.handle("GET "+v1+"/inventory", view, a.listInventory)
	a.handle("GET "+v1+"/inventory/{node}", view, a.getInventory)
	a.handle("POST "+v1+"/inventory", view, a.queryInventory)
	a.handle("POST /baton/v1/nodes", manageNodes, a.enrollNode)
	a.handle("POST /baton/v1/nodes/enrollments", manageNodes, a.enrollNodes)
	a.handle("DELETE /baton/v1/nodes/{name}", manageNodes, a.revokeNode)
	a.handle("GET /baton/v1/groups", view, a.listGroups)
	a.handle("POST /baton/v1/groups", manageNodes, a.createGroup)
	a.handle("GET /baton/v1/groups/{name}", view, a.getGroup)
	a.handle("DELETE /baton/v1/groups/{name}", manageNodes, a.deleteGroup)
	a.handle("POST /baton/v1/tokens", "", a.issueToken) // own tokens: any user; others: tokens:manage
	a.handle("GET /baton/v1/tokens", "", a.listTokens)
	a.handle("DELETE /baton/v1/tokens/{id}", "", a.revokeToken)
	a.handle("GET /baton/v1/roles", auth.ActionTokensManage, a.listRoles)
	a.handle("POST /baton/v1/roles", auth.ActionTokensManage, a.createRole)
	a.handle("DELETE /baton/v1/roles/{name}", auth.ActionTokensManage, a.deleteRole)
	a.handle("GET /baton/v1/users", auth.ActionTokensManage, a.listUsers)
	a.handle("PUT /baton/v1/users/{login}", auth.ActionTokensManage, a.setUser)
	a.handle("GET /baton/v1/whoami", "", a.whoami)
	a.sessionRoutes()
	// Enrolment is authenticated by the one-time enrolment token in the body, not by an API
	// token: it is how a new agent gets its credential.
	a.mux.HandleFunc("POST /baton/v1/enroll", func(w http.ResponseWriter, r *http.Request) {
		// A valid one-time token is a credential: only failed enrolments spend the address's
		// budget, and an address that spent it is refused before its next attempt is checked.
		if !a.notBlocked(w, r) {
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		v, status, err := a.enroll(r)
		if err != nil {
			if !a.allowAnonymous(w, r) {
				return
			}
			a.writeError(w, r, err)
			return
		}
		writeJSON(w, status, v)
	})
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if !a.allowAnonymous(w, r) {
			return
		}
		writeJSON(w, http.StatusNotFound, errorBody{Kind: "puppetlabs.orchestrator/not-found", Msg: "No such endpoint: " + r.Method + " " + r.URL.Path, Details: map[string]any{}})
	})
	return a
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

type handlerFunc func(r *http.Request, p principal) (any, int, error)

type principal = auth.Principal

type errorBody struct {
	Kind    string         `json:"kind"`
	Msg     string         `json:"msg"`
	Details map[string]any `json:"details"`
}

// apiError is an error made by the API layer itself (bad request shape, auth).
type apiError struct {
	status int
	body   errorBody
}

func (e *apiError) Error() string { return e.body.Msg }

func notPermitted(format string, args ...any) error {
	return &apiError{status: http.StatusForbidden, body: errorBody{Kind: orchestrator.KindNotPermitted, Msg: fmt.Sprintf(format, args...), Details: map[string]any{}}}
}

func validation(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, body: errorBody{Kind: orchestrator.KindValidation, Msg: fmt.Sprintf(format, args...), Details: map[string]any{}}}
}

var kindStatus = map[string]int{
	orchestrator.KindValidation:         http.StatusBadRequest,
	orchestrator.KindUnknownEnvironment: http.StatusNotFound,
	orchestrator.KindUnknownJob:         http.StatusNotFound,
	orchestrator.KindUnknownTask:        http.StatusNotFound,
	orchestrator.KindUnknownNode:        http.StatusNotFound,
	orchestrator.KindEmptyTarget:        http.StatusBadRequest,
	orchestrator.KindQueryError:         http.StatusBadRequest,
	orchestrator.KindNotPermitted:       http.StatusForbidden,
	orchestrator.KindConflict:           http.StatusConflict,
	orchestrator.KindUnknownGroup:       http.StatusNotFound,
}

// authenticate checks token (unless tokenErr already refused the request) and the principal's
// rate limit. When it returns false it has answered: a failure spends the client address's
// anonymous budget, and an unknown, revoked or expired token is a 401 saying unauthMsg.
func (a *API) authenticate(w http.ResponseWriter, r *http.Request, token string, tokenErr error, unauthMsg string) (principal, bool) {
	var p principal
	err := tokenErr
	if err == nil {
		p, err = a.auth.AuthenticateToken(r.Context(), token)
	}
	if err != nil {
		if !a.allowAnonymous(w, r) {
			return p, false
		}
		if errors.Is(err, auth.ErrUnauthenticated) {
			err = &apiError{status: http.StatusUnauthorized, body: errorBody{Kind: "puppetlabs.rbac/user-unauthenticated",
				Msg: unauthMsg, Details: map[string]any{}}}
		}
		a.writeError(w, r, err)
		return p, false
	}
	if l := a.limits.Principal; l != nil {
		if ok, wait := l.Allow("user:" + p.Login); !ok {
			ratelimit.WriteRateLimited(w, wait)
			return p, false
		}
	}
	return p, true
}

// handle registers h behind authentication, the permission check for action ("" when the
// handler checks for itself) and the error mapping.
func (a *API) handle(pattern, action string, h handlerFunc) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		token, err := credential(r) // X-Authentication, ?token=, or the console's cookie with its CSRF header (session.go)
		p, ok := a.authenticate(w, r, token, err, "Authentication is required: send a valid token in the X-Authentication header")
		if !ok {
			return
		}
		if action != "" && !p.Can(action) {
			a.writeError(w, r, notPermitted("You are not permitted to do this: it needs the %s permission", action))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		v, status, err := h(r, p)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		writeJSON(w, status, v)
	})
}

// allowAnonymous applies the per-address limit to a request without a valid credential, and
// answers 429 when it is over.
func (a *API) allowAnonymous(w http.ResponseWriter, r *http.Request) bool {
	l := a.limits.Anonymous
	if l == nil {
		return true
	}
	ok, wait := l.Allow(ratelimit.ClientAddress(r))
	if !ok {
		ratelimit.WriteRateLimited(w, wait)
	}
	return ok
}

// notBlocked answers 429 when the request's address has spent its anonymous budget, without
// spending any.
func (a *API) notBlocked(w http.ResponseWriter, r *http.Request) bool {
	l := a.limits.Anonymous
	if l == nil {
		return true
	}
	blocked, wait := l.Blocked(ratelimit.ClientAddress(r))
	if blocked {
		ratelimit.WriteRateLimited(w, wait)
	}
	return !blocked
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeJSON(w, ae.status, ae.body)
		return
	}
	if oe, ok := orchestrator.AsError(err); ok {
		status, known := kindStatus[oe.Kind]
		if !known {
			status = http.StatusBadRequest
		}
		details := oe.Details
		if details == nil {
			details = map[string]any{}
		}
		writeJSON(w, status, errorBody{Kind: oe.Kind, Msg: oe.Msg, Details: details})
		return
	}
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		writeJSON(w, http.StatusUnauthorized, errorBody{Kind: "puppetlabs.rbac/user-unauthenticated", Msg: err.Error(), Details: map[string]any{}})
		return
	case errors.Is(err, auth.ErrForbidden):
		writeJSON(w, http.StatusForbidden, errorBody{Kind: orchestrator.KindNotPermitted, Msg: err.Error(), Details: map[string]any{}})
		return
	case errors.Is(err, auth.ErrInvalid), errors.Is(err, auth.ErrInvalidPermission):
		writeJSON(w, http.StatusBadRequest, errorBody{Kind: orchestrator.KindValidation, Msg: err.Error(), Details: map[string]any{}})
		return
	case errors.Is(err, store.ErrNotFound):
		writeJSON(w, http.StatusNotFound, errorBody{Kind: "puppetlabs.orchestrator/not-found", Msg: err.Error(), Details: map[string]any{}})
		return
	case errors.Is(err, store.ErrExists):
		writeJSON(w, http.StatusConflict, errorBody{Kind: orchestrator.KindConflict, Msg: err.Error(), Details: map[string]any{}})
		return
	}
	id := protocol.NewID()
	a.log.Error("request failed", "request_id", id, "method", r.Method, "path", r.URL.Path, "err", err)
	writeJSON(w, http.StatusInternalServerError, errorBody{Kind: "puppetlabs.orchestrator/unknown-error",
		Msg: "Internal error; see the server log for request " + id, Details: map[string]any{"request_id": id}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"kind":"puppetlabs.orchestrator/unknown-error","msg":"could not encode response","details":{}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// decode strictly decodes a JSON body into v.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return validation("Content-Type must be application/json")
		}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{status: http.StatusRequestEntityTooLarge, body: errorBody{Kind: orchestrator.KindValidation,
				Msg: fmt.Sprintf("Request body is larger than %d bytes", mbe.Limit), Details: map[string]any{"limit": mbe.Limit}}}
		}
		if errors.Is(err, io.EOF) {
			return validation("Request body is empty: a JSON object is required")
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := jsonField(te.Field)
			if field == "" {
				return validation("The request body must be a JSON object, got %s", te.Value)
			}
			e := validation("%s must be %s, got %s", field, jsonKind(te.Type), te.Value)
			e.(*apiError).body.Details["field"] = field
			return e
		}
		return validation("Invalid JSON body: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return validation("Invalid JSON body: trailing data after the object")
	}
	return nil
}

// jsonField turns a decoder's Go field path (with embedded struct names) into the JSON path.
func jsonField(path string) string {
	var parts []string
	for _, p := range strings.Split(path, ".") {
		if p != "" && p != "commonBody" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ".")
}

// jsonKind describes a Go type in JSON terms.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(jsonKind(t.Elem()), "a "), "an ") + "s"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "a JSON value"
}

// baseURL is the absolute URL of this API as the caller reached it.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		scheme = p
	}
	return scheme + "://" + r.Host + "/orchestrator/v1"
}
