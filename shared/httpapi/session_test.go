package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/httpapi"
	"github.com/baton-run/baton/shared/store"
)

// signIn posts token to /baton/v1/session and returns the session cookie and the CSRF value.
func (s *stack) signIn(token string, header map[string]string) (response, *http.Cookie, string) {
	s.t.Helper()
	h := map[string]string{"X-Authentication": ""}
	for k, v := range header {
		h[k] = v
	}
	r := s.do(request{method: http.MethodPost, path: "/baton/v1/session", body: `{"token":"` + token + `"}`, header: h})
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == httpapi.SessionCookie {
			cookie = c
		}
	}
	if r.status != http.StatusCreated {
		return r, cookie, ""
	}
	csrf, _ := r.object(s.t)["csrf"].(string)
	return r, cookie, csrf
}

// withCookie makes a request authenticated by the session cookie (no X-Authentication), with
// the CSRF header when csrf is not empty.
func (s *stack) withCookie(method, path, body string, cookie *http.Cookie, csrf string) response {
	s.t.Helper()
	h := map[string]string{"X-Authentication": "", "Cookie": cookie.Name + "=" + cookie.Value}
	if csrf != "" {
		h[httpapi.CSRFHeader] = csrf
	}
	return s.do(request{method: method, path: path, body: body, header: h})
}

func TestConsoleSession(t *testing.T) {
	s := newStack(t, stackOptions{})
	r, cookie, csrf := s.signIn(s.token, nil)
	if r.status != http.StatusCreated {
		t.Fatalf("sign in: status %d: %s", r.status, r.body)
	}
	if cookie == nil {
		t.Fatalf("sign in set no %s cookie; headers %v", httpapi.SessionCookie, r.header)
	}
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/", cookie)
	}
	if cookie.Secure {
		t.Errorf("cookie is Secure on a plain-HTTP request")
	}
	if cookie.Value == s.token {
		t.Errorf("the cookie holds the token signed in with; want a session token of its own")
	}
	if csrf == "" || csrf != httpapi.CSRFValue(cookie.Value) {
		t.Fatalf("csrf %q, want the session's value", csrf)
	}
	if got := r.object(t)["login"]; got != "admin" {
		t.Errorf("login %v, want admin", got)
	}
	if strings.Contains(string(r.body), cookie.Value) || strings.Contains(string(r.body), s.token) {
		t.Errorf("the answer's body contains a token: %s", r.body)
	}

	t.Run("cookie with CSRF header", func(t *testing.T) {
		if r := s.withCookie(http.MethodGet, v1+"/jobs", "", cookie, csrf); r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	for _, tc := range []struct{ name, csrf string }{
		{"cookie alone", ""},
		{"wrong CSRF value", httpapi.CSRFValue("another session")},
		{"CSRF value of the cookie itself", cookie.Value},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			before := s.snapshot()
			r := s.withCookie(http.MethodPost, v1+"/command/task", `{"task":"demo::hello","params":{},"scope":{"nodes":["web1"]}}`, cookie, tc.csrf)
			wantError(t, r, http.StatusForbidden, httpapi.KindCSRF)
			if after := s.snapshot(); after != before {
				t.Errorf("store changed: before %+v, after %+v", before, after)
			}
			wantError(t, s.withCookie(http.MethodGet, v1+"/jobs", "", cookie, tc.csrf), http.StatusForbidden, httpapi.KindCSRF)
		})
	}
	t.Run("a cookie-authenticated command runs as the user", func(t *testing.T) {
		s.enroll("web1")
		r := s.withCookie(http.MethodPost, v1+"/command/task", `{"task":"demo::hello","params":{},"scope":{"nodes":["web1"]}}`, cookie, csrf)
		if r.status != http.StatusAccepted {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		r = s.withCookie(http.MethodGet, v1+"/jobs/1", "", cookie, csrf)
		if owner, _ := r.object(t)["owner"].(map[string]any); owner["login"] != "admin" {
			t.Errorf("owner %v, want admin", owner)
		}
	})
	t.Run("GET session gives the CSRF value again", func(t *testing.T) {
		r := s.withCookie(http.MethodGet, "/baton/v1/session", "", cookie, "")
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		if got := r.object(t)["csrf"]; got != csrf {
			t.Errorf("csrf %v, want %s", got, csrf)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", cc)
		}
	})
	t.Run("sign out needs the CSRF header", func(t *testing.T) {
		wantError(t, s.withCookie(http.MethodDelete, "/baton/v1/session", "", cookie, ""), http.StatusForbidden, httpapi.KindCSRF)
		if r := s.withCookie(http.MethodGet, v1+"/jobs", "", cookie, csrf); r.status != http.StatusOK {
			t.Fatalf("session ended by a refused sign-out: status %d", r.status)
		}
	})
	t.Run("sign out revokes the session token", func(t *testing.T) {
		r := s.withCookie(http.MethodDelete, "/baton/v1/session", "", cookie, csrf)
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		cleared := false
		for _, c := range (&http.Response{Header: r.header}).Cookies() {
			cleared = cleared || (c.Name == httpapi.SessionCookie && c.Value == "" && c.MaxAge < 0)
		}
		if !cleared {
			t.Errorf("sign out did not clear the cookie: %v", r.header.Values("Set-Cookie"))
		}
		wantError(t, s.withCookie(http.MethodGet, v1+"/jobs", "", cookie, csrf), http.StatusUnauthorized, kindUnauth)
		wantError(t, s.withCookie(http.MethodGet, "/baton/v1/session", "", cookie, ""), http.StatusUnauthorized, kindUnauth)
		// The token signed in with is untouched.
		if r := s.get(v1 + "/jobs"); r.status != http.StatusOK {
			t.Errorf("the API token stopped working after sign-out: %d", r.status)
		}
	})
}

