package s3catalog

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/baton-run/baton/shared/catalog"
	"github.com/baton-run/baton/shared/protocol"
)

// Interfaces the Catalog is used through (httpapi.Catalog, orchestrator.Catalog and FileURLs),
// restated here so this test does not depend on those packages.
var _ interface {
	Environments() []string
	List(ctx context.Context, env string) ([]catalog.Summary, error)
	Task(ctx context.Context, env, name string) (catalog.Task, error)
} = (*Catalog)(nil)

var _ interface {
	FileURI(ctx context.Context, env, module, filename, sha256 string) (protocol.FileURI, error)
} = (*Catalog)(nil)

func TestPublishAndRead(t *testing.T) {
	ctx := context.Background()
	fs := newFakeS3(t)
	dir := copyExamples(t)
	loc, err := catalog.NewLocal(map[string]string{"production": dir})
	if err != nil {
		t.Fatal(err)
	}
	wantList, err := loc.List(ctx, "production")
	if err != nil {
		t.Fatal(err)
	}
	distinct := map[string]int64{}
	for _, s := range wantList {
		task, err := loc.Task(ctx, "production", s.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range task.Files {
			distinct[f.SHA256] = f.SizeBytes
		}
	}
	var wantBytes int64
	for _, n := range distinct {
		wantBytes += n
	}

	m := &countMeter{}
	rep := mustPublish(t, fs.client, "production", dir, WithMeter(m))
	want := PublishReport{Environment: "production", Tasks: len(wantList), FilesUploaded: len(distinct),
		BytesUploaded: wantBytes, IndexesWritten: len(wantList) + 1}
	if rep != want {
		t.Errorf("report = %+v, want %+v", rep, want)
	}
	// Every file and index HEADed then PUT, envs/index.json too; one LIST of envs/, one of tasks/production/.
	wantCounts(t, "first publish", m.take(), map[string]int{
		OpHead: len(distinct) + len(wantList) + 2, OpPut: len(distinct) + len(wantList) + 2, OpList: 2,
	})

	c := mustNew(t, fs.client, WithMeter(m))
	if got := c.Environments(); !slices.Equal(got, []string{"production"}) {
		t.Errorf("Environments = %v", got)
	}
	list, err := c.List(ctx, "production")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(list, wantList) {
		t.Errorf("List = %+v\nwant %+v", list, wantList)
	}
	for _, s := range wantList {
		t.Run(s.Name, func(t *testing.T) {
			wantTask, err := loc.Task(ctx, "production", s.Name)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Task(ctx, "production", s.Name)
			if err != nil {
				t.Fatalf("Task: %v", err)
			}
			if got.Name != wantTask.Name || got.Module != wantTask.Module || got.Environment != "production" {
				t.Errorf("name/module/env = %s/%s/%s", got.Name, got.Module, got.Environment)
			}
			if !reflect.DeepEqual(got.Metadata, wantTask.Metadata) {
				t.Errorf("Metadata = %+v\nwant %+v", got.Metadata, wantTask.Metadata)
			}
			if !jsonEqual(t, got.RawMetadata, wantTask.RawMetadata) {
				t.Errorf("RawMetadata = %s\nwant %s", got.RawMetadata, wantTask.RawMetadata)
			}
			if len(got.Files) != len(wantTask.Files) {
				t.Fatalf("Files = %+v, want %+v", got.Files, wantTask.Files)
			}
			for i, f := range got.Files {
				w := wantTask.Files[i]
				w.Path = ""
				if f != w {
					t.Errorf("file %d = %+v, want %+v", i, f, w)
				}
				uri, err := c.FileURI(ctx, "production", got.Module, f.Filename, "")
				if err != nil {
					t.Fatalf("FileURI(%s): %v", f.Filename, err)
				}
				if uri.Params != nil || !strings.HasPrefix(uri.Path, fs.srv.URL+"/"+testBucket+"/"+FilesPrefix+f.SHA256+"?") {
					t.Errorf("FileURI(%s) = %+v", f.Filename, uri)
				}
				u, err := url.Parse(uri.Path)
				if err != nil {
					t.Fatal(err)
				}
				if q := u.Query(); q.Get("X-Amz-Expires") != "300" || q.Get("X-Amz-Signature") == "" {
					t.Errorf("FileURI(%s) query = %v", f.Filename, q)
				}
				if body := fetch(t, uri.Path); sumHex(body) != f.SHA256 || int64(len(body)) != f.SizeBytes {
					t.Errorf("GET %s: %d bytes with sha %s, want %d / %s", f.Filename, len(body), sumHex(body), f.SizeBytes, f.SHA256)
				}
			}
		})
	}
	multi, err := c.Task(ctx, "production", "demo::multi")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(multi.Files, func(f catalog.File) bool { return f.Filename == "demo/files/lib.sh" }) {
		t.Errorf("demo::multi files = %+v, want demo/files/lib.sh among them", multi.Files)
	}
	head, err := fs.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(testBucket),
		Key: aws.String(fileKey(multi.Files[0].SHA256)), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	digest, err := hex.DecodeString(multi.Files[0].SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if head.Metadata[metaSHA256] != multi.Files[0].SHA256 || aws.ToString(head.ChecksumSHA256) != base64.StdEncoding.EncodeToString(digest) {
		t.Errorf("file object metadata = %v, checksum %s", head.Metadata, aws.ToString(head.ChecksumSHA256))
	}
}

func TestRepublish(t *testing.T) {
	ctx := context.Background()
	fs := newFakeS3(t)
	dir := copyExamples(t)
	first := mustPublish(t, fs.client, "production", dir)
	nFiles, nTasks := first.FilesUploaded, first.Tasks
	m := &countMeter{}

	t.Run("unchanged", func(t *testing.T) {
		rep := mustPublish(t, fs.client, "production", dir, WithMeter(m))
		want := PublishReport{Environment: "production", Tasks: nTasks, FilesSkipped: nFiles, IndexesUnchanged: nTasks + 1}
		if rep != want {
			t.Errorf("report = %+v, want %+v", rep, want)
		}
		wantCounts(t, "unchanged", m.take(), map[string]int{OpHead: nFiles + nTasks + 2, OpList: 2})
	})

	newHello := []byte("#!/bin/sh\necho \"{\\\"greeting\\\": \\\"hi $PT_name\\\"}\"\n")
	t.Run("one file changed", func(t *testing.T) {
		c := mustNew(t, fs.client)
		before, err := c.Task(ctx, "production", "demo::hello")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "demo", "tasks", "hello.sh"), newHello, 0o755); err != nil {
			t.Fatal(err)
		}
		rep := mustPublish(t, fs.client, "production", dir, WithMeter(m))
		want := PublishReport{Environment: "production", Tasks: nTasks, FilesUploaded: 1, FilesSkipped: nFiles - 1,
			BytesUploaded: int64(len(newHello)), IndexesWritten: 1, IndexesUnchanged: nTasks}
		if rep != want {
			t.Errorf("report = %+v, want %+v", rep, want)
		}
		// Only the new content and demo::hello's index are written.
		wantCounts(t, "one file changed", m.take(), map[string]int{OpHead: nFiles + nTasks + 2, OpPut: 2, OpList: 2})

		after, err := mustNew(t, fs.client).Task(ctx, "production", "demo::hello")
		if err != nil {
			t.Fatal(err)
		}
		if len(after.Files) != 1 || after.Files[0].SHA256 != sumHex(newHello) || after.Files[0].SHA256 == before.Files[0].SHA256 {
			t.Fatalf("after republish: files = %+v (before %+v)", after.Files, before.Files)
		}
		uri, err := mustNew(t, fs.client).FileURI(ctx, "production", "demo", "hello.sh", "")
		if err != nil {
			t.Fatal(err)
		}
		if got := fetch(t, uri.Path); string(got) != string(newHello) {
			t.Errorf("GET hello.sh = %q", got)
		}
		// The old content stays: a job created before the republish may name it.
		if _, err := fs.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(testBucket),
			Key: aws.String(fileKey(before.Files[0].SHA256))}); err != nil {
			t.Errorf("old content: %v", err)
		}
		// ...and a URL for a recorded digest serves exactly those bytes.
		old, err := mustNew(t, fs.client).FileURI(ctx, "production", "demo", "hello.sh", before.Files[0].SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if got := fetch(t, old.Path); sumHex(got) != before.Files[0].SHA256 {
			t.Errorf("GET by recorded digest returned other bytes")
		}
		if _, err := mustNew(t, fs.client).FileURI(ctx, "production", "demo", "hello.sh", "../x"); !errors.Is(err, catalog.ErrUnknownFile) {
			t.Errorf("bad digest: %v", err)
		}
	})

	t.Run("task removed", func(t *testing.T) {
		for _, f := range []string{"sleep.json", "sleep.sh"} {
			if err := os.Remove(filepath.Join(dir, "demo", "tasks", f)); err != nil {
				t.Fatal(err)
			}
		}
		rep := mustPublish(t, fs.client, "production", dir, WithMeter(m))
		if rep.Tasks != nTasks-1 || rep.TasksRemoved != 1 || rep.FilesUploaded != 0 || rep.IndexesWritten != 1 {
			t.Errorf("report = %+v", rep)
		}
		wantCounts(t, "task removed", m.take(), map[string]int{OpHead: nFiles - 1 + nTasks - 1 + 2, OpPut: 1, OpList: 2, OpDelete: 1})
		c := mustNew(t, fs.client)
		list, err := c.List(ctx, "production")
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != nTasks-1 || slices.ContainsFunc(list, func(s catalog.Summary) bool { return s.Name == "demo::sleep" }) {
			t.Errorf("List = %+v", list)
		}
		if _, err := c.Task(ctx, "production", "demo::sleep"); !errors.Is(err, catalog.ErrUnknownTask) {
			t.Errorf("Task(demo::sleep) = %v, want ErrUnknownTask", err)
		}
		if _, err := c.FileURI(ctx, "production", "demo", "sleep.sh", ""); !errors.Is(err, catalog.ErrUnknownFile) {
			t.Errorf("FileURI(sleep.sh) = %v, want ErrUnknownFile", err)
		}
		_, err = fs.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(testBucket), Key: aws.String(taskIndexKey("production", "demo", "sleep"))})
		if !isNotFound(err) {
			t.Errorf("HEAD removed task index: %v, want not found", err)
		}
	})

	t.Run("second environment", func(t *testing.T) {
		staging := t.TempDir()
		if err := os.CopyFS(filepath.Join(staging, "demo"), os.DirFS(filepath.Join(dir, "demo"))); err != nil {
			t.Fatal(err)
		}
		rep := mustPublish(t, fs.client, "staging", staging, WithMeter(m))
		// The demo module only (demo::sleep was removed above): each task's metadata and
		// executable, and the module's files/, all uploaded already for production.
		var demoTasks, demoFiles int
		err := filepath.WalkDir(filepath.Join(staging, "demo"), func(path string, d os.DirEntry, err error) error {
			switch {
			case err != nil || d.IsDir():
				return err
			case strings.HasSuffix(path, ".json"):
				demoTasks++
			default:
				demoFiles++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if rep.FilesUploaded != 0 || rep.FilesSkipped != demoFiles || rep.Tasks != demoTasks {
			t.Errorf("report = %+v, want %d tasks and %d files skipped (contents are shared between environments)", rep, demoTasks, demoFiles)
		}
		c := mustNew(t, fs.client)
		if got := c.Environments(); !slices.Equal(got, []string{"production", "staging"}) {
			t.Errorf("Environments = %v", got)
		}
		if _, err := c.Task(ctx, "staging", "demo::hello"); err != nil {
			t.Error(err)
		}
	})
}

func TestPublishSkipsInvalidTasks(t *testing.T) {
	fs := newFakeS3(t)
	dir := copyExamples(t)
	for name, body := range map[string]string{"broken.json": `{"description":`, "broken.sh": "#!/bin/sh\n"} {
		if err := os.WriteFile(filepath.Join(dir, "demo", "tasks", name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rep := mustPublish(t, fs.client, "production", dir)
	list, err := mustNew(t, fs.client).List(context.Background(), "production")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Tasks != len(list) || slices.ContainsFunc(list, func(s catalog.Summary) bool { return s.Name == "demo::broken" }) {
		t.Errorf("report %+v, list %+v: demo::broken should be left out", rep, list)
	}
}

func TestPublishErrors(t *testing.T) {
	fs := newFakeS3(t)
	dir := copyExamples(t)
	tests := []struct {
		name   string
		client *s3.Client
		bucket string
		env    string
		dir    string
		opts   []Option
		want   string
	}{
		{name: "nil client", bucket: testBucket, env: "production", dir: dir, want: "nil S3 client"},
		{name: "no bucket", client: fs.client, env: "production", dir: dir, want: "empty bucket"},
		{name: "invalid environment", client: fs.client, bucket: testBucket, env: "Prod/x", dir: dir, want: "invalid environment name"},
		{name: "missing directory", client: fs.client, bucket: testBucket, env: "production", dir: filepath.Join(dir, "nope"), want: "no such file"},
		{name: "bad parallelism", client: fs.client, bucket: testBucket, env: "production", dir: dir, opts: []Option{WithParallelism(0)}, want: "parallelism"},
		{name: "missing bucket", client: fs.client, bucket: "nobucket", env: "production", dir: dir, want: "NoSuchBucket"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Publish(context.Background(), tc.client, tc.bucket, tc.env, tc.dir, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Publish = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestForEach(t *testing.T) {
	boom := errors.New("boom")
	items := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	tests := []struct {
		name    string
		failOn  int
		wantErr error
	}{
		{name: "all succeed"},
		{name: "one fails", failOn: 3, wantErr: boom},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m countMeter
			err := forEach(context.Background(), 3, items, func(_ context.Context, i int) error {
				m.AddS3("done", 1)
				if i == tc.failOn {
					return boom
				}
				return nil
			})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("forEach = %v, want %v", err, tc.wantErr)
			}
			if n := m.take()["done"]; tc.wantErr == nil && n != len(items) {
				t.Errorf("ran %d of %d", n, len(items))
			}
		})
	}
}
