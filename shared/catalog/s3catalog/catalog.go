package s3catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/baton-run/baton/shared/catalog"
	"github.com/baton-run/baton/shared/protocol"
	"github.com/baton-run/baton/shared/tasks"
)

// maxIndexBytes bounds the index objects the Catalog reads.
const maxIndexBytes = 16 << 20

// Catalog reads what Publish wrote to a bucket. Index objects are cached for the cache TTL
// (WithCacheTTL), so a publish shows after at most that long. It is safe for concurrent use.
type Catalog struct {
	client  *s3.Client
	presign *s3.PresignClient
	bucket  string
	o       options

	envs   *cache[[]string]
	envIx  *cache[envIndex]
	taskIx *cache[taskIndex]
}

// New returns a Catalog of bucket. presign signs the URLs FileURI and ResultUploadURL return;
// when nil, s3.NewPresignClient(client) is used. The URLs are valid for their expiry or until
// the signing credentials expire, whichever comes first. New refuses invalid options, notably
// a file URL expiry above MaxURLExpiry.
func New(client *s3.Client, presign *s3.PresignClient, bucket string, opts ...Option) (*Catalog, error) {
	o := buildOptions(opts)
	switch {
	case client == nil:
		return nil, errors.New("new S3 catalog: nil S3 client")
	case bucket == "":
		return nil, errors.New("new S3 catalog: empty bucket name")
	case o.fileURLExpiry <= 0 || o.fileURLExpiry > MaxURLExpiry:
		return nil, fmt.Errorf("new S3 catalog: file URL expiry %s is not in (0, %s]", o.fileURLExpiry, MaxURLExpiry)
	case o.cacheTTL < 0:
		return nil, fmt.Errorf("new S3 catalog: negative cache TTL %s", o.cacheTTL)
	case o.loadTimeout <= 0:
		return nil, fmt.Errorf("new S3 catalog: load timeout %s is not positive", o.loadTimeout)
	case o.resultEdge < 0:
		return nil, fmt.Errorf("new S3 catalog: negative result edge size %d", o.resultEdge)
	case o.resultMaxBytes <= 0:
		return nil, fmt.Errorf("new S3 catalog: result size limit %d is not positive", o.resultMaxBytes)
	}
	if presign == nil {
		presign = s3.NewPresignClient(client)
	}
	return &Catalog{
		client: client, presign: presign, bucket: bucket, o: o,
		envs:   newCache[[]string](o.cacheTTL, o.now),
		envIx:  newCache[envIndex](o.cacheTTL, o.now),
		taskIx: newCache[taskIndex](o.cacheTTL, o.now),
	}, nil
}

// Environments returns the published environments, sorted, from envs/index.json. It takes no
// context: when its cached copy is older than the cache TTL it reads the index again with a
// background context bounded by the load timeout (WithLoadTimeout), so a call blocks at most
// that long and usually not at all. When the read fails it logs the error and returns the
// last list it read (none before a first successful read).
func (c *Catalog) Environments() []string {
	ctx, cancel := context.WithTimeout(context.Background(), c.o.loadTimeout)
	defer cancel()
	envs, err := c.environments(ctx)
	if err != nil {
		stale, ok := c.envs.last(EnvsIndexKey)
		c.o.logger.Warn("load environments index", "error", err, "using_stale", ok)
		return slices.Clone(stale)
	}
	return slices.Clone(envs)
}

func (c *Catalog) environments(ctx context.Context) ([]string, error) {
	return c.envs.get(ctx, EnvsIndexKey, func(ctx context.Context) ([]string, error) {
		b, err := c.getIndex(ctx, EnvsIndexKey)
		if isNotFound(err) {
			return []string{}, nil // nothing published yet
		}
		if err != nil {
			return nil, err
		}
		x, err := decodeEnvsIndex(b)
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", EnvsIndexKey, err)
		}
		return x.Environments, nil
	})
}

