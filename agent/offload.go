package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/baton-run/baton/shared/protocol"
)

// InlineResultLimit is the largest results object sent inline when the request offers an
// upload URL: API Gateway takes at most 128 KB per message, envelope included.
const InlineResultLimit = 96 << 10

// keepBytes is how much of the head and of the tail of each stream stays inline.
const keepBytes = 8 << 10

// offloadLarge uploads results that are too large for one message to the request's presigned
// PUT URL and returns results with a head and tail of stdout and stderr plus the object's
// size and SHA-256. Small results are returned as they are.
func (a *Agent) offloadLarge(ctx context.Context, txn string, up *protocol.ResultUpload, res protocol.TaskResults) (json.RawMessage, error) {
	full, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	if len(full) <= InlineResultLimit {
		return full, nil
	}
	sum := sha256.Sum256(full)
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(uctx, http.MethodPut, up.URL, bytes.NewReader(full))
	if err != nil {
		return nil, fmt.Errorf("upload large results: %w", err)
	}
	req.ContentLength = int64(len(full))
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("upload large results: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("upload large results: HTTP %d", resp.StatusCode)
	}
	a.log.Info("uploaded large results", "transaction_id", txn, "bytes", len(full))
	res.Stdout, res.Stderr = headTail(res.Stdout), headTail(res.Stderr)
	res.Output = &protocol.OutputObject{Key: up.Key, SizeBytes: int64(len(full)), SHA256: hex.EncodeToString(sum[:])}
	return json.Marshal(res)
}

// headTail keeps the first and last keepBytes of s (on rune boundaries) with a marker between.
func headTail(s string) string {
	if len(s) <= 2*keepBytes {
		return s
	}
	head, tail := keepBytes, len(s)-keepBytes
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	for tail < len(s) && !utf8.RuneStart(s[tail]) {
		tail++
	}
	return s[:head] + fmt.Sprintf("\n... [%d bytes omitted; the full output is in the uploaded results] ...\n", tail-head) + s[tail:]
}
