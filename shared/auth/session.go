package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
)

// The web console's session: an API token in an HttpOnly, SameSite=Strict cookie, which counts
// only on a request that also carries the CSRF value bound to it (a header another site's
// page cannot set). Both the API (shared/httpapi) and the AWS HTTP API's authorizer
// (shared/awsgw) check it, so they share these.
const (
	// SessionCookie is the name of the console's session cookie.
	SessionCookie = "baton_session"
	// CSRFHeader carries the session's CSRF value on every cookie-authenticated request.
	CSRFHeader = "X-Baton-CSRF"
)

// CSRFValue is the CSRF value bound to a session token: derived from it, so that any process
// can check it without shared state.
func CSRFValue(sessionToken string) string {
	sum := sha256.Sum256([]byte("baton console csrf\x00" + sessionToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// SessionFromCookie returns the session token in the Cookie header(s) given and whether the
// CSRF value sent with them (csrf) matches it. found is false when there is no session cookie.
func SessionFromCookie(cookieHeaders []string, csrf string) (token string, found, csrfOK bool) {
	r := http.Request{Header: http.Header{"Cookie": cookieHeaders}}
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return "", false, false
	}
	return c.Value, true, CSRFMatches(c.Value, csrf)
}

// CSRFMatches reports whether csrf is the CSRF value of the session token.
func CSRFMatches(sessionToken, csrf string) bool {
	return csrf != "" && subtle.ConstantTimeCompare([]byte(csrf), []byte(CSRFValue(sessionToken))) == 1
}
