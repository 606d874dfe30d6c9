package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/baton-run/baton/shared/jobs"
)

// jobSpec is what the per-node path needs of a job and what never changes once it is
// created: its kind, timeout and options, and its opened, decoded payload.
type jobSpec struct {
	job     jobs.Job // as read when the spec was made: use only its immutable fields
	payload payload
	input   json.RawMessage // a task's input, encoded once
	noop    bool
	task    string

	// params are a task request's params, the same for every node, kept for a while: their
	// file URLs are signed and expire.
	mu       sync.Mutex
	params   json.RawMessage
	paramsAt time.Time
}

// describe names what the job runs, for event messages.
func (sp *jobSpec) describe() string {
	if sp.job.Type == jobs.TypeDeploy {
		return "puppet run"
	}
	return "task " + sp.task
}

// specCache keeps the specs of the most recently used jobs, up to max.
type specCache struct {
	mu    sync.Mutex
	max   int
	specs map[int64]*jobSpec
	order []int64 // insertion order, oldest first
}

func newSpecCache(max int) *specCache {
	return &specCache{max: max, specs: map[int64]*jobSpec{}}
}

func (c *specCache) get(id int64) *jobSpec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.specs[id]
}

func (c *specCache) put(sp *jobSpec) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.specs[sp.job.ID]; ok {
		return
	}
	for len(c.order) >= c.max {
		delete(c.specs, c.order[0])
		c.order = c.order[1:]
	}
	c.specs[sp.job.ID] = sp
	c.order = append(c.order, sp.job.ID)
}

// spec returns job's spec, from the cache or made from job (which must be the stored job).
func (s *Service) spec(job jobs.Job) (*jobSpec, error) {
	if sp := s.specs.get(job.ID); sp != nil {
		return sp, nil
	}
	sp, err := s.newSpec(job)
	if err != nil {
		return nil, err
	}
	s.specs.put(sp)
	return sp, nil
}

// newSpec makes job's spec, without caching it.
func (s *Service) newSpec(job jobs.Job) (*jobSpec, error) {
	plain, err := s.sealer.Open(job.Payload)
	if err != nil {
		return nil, fmt.Errorf("job %d: open payload: %w", job.ID, err)
	}
	sp := &jobSpec{job: job}
	if err := json.Unmarshal(plain, &sp.payload); err != nil {
		return nil, fmt.Errorf("job %d: decode payload: %w", job.ID, err)
	}
	if job.Type == jobs.TypeTask {
		if sp.input, err = json.Marshal(sp.payload.Input); err != nil {
			return nil, fmt.Errorf("job %d: encode input: %w", job.ID, err)
		}
	} else if sp.payload.Flags == nil {
		sp.payload.Flags = []string{} // pxp-module-puppet requires the list, even empty
	}
	var opts struct {
		Noop bool   `json:"noop"`
		Task string `json:"task"`
	}
	if json.Unmarshal(job.Options, &opts) == nil {
		sp.noop, sp.task = opts.Noop, opts.Task
	}
	return sp, nil
}

// specByID returns the spec of job id, reading the job when it is not cached.
func (s *Service) specByID(ctx context.Context, id int64) (*jobSpec, error) {
	if sp := s.specs.get(id); sp != nil {
		return sp, nil
	}
	job, err := s.store.GetJob(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("job %d: %w", id, err)
	}
	return s.spec(job)
}

// startedSet holds the node records this process recorded running, by transaction id, as it
// wrote them: a provisional answer to one of them needs no store read, and its result is
// written over the record as held (a read only when someone else changed it meanwhile). It
// is bounded: when a generation fills up, the older one is dropped, so it holds the most
// recent records (between maxPerGen and twice as many).
type startedSet struct {
	mu       sync.Mutex
	cur, old map[string]jobs.Node
}

const maxPerGen = 1 << 16

func (t *startedSet) add(n jobs.Node) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur == nil {
		t.cur = map[string]jobs.Node{}
	}
	if len(t.cur) >= maxPerGen {
		t.old, t.cur = t.cur, map[string]jobs.Node{}
	}
	t.cur[n.TransactionID] = n
}

// get returns the record of txn, when the set holds it.
func (t *startedSet) get(txn string) (jobs.Node, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n, ok := t.cur[txn]; ok {
		return n, true
	}
	n, ok := t.old[txn]
	return n, ok
}

func (t *startedSet) remove(txn string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.cur, txn)
	delete(t.old, txn)
}