// List returns the tasks of env sorted by name, private ones included.
func (c *Catalog) List(ctx context.Context, env string) ([]catalog.Summary, error) {
	ei, err := c.envIndex(ctx, env)
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	out := make([]catalog.Summary, 0, len(ei.Tasks))
	for _, t := range ei.Tasks {
		out = append(out, catalog.Summary{Name: t.Name, Private: t.Private, Description: t.Description})
	}
	slices.SortFunc(out, func(a, b catalog.Summary) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Task returns task name ("module::task" or "module") of env with its metadata and files.
// The files have Filename, SHA256 and SizeBytes; Path is empty (use FileURI). Errors wrap
// catalog.ErrUnknownEnvironment, catalog.ErrUnknownTask or catalog.ErrInvalidTask.
func (c *Catalog) Task(ctx context.Context, env, name string) (catalog.Task, error) {
	mod, task, err := tasks.SplitTaskName(name)
	if err != nil {
		return catalog.Task{}, fmt.Errorf("load task %s: %w: %w", name, catalog.ErrUnknownTask, err)
	}
	canonical := qualify(mod, task)
	ei, err := c.envIndex(ctx, env)
	if err != nil {
		return catalog.Task{}, fmt.Errorf("load task %s: %w", name, err)
	}
	if !slices.ContainsFunc(ei.Tasks, func(t envIndexTask) bool { return t.Name == canonical }) {
		return catalog.Task{}, fmt.Errorf("load task %s in %s: %w", name, env, catalog.ErrUnknownTask)
	}
	ti, err := c.taskIndex(ctx, env, mod, task)
	if err != nil {
		return catalog.Task{}, fmt.Errorf("load task %s in %s: %w", name, env, err)
	}
	raw := slices.Clone([]byte(ti.Metadata))
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	meta, err := tasks.ParseMetadata(raw)
	if err != nil {
		return catalog.Task{}, fmt.Errorf("load task %s in %s: %w: %w", name, env, catalog.ErrInvalidTask, err)
	}
	t := catalog.Task{Name: canonical, Module: mod, Environment: env, Metadata: meta, RawMetadata: raw,
		Files: make([]catalog.File, 0, len(ti.Files))}
	for _, f := range ti.Files {
		t.Files = append(t.Files, catalog.File{Filename: f.Filename, SHA256: f.SHA256, SizeBytes: f.SizeBytes})
	}
	return t, nil
}

// FileURI returns a presigned GET URL (valid for the file URL expiry) of filename, a file of
// a task of module in env, as a FileURI whose Path is the whole URL and which has no Params.
// The file is looked up in the module's task indexes (cached), so the URL names the content
// published now, which is not the content a job created before a republish recorded; the
// agent's SHA-256 check then fails that file. Unknown files wrap catalog.ErrUnknownFile.
//
// When sha256 is given (the digest a job recorded when it was created), the URL is for that
// content, which publishing never deletes: a job started before a republish still gets the
// bytes it was validated against. Without it, the task indexes say which content is current.
func (c *Catalog) FileURI(ctx context.Context, env, module, filename, sha256 string) (protocol.FileURI, error) {
	if m, t, err := tasks.SplitTaskName(module); err != nil || m != module || t != "init" {
		return protocol.FileURI{}, fmt.Errorf("sign %s/%s: %w", module, filename, catalog.ErrUnknownFile)
	}
	f := taskIndexFile{SHA256: sha256}
	if sha256 != "" && !sha256RE.MatchString(sha256) {
		return protocol.FileURI{}, fmt.Errorf("sign %s/%s: bad sha256 %q: %w", module, filename, sha256, catalog.ErrUnknownFile)
	}
	if sha256 == "" {
		ei, err := c.envIndex(ctx, env)
		if err != nil {
			return protocol.FileURI{}, fmt.Errorf("sign %s/%s: %w", module, filename, err)
		}
		if f, err = c.findFile(ctx, env, module, filename, ei); err != nil {
			return protocol.FileURI{}, fmt.Errorf("sign %s/%s in %s: %w", module, filename, env, err)
		}
	}
	req, err := c.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(fileKey(f.SHA256))},
		s3.WithPresignExpires(c.o.fileURLExpiry))
	if err != nil {
		return protocol.FileURI{}, fmt.Errorf("sign %s/%s in %s: %w", module, filename, env, err)
	}
	if err := plainURL(req, http.MethodGet); err != nil {
		return protocol.FileURI{}, fmt.Errorf("sign %s/%s in %s: %w", module, filename, env, err)
	}
	return protocol.FileURI{Path: req.URL}, nil
}

