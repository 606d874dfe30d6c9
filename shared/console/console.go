package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var embedded embed.FS

// ContentSecurityPolicy is sent with every console response: the page loads its scripts,
// styles and images from its own origin only (no inline script or style, no CDN), talks only
// to its own origin, and cannot be framed.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Prefix is where the console's assets are served; the page itself is served at "/".
const Prefix = "/console/"

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
}

type asset struct {
	body        []byte
	contentType string
	etag        string
}

// Handler serves the console: its page at "/" and its assets under Prefix. Other paths are
// not its own (404).
type Handler struct {
	assets map[string]asset // by name inside assets/, e.g. "app.js"
}

// New returns the console's handler.
func New() (*Handler, error) {
	h := &Handler{assets: map[string]asset{}}
	err := fs.WalkDir(embedded, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("console asset %s: no content type for its extension", p)
		}
		b, err := embedded.ReadFile(p)
		if err != nil {
			return fmt.Errorf("console asset %s: %w", p, err)
		}
		sum := sha256.Sum256(b)
		h.assets[strings.TrimPrefix(p, "assets/")] = asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, ok := h.assets["index.html"]; !ok {
		return nil, fmt.Errorf("console: index.html is not embedded")
	}
	return h, nil
}

// Names lists the embedded assets' names.
func (h *Handler) Names() []string {
	out := make([]string, 0, len(h.assets))
	for n := range h.assets {
		out = append(out, n)
	}
	return out
}

// Owns reports whether the console serves path.
func (h *Handler) Owns(p string) bool {
	if p == "/" || p == "/index.html" {
		return true
	}
	_, ok := h.assets[strings.TrimPrefix(p, Prefix)]
	return strings.HasPrefix(p, Prefix) && ok
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, Prefix)
	if r.URL.Path == "/" || r.URL.Path == "/index.html" {
		name = "index.html"
	} else if !strings.HasPrefix(r.URL.Path, Prefix) {
		name = ""
	}
	a, ok := h.assets[name]
	hd := w.Header()
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	if !ok {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hd.Set("Content-Type", a.contentType)
	hd.Set("ETag", a.etag)
	// Revalidated on every load (a cheap 304), so a new binary's console is used at once.
	hd.Set("Cache-Control", "no-cache")
	if match := r.Header.Get("If-None-Match"); match != "" && match == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Length", fmt.Sprint(len(a.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(a.body)
	}
}

// WithAPI serves the console's page and assets and sends every other request to api: the one
// handler `baton serve` mounts at "/" and the AWS api function serves.
func WithAPI(api http.Handler) (http.Handler, error) {
	c, err := New()
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.Owns(r.URL.Path) {
			c.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	}), nil
}
