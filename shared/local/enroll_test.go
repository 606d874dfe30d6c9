package local

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/baton-run/baton/agent"
	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/client"
)

func TestEnrollmentTokenAndSignedConnects(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	e, err := h.api.EnrollNodeToken(ctx, "k1", "1h")
	if err != nil {
		t.Fatal(err)
	}
	base := agent.Config{Server: "ws://" + h.srv.Addr() + "/pcp", Name: "k1",
		CacheDir: filepath.Join(t.TempDir(), "cache"), SpoolDir: filepath.Join(t.TempDir(), "spool")}
	key, err := agent.Enroll(ctx, base, e.EnrollmentToken, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.Enroll(ctx, base, e.EnrollmentToken, ""); err == nil {
		t.Fatal("the enrolment token worked twice")
	}

	// The agent connects with its key and runs a task.
	cfg := base
	cfg.PrivateKey, cfg.Logger, cfg.MaxBackoff = key, testLogger(t), 200*time.Millisecond
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); a.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	h.waitConnected("k1")
	_, nodes := h.waitJob(h.run(client.TaskRequest{Task: "demo::hello", Scope: client.Scope{Nodes: []string{"k1"}}}).Name, 20*time.Second)
	if nodes[0].State != "finished" {
		t.Fatalf("task on the enrolled node: %s %s", nodes[0].State, nodes[0].Result)
	}

	// A captured connect cannot be replayed.
	dial := func(authz string) int {
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		defer dcancel()
		c, resp, err := websocket.Dial(dctx, "ws://"+h.srv.Addr()+"/pcp", &websocket.DialOptions{
			HTTPHeader: http.Header{"X-Baton-Node": {"k1"}, "Authorization": {authz}}})
		if err == nil {
			c.CloseNow()
			return http.StatusSwitchingProtocols
		}
		if resp == nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	captured := auth.SignConnect(ed25519.PrivateKey(key), "k1", time.Now())
	if got := dial(captured); got != http.StatusSwitchingProtocols {
		t.Fatalf("fresh signed connect: %d", got)
	}
	if got := dial(captured); got != http.StatusUnauthorized {
		t.Errorf("replayed connect: %d, want 401", got)
	}
	if got := dial("Bearer " + e.EnrollmentToken); got != http.StatusUnauthorized {
		t.Errorf("the enrolment token as a connect credential: %d", got)
	}
}

// TestBulkEnrollment checks POST /baton/v1/nodes/enrollments: many nodes in one call, each
// with a token that works like a single enrolment's, and all or nothing on bad input.
func TestBulkEnrollment(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	list, err := h.api.EnrollNodes(ctx, []string{"b1", "b2", "b3"}, "2h")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].Name != "b1" || list[2].Name != "b3" || list[0].EnrollmentToken == list[1].EnrollmentToken {
		t.Fatalf("enrollments = %+v", list)
	}
	if d := time.Until(list[0].ExpiresAt); d < time.Hour || d > 2*time.Hour {
		t.Errorf("token expires in %s, want about 2h", d)
	}
	base := agent.Config{Server: "ws://" + h.srv.Addr() + "/pcp", Name: "b2",
		CacheDir: filepath.Join(t.TempDir(), "cache"), SpoolDir: filepath.Join(t.TempDir(), "spool")}
	if _, err := agent.Enroll(ctx, base, list[1].EnrollmentToken, ""); err != nil {
		t.Fatalf("enrol with a bulk token: %v", err)
	}

	inventory := func() int {
		nodes, err := h.api.Inventory(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(nodes)
	}
	for _, tc := range []struct {
		name  string
		names []string
		code  int
		kind  string
	}{
		{"one taken", []string{"b4", "b1", "b5"}, http.StatusConflict, "puppetlabs.orchestrator/conflict"},
		{"one invalid", []string{"b4", "bad name"}, http.StatusBadRequest, "puppetlabs.orchestrator/validation-error"},
		{"one given twice", []string{"b4", "b4"}, http.StatusBadRequest, "puppetlabs.orchestrator/validation-error"},
		{"none", []string{}, http.StatusBadRequest, "puppetlabs.orchestrator/validation-error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.api.EnrollNodes(ctx, tc.names, "")
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Status != tc.code || ae.Kind != tc.kind {
				t.Fatalf("error %v, want %d %s", err, tc.code, tc.kind)
			}
			if tc.code == http.StatusConflict && fmt.Sprint(ae.Details["nodes"]) != "[b1]" {
				t.Errorf("details %v do not name the taken node", ae.Details)
			}
			if n := inventory(); n != 3 {
				t.Fatalf("%d nodes after a refused bulk enrolment, want 3", n)
			}
		})
	}
}

// TestEnrollmentLimits checks the anonymous limit on enrolment: valid enrolments from one
// address are not limited, failed ones are, and an agent that finds its address throttled
// waits as told and enrols.
func TestEnrollmentLimits(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AnonymousRate, c.AnonymousBurst = 1, 2 })
	ctx := context.Background()
	var names []string
	for i := range 8 {
		names = append(names, fmt.Sprintf("e%d", i))
	}
	list, err := h.api.EnrollNodes(ctx, names, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := func(name string) agent.Config {
		return agent.Config{Server: "ws://" + h.srv.Addr() + "/pcp", Name: name,
			CacheDir: filepath.Join(t.TempDir(), "cache"), SpoolDir: filepath.Join(t.TempDir(), "spool")}
	}
	// Six valid enrolments at once, three times the burst: none is refused.
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range 6 {
		wg.Go(func() { _, errs[i] = agent.Enroll(ctx, cfg(list[i].Name), list[i].EnrollmentToken, "") })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("valid enrolment %d: %v", i, err)
		}
	}
	// Failed ones spend the address's budget.
	post := func(body string) int {
		resp, err := http.Post(h.srv.URL()+"/baton/v1/enroll", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	bad := `{"name":"e6","token":"wrong","public_key":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `"}`
	var codes []int
	for range 3 {
		codes = append(codes, post(bad))
	}
	if fmt.Sprint(codes) != "[401 401 429]" {
		t.Fatalf("failed enrolments got %v, want [401 401 429]", codes)
	}
	// The address is throttled now: the agent waits for Retry-After and then enrols.
	if _, err := agent.Enroll(ctx, cfg("e7"), list[7].EnrollmentToken, ""); err != nil {
		t.Fatalf("enrolment from a throttled address: %v", err)
	}
}