// findFile looks filename up in the task indexes of module's tasks, starting with the task
// its name suggests ("x.sh" is most likely an implementation of task x).
func (c *Catalog) findFile(ctx context.Context, env, module, filename string, ei envIndex) (taskIndexFile, error) {
	var likely, others []string
	stem, _, _ := strings.Cut(filename, ".")
	for _, t := range ei.Tasks {
		mod, task, err := tasks.SplitTaskName(t.Name)
		if err != nil || mod != module {
			continue
		}
		if task == stem && !strings.Contains(filename, "/") {
			likely = append(likely, task)
		} else {
			others = append(others, task)
		}
	}
	for _, task := range append(likely, others...) {
		ti, err := c.taskIndex(ctx, env, module, task)
		if errors.Is(err, catalog.ErrUnknownTask) {
			continue // removed since the environment index was read
		}
		if err != nil {
			return taskIndexFile{}, err
		}
		for _, f := range ti.Files {
			if f.Filename == filename {
				return f, nil
			}
		}
	}
	return taskIndexFile{}, catalog.ErrUnknownFile
}

// plainURL checks that a presigned request needs nothing but its URL (and Host), which is all
// an agent sends.
func plainURL(req *v4.PresignedHTTPRequest, method string) error {
	if req.Method != method {
		return fmt.Errorf("presigned request has method %s, want %s", req.Method, method)
	}
	for h := range req.SignedHeader {
		if !strings.EqualFold(h, "Host") {
			return fmt.Errorf("presigned URL needs header %s", h)
		}
	}
	return nil
}

// CountPresignedUse tells the meter that a presigned URL was used once (op is OpGet for a
// file URL, OpPut for a result upload URL). The Catalog cannot see those requests: the
// caller calls this when it learns of one.
func (c *Catalog) CountPresignedUse(op string) { c.o.meter.AddS3(op, 1) }

func (c *Catalog) envIndex(ctx context.Context, env string) (envIndex, error) {
	if !envNameRE.MatchString(env) {
		return envIndex{}, fmt.Errorf("environment %q: %w", env, catalog.ErrUnknownEnvironment)
	}
	key := envIndexKey(env)
	return c.envIx.get(ctx, key, func(ctx context.Context) (envIndex, error) {
		b, err := c.getIndex(ctx, key)
		if isNotFound(err) {
			return envIndex{}, fmt.Errorf("environment %q: %w", env, catalog.ErrUnknownEnvironment)
		}
		if err != nil {
			return envIndex{}, err
		}
		x, err := decodeEnvIndex(b, env)
		if err != nil {
			return envIndex{}, fmt.Errorf("decode %s: %w", key, err)
		}
		return x, nil
	})
}

func (c *Catalog) taskIndex(ctx context.Context, env, module, task string) (taskIndex, error) {
	key := taskIndexKey(env, module, task)
	return c.taskIx.get(ctx, key, func(ctx context.Context) (taskIndex, error) {
		b, err := c.getIndex(ctx, key)
		if isNotFound(err) {
			return taskIndex{}, fmt.Errorf("task %s: %w", qualify(module, task), catalog.ErrUnknownTask)
		}
		if err != nil {
			return taskIndex{}, err
		}
		x, err := decodeTaskIndex(b, env, qualify(module, task))
		if err != nil {
			return taskIndex{}, fmt.Errorf("decode %s: %w: %w", key, catalog.ErrInvalidTask, err)
		}
		return x, nil
	})
}

// getIndex reads a whole index object (at most maxIndexBytes). A missing key is an error
// for which isNotFound holds.
func (c *Catalog) getIndex(ctx context.Context, key string) ([]byte, error) {
	out, err := c.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key)},
		counted(c.o.meter, OpGet))
	if err != nil {
		if isNotFound(err) {
			return nil, err
		}
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, maxIndexBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if len(b) > maxIndexBytes {
		return nil, fmt.Errorf("read %s: index larger than %d bytes", key, maxIndexBytes)
	}
	return b, nil
}

func qualify(module, task string) string {
	if task == "init" {
		return module
	}
	return module + "::" + task
}
