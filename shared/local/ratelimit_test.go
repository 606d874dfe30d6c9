package local

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestAPIRateLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.RequestRate, c.RequestBurst = 1, 2
		c.AnonymousRate, c.AnonymousBurst = 1, 3
	})
	token, err := os.ReadFile(h.srv.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	get := func(tok string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL()+"/orchestrator/v1/jobs", nil)
		req.Header.Set("X-Authentication", tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	admin := strings.TrimSpace(string(token))
	for i := 0; i < 2; i++ {
		if resp := get(admin); resp.StatusCode != 200 {
			t.Fatalf("request %d within the burst: %d", i, resp.StatusCode)
		}
	}
	resp := get(admin)
	defer resp.Body.Close()
	var body struct {
		Kind string `json:"kind"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || body.Kind != "puppetlabs.orchestrator/rate-limited" {
		t.Errorf("over the limit: %d Retry-After %q kind %q", resp.StatusCode, resp.Header.Get("Retry-After"), body.Kind)
	}
	// The limit is the user's, whichever token it uses.
	second, err := h.srv.Auth().IssueToken(context.Background(), "admin", "second token", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if r := get(second); r.StatusCode != http.StatusTooManyRequests {
		t.Errorf("another token of the same user got %d, want 429: a new token must not bring a new budget", r.StatusCode)
	}
	// Requests without a valid token are limited by address: a fresh random token per
	// request does not escape it, and their budget is not the user's.
	codes := []int{}
	for i := range 5 {
		codes = append(codes, get(fmt.Sprintf("random-token-%d", i)).StatusCode)
	}
	if want := []int{401, 401, 401, 429, 429}; fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Errorf("random tokens got %v, want %v", codes, want)
	}
	// The Go client waits as Retry-After says and succeeds.
	start := time.Now()
	if _, err := h.api.Jobs(context.Background(), nil); err != nil {
		t.Fatalf("client after 429: %v", err)
	}
	if time.Since(start) < 500*time.Millisecond {
		t.Errorf("the client did not wait for Retry-After (%s)", time.Since(start))
	}
}
