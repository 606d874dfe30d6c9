package httpapi

// Console sessions: a browser signs in once with an API token and is then authenticated by a
// cookie, so the token never sits in a URL or in the page's script-readable storage.
//
// POST /baton/v1/session {"token": "..."} checks the token and issues a session token of the
// same user (an ordinary API token labelled "console session", at most SessionLifetime and
// never past the expiry of the token signed in with). The session token goes into the
// baton_session cookie: HttpOnly (page scripts cannot read it), SameSite=Strict (the browser
// sends it only on requests that a page of this origin makes) and Secure whenever the request
// came over TLS. The answer carries the session's CSRF value; GET /baton/v1/session gives it
// again to a page that was reloaded. DELETE /baton/v1/session revokes the session token and
// clears the cookie: signing out ends the session on the server, not only in the browser.
//
// CSRF: a request authenticated by the cookie alone is refused (403) unless it carries the
// X-Baton-CSRF header with the session's CSRF value, SHA-256 of a fixed prefix and the session
// token. Two independent defences therefore hold:
//   - a cross-site form or link cannot set a custom header, and a cross-site script that
//     tries is stopped by CORS (the API sends no Access-Control-Allow-* header, so the browser
//     never makes the pre-flighted request);
//   - even if the cookie were sent cross-site (an old browser without SameSite), the attacker
//     cannot compute the header's value without the session token, which only the HttpOnly
//     cookie holds, and cannot read it from GET /baton/v1/session across origins.
//
// The value is derived from the session token rather than stored, so every replica (each
// Lambda instance of the AWS api function) checks it without shared state. X-Authentication
// (scripts, the CLI, PE clients) is unchanged and needs no CSRF header: a browser never adds
// that header on its own.

import (
	"errors"
	"mime"
	"net/http"
	"time"

	"github.com/baton-run/baton/shared/auth"
)

const (
	// SessionCookie is the name of the console's session cookie.
	SessionCookie = auth.SessionCookie
	// CSRFHeader carries the session's CSRF value on every cookie-authenticated request.
	CSRFHeader = auth.CSRFHeader
	// SessionLifetime bounds a console session (and its session token).
	SessionLifetime = 8 * time.Hour
	// SessionTokenLabel labels the API tokens that back console sessions.
	SessionTokenLabel = "console session"
	// KindCSRF is the error kind of a cookie-authenticated request without a valid CSRF header.
	KindCSRF = "baton/csrf-check-failed"
)

// CSRFValue is the CSRF value bound to a session token (auth.CSRFValue).
func CSRFValue(sessionToken string) string { return auth.CSRFValue(sessionToken) }

// credential returns the API token a request authenticates with: X-Authentication, then the
// legacy ?token= query parameter (PE clients), then the session cookie, which counts only with
// a matching CSRF header.
func credential(r *http.Request) (string, error) {
	if t := r.Header.Get("X-Authentication"); t != "" {
		return t, nil
	}
	if t := r.URL.Query().Get("token"); t != "" {
		return t, nil
	}
	token, found, ok := auth.SessionFromCookie(r.Header.Values("Cookie"), r.Header.Get(CSRFHeader))
	if !found {
		return "", nil
	}
	if !ok {
		return "", csrfError()
	}
	return token, nil
}

func csrfError() error {
	return &apiError{status: http.StatusForbidden, body: errorBody{Kind: KindCSRF,
		Msg:     "A request authenticated by the session cookie must carry the " + CSRFHeader + " header of its session",
		Details: map[string]any{"header": CSRFHeader}}}
}

// secureRequest reports whether the client reached the server over TLS (directly, or through
// a proxy such as API Gateway that says so).
func secureRequest(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
}

func setSessionCookie(w http.ResponseWriter, r *http.Request, value string, expires time.Time, now time.Time) {
	c := &http.Cookie{Name: SessionCookie, Value: value, Path: "/", HttpOnly: true, Secure: secureRequest(r), SameSite: http.SameSiteStrictMode}
	if value == "" {
		c.MaxAge = -1
	} else {
		c.Expires = expires
		c.MaxAge = max(1, int(expires.Sub(now).Seconds()))
	}
	http.SetCookie(w, c)
}

