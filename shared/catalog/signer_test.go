package catalog

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand; safe to read from server goroutines.
type fakeClock struct{ unix atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(c.unix.Load(), 0) }
func (c *fakeClock) advance(d time.Duration) { c.unix.Add(int64(d / time.Second)) }

func newTestSigner(t *testing.T) (*Signer, *fakeClock) {
	t.Helper()
	clock := &fakeClock{}
	clock.unix.Store(1_700_000_000)
	s, err := NewSigner([]byte("0123456789abcdef0123456789abcdef"), clock.now)
	if err != nil {
		t.Fatal(err)
	}
	return s, clock
}

func TestSigner(t *testing.T) {
	s, clock := newTestSigner(t)
	uri := s.Sign("production", "mymod", "mymod/files/lib.sh", time.Minute)
	if uri.Path != "/files/production/mymod/mymod/files/lib.sh" {
		t.Errorf("path = %s", uri.Path)
	}
	if uri.Params["expires"] != strconv.FormatInt(clock.now().Add(time.Minute).Unix(), 10) {
		t.Errorf("expires = %s", uri.Params["expires"])
	}
	if got := s.Sign("production", "mymod", "a b%.sh", time.Minute).Path; got != "/files/production/mymod/a%20b%25.sh" {
		t.Errorf("escaped path = %s", got)
	}
	exp, sig := uri.Params["expires"], uri.Params["signature"]
	later := strconv.FormatInt(clock.now().Add(time.Hour).Unix(), 10)
	tests := []struct {
		name                                string
		env, module, filename, expires, sig string
		advance                             time.Duration
		wantErr                             error
	}{
		{name: "round trip", env: "production", module: "mymod", filename: "mymod/files/lib.sh", expires: exp, sig: sig},
		{name: "uppercase hex", env: "production", module: "mymod", filename: "mymod/files/lib.sh", expires: exp, sig: strings.ToUpper(sig)},
		{name: "just before expiry", env: "production", module: "mymod", filename: "mymod/files/lib.sh", expires: exp, sig: sig, advance: 59 * time.Second},
		{name: "at expiry", env: "production", module: "mymod", filename: "mymod/files/lib.sh", expires: exp, sig: sig, advance: time.Minute, wantErr: ErrURLExpired},
		{name: "expired", env: "production", module: "mymod", filename: "mymod/files/lib.sh", expires: exp, sig: sig, advance: time.Hour, wantErr: ErrURLExpired},
		{name: "other env", env: "staging", module: "mymod", filename: "mymod/files/lib.sh", expires: exp, sig: sig, wantErr: ErrBadSignature},
		{name: "other module", env: "production", module: "other", filename: "mymod/files/lib.sh", expires: exp, sig: sig, wantErr: ErrBadSignature},
		{name: "other filename", env: "production", module: "mymod", filename: "mymod/files/lib.rb", expires: exp, sig: sig, wantErr: ErrBadSignature},
		{name: "moved separator", env: "production", module: "mymod/mymod", filename: "files/lib.sh", expires: exp, sig: sig, wantErr: ErrBadSignature},
		{name: "extended expiry", env: "production", module: "mymod", filename: "mymod/files/lib.sh", expires: later, sig: sig, wantErr: ErrBadSignature},
		{name: "non-numeric expiry", env: "production", module: "mymod", filename: "mymod/files/lib.sh", expires: "soon", sig: sig, wantErr: ErrBadSignature},
		{name: "flipped signature", env: "production", module: "mymod", filename: "mymod/files/lib.sh", expires: exp, sig: flipHex(sig), wantErr: ErrBadSignature},
		{name: "truncated signature", env: "production", module: "mymod", filename: "mymod/files/lib.sh", expires: exp, sig: sig[:10], wantErr: ErrBadSignature},
		{name: "not hex", env: "production", module: "mymod", filename: "mymod/files/lib.sh", expires: exp, sig: "zz" + sig[2:], wantErr: ErrBadSignature},
		{name: "empty", env: "production", module: "mymod", filename: "mymod/files/lib.sh", wantErr: ErrBadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, clock := newTestSigner(t)
			clock.advance(tc.advance)
			err := s.Verify(tc.env, tc.module, tc.filename, tc.expires, tc.sig)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Errorf("Verify = %v, want %v", err, tc.wantErr)
			}
		})
	}
	t.Run("other key", func(t *testing.T) {
		other, err := NewSigner([]byte("another key of enough length"), clock.now)
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Verify("production", "mymod", "mymod/files/lib.sh", exp, sig); !errors.Is(err, ErrBadSignature) {
			t.Errorf("Verify with other key = %v", err)
		}
	})
	t.Run("short key", func(t *testing.T) {
		if _, err := NewSigner([]byte("short"), nil); err == nil {
			t.Error("NewSigner with a 5-byte key: no error")
		}
	})
}

