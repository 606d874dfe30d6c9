package s3catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/baton-run/baton/shared/catalog"
	"github.com/baton-run/baton/shared/tasks"
)

// PublishReport counts what Publish did. Files are counted by distinct content.
type PublishReport struct {
	Environment      string
	Tasks            int   // tasks in the published environment index
	FilesUploaded    int   // file contents uploaded
	FilesSkipped     int   // file contents already in the bucket with the same size and sum
	BytesUploaded    int64 // bytes of the uploaded files
	IndexesWritten   int   // task and environment indexes written
	IndexesUnchanged int   // task and environment indexes already up to date (not rewritten)
	TasksRemoved     int   // task indexes of tasks gone from the directory, deleted
}

// Publish uploads the tasks of modulesDir (a Puppet modules directory) to bucket as
// environment env, replacing what was published for env before. Tasks are read and
// validated by catalog.Local; tasks it cannot load are logged (WithLogger) and left out.
//
// Writes are ordered so that a reader never sees an index naming an object that is not
// there yet: first the files (files/sha256/<hex>, skipped when already present with the same
// size and sum), then one index per task (tasks/<env>/<module>/<task>.json), then the
// environment index (envs/<env>/index.json), then envs/index.json, rebuilt from the
// environment indexes present. Last, the task indexes of tasks no longer in the directory
// are deleted. File contents are never deleted: jobs created earlier may still name them.
// Index objects whose content is unchanged are not rewritten. Two concurrent publishes of
// different environments can race on envs/index.json; the next publish repairs it.
func Publish(ctx context.Context, client *s3.Client, bucket, env, modulesDir string, opts ...Option) (PublishReport, error) {
	o := buildOptions(opts)
	rep := PublishReport{Environment: env}
	switch {
	case client == nil:
		return rep, errors.New("publish: nil S3 client")
	case bucket == "":
		return rep, errors.New("publish: empty bucket name")
	case o.parallel <= 0:
		return rep, fmt.Errorf("publish: parallelism must be positive, got %d", o.parallel)
	}
	loc, err := catalog.NewLocal(map[string]string{env: modulesDir}, catalog.WithLogger(o.base))
	if err != nil {
		return rep, fmt.Errorf("publish %s: %w", env, err)
	}
	list, err := loc.List(ctx, env)
	if err != nil {
		return rep, fmt.Errorf("publish %s: %w", env, err)
	}
	all := make([]catalog.Task, 0, len(list))
	files := map[string]catalog.File{} // sha256 -> a file with that content
	for _, s := range list {
		t, err := loc.Task(ctx, env, s.Name)
		if err != nil {
			return rep, fmt.Errorf("publish %s: %w", env, err)
		}
		all = append(all, t)
		for _, f := range t.Files {
			if _, ok := files[f.SHA256]; !ok {
				files[f.SHA256] = f
			}
		}
	}
	p := &publisher{client: client, bucket: bucket, o: o}

	shas := make([]string, 0, len(files))
	for sha := range files {
		shas = append(shas, sha)
	}
	slices.Sort(shas)
	var uploaded, skipped, written, unchanged atomic.Int64
	var bytesUp atomic.Int64
	err = forEach(ctx, o.parallel, shas, func(ctx context.Context, sha string) error {
		f := files[sha]
		up, err := p.putFile(ctx, f)
		if err != nil {
			return err
		}
		if up {
			uploaded.Add(1)
			bytesUp.Add(f.SizeBytes)
		} else {
			skipped.Add(1)
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("publish %s: %w", env, err)
	}
	rep.FilesUploaded, rep.FilesSkipped, rep.BytesUploaded = int(uploaded.Load()), int(skipped.Load()), bytesUp.Load()

	keep := make(map[string]bool, len(all))
	countIndex := func(w bool) {
		if w {
			written.Add(1)
		} else {
			unchanged.Add(1)
		}
	}
	err = forEach(ctx, o.parallel, all, func(ctx context.Context, t catalog.Task) error {
		w, err := p.putTaskIndex(ctx, t)
		if err != nil {
			return err
		}
		countIndex(w)
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("publish %s: %w", env, err)
	}
	ei := envIndex{Version: indexVersion, Environment: env, Tasks: make([]envIndexTask, 0, len(all))}
	for _, t := range all {
		ei.Tasks = append(ei.Tasks, envIndexTask{Name: t.Name, Description: t.Metadata.Description, Private: t.Metadata.Private})
		mod, task, err := tasks.SplitTaskName(t.Name)
		if err != nil {
			return rep, fmt.Errorf("publish %s: %w", env, err)
		}
		keep[taskIndexKey(env, mod, task)] = true
	}
	body, err := encodeIndex(ei)
	if err != nil {
		return rep, fmt.Errorf("publish %s: encode environment index: %w", env, err)
	}
	w, err := p.putIndex(ctx, envIndexKey(env), body)
	if err != nil {
		return rep, fmt.Errorf("publish %s: %w", env, err)
	}
	countIndex(w)
	rep.Tasks = len(all)
	rep.IndexesWritten, rep.IndexesUnchanged = int(written.Load()), int(unchanged.Load())

	if err := p.putEnvsIndex(ctx, env); err != nil {
		return rep, fmt.Errorf("publish %s: %w", env, err)
	}
	removed, err := p.removeStale(ctx, env, keep)
	rep.TasksRemoved = removed
	if err != nil {
		return rep, fmt.Errorf("publish %s: %w", env, err)
	}
	o.logger.Info("published environment", "environment", env, "bucket", bucket, "tasks", rep.Tasks,
		"files_uploaded", rep.FilesUploaded, "files_skipped", rep.FilesSkipped, "bytes_uploaded", rep.BytesUploaded,
		"indexes_written", rep.IndexesWritten, "tasks_removed", rep.TasksRemoved)
	return rep, nil
}

type publisher struct {
	client *s3.Client
	bucket string
	o      options
}

// putFile uploads f as files/sha256/<hex> unless an object of the same size and sum is there.
// It reports whether it uploaded.
func (p *publisher) putFile(ctx context.Context, f catalog.File) (bool, error) {
	key := fileKey(f.SHA256)
	if same, err := p.present(ctx, key, f.SizeBytes, f.SHA256); err != nil || same {
		return false, err
	}
	fh, err := os.Open(f.Path)
	if err != nil {
		return false, fmt.Errorf("upload %s: %w", f.Filename, err)
	}
	defer fh.Close()
	// The file was hashed when the task was loaded; hash the open file again so what is
	// uploaded under the key is what the key says. (S3 also checks ChecksumSHA256.)
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return false, fmt.Errorf("upload %s: %w", f.Path, err)
	}
	digest := h.Sum(nil)
	if n != f.SizeBytes || hex.EncodeToString(digest) != f.SHA256 {
		return false, fmt.Errorf("upload %s: file changed while publishing", f.Path)
	}
	_, err = p.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:            aws.String(p.bucket),
		Key:               aws.String(key),
		Body:              io.NewSectionReader(fh, 0, f.SizeBytes),
		ContentLength:     aws.Int64(f.SizeBytes),
		ContentType:       aws.String("application/octet-stream"),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String(base64.StdEncoding.EncodeToString(digest)),
		Metadata:          map[string]string{metaSHA256: f.SHA256},
	}, counted(p.o.meter, OpPut))
	if err != nil {
		return false, fmt.Errorf("upload %s as %s: %w", f.Path, key, err)
	}
	p.o.logger.Debug("uploaded file", "key", key, "filename", f.Filename, "size_bytes", f.SizeBytes)
	return true, nil
}

