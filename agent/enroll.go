package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// enrollTimeout bounds an enrolment, waits for a throttling server included.
const enrollTimeout = 2 * time.Minute

// Enroll makes the agent's own key pair and registers its public key with the server, using
// the one-time enrolment token `baton node add` wrote into the node's credential file. cfg
// needs Server, Name and the TLS settings (Secret and PrivateKey are not used); api is the HTTP
// API's base URL ("" = the server's host, as with baton serve). The returned private key never
// leaves the node.
func Enroll(ctx context.Context, cfg Config, token, api string) (ed25519.PrivateKey, error) {
	cfg.Secret = "enrolling" // Validate wants a credential; this one is never sent
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	hc, err := tlsHTTPClient(cfg)
	if err != nil {
		return nil, err
	}
	endpoint := strings.TrimRight(api, "/")
	if endpoint == "" {
		base, err := httpBase(cfg.Server)
		if err != nil {
			return nil, err
		}
		endpoint = strings.TrimRight(base.String(), "/")
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	body, _ := json.Marshal(map[string]string{"name": cfg.Name, "token": token, "public_key": base64.StdEncoding.EncodeToString(pub)})
	ctx, cancel := context.WithTimeout(ctx, enrollTimeout)
	defer cancel()
	var resp *http.Response
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/baton/v1/enroll", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		if resp, err = hc.Do(req); err != nil {
			return nil, fmt.Errorf("enrol: %w", err)
		}
		if resp.StatusCode != http.StatusTooManyRequests {
			break
		}
		// Throttled (many agents enrolling from one address): wait as asked, and again.
		wait := time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		resp.Body.Close()
		t := time.NewTimer(wait + mrand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("enrol: throttled by the server until giving up: %w", ctx.Err())
		case <-t.C:
		}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal(b, &e) == nil && e.Msg != "" {
			return nil, fmt.Errorf("enrol: %s (HTTP %d)", e.Msg, resp.StatusCode)
		}
		return nil, fmt.Errorf("enrol: HTTP %d", resp.StatusCode)
	}
	return priv, nil
}