func TestConsoleSignInRefused(t *testing.T) {
	s := newStack(t, stackOptions{})
	for _, tc := range []struct {
		name   string
		body   string
		header map[string]string
		status int
		kind   string
	}{
		{"unknown token", `{"token":"nope"}`, nil, http.StatusUnauthorized, kindUnauth},
		{"no token", `{}`, nil, http.StatusUnauthorized, kindUnauth},
		{"a form's content type", `{"token":"` + s.token + `"}`, map[string]string{"Content-Type": "text/plain"}, http.StatusBadRequest, kindValidation},
		{"no content type", `{"token":"` + s.token + `"}`, map[string]string{"Content-Type": ""}, http.StatusBadRequest, kindValidation},
		{"not JSON", `token=x`, nil, http.StatusBadRequest, kindValidation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{"X-Authentication": ""}
			for k, v := range tc.header {
				h[k] = v
			}
			r := s.do(request{method: http.MethodPost, path: "/baton/v1/session", body: tc.body, header: h})
			wantError(t, r, tc.status, tc.kind)
			if len(r.header.Values("Set-Cookie")) != 0 {
				t.Errorf("a refused sign-in set a cookie: %v", r.header.Values("Set-Cookie"))
			}
		})
	}
	t.Run("GET session without a cookie", func(t *testing.T) {
		wantError(t, s.do(request{method: http.MethodGet, path: "/baton/v1/session", header: map[string]string{"X-Authentication": ""}}), http.StatusUnauthorized, kindUnauth)
	})
}

func TestConsoleSessionCookieSecureBehindTLS(t *testing.T) {
	s := newStack(t, stackOptions{})
	_, cookie, _ := s.signIn(s.token, map[string]string{"X-Forwarded-Proto": "https"})
	if cookie == nil || !cookie.Secure {
		t.Fatalf("cookie %+v: want Secure when the client came over TLS", cookie)
	}
}

