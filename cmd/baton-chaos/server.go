package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/baton-run/baton/shared/client"
)

// server is `baton serve` on plain HTTP on loopback (so that the proxy can read the agents'
// WebSocket frames), kept running by a keeper across kills.
type server struct {
	*keeper
	data, logPath string
	port          int
	api           *client.Client
}

func (s *server) url() string { return fmt.Sprintf("http://127.0.0.1:%d", s.port) }

// newServer prepares baton serve on data (which may be a tmpfs mount) under dir.
func newServer(cfg *config, dir, data string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{data: data, logPath: filepath.Join(dir, "serve.log"), port: port}
	env := []string{"XDG_CONFIG_HOME=" + filepath.Join(dir, "config")}
	args := []string{"serve", "--insecure", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--data", data,
		"--modules", cfg.modules, "--log-level", "info"}
	launch := func() (*proc, error) { return startProc(s.logPath, env, filepath.Join(cfg.bin, "baton"), args...) }
	s.keeper = newKeeper("baton serve", cfg.log, launch, s.waitReady)
	return s, nil
}

// waitReady waits until the API answers an authenticated request (the admin token is written
// on the first start).
func (s *server) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		if s.api == nil {
			if b, err := os.ReadFile(filepath.Join(s.data, "admin.token")); err == nil && len(strings.TrimSpace(string(b))) > 0 {
				hc := &http.Client{Timeout: 60 * time.Second}
				s.api = client.NewWithHTTP(s.url(), strings.TrimSpace(string(b)), hc)
			}
		}
		if s.api != nil {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := s.api.Jobs(cctx, url.Values{"limit": {strconv.Itoa(1)}})
			cancel()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the API did not answer within 60s (log %s)", s.logPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
