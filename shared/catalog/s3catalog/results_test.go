package s3catalog

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"testing"
)

func putURL(t *testing.T, u string, body []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("PUT: %s: %s", resp.Status, b)
	}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

func TestResults(t *testing.T) {
	ctx := context.Background()
	fs := newFakeS3(t)
	m := &countMeter{}
	c := mustNew(t, fs.client, WithMeter(m), WithResultEdgeKiB(1))
	tests := []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"shorter than the edge", 100},
		{"exactly the edge", 1024},
		{"between one and two edges", 1500},
		{"large", 200_000},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := randomBytes(tc.size, uint64(i))
			txn := "txn-" + string(rune('a'+i))
			u, key, err := c.ResultUploadURL(ctx, txn)
			if err != nil {
				t.Fatal(err)
			}
			if key != "results/"+txn {
				t.Errorf("key = %s", key)
			}
			pu, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			if pu.Query().Get("X-Amz-Expires") != "900" || pu.Path != "/"+testBucket+"/"+key {
				t.Errorf("upload URL = %s", u)
			}
			putURL(t, u, body)
			c.CountPresignedUse(OpPut)
			m.take()
			size, sum, head, tail, err := c.ReadResult(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			wantCounts(t, "read result", m.take(), map[string]int{OpGet: 1})
			edge := min(tc.size, 1024)
			if size != int64(tc.size) || sum != sumHex(body) {
				t.Errorf("size, sha = %d, %s; want %d, %s", size, sum, tc.size, sumHex(body))
			}
			if !bytes.Equal(head, body[:edge]) || !bytes.Equal(tail, body[tc.size-edge:]) {
				t.Errorf("head %d bytes, tail %d bytes: want the first and last %d", len(head), len(tail), edge)
			}
		})
	}

	t.Run("presigned uses are counted by the caller", func(t *testing.T) {
		c.CountPresignedUse(OpGet)
		wantCounts(t, "presigned", m.take(), map[string]int{OpGet: 1})
	})
}

func TestResultErrors(t *testing.T) {
	ctx := context.Background()
	fs := newFakeS3(t)
	c := mustNew(t, fs.client, WithResultMaxBytes(100))
	u, key, err := c.ResultUploadURL(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	putURL(t, u, randomBytes(101, 1))
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{name: "too large", want: ErrResultTooLarge, call: func() error { _, _, _, _, err := c.ReadResult(ctx, key); return err }},
		{name: "missing", want: ErrResultNotFound, call: func() error { _, _, _, _, err := c.ReadResult(ctx, "results/nothing"); return err }},
		{name: "outside results", want: ErrInvalidKey, call: func() error { _, _, _, _, err := c.ReadResult(ctx, EnvsIndexKey); return err }},
		{name: "nested key", want: ErrInvalidKey, call: func() error { _, _, _, _, err := c.ReadResult(ctx, "results/a/b"); return err }},
		{name: "dot dot", want: ErrInvalidKey, call: func() error { _, _, _, _, err := c.ReadResult(ctx, "results/.."); return err }},
		{name: "upload URL bad txn", want: ErrInvalidKey, call: func() error { _, _, err := c.ResultUploadURL(ctx, "a/b"); return err }},
		{name: "upload URL empty txn", want: ErrInvalidKey, call: func() error { _, _, err := c.ResultUploadURL(ctx, ""); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestEdges(t *testing.T) {
	data := randomBytes(10_000, 7)
	for _, chunk := range []int{1, 7, 1000, 1024, 5000, 10_000} {
		for _, n := range []int{0, 1024} {
			e := &edges{n: n}
			for rest := data; len(rest) > 0; {
				k := min(chunk, len(rest))
				if _, err := e.Write(rest[:k]); err != nil {
					t.Fatal(err)
				}
				rest = rest[k:]
			}
			if !bytes.Equal(e.head, data[:n]) || !bytes.Equal(e.lastN(), data[len(data)-n:]) {
				t.Errorf("chunk %d, n %d: head %d bytes, tail %d bytes wrong", chunk, n, len(e.head), len(e.lastN()))
			}
		}
	}
}
