package s3catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/baton-run/baton/shared/protocol"
)

// Errors of ReadResult; check them with errors.Is.
var (
	ErrResultNotFound = errors.New("result not found")
	ErrResultTooLarge = errors.New("result too large")
	ErrInvalidKey     = errors.New("invalid result key")
)

// ResultUploadURL returns a presigned PUT URL, valid for ResultURLExpiry, where the agent
// uploads the result of transaction txn when it is too large for one WebSocket message, and
// the object key the agent reports back (results/<txn>). The agent sends a plain PUT with the
// body and no other header; S3 keeps the object until the bucket's lifecycle rule expires it.
func (c *Catalog) ResultUploadURL(ctx context.Context, txn string) (putURL, key string, err error) {
	if !validTxn(txn) {
		return "", "", fmt.Errorf("result upload URL: %w: transaction id %q", ErrInvalidKey, txn)
	}
	key = ResultsPrefix + txn
	req, err := c.presign.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key)},
		s3.WithPresignExpires(ResultURLExpiry))
	if err != nil {
		return "", "", fmt.Errorf("result upload URL for %s: %w", txn, err)
	}
	if err := plainURL(req, http.MethodPut); err != nil {
		return "", "", fmt.Errorf("result upload URL for %s: %w", txn, err)
	}
	return req.URL, key, nil
}

// ReadResult streams the result object key (as returned by ResultUploadURL; anything outside
// results/ is ErrInvalidKey) and returns its size, its SHA-256 (lowercase hex) and its first
// and last N KiB (WithResultEdgeKiB): head is the first min(size, N KiB) bytes, tail the last
// min(size, N KiB), so they overlap when the result is shorter than 2N KiB. A missing object
// is ErrResultNotFound; one larger than the size limit (WithResultMaxBytes) is
// ErrResultTooLarge. The caller should also check that key is the one issued for the
// transaction the agent reports on.
func (c *Catalog) ReadResult(ctx context.Context, key string) (size int64, sha256hex string, head, tail []byte, err error) {
	txn, ok := strings.CutPrefix(key, ResultsPrefix)
	if !ok || !validTxn(txn) {
		return 0, "", nil, nil, fmt.Errorf("read result %q: %w", key, ErrInvalidKey)
	}
	out, err := c.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key)},
		counted(c.o.meter, OpGet))
	if isNotFound(err) {
		return 0, "", nil, nil, fmt.Errorf("read result %s: %w", key, ErrResultNotFound)
	}
	if err != nil {
		return 0, "", nil, nil, fmt.Errorf("read result %s: %w", key, err)
	}
	defer out.Body.Close()
	limit := c.o.resultMaxBytes
	if n := aws.ToInt64(out.ContentLength); n > limit {
		return 0, "", nil, nil, fmt.Errorf("read result %s: %d bytes, limit %d: %w", key, n, limit, ErrResultTooLarge)
	}
	h := sha256.New()
	e := &edges{n: c.o.resultEdge}
	n, err := io.Copy(io.MultiWriter(h, e), io.LimitReader(out.Body, limit+1))
	if err != nil {
		return 0, "", nil, nil, fmt.Errorf("read result %s: %w", key, err)
	}
	if n > limit {
		return 0, "", nil, nil, fmt.Errorf("read result %s: more than %d bytes: %w", key, limit, ErrResultTooLarge)
	}
	return n, hex.EncodeToString(h.Sum(nil)), e.head, e.lastN(), nil
}

// validTxn is protocol's transaction id rule, minus "." and ".." which URL paths treat
// specially.
func validTxn(txn string) bool {
	return protocol.ValidTransactionID(txn) && txn != "." && txn != ".."
}

// edges keeps the first and last n bytes written to it.
type edges struct {
	n    int
	head []byte
	tail []byte
}

func (e *edges) Write(p []byte) (int, error) {
	if k := min(e.n-len(e.head), len(p)); k > 0 {
		e.head = append(e.head, p[:k]...)
	}
	if e.n == 0 {
		return len(p), nil
	}
	if len(p) >= e.n {
		e.tail = append(e.tail[:0], p[len(p)-e.n:]...)
		return len(p), nil
	}
	e.tail = append(e.tail, p...)
	if len(e.tail) > 2*e.n {
		e.tail = append(e.tail[:0], e.tail[len(e.tail)-e.n:]...)
	}
	return len(p), nil
}

func (e *edges) lastN() []byte {
	if len(e.tail) > e.n {
		return e.tail[len(e.tail)-e.n:]
	}
	return e.tail
}