type sessionView struct {
	Login     string     `json:"login"`
	CSRF      string     `json:"csrf"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// sessionRoutes registers the console's session endpoints.
func (a *API) sessionRoutes() {
	a.mux.HandleFunc("POST /baton/v1/session", a.signIn)
	a.mux.HandleFunc("GET /baton/v1/session", a.currentSession)
	a.mux.HandleFunc("DELETE /baton/v1/session", a.signOut)
}

func (a *API) signIn(w http.ResponseWriter, r *http.Request) {
	if !a.notBlocked(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	// Content-Type application/json is required (decode alone also takes none): a cross-site
	// page can send that type only after a CORS pre-flight, which this API never grants, so
	// another site cannot sign the browser in as someone else (login CSRF).
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		if a.allowAnonymous(w, r) {
			a.writeError(w, r, validation("Content-Type must be application/json"))
		}
		return
	}
	var body struct {
		Token string `json:"token"`
	}
	if err := decode(r, &body); err != nil {
		if a.allowAnonymous(w, r) {
			a.writeError(w, r, err)
		}
		return
	}
	// Only failed sign-ins spend the address's anonymous budget.
	p, ok := a.authenticate(w, r, body.Token, nil, "The token is not valid (unknown, revoked or expired)")
	if !ok {
		return
	}
	// SessionLifetime, or when the token signed in with expires sooner (or the server's maximum
	// token lifetime is shorter), the default token lifetime cut to the token's expiry: the
	// auth service decides, on its own clock.
	secret, info, err := a.auth.IssueTokenFor(r.Context(), p, p.Login, SessionTokenLabel, SessionLifetime)
	if errors.Is(err, auth.ErrInvalid) {
		secret, info, err = a.auth.IssueTokenFor(r.Context(), p, p.Login, SessionTokenLabel, 0)
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	exp := info.CreatedAt.Add(SessionLifetime)
	if info.ExpiresAt != nil {
		exp = *info.ExpiresAt
	}
	a.log.Info("console session started", "login", p.Login, "token_id", p.TokenID, "session_token_id", info.ID)
	setSessionCookie(w, r, secret, exp, info.CreatedAt)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, sessionView{Login: p.Login, CSRF: CSRFValue(secret), ExpiresAt: &exp})
}

// sessionPrincipal authenticates the session cookie alone (no CSRF header: see currentSession).
func (a *API) sessionPrincipal(r *http.Request) (auth.Principal, string, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return auth.Principal{}, "", &apiError{status: http.StatusUnauthorized, body: errorBody{Kind: "puppetlabs.rbac/user-unauthenticated",
			Msg: "Not signed in", Details: map[string]any{}}}
	}
	p, err := a.auth.AuthenticateToken(r.Context(), c.Value)
	if err != nil {
		if errors.Is(err, auth.ErrUnauthenticated) {
			err = &apiError{status: http.StatusUnauthorized, body: errorBody{Kind: "puppetlabs.rbac/user-unauthenticated",
				Msg: "The session has ended: sign in again", Details: map[string]any{}}}
		}
		return auth.Principal{}, "", err
	}
	return p, c.Value, nil
}

// currentSession tells a page of this origin who is signed in and the session's CSRF value.
// It needs no CSRF header: it changes nothing, and its answer cannot be read across origins
// (no CORS), which is what keeps the CSRF value from an attacker's page.
func (a *API) currentSession(w http.ResponseWriter, r *http.Request) {
	p, secret, err := a.sessionPrincipal(r)
	if err != nil {
		if a.allowAnonymous(w, r) {
			a.writeError(w, r, err)
		}
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, sessionView{Login: p.Login, CSRF: CSRFValue(secret), ExpiresAt: p.ExpiresAt})
}

// signOut revokes the session token and clears the cookie. It needs the CSRF header (another
// site must not be able to sign the user out). A cookie whose session has already ended is
// cleared all the same.
func (a *API) signOut(w http.ResponseWriter, r *http.Request) {
	p, secret, err := a.sessionPrincipal(r)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.status == http.StatusUnauthorized {
			setSessionCookie(w, r, "", time.Time{}, a.clock())
			writeJSON(w, http.StatusOK, map[string]any{"signed_out": true})
			return
		}
		a.writeError(w, r, err)
		return
	}
	if !auth.CSRFMatches(secret, r.Header.Get(CSRFHeader)) {
		a.writeError(w, r, csrfError())
		return
	}
	if err := a.auth.RevokeToken(r.Context(), p, p.TokenID); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.log.Info("console session ended", "login", p.Login, "session_token_id", p.TokenID)
	setSessionCookie(w, r, "", time.Time{}, a.clock())
	writeJSON(w, http.StatusOK, map[string]any{"signed_out": true})
}
