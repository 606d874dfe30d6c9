package awsapp_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/awsapp"
	"github.com/baton-run/baton/shared/client"
)

// TestAWSSignedConnect: an agent enrolled with a one-time token registers its own key through
// the enrolment route (the one HTTP API route without the authorizer, straight to the api
// function) and then connects with signed, nonce-protected connects: the $connect
// authorizer's path that records nonces, which agents with a bare secret never take.
func TestAWSSignedConnect(t *testing.T) {
	c := newCloud(t)
	enroll := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/baton/v1/enroll" {
			http.NotFound(w, r) // API Gateway has no unauthenticated route but this one
			return
		}
		c.app.API.ServeHTTP(w, r.WithContext(awsapp.WithFunction(r.Context(), "api")))
	}))
	t.Cleanup(enroll.Close)

	dir := t.TempDir()
	token, _, err := c.app.Auth.CreateEnrollment(t.Context(), "signed1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cred := filepath.Join(dir, "signed1.cred")
	if err := auth.WriteCredential(cred, auth.Credential{Name: "signed1", EnrollmentToken: token, Server: c.ws.URL(), API: enroll.URL}); err != nil {
		t.Fatal(err)
	}
	p := &agentProc{cmd: exec.Command(agentBin, "--credential", cred, "--cache-dir", filepath.Join(dir, "cache"),
		"--spool-dir", filepath.Join(dir, "spool"), "--log-level", "debug"), out: &bytes.Buffer{}}
	p.cmd.Stderr = &lockedWriter{w: p.out}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	c.waitConnected("signed1")
	if got, err := auth.ReadCredential(cred); err != nil || got.PrivateKey == "" || got.EnrollmentToken != "" {
		t.Fatalf("credential after enrolment: key set %v, token left %v, err %v", got.PrivateKey != "", got.EnrollmentToken != "", err)
	}
	ref, err := c.api.RunTask(t.Context(), client.TaskRequest{Task: "demo::hello", Scope: client.Scope{Nodes: []string{"signed1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if job, nodes := c.waitJob(ref.Name); job.State != "finished" || nodes[0].State != "finished" {
		t.Fatalf("job on a key-enrolled agent: %s %s %s\n%s", job.State, nodes[0].State, nodes[0].Result, p.out)
	}
}
