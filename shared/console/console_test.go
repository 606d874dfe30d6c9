package console_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/console"
	"github.com/baton-run/baton/shared/httpapi"
	"github.com/baton-run/baton/shared/local"
)

func get(t *testing.T, h http.Handler, method, path string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestAssetsContentTypesAndHeaders(t *testing.T) {
	c, err := console.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/", "text/html; charset=utf-8", `<script src="/console/app.js" defer></script>`},
		{"/index.html", "text/html; charset=utf-8", "<title>Baton console</title>"},
		{"/console/app.js", "text/javascript; charset=utf-8", "X-Baton-CSRF"},
		{"/console/app.css", "text/css; charset=utf-8", ":focus-visible"},
		{"/console/favicon.svg", "image/svg+xml", "<svg"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			w := get(t, c, http.MethodGet, tc.path, nil)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d", w.Code)
			}
			if ct := w.Header().Get("Content-Type"); ct != tc.contentType {
				t.Errorf("Content-Type %q, want %q", ct, tc.contentType)
			}
			if csp := w.Header().Get("Content-Security-Policy"); csp != console.ContentSecurityPolicy {
				t.Errorf("Content-Security-Policy %q", csp)
			}
			for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s %q, want %q", k, got, v)
				}
			}
			if !strings.Contains(w.Body.String(), tc.contains) {
				t.Errorf("body does not contain %q", tc.contains)
			}
			etag := w.Header().Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			if w := get(t, c, http.MethodGet, tc.path, map[string]string{"If-None-Match": etag}); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
				t.Errorf("revalidation: status %d, %d bytes; want 304, none", w.Code, w.Body.Len())
			}
			if w := get(t, c, http.MethodHead, tc.path, nil); w.Code != http.StatusOK || w.Body.Len() != 0 {
				t.Errorf("HEAD: status %d, %d bytes", w.Code, w.Body.Len())
			}
		})
	}
	for _, p := range []string{"/console/", "/console/nope.js", "/console/../console.go", "/app.js"} {
		if w := get(t, c, http.MethodGet, p, nil); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, w.Code)
		}
	}
	if w := get(t, c, http.MethodPost, "/", nil); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d, want 405", w.Code)
	}
}

// The CSP allows no inline script or style and nothing from another origin: the assets must
// not need any.
func TestAssetsNeedNothingTheCSPForbids(t *testing.T) {
	if !strings.Contains(console.ContentSecurityPolicy, "script-src 'self'") || strings.Contains(console.ContentSecurityPolicy, "unsafe") {
		t.Fatalf("CSP %q", console.ContentSecurityPolicy)
	}
	files, err := filepath.Glob("assets/*")
	if err != nil || len(files) < 3 {
		t.Fatalf("assets: %v %v", files, err)
	}
	inlineScript := regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`)
	attrs := regexp.MustCompile(`(?i)\s(on[a-z]+|style)\s*=`)
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if strings.HasSuffix(f, ".html") {
			if inlineScript.MatchString(s) {
				t.Errorf("%s has an inline script", f)
			}
			if m := attrs.FindString(s); m != "" {
				t.Errorf("%s has an inline handler or style attribute: %q", f, m)
			}
			if strings.Contains(s, "<style") {
				t.Errorf("%s has an inline style element", f)
			}
		}
		for _, m := range external.FindAllString(s, -1) {
			if m != "http://www.w3.org" { // the SVG namespace name is not fetched
				t.Errorf("%s refers to another origin: %s", f, m)
			}
		}
		if strings.HasSuffix(f, ".js") && regexp.MustCompile(`\.innerHTML\s*=|setAttribute\('style'|eval\(|new Function`).MatchString(s) {
			t.Errorf("%s builds HTML from strings, sets inline styles or evaluates code", f)
		}
	}
}

func TestWithAPIRoutes(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, `{"api":"`+r.URL.Path+`"}`)
	})
	h, err := console.WithAPI(api)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path    string
		console bool
	}{
		{"/", true}, {"/console/app.js", true},
		{"/orchestrator/v1/jobs", false}, {"/baton/v1/session", false}, {"/nope", false}, {"/console/nope.js", false},
	} {
		w := get(t, h, http.MethodGet, tc.path, nil)
		if got := w.Code != http.StatusTeapot; got != tc.console {
			t.Errorf("%s: served by the console %v, want %v (status %d)", tc.path, got, tc.console, w.Code)
		}
		if !tc.console && w.Header().Get("Content-Security-Policy") != "" {
			t.Errorf("%s: the API's answer got the console's headers", tc.path)
		}
	}
}

// TestConsoleOnBatonServe starts the real local server (SQLite, API, console) and signs in as
// the console does: the page, the session endpoints, and the CSRF refusal of a request that
// carries only the cookie.
func TestConsoleOnBatonServe(t *testing.T) {
	modules, err := filepath.Abs("../../examples/modules")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := local.Start(local.Config{Listen: "127.0.0.1:0", DataDir: filepath.Join(t.TempDir(), "data"), Modules: modules, PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	token, err := os.ReadFile(srv.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	base := srv.URL() // http://host:port
	client := &http.Client{Timeout: 10 * time.Second}
	do := func(method, path, body string, header map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	resp, body := do(http.MethodGet, "/", "", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Security-Policy") != console.ContentSecurityPolicy || !bytes.Contains(body, []byte("Baton console")) {
		t.Fatalf("GET /: status %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	resp, body = do(http.MethodGet, "/nope", "", nil)
	if resp.StatusCode != http.StatusNotFound || !bytes.Contains(body, []byte("No such endpoint")) {
		t.Errorf("GET /nope: status %d %s; want the API's 404", resp.StatusCode, body)
	}

	resp, body = do(http.MethodPost, "/baton/v1/session", `{"token":"`+strings.TrimSpace(string(token))+`"}`, map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("sign in: status %d: %s", resp.StatusCode, body)
	}
	var sess struct{ Login, CSRF string }
	if err := json.Unmarshal(body, &sess); err != nil || sess.CSRF == "" || sess.Login != "admin" {
		t.Fatalf("sign in answered %s (%v)", body, err)
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == httpapi.SessionCookie {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie %+v", cookie)
	}
	withCookie := map[string]string{"Cookie": cookie.Name + "=" + cookie.Value}
	resp, body = do(http.MethodGet, "/baton/v1/whoami", "", withCookie)
	if resp.StatusCode != http.StatusForbidden || !bytes.Contains(body, []byte(httpapi.KindCSRF)) {
		t.Errorf("cookie without CSRF header: status %d %s, want 403 %s", resp.StatusCode, body, httpapi.KindCSRF)
	}
	withCookie[httpapi.CSRFHeader] = sess.CSRF
	resp, body = do(http.MethodGet, "/baton/v1/whoami", "", withCookie)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"login":"admin"`)) {
		t.Errorf("cookie with CSRF header: status %d %s", resp.StatusCode, body)
	}
	resp, body = do(http.MethodDelete, "/baton/v1/session", "", withCookie)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sign out: status %d %s", resp.StatusCode, body)
	}
	resp, _ = do(http.MethodGet, "/baton/v1/whoami", "", withCookie)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after sign out: status %d, want 401", resp.StatusCode)
	}
}
