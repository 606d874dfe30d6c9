package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-run/baton/shared/client"
)

// jobRun is one job the suite ran: what it asked and what the server said at the end.
type jobRun struct {
	runID     string
	job       string // the server's job id ("" if it was never created)
	nodes     []string
	sleep     float64
	exitCode  int
	submitted time.Time
	ended     time.Time // zero: not ended within its bound
	final     client.Job
	results   []client.Node
	events    []client.Event // the job's events, for the post-mortem of odd outcomes
	err       error          // why it has no final state or results
}

// workload submits chaos::ledger jobs on random subsets of the nodes, submitters at a time,
// until nodeRuns node-runs have been submitted, and follows each to its end.
type workload struct {
	cfg       *config
	api       *client.Client
	nodes     []string
	ledgerDir string
	log       *slog.Logger

	mu        sync.Mutex
	rnd       *rand.Rand
	runs      []*jobRun
	submitted atomic.Int64 // node-runs
	ended     atomic.Int64 // jobs
	seq       int
}

func newWorkload(cfg *config, api *client.Client, nodes []string, ledgerDir string) *workload {
	return &workload{cfg: cfg, api: api, nodes: nodes, ledgerDir: ledgerDir, log: cfg.log.With("component", "workload"),
		rnd: rand.New(rand.NewPCG(cfg.seed, 0x10b5))}
}

// next draws the next job: its nodes, sleep and exit code. nil when enough have been drawn.
func (w *workload) next() *jobRun {
	w.mu.Lock()
	defer w.mu.Unlock()
	if int(w.submitted.Load()) >= w.cfg.nodeRuns {
		return nil
	}
	w.seq++
	// Sizes from one node to all, smaller ones likelier.
	size := 1 + int(float64(len(w.nodes))*w.rnd.Float64()*w.rnd.Float64())
	size = min(size, len(w.nodes), w.cfg.nodeRuns-int(w.submitted.Load()))
	perm := w.rnd.Perm(len(w.nodes))
	r := &jobRun{runID: fmt.Sprintf("r%05d", w.seq), sleep: float64(int(w.rnd.Float64()*w.cfg.maxSleep*1000)) / 1000}
	for _, i := range perm[:size] {
		r.nodes = append(r.nodes, w.nodes[i])
	}
	if w.rnd.Float64() < w.cfg.failShare {
		r.exitCode = 3
	}
	w.submitted.Add(int64(size))
	w.runs = append(w.runs, r)
	return r
}

// probe runs one job on every node once the faults have stopped: every agent must take work
// again (an agent the server lost track of while it believes it is connected does not).
func (w *workload) probe(ctx context.Context) *jobRun {
	w.mu.Lock()
	r := &jobRun{runID: "probe", nodes: append([]string(nil), w.nodes...)}
	w.runs = append(w.runs, r)
	w.mu.Unlock()
	w.one(ctx, r)
	return r
}

// run submits jobs until enough node-runs are submitted, each submitter waiting for its
// job's end before the next. It returns when every job has ended or passed its bound.
func (w *workload) run(ctx context.Context) {
	var wg sync.WaitGroup
	progress, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for sleepCtx(progress, 30*time.Second) {
			w.mu.Lock()
			jobs := len(w.runs)
			w.mu.Unlock()
			w.log.Info("progress", "node_runs_submitted", w.submitted.Load(), "jobs", jobs, "jobs_ended", w.ended.Load())
		}
	}()
	for range w.cfg.submitters {
		wg.Go(func() {
			for ctx.Err() == nil {
				r := w.next()
				if r == nil {
					return
				}
				w.one(ctx, r)
			}
		})
	}
	wg.Wait()
}

// one submits r (again and again with the same idempotency key until the server answers)
// and waits for its end, then reads its nodes.
func (w *workload) one(ctx context.Context, r *jobRun) {
	r.submitted = time.Now()
	bound := r.submitted.Add(w.cfg.jobBound)
	bctx, cancel := context.WithDeadline(ctx, bound)
	defer cancel()
	req := client.TaskRequest{Task: "chaos::ledger", Scope: client.Scope{Nodes: r.nodes},
		Params:         map[string]any{"ledger_dir": w.ledgerDir, "run_id": r.runID, "sleep": r.sleep, "exit_code": r.exitCode},
		Timeout:        int(w.cfg.taskTimeout / time.Second),
		Description:    "baton-chaos " + r.runID,
		IdempotencyKey: "baton-chaos-" + r.runID,
	}
	for {
		ref, err := w.api.RunTask(bctx, req)
		if err == nil {
			r.job = ref.Name
			break
		}
		if permanent(err) {
			r.err = fmt.Errorf("submit: %w", err)
			w.log.Error("job refused", "run", r.runID, "err", err)
			return
		}
		if !sleepCtx(bctx, 500*time.Millisecond) {
			r.err = fmt.Errorf("submit: no answer within the job's bound: %w", err)
			return
		}
	}
	for {
		job, err := w.api.WaitJob(bctx, r.job, 20*time.Second)
		if err == nil && job.Done() {
			r.final, r.ended = job, time.Now()
			w.ended.Add(1)
			break
		}
		if err != nil && permanent(err) {
			r.err = fmt.Errorf("job %s: %w", r.job, err)
			return
		}
		if bctx.Err() != nil {
			r.err = fmt.Errorf("job %s did not end within %s", r.job, w.cfg.jobBound)
			if err == nil {
				r.final = job
			}
			break
		}
		if err != nil {
			sleepCtx(bctx, 500*time.Millisecond)
		}
	}
	// The nodes, as the server reports them (of a job still running too: the check says which
	// are stuck). The bound does not apply to this read.
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer rcancel()
	for {
		nodes, err := w.api.JobNodes(rctx, r.job)
		if err == nil {
			r.results = nodes
			if evs, _, err := w.api.Events(rctx, r.job, 0); err == nil {
				r.events = evs
			}
			return
		}
		if permanent(err) || !sleepCtx(rctx, 500*time.Millisecond) {
			r.err = errors.Join(r.err, fmt.Errorf("job %s nodes: %w", r.job, err))
			return
		}
	}
}

// permanent reports whether err is an answer that asking again will not change (a 4xx other
// than 429).
func permanent(err error) bool {
	var ae *client.APIError
	return errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusTooManyRequests
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// all returns the jobs drawn so far.
func (w *workload) all() []*jobRun {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*jobRun(nil), w.runs...)
}