func flipHex(s string) string {
	if s[0] == '0' {
		return "1" + s[1:]
	}
	return "0" + s[1:]
}

func TestFileHandler(t *testing.T) {
	body := "#!/bin/sh\necho '{\"ok\":true}'\n"
	c, _ := newTestCatalog(t, map[string]string{
		"mymod/tasks/t.sh":       body,
		"mymod/tasks/t.json":     `{"files":["mymod/files/lib/"]}`,
		"mymod/files/lib/x y.sh": "lib with a space",
		"mymod/files/secret.key": "not part of any task",
	})
	s, clock := newTestSigner(t)
	srv := httptest.NewServer(FileHandler(c, s, nil))
	t.Cleanup(srv.Close)

	get := func(t *testing.T, path string, params map[string]string) (*http.Response, string) {
		t.Helper()
		q := url.Values{}
		for k, v := range params {
			q.Set(k, v)
		}
		resp, err := http.Get(srv.URL + path + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	signed := func(env, module, filename string) (string, map[string]string) {
		u := s.Sign(env, module, filename, time.Minute)
		return u.Path, u.Params
	}
	with := func(p map[string]string, k, v string) map[string]string {
		out := map[string]string{}
		for k, v := range p {
			out[k] = v
		}
		out[k] = v
		return out
	}

	t.Run("200 serves the file with its checksum", func(t *testing.T) {
		for _, f := range []struct{ filename, body string }{{"t.sh", body}, {"mymod/files/lib/x y.sh", "lib with a space"}} {
			path, params := signed("production", "mymod", f.filename)
			resp, got := get(t, path, params)
			if resp.StatusCode != http.StatusOK || got != f.body {
				t.Fatalf("%s: %d %q", path, resp.StatusCode, got)
			}
			if h := resp.Header.Get("X-Checksum-Sha256"); h != sum(got) {
				t.Errorf("%s: X-Checksum-Sha256 %s, sha256(body) %s", path, h, sum(got))
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
				t.Errorf("Content-Type = %s", ct)
			}
			if resp.ContentLength != int64(len(f.body)) {
				t.Errorf("Content-Length = %d", resp.ContentLength)
			}
		}
	})

	path, params := signed("production", "mymod", "t.sh")
	forbidden := []struct {
		name   string
		path   string
		params map[string]string
	}{
		{"no params", path, nil},
		{"tampered signature", path, with(params, "signature", flipHex(params["signature"]))},
		{"tampered expires", path, with(params, "expires", strconv.FormatInt(clock.now().Add(time.Hour).Unix(), 10))},
		{"tampered path", "/files/production/mymod/mymod/files/secret.key", params},
		{"other environment", "/files/staging/mymod/t.sh", params},
	}
	for _, tc := range forbidden {
		t.Run("403 "+tc.name, func(t *testing.T) {
			resp, got := get(t, tc.path, tc.params)
			wantErrorBody(t, resp, got, http.StatusForbidden, "puppetlabs.orchestrator/not-permitted")
		})
	}

	notFound := []struct{ name, env, module, filename, kind string }{
		{"file outside every task", "production", "mymod", "mymod/files/secret.key", "puppetlabs.orchestrator/unknown-file"},
		{"metadata file", "production", "mymod", "t.json", "puppetlabs.orchestrator/unknown-file"},
		{"unknown module", "production", "nomod", "t.sh", "puppetlabs.orchestrator/unknown-file"},
		{"unknown environment", "staging", "mymod", "t.sh", "puppetlabs.orchestrator/unknown-environment"},
	}
	for _, tc := range notFound {
		t.Run("404 "+tc.name, func(t *testing.T) {
			path, params := signed(tc.env, tc.module, tc.filename)
			resp, got := get(t, path, params)
			wantErrorBody(t, resp, got, http.StatusNotFound, tc.kind)
		})
	}

	t.Run("403 expired", func(t *testing.T) {
		path, params := signed("production", "mymod", "t.sh")
		clock.advance(2 * time.Minute)
		resp, got := get(t, path, params)
		wantErrorBody(t, resp, got, http.StatusForbidden, "puppetlabs.orchestrator/not-permitted")
		if !strings.Contains(got, "expired") {
			t.Errorf("body %s does not say expired", got)
		}
	})
}

func wantErrorBody(t *testing.T, resp *http.Response, body string, status int, kind string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d: %s", resp.StatusCode, status, body)
	}
	var e struct {
		Kind    string         `json:"kind"`
		Msg     string         `json:"msg"`
		Details map[string]any `json:"details"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if e.Kind != kind || e.Msg == "" || e.Details == nil {
		t.Errorf("error body = %s, want kind %s with msg and details", body, kind)
	}
}
