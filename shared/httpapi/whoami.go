package httpapi

import (
	"net/http"
	"slices"
	"time"

	"github.com/baton-run/baton/shared/auth"
)

// whoamiView is what GET /baton/v1/whoami answers: who the caller is and what it may do, so a
// client (the console) shows only the actions the caller holds. It is advice for display: the
// API checks every request on its own.
type whoamiView struct {
	Login string `json:"login"`
	// Permissions are the caller's permissions as ACTION[=INSTANCE][@SCOPE].
	Permissions []string `json:"permissions"`
	// Actions maps every action to whether the caller holds it on some instance and scope.
	Actions map[string]bool `json:"actions"`
	// RunnableTasks lists the task names the caller may run ("*": every task), with the node
	// scopes it may run them on.
	RunnableTasks map[string][]string `json:"runnable_tasks"`
	TokenID       string              `json:"token_id"`
	ExpiresAt     *time.Time          `json:"expires_at"`
}

func newWhoami(p auth.Principal) whoamiView {
	v := whoamiView{Login: p.Login, Permissions: []string{}, Actions: map[string]bool{}, RunnableTasks: map[string][]string{},
		TokenID: p.TokenID, ExpiresAt: p.ExpiresAt}
	for _, a := range auth.Actions {
		v.Actions[a] = p.Can(a)
	}
	for _, perm := range p.Permissions {
		if s := auth.FormatPermission(perm); !slices.Contains(v.Permissions, s) {
			v.Permissions = append(v.Permissions, s)
		}
		if perm.Action != auth.ActionTasksRun {
			continue
		}
		inst := perm.Instance
		if inst == "" {
			inst = "*"
		}
		scope := perm.Scope
		if scope == "" {
			scope = "*"
		}
		if !slices.Contains(v.RunnableTasks[inst], scope) {
			v.RunnableTasks[inst] = append(v.RunnableTasks[inst], scope)
		}
	}
	slices.Sort(v.Permissions)
	for _, scopes := range v.RunnableTasks {
		slices.Sort(scopes)
	}
	return v
}

func (a *API) whoami(_ *http.Request, p principal) (any, int, error) {
	return newWhoami(p), http.StatusOK, nil
}
