package local

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestAPIRateLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RequestRate, c.RequestBurst = 1, 2 })
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
	// Another caller has its own budget.
	if r := get("someone-else"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("a different token shares the limit: %d", r.StatusCode)
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