func TestConsoleSessionNeverOutlivesItsToken(t *testing.T) {
	s := newStack(t, stackOptions{})
	ctx := context.Background()
	short, err := s.auth.IssueToken(ctx, "admin", "short", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r, cookie, csrf := s.signIn(short, nil)
	if r.status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	want := s.authClock.Now().Add(10 * time.Minute)
	exp, _ := r.object(t)["expires_at"].(string)
	got, err := time.Parse(time.RFC3339Nano, exp)
	if err != nil || !got.Equal(want) {
		t.Errorf("session expires at %q, want %s", exp, want)
	}
	if cookie.MaxAge != 600 {
		t.Errorf("cookie Max-Age %d, want 600", cookie.MaxAge)
	}
	s.authClock.Advance(10 * time.Minute)
	wantError(t, s.withCookie(http.MethodGet, v1+"/jobs", "", cookie, csrf), http.StatusUnauthorized, kindUnauth)
}

func TestWhoami(t *testing.T) {
	s := newStack(t, stackOptions{})
	ctx := context.Background()
	admin := auth.Principal{Login: "admin", Permissions: auth.AdminPermissions()}
	perms := []store.Permission{
		{Action: auth.ActionJobsView, Instance: "*", Scope: "*"},
		{Action: auth.ActionTasksRun, Instance: "demo::hello", Scope: "group:webs"},
		{Action: auth.ActionTasksRun, Instance: "demo::hello", Scope: "query:inventory[certname] { certname = \"db1\" }"},
	}
	if _, err := s.auth.CreateRole(ctx, admin, store.Role{Name: "web-ops", Permissions: perms}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.auth.SetUserRoles(ctx, admin, "alice", []string{"web-ops"}); err != nil {
		t.Fatal(err)
	}
	alice, err := s.auth.IssueToken(ctx, "alice", "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	_, cookie, csrf := s.signIn(alice, nil)
	for _, tc := range []struct {
		name string
		do   func() response
	}{
		{"by token", func() response {
			return s.do(request{method: http.MethodGet, path: "/baton/v1/whoami", header: map[string]string{"X-Authentication": alice}})
		}},
		{"by session", func() response { return s.withCookie(http.MethodGet, "/baton/v1/whoami", "", cookie, csrf) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.do()
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			v := r.object(t)
			if v["login"] != "alice" {
				t.Errorf("login %v", v["login"])
			}
			actions, _ := v["actions"].(map[string]any)
			want := map[string]bool{auth.ActionJobsView: true, auth.ActionTasksRun: true, auth.ActionJobsStop: false, auth.ActionPuppetRun: false, auth.ActionNodesManage: false}
			for a, w := range want {
				if actions[a] != w {
					t.Errorf("actions[%s] = %v, want %v", a, actions[a], w)
				}
			}
			tasks, _ := v["runnable_tasks"].(map[string]any)
			scopes, _ := tasks["demo::hello"].([]any)
			if len(tasks) != 1 || len(scopes) != 2 || scopes[0] != "group:webs" {
				t.Errorf("runnable_tasks %v, want demo::hello on group:webs and a query", tasks)
			}
			if ps, _ := v["permissions"].([]any); len(ps) != 3 {
				t.Errorf("permissions %v, want 3", ps)
			}
		})
	}
	t.Run("admin", func(t *testing.T) {
		v := s.get("/baton/v1/whoami").object(t)
		actions, _ := v["actions"].(map[string]any)
		for _, a := range auth.Actions {
			if actions[a] != true {
				t.Errorf("admin: actions[%s] = %v", a, actions[a])
			}
		}
		if tasks, _ := v["runnable_tasks"].(map[string]any); tasks["*"] == nil {
			t.Errorf("admin: runnable_tasks %v, want *", tasks)
		}
	})
	t.Run("unauthenticated", func(t *testing.T) {
		wantError(t, s.do(request{method: http.MethodGet, path: "/baton/v1/whoami", header: map[string]string{"X-Authentication": ""}}), http.StatusUnauthorized, kindUnauth)
	})
}
