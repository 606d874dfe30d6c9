package auth

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/baton-run/baton/shared/store"
)

// Actions a permission can grant (PE's permission types, reference §6.2).
const (
	ActionJobsView     = "jobs:view"     // jobs, events, tasks, inventory, groups (PE orchestrator/view)
	ActionJobsStop     = "jobs:stop"     // stop any job
	ActionPuppetRun    = "puppet:run"    // on-demand Puppet runs (PE puppet_agent/run), on Scope
	ActionTasksRun     = "tasks:run"     // run task Instance ("*" = all), on Scope (PE tasks/run)
	ActionNodesManage  = "nodes:manage"  // enrol nodes, manage node groups
	ActionTokensManage = "tokens:manage" // tokens, users and roles of everyone
	ActionTasksManage  = "tasks:manage"  // publish tasks
)

// Actions lists every action.
var Actions = []string{ActionJobsView, ActionJobsStop, ActionPuppetRun, ActionTasksRun, ActionNodesManage, ActionTokensManage, ActionTasksManage}

// AdminRole is the role the first user gets: every action on everything.
const AdminRole = "admin"

// ErrInvalidPermission is wrapped by permission parsing and validation errors.
var ErrInvalidPermission = errors.New("invalid permission")

// Limits on token lifetimes (PE: 1h default; a configurable maximum).
const (
	DefaultTokenLifetime = time.Hour
	DefaultMaxLifetime   = 365 * 24 * time.Hour
)

// AdminPermissions grant everything.
func AdminPermissions() []store.Permission {
	var ps []store.Permission
	for _, a := range Actions {
		ps = append(ps, store.Permission{Action: a, Instance: "*", Scope: "*"})
	}
	return ps
}

var scopeRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(\*|group:[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}|query:.+)$`)
}) // compiled when first used: agent processes (and task supervisors) start faster

// ValidatePermission checks a permission's action, instance and scope.
func ValidatePermission(p store.Permission) error {
	if !slices.Contains(Actions, p.Action) {
		return fmt.Errorf("%w: unknown action %q (one of %s)", ErrInvalidPermission, p.Action, strings.Join(Actions, ", "))
	}
	if p.Scope != "" && !scopeRE().MatchString(p.Scope) {
		return fmt.Errorf("%w: scope %q must be *, group:NAME or query:QUERY", ErrInvalidPermission, p.Scope)
	}
	return nil
}

// ParsePermission reads ACTION[=INSTANCE][@SCOPE], e.g. "tasks:run=demo::hello@group:webs".
// A missing instance or scope means "*".
func ParsePermission(s string) (store.Permission, error) {
	p := store.Permission{Instance: "*", Scope: "*"}
	rest := s
	if a, scope, ok := strings.Cut(rest, "@"); ok {
		rest, p.Scope = a, scope
	}
	if a, inst, ok := strings.Cut(rest, "="); ok {
		rest, p.Instance = a, inst
	}
	p.Action = rest
	if err := ValidatePermission(p); err != nil {
		return p, err
	}
	return p, nil
}

// FormatPermission is ParsePermission's inverse.
func FormatPermission(p store.Permission) string {
	s := p.Action
	if p.Instance != "" && p.Instance != "*" {
		s += "=" + p.Instance
	}
	if p.Scope != "" && p.Scope != "*" {
		s += "@" + p.Scope
	}
	return s
}

// Can reports whether the principal holds action on any instance.
func (p Principal) Can(action string) bool {
	for _, perm := range p.Permissions {
		if perm.Action == action {
			return true
		}
	}
	return false
}

// Scopes returns the node scopes on which the principal may perform action on instance
// (a task name for tasks:run). nil: not permitted at all. A "*" among them: every node.
func (p Principal) Scopes(action, instance string) []string {
	var out []string
	for _, perm := range p.Permissions {
		if perm.Action != action {
			continue
		}
		if perm.Instance != "" && perm.Instance != "*" && perm.Instance != instance {
			continue
		}
		scope := perm.Scope
		if scope == "" {
			scope = "*"
		}
		if !slices.Contains(out, scope) {
			out = append(out, scope)
		}
	}
	sort.Strings(out)
	return out
}

// permissions returns the union of a user's roles' permissions.
func (s *Service) permissions(ctx context.Context, login string) ([]store.Permission, error) {
	u, err := s.store.GetUser(ctx, login)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil // a token whose user was never given roles may do nothing
	}
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", login, err)
	}
	var out []store.Permission
	for _, name := range u.Roles {
		r, err := s.store.GetRole(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("role %s: %w", name, err)
		}
		out = append(out, r.Permissions...)
	}
	return out, nil
}

// EnsureAdmin makes sure role admin exists with every permission and user login holds it.
func (s *Service) EnsureAdmin(ctx context.Context, login string) error {
	defer s.tokens.clear()
	r, err := s.store.GetRole(ctx, AdminRole)
	switch {
	case errors.Is(err, store.ErrNotFound):
		r = store.Role{Name: AdminRole, Description: "every action on everything", CreatedAt: s.now().UTC()}
	case err != nil:
		return fmt.Errorf("admin role: %w", err)
	}
	r.Permissions = AdminPermissions()
	if _, err := s.store.PutRole(ctx, r); err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("admin role: %w", err)
	}
	u, err := s.store.GetUser(ctx, login)
	switch {
	case errors.Is(err, store.ErrNotFound):
		u = store.User{Login: login, CreatedAt: s.now().UTC()}
	case err != nil:
		return fmt.Errorf("user %s: %w", login, err)
	}
	if slices.Contains(u.Roles, AdminRole) {
		return nil
	}
	u.Roles = append(u.Roles, AdminRole)
	if _, err := s.store.PutUser(ctx, u); err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("user %s: %w", login, err)
	}
	return nil
}