// present HEADs key and reports whether it holds size bytes whose sum is sha (per its
// metadata).
func (p *publisher) present(ctx context.Context, key string, size int64, sha string) (bool, error) {
	head, err := p.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(p.bucket), Key: aws.String(key)},
		counted(p.o.meter, OpHead))
	switch {
	case isNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("head %s: %w", key, err)
	}
	return aws.ToInt64(head.ContentLength) == size && head.Metadata[metaSHA256] == sha, nil
}

// putIndex writes a JSON index object unless the same content is there; it reports whether
// it wrote.
func (p *publisher) putIndex(ctx context.Context, key string, body []byte) (bool, error) {
	digest := sha256.Sum256(body)
	sha := hex.EncodeToString(digest[:])
	if same, err := p.present(ctx, key, int64(len(body)), sha); err != nil || same {
		return false, err
	}
	_, err := p.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:            aws.String(p.bucket),
		Key:               aws.String(key),
		Body:              bytes.NewReader(body),
		ContentLength:     aws.Int64(int64(len(body))),
		ContentType:       aws.String("application/json"),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String(base64.StdEncoding.EncodeToString(digest[:])),
		Metadata:          map[string]string{metaSHA256: sha},
	}, counted(p.o.meter, OpPut))
	if err != nil {
		return false, fmt.Errorf("put %s: %w", key, err)
	}
	p.o.logger.Debug("wrote index", "key", key)
	return true, nil
}

