package storetest

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

// chunk returns the fixture chunk of seq: stdout for odd seqs, stderr for even ones.
func chunk(seq int64) store.OutputChunk {
	stream := "stdout"
	if seq%2 == 0 {
		stream = "stderr"
	}
	return store.OutputChunk{Seq: seq, Stream: stream, Data: fmt.Sprintf("line %d ünïcödé\n", seq)}
}

func chunks(seqs ...int64) []store.OutputChunk {
	out := make([]store.OutputChunk, len(seqs))
	for i, s := range seqs {
		out[i] = chunk(s)
	}
	return out
}

func listOutput(t *testing.T, s store.Store, jobID int64, node string, after int64, limit int) []store.OutputChunk {
	t.Helper()
	got, err := s.ListOutput(t.Context(), jobID, node, after, limit)
	must(t, fmt.Sprintf("list output of %s after %d", node, after), err)
	return got
}

func equalChunks(t *testing.T, what string, got, want []store.OutputChunk) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %v\nwant %v", what, got, want)
	}
}

func seqs(cs []store.OutputChunk) []int64 {
	out := make([]int64, len(cs))
	for i, c := range cs {
		out[i] = c.Seq
	}
	return out
}

func runOutput(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("no output is an empty list", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateRunning, "web1")
		got := listOutput(t, s, j.ID, "web1", 0, 10)
		if got == nil || len(got) != 0 {
			t.Fatalf("ListOutput = %#v, want an empty, non-nil list", got)
		}
	})

	t.Run("in order, after and limit", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateRunning, "web1")
		must(t, "put", s.PutOutput(t.Context(), j.ID, "web1", chunks(1, 2, 3)))
		must(t, "put", s.PutOutput(t.Context(), j.ID, "web1", chunks(4, 5)))
		equalChunks(t, "after 0", listOutput(t, s, j.ID, "web1", 0, 100), chunks(1, 2, 3, 4, 5))
		equalChunks(t, "after 2", listOutput(t, s, j.ID, "web1", 2, 100), chunks(3, 4, 5))
		equalChunks(t, "after 2, limit 2", listOutput(t, s, j.ID, "web1", 2, 2), chunks(3, 4))
		equalChunks(t, "after the last", listOutput(t, s, j.ID, "web1", 5, 100), nil)
		equalChunks(t, "after beyond", listOutput(t, s, j.ID, "web1", 99, 100), nil)
	})

	t.Run("duplicates change nothing", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateRunning, "web1")
		must(t, "put", s.PutOutput(t.Context(), j.ID, "web1", chunks(1, 2, 3)))
		must(t, "put again", s.PutOutput(t.Context(), j.ID, "web1", chunks(1, 2, 3)))
		must(t, "put one again", s.PutOutput(t.Context(), j.ID, "web1", chunks(2)))
		must(t, "put overlapping", s.PutOutput(t.Context(), j.ID, "web1", chunks(3, 4)))
		equalChunks(t, "output", listOutput(t, s, j.ID, "web1", 0, 100), chunks(1, 2, 3, 4))
	})

	t.Run("chunks sent again grouped otherwise", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateRunning, "web1")
		must(t, "put 3", s.PutOutput(t.Context(), j.ID, "web1", chunks(3)))
		must(t, "put 1-3", s.PutOutput(t.Context(), j.ID, "web1", chunks(1, 2, 3)))
		must(t, "put 2-3", s.PutOutput(t.Context(), j.ID, "web1", chunks(2, 3)))
		must(t, "put 1-10", s.PutOutput(t.Context(), j.ID, "web1", chunks(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)))
		must(t, "put 6-10", s.PutOutput(t.Context(), j.ID, "web1", chunks(6, 7, 8, 9, 10)))
		must(t, "put 9", s.PutOutput(t.Context(), j.ID, "web1", chunks(9)))
		equalChunks(t, "output", listOutput(t, s, j.ID, "web1", 0, 100), chunks(1, 2, 3, 4, 5, 6, 7, 8, 9, 10))
		equalChunks(t, "after 4", listOutput(t, s, j.ID, "web1", 4, 100), chunks(5, 6, 7, 8, 9, 10))
		equalChunks(t, "after 8, limit 1", listOutput(t, s, j.ID, "web1", 8, 1), chunks(9))
		equalChunks(t, "after 4, limit 1", listOutput(t, s, j.ID, "web1", 4, 1), chunks(5))
		equalChunks(t, "after 4, limit 2", listOutput(t, s, j.ID, "web1", 4, 2), chunks(5, 6))
	})

	t.Run("reordering and gaps", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateRunning, "web1")
		must(t, "put 4-5", s.PutOutput(t.Context(), j.ID, "web1", chunks(4, 5)))
		must(t, "put 1", s.PutOutput(t.Context(), j.ID, "web1", chunks(1)))
		// A gap (2-3 not yet arrived) is returned as it is: the store does not wait.
		equalChunks(t, "with a gap", listOutput(t, s, j.ID, "web1", 0, 100), chunks(1, 4, 5))
		must(t, "put 3-2", s.PutOutput(t.Context(), j.ID, "web1", []store.OutputChunk{chunk(3), chunk(2)}))
		equalChunks(t, "gap filled", listOutput(t, s, j.ID, "web1", 0, 100), chunks(1, 2, 3, 4, 5))
		equalChunks(t, "after 1, limit 3", listOutput(t, s, j.ID, "web1", 1, 3), chunks(2, 3, 4))
	})

	t.Run("kept apart by node and job", func(t *testing.T) {
		s := newStore(t)
		j1 := createJob(t, s, 1, jobs.StateRunning, "web1", "web2")
		j2 := createJob(t, s, 2, jobs.StateRunning, "web1")
		must(t, "put", s.PutOutput(t.Context(), j1.ID, "web1", chunks(1, 2)))
		other := []store.OutputChunk{{Seq: 1, Stream: "stdout", Data: "web2's\n"}}
		must(t, "put", s.PutOutput(t.Context(), j1.ID, "web2", other))
		equalChunks(t, "job 1 web1", listOutput(t, s, j1.ID, "web1", 0, 100), chunks(1, 2))
		equalChunks(t, "job 1 web2", listOutput(t, s, j1.ID, "web2", 0, 100), other)
		equalChunks(t, "job 2 web1", listOutput(t, s, j2.ID, "web1", 0, 100), nil)
		// A node whose name is a prefix of another's.
		equalChunks(t, "job 1 web", listOutput(t, s, j1.ID, "web", 0, 100), nil)
	})

	t.Run("large and many chunks", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateRunning, "web1")
		big := store.OutputChunk{Seq: 1, Stream: "stdout", Data: strings.Repeat("0123456789abcdef", 4096)} // 64 KiB
		must(t, "put big", s.PutOutput(t.Context(), j.ID, "web1", []store.OutputChunk{big}))
		var many []store.OutputChunk
		for seq := int64(2); seq <= 61; seq++ {
			many = append(many, chunk(seq))
		}
		must(t, "put 60 chunks in one call", s.PutOutput(t.Context(), j.ID, "web1", many))
		got := listOutput(t, s, j.ID, "web1", 0, store.MaxOutputList)
		equalChunks(t, "output", got, append([]store.OutputChunk{big}, many...))
		var paged []store.OutputChunk
		for after := int64(0); ; {
			page := listOutput(t, s, j.ID, "web1", after, 7)
			if len(page) == 0 {
				break
			}
			paged = append(paged, page...)
			after = page[len(page)-1].Seq
		}
		equalChunks(t, "paged by 7", paged, got)
	})

	t.Run("concurrent writers of the same chunks", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateRunning, "web1")
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Each writer sends an overlapping window, in its own order.
				from := int64(w%4*3 + 1)
				cs := chunks(from, from+1, from+2, from+3)
				if w%2 == 1 {
					cs = []store.OutputChunk{cs[3], cs[2], cs[1], cs[0]}
				}
				errs <- s.PutOutput(t.Context(), j.ID, "web1", cs)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			must(t, "concurrent put", err)
		}
		got := listOutput(t, s, j.ID, "web1", 0, 100)
		want := chunks(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)
		equalChunks(t, fmt.Sprintf("output (seqs %v)", seqs(got)), got, want)
	})

	t.Run("limit out of range", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateRunning, "web1")
		for _, limit := range []int{0, -1, store.MaxOutputList + 1} {
			if _, err := s.ListOutput(t.Context(), j.ID, "web1", 0, limit); err == nil {
				t.Errorf("ListOutput with limit %d: no error", limit)
			}
		}
	})
}
