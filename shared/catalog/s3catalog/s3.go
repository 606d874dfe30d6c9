package s3catalog

import (
	"context"
	"errors"
	"net/http"

	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/usage"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3 request kinds a Meter is told about. They follow S3's request pricing: PUT, COPY, POST
// and LIST requests cost more than GET and HEAD; DELETE is free but counted.
const (
	OpPut    = "PUT"
	OpGet    = "GET"
	OpHead   = "HEAD"
	OpList   = "LIST"
	OpDelete = "DELETE"
)

// Object key layout in the bucket.
const (
	FilesPrefix    = "files/sha256/" // + lowercase hex SHA-256: a task file's content
	TasksPrefix    = "tasks/"        // + <env>/<module>/<task>.json: one task's index
	EnvsPrefix     = "envs/"         // + <env>/index.json: an environment's task list
	EnvsIndexKey   = "envs/index.json"
	ResultsPrefix  = "results/" // + <transaction id>: a result uploaded by an agent
	metaSHA256     = "sha256"   // user metadata key holding an object's hex SHA-256
	indexVersion   = 1
	envIndexSuffix = "/index.json"
)

func fileKey(sha string) string     { return FilesPrefix + sha }
func envIndexKey(env string) string { return EnvsPrefix + env + envIndexSuffix }
func taskIndexKey(env, module, task string) string {
	return TasksPrefix + env + "/" + module + "/" + task + ".json"
}

// Meter counts S3 requests for cost accounting. AddS3 is called with one of the Op constants
// and a count; it must be safe for concurrent use and fast (it runs on the request path).
//
// The Catalog and Publish count every request they send themselves, once per attempt. A
// presigned URL costs a request only when it is used, by an agent, outside this package: the
// caller counts it with Catalog.CountPresignedUse when it learns of the use (a result key
// reported, a task file the agent did not already have).
type Meter interface {
	AddS3(op string, n int)
}

type nopMeter struct{}

func (nopMeter) AddS3(string, int) {}

// meterMiddleware runs in the finalize step after the retry middleware, so once per attempt.
type meterMiddleware struct {
	meter Meter
	op    string
}

func (meterMiddleware) ID() string { return "BatonS3Meter" }

func (m meterMiddleware) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
	middleware.FinalizeOutput, middleware.Metadata, error,
) {
	m.meter.AddS3(m.op, 1)
	switch m.op {
	case OpPut, OpList, OpDelete:
		usage.From(ctx).Add(store.Usage{S3Writes: 1})
	default:
		usage.From(ctx).Add(store.Usage{S3Reads: 1})
	}
	return next.HandleFinalize(ctx, in)
}

// counted is a per-call client option adding the meter middleware for op.
func counted(m Meter, op string) func(*s3.Options) {
	return func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Finalize.Add(meterMiddleware{meter: m, op: op}, middleware.After)
		})
	}
}

// isNotFound reports whether err is S3's answer for a missing key (404: NoSuchKey for GET,
// NotFound for HEAD).
func isNotFound(err error) bool {
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}