func (p *publisher) putTaskIndex(ctx context.Context, t catalog.Task) (bool, error) {
	mod, task, err := tasks.SplitTaskName(t.Name)
	if err != nil {
		return false, err
	}
	ti := taskIndex{Version: indexVersion, Name: t.Name, Module: t.Module, Environment: t.Environment,
		Metadata: t.RawMetadata, Files: make([]taskIndexFile, 0, len(t.Files))}
	for _, f := range t.Files {
		ti.Files = append(ti.Files, taskIndexFile{Filename: f.Filename, SHA256: f.SHA256, SizeBytes: f.SizeBytes})
	}
	body, err := encodeIndex(ti)
	if err != nil {
		return false, fmt.Errorf("encode index of %s: %w", t.Name, err)
	}
	return p.putIndex(ctx, taskIndexKey(t.Environment, mod, task), body)
}

// putEnvsIndex rewrites envs/index.json from the environment indexes in the bucket (env's
// included, as it was just written).
func (p *publisher) putEnvsIndex(ctx context.Context, env string) error {
	envs := []string{env}
	pages := s3.NewListObjectsV2Paginator(p.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(p.bucket), Prefix: aws.String(EnvsPrefix), Delimiter: aws.String("/"),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx, counted(p.o.meter, OpList))
		if err != nil {
			return fmt.Errorf("list %s: %w", EnvsPrefix, err)
		}
		for _, cp := range page.CommonPrefixes {
			name := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), EnvsPrefix), "/")
			if envNameRE.MatchString(name) && !slices.Contains(envs, name) {
				envs = append(envs, name)
			}
		}
	}
	slices.Sort(envs)
	body, err := encodeIndex(envsIndex{Version: indexVersion, Environments: envs})
	if err != nil {
		return fmt.Errorf("encode environments index: %w", err)
	}
	_, err = p.putIndex(ctx, EnvsIndexKey, body)
	return err
}

// removeStale deletes the task indexes of env that are not in keep.
func (p *publisher) removeStale(ctx context.Context, env string, keep map[string]bool) (int, error) {
	prefix := TasksPrefix + env + "/"
	var stale []string
	pages := s3.NewListObjectsV2Paginator(p.client, &s3.ListObjectsV2Input{Bucket: aws.String(p.bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx, counted(p.o.meter, OpList))
		if err != nil {
			return 0, fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, obj := range page.Contents {
			if key := aws.ToString(obj.Key); strings.HasSuffix(key, ".json") && !keep[key] {
				stale = append(stale, key)
			}
		}
	}
	removed := 0
	for _, key := range stale {
		_, err := p.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(p.bucket), Key: aws.String(key)},
			counted(p.o.meter, OpDelete))
		if err != nil {
			return removed, fmt.Errorf("delete %s: %w", key, err)
		}
		removed++
		p.o.logger.Info("removed task index", "key", key)
	}
	return removed, nil
}

// forEach runs fn on every item, at most n at a time, and returns the first error; after an
// error the remaining items are not started and ctx passed to running ones is cancelled.
func forEach[T any](ctx context.Context, n int, items []T, fn func(context.Context, T) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, n)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	fail := func(err error) {
		once.Do(func() {
			first = err
			cancel()
		})
	}
loop:
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, it); err != nil {
				fail(err)
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
