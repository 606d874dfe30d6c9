package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/baton-run/baton/shared/protocol"
)

func TestOffloadLargeResults(t *testing.T) {
	var uploaded []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		uploaded, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	a, err := New(Config{Server: "ws://127.0.0.1:1/pcp", Name: "n", Secret: "s", CacheDir: t.TempDir(), SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	up := &protocol.ResultUpload{URL: srv.URL + "/results/t1?X-Amz-Signature=abc", Key: "results/t1"}

	small := protocol.TaskResults{Exitcode: 0, Stdout: "hello"}
	out, err := a.offloadLarge(t.Context(), "t1", up, small)
	if err != nil || uploaded != nil || !strings.Contains(string(out), `"hello"`) {
		t.Fatalf("small results: %s %v (uploaded %d bytes)", out, err, len(uploaded))
	}

	big := protocol.TaskResults{Exitcode: 0, Stdout: "start-" + strings.Repeat("é", 200<<10) + "-end", Stderr: "warn"}
	out, err = a.offloadLarge(t.Context(), "t1", up, big)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) > InlineResultLimit {
		t.Errorf("inline results are %d bytes", len(out))
	}
	var got protocol.TaskResults
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(uploaded)
	if got.Output == nil || got.Output.SizeBytes != int64(len(uploaded)) || got.Output.SHA256 != hex.EncodeToString(sum[:]) || got.Output.Key != "results/t1" {
		t.Fatalf("output object %+v vs %d uploaded bytes", got.Output, len(uploaded))
	}
	if !strings.HasPrefix(got.Stdout, "start-") || !strings.HasSuffix(got.Stdout, "-end") || !strings.Contains(got.Stdout, "bytes omitted") || got.Stderr != "warn" {
		t.Errorf("head/tail: %q...", got.Stdout[:40])
	}
	var full protocol.TaskResults
	if err := json.Unmarshal(uploaded, &full); err != nil || full.Stdout != big.Stdout {
		t.Errorf("uploaded object is not the full results: %v", err)
	}
}
