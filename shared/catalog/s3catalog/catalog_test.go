package s3catalog

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/baton-run/baton/shared/catalog"
)

func TestCatalogErrors(t *testing.T) {
	ctx := context.Background()
	fs := newFakeS3(t)
	mustPublish(t, fs.client, "production", copyExamples(t))
	c := mustNew(t, fs.client)
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{name: "list unknown environment", want: catalog.ErrUnknownEnvironment,
			call: func() error { _, err := c.List(ctx, "staging"); return err }},
		{name: "list invalid environment name", want: catalog.ErrUnknownEnvironment,
			call: func() error { _, err := c.List(ctx, "../production"); return err }},
		{name: "task unknown environment", want: catalog.ErrUnknownEnvironment,
			call: func() error { _, err := c.Task(ctx, "staging", "demo::hello"); return err }},
		{name: "unknown task", want: catalog.ErrUnknownTask,
			call: func() error { _, err := c.Task(ctx, "production", "demo::nope"); return err }},
		{name: "unknown module", want: catalog.ErrUnknownTask,
			call: func() error { _, err := c.Task(ctx, "production", "nomod::hello"); return err }},
		{name: "module without init task", want: catalog.ErrUnknownTask,
			call: func() error { _, err := c.Task(ctx, "production", "demo"); return err }},
		{name: "invalid task name", want: catalog.ErrUnknownTask,
			call: func() error { _, err := c.Task(ctx, "production", "Demo::Hello"); return err }},
		{name: "too many separators", want: catalog.ErrUnknownTask,
			call: func() error { _, err := c.Task(ctx, "production", "demo::hello::x"); return err }},
		{name: "file URI unknown environment", want: catalog.ErrUnknownEnvironment,
			call: func() error { _, err := c.FileURI(ctx, "staging", "demo", "hello.sh", ""); return err }},
		{name: "file URI unknown file", want: catalog.ErrUnknownFile,
			call: func() error { _, err := c.FileURI(ctx, "production", "demo", "nope.sh", ""); return err }},
		{name: "file URI unknown module", want: catalog.ErrUnknownFile,
			call: func() error { _, err := c.FileURI(ctx, "production", "other", "hello.sh", ""); return err }},
		{name: "file URI task name as module", want: catalog.ErrUnknownFile,
			call: func() error { _, err := c.FileURI(ctx, "production", "demo::hello", "hello.sh", ""); return err }},
		{name: "file URI file of another module's path", want: catalog.ErrUnknownFile,
			call: func() error { _, err := c.FileURI(ctx, "production", "demo", "demo/files/nope.sh", ""); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestEmptyBucket(t *testing.T) {
	fs := newFakeS3(t)
	c := mustNew(t, fs.client)
	if got := c.Environments(); got == nil || len(got) != 0 {
		t.Errorf("Environments = %#v, want an empty list", got)
	}
	if _, err := c.List(context.Background(), "production"); !errors.Is(err, catalog.ErrUnknownEnvironment) {
		t.Errorf("List = %v, want ErrUnknownEnvironment", err)
	}
}

func TestInitTaskAndCorruptIndex(t *testing.T) {
	ctx := context.Background()
	fs := newFakeS3(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"mymod/tasks/init.sh":  "#!/bin/sh\necho '{}'\n",
		"mymod/tasks/other.sh": "#!/bin/sh\necho '{}'\n",
		"mymod/tasks/other.json": `{"description":"<b>&</b>", "private": true,
		    "files": ["mymod/files/x.txt"]}`,
		"mymod/files/x.txt": "x",
	})
	mustPublish(t, fs.client, "production", dir)
	c := mustNew(t, fs.client, WithCacheTTL(0))
	for _, name := range []string{"mymod", "mymod::init"} {
		task, err := c.Task(ctx, "production", name)
		if err != nil || task.Name != "mymod" || len(task.Files) != 1 || task.Files[0].Filename != "init.sh" || string(task.RawMetadata) != "{}" {
			t.Errorf("Task(%s) = %+v, %v", name, task, err)
		}
	}
	list, err := c.List(ctx, "production")
	if err != nil || len(list) != 2 || list[1] != (catalog.Summary{Name: "mymod::other", Private: true, Description: "<b>&</b>"}) {
		t.Errorf("List = %+v, %v", list, err)
	}
	other, err := c.Task(ctx, "production", "mymod::other")
	if err != nil || !strings.Contains(string(other.RawMetadata), `"<b>&</b>"`) {
		t.Errorf("Task(mymod::other) = %s, %v (metadata not HTML-escaped)", other.RawMetadata, err)
	}
	// Both tasks have the same implementation content: one object serves both names.
	a, err1 := c.FileURI(ctx, "production", "mymod", "init.sh", "")
	b, err2 := c.FileURI(ctx, "production", "mymod", "other.sh", "")
	x, err3 := c.FileURI(ctx, "production", "mymod", "mymod/files/x.txt", "")
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	if string(fetch(t, a.Path)) != string(fetch(t, b.Path)) || string(fetch(t, x.Path)) != "x" {
		t.Error("file contents differ")
	}

	_, err = fs.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(testBucket),
		Key: aws.String(taskIndexKey("production", "mymod", "other")), Body: strings.NewReader(`{"version":1,"name":"mymod::other",
		"environment":"production","module":"mymod","metadata":{"parameters":[]},"files":[]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Task(ctx, "production", "mymod::other"); !errors.Is(err, catalog.ErrInvalidTask) {
		t.Errorf("Task with bad metadata = %v, want ErrInvalidTask", err)
	}
	_, err = fs.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(testBucket),
		Key: aws.String(taskIndexKey("production", "mymod", "other")), Body: strings.NewReader(`{"version":1,"name":"mymod::other",
		"environment":"production","module":"mymod","metadata":{},"files":[{"filename":"a","sha256":"../x","size_bytes":1}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Task(ctx, "production", "mymod::other"); !errors.Is(err, catalog.ErrInvalidTask) {
		t.Errorf("Task with bad file entry = %v, want ErrInvalidTask", err)
	}
}

func TestCache(t *testing.T) {
	ctx := context.Background()
	fs := newFakeS3(t)
	mustPublish(t, fs.client, "production", copyExamples(t))
	clock := &fakeClock{t: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	m := &countMeter{}
	c := mustNew(t, fs.client, WithMeter(m), WithClock(clock.now))

	steps := []struct {
		name    string
		advance time.Duration
		call    func() error
		wantGET int
	}{
		{name: "environments loads", wantGET: 1, call: func() error {
			if got := c.Environments(); !slices.Equal(got, []string{"production"}) {
				return errors.New("wrong environments")
			}
			return nil
		}},
		{name: "environments cached", advance: 29 * time.Second, wantGET: 0, call: func() error { c.Environments(); return nil }},
		{name: "environments expired", advance: 2 * time.Second, wantGET: 1, call: func() error { c.Environments(); return nil }},
		{name: "task loads env and task index", wantGET: 2, call: func() error { _, err := c.Task(ctx, "production", "demo::hello"); return err }},
		{name: "task cached", wantGET: 0, call: func() error { _, err := c.Task(ctx, "production", "demo::hello"); return err }},
		{name: "list uses cached env index", wantGET: 0, call: func() error { _, err := c.List(ctx, "production"); return err }},
		{name: "file URI uses cached task index", wantGET: 0, call: func() error { _, err := c.FileURI(ctx, "production", "demo", "hello.sh", ""); return err }},
		{name: "file URI of another task reads its index", wantGET: 1, call: func() error {
			_, err := c.FileURI(ctx, "production", "demo", "multi.sh", "")
			return err
		}},
		{name: "all expired", advance: 31 * time.Second, wantGET: 2, call: func() error { _, err := c.Task(ctx, "production", "demo::hello"); return err }},
	}
	for _, st := range steps {
		clock.advance(st.advance)
		m.take()
		if err := st.call(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		wantCounts(t, st.name, m.take(), map[string]int{OpGet: st.wantGET})
	}

	t.Run("stale environments when S3 fails", func(t *testing.T) {
		clock.advance(time.Minute)
		fs.srv.Close()
		if got := c.Environments(); !slices.Equal(got, []string{"production"}) {
			t.Errorf("Environments = %v, want the last list read", got)
		}
		if _, err := c.List(ctx, "production"); err == nil {
			t.Error("List with S3 down and an expired cache succeeded")
		}
	})
}

func TestNoCache(t *testing.T) {
	fs := newFakeS3(t)
	mustPublish(t, fs.client, "production", copyExamples(t))
	m := &countMeter{}
	c := mustNew(t, fs.client, WithMeter(m), WithCacheTTL(0))
	for range 3 {
		c.Environments()
		if _, err := c.Task(context.Background(), "production", "demo::hello"); err != nil {
			t.Fatal(err)
		}
	}
	wantCounts(t, "no cache", m.take(), map[string]int{OpGet: 9})
}

func TestNew(t *testing.T) {
	fs := newFakeS3(t)
	tests := []struct {
		name    string
		client  *s3.Client
		bucket  string
		opts    []Option
		wantErr string
	}{
		{name: "defaults", client: fs.client, bucket: testBucket},
		{name: "15 minute expiry", client: fs.client, bucket: testBucket, opts: []Option{WithFileURLExpiry(15 * time.Minute)}},
		{name: "expiry above 15 minutes", client: fs.client, bucket: testBucket, opts: []Option{WithFileURLExpiry(16 * time.Minute)}, wantErr: "file URL expiry"},
		{name: "zero expiry", client: fs.client, bucket: testBucket, opts: []Option{WithFileURLExpiry(0)}, wantErr: "file URL expiry"},
		{name: "negative cache TTL", client: fs.client, bucket: testBucket, opts: []Option{WithCacheTTL(-time.Second)}, wantErr: "cache TTL"},
		{name: "zero load timeout", client: fs.client, bucket: testBucket, opts: []Option{WithLoadTimeout(0)}, wantErr: "load timeout"},
		{name: "negative result edge", client: fs.client, bucket: testBucket, opts: []Option{WithResultEdgeKiB(-1)}, wantErr: "edge"},
		{name: "zero result limit", client: fs.client, bucket: testBucket, opts: []Option{WithResultMaxBytes(0)}, wantErr: "size limit"},
		{name: "nil client", bucket: testBucket, wantErr: "nil S3 client"},
		{name: "no bucket", client: fs.client, wantErr: "empty bucket"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.client, nil, tc.bucket, tc.opts...)
			if tc.wantErr == "" {
				if err != nil || c == nil {
					t.Fatalf("New = %v, %v", c, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("New = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestFileURLExpiryOption(t *testing.T) {
	fs := newFakeS3(t)
	mustPublish(t, fs.client, "production", copyExamples(t))
	c := mustNew(t, fs.client, WithFileURLExpiry(90*time.Second))
	uri, err := c.FileURI(context.Background(), "production", "demo", "demo/files/lib.sh", "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(uri.Path, "X-Amz-Expires=90&") && !strings.HasSuffix(uri.Path, "X-Amz-Expires=90") {
		t.Errorf("FileURI = %s, want X-Amz-Expires=90", uri.Path)
	}
}
