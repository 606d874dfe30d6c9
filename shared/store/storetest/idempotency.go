package storetest

import (
	"errors"
	"sync"
	"testing"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

// keyedJob returns job fixture i owned by login with idempotency key key.
func keyedJob(i int, login, key string) jobs.Job {
	j := newJob(i, 0)
	j.Owner = jobs.Owner{ID: "id-" + login, Login: login}
	j.IdempotencyKey = key
	return j
}

func runIdempotency(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("DuplicateKeyExistsAndWritesNothing", func(t *testing.T) {
		s := newStore(t)
		first, err := s.CreateJob(t.Context(), keyedJob(1, "alice", "k1"), newNodes("a"), nil)
		must(t, "create job", err)

		dup := keyedJob(2, "alice", "k1")
		dup.State = jobs.StateRunning
		nodes := newNodes("dup-node")
		nodes[0].State, nodes[0].TransactionID = jobs.NodeRunning, "txn-dup"
		_, err = s.CreateJob(t.Context(), dup, nodes, []jobs.Event{newEvent(jobs.EventNodeRunning, "dup-node", 2)})
		mustErrIs(t, "create job with a taken key", err, store.ErrExists)

		all, total, err := s.ListJobs(t.Context(), store.JobQuery{})
		must(t, "list jobs", err)
		if total != 1 || len(all) != 1 {
			t.Fatalf("after the refused create: %d jobs (total %d), want only job %d", len(all), total, first.ID)
		}
		equalJob(t, "remaining job", all[0], first)
		recs, err := s.ListJobNodesByName(t.Context(), "dup-node", jobs.AllNodeStates...)
		must(t, "list job nodes by name", err)
		if len(recs) != 0 {
			t.Fatalf("the refused job left node records: %+v", recs)
		}
		_, err = s.FindJobNodeByTransaction(t.Context(), "txn-dup")
		mustErrIs(t, "find the refused job's transaction", err, store.ErrNotFound)
		active, err := s.CountActiveNodes(t.Context())
		must(t, "count active nodes", err)
		if active != 0 {
			t.Fatalf("active nodes after the refused create = %d, want 0", active)
		}
		got, err := s.GetJobByIdempotencyKey(t.Context(), "alice", "k1")
		must(t, "get by key", err)
		equalJob(t, "job by key", got, first)

		// The next create still works and gets a greater id.
		next, err := s.CreateJob(t.Context(), keyedJob(3, "alice", "k2"), nil, nil)
		must(t, "create job with a new key", err)
		if next.ID <= first.ID {
			t.Fatalf("next job id = %d, want more than %d", next.ID, first.ID)
		}
		evs, err := s.ListEvents(t.Context(), next.ID, 0, 0)
		must(t, "list events", err)
		if len(evs) != 0 {
			t.Fatalf("new job has events %+v, want none", evs)
		}
	})

	t.Run("KeysAreScopedByLoginAndExact", func(t *testing.T) {
		s := newStore(t)
		fixtures := []struct{ login, key string }{
			{"alice", "k1"},
			{"bob", "k1"},   // another owner may use the same key
			{"alice", "K1"}, // keys compare exactly
			{"Alice", "k1"}, // so do logins
			{"alice", "k1 "},
		}
		created := map[[2]string]jobs.Job{}
		for i, f := range fixtures {
			j, err := s.CreateJob(t.Context(), keyedJob(i+1, f.login, f.key), nil, nil)
			must(t, "create job for "+f.login+"/"+f.key, err)
			created[[2]string{f.login, f.key}] = j
		}
		for k, want := range created {
			got, err := s.GetJobByIdempotencyKey(t.Context(), k[0], k[1])
			must(t, "get by key", err)
			equalJob(t, "job of "+k[0]+" by key "+k[1], got, want)
		}
		for _, miss := range []struct{ login, key string }{{"carol", "k1"}, {"alice", "k2"}, {"alice", ""}, {"", "k1"}} {
			_, err := s.GetJobByIdempotencyKey(t.Context(), miss.login, miss.key)
			mustErrIs(t, "get by key "+miss.login+"/"+miss.key, err, store.ErrNotFound)
		}
	})

	t.Run("EmptyKeysAreNotUnique", func(t *testing.T) {
		s := newStore(t)
		for i := 1; i <= 3; i++ {
			_, err := s.CreateJob(t.Context(), keyedJob(i, "alice", ""), nil, nil)
			must(t, "create job without a key", err)
		}
		_, total, err := s.ListJobs(t.Context(), store.JobQuery{})
		must(t, "list jobs", err)
		if total != 3 {
			t.Fatalf("total = %d, want 3", total)
		}
		_, err = s.GetJobByIdempotencyKey(t.Context(), "alice", "")
		mustErrIs(t, "get by empty key", err, store.ErrNotFound)
	})

	t.Run("UpdateKeepsKeyAndRefusesATakenOne", func(t *testing.T) {
		s := newStore(t)
		a, err := s.CreateJob(t.Context(), keyedJob(1, "alice", "ka"), nil, nil)
		must(t, "create job a", err)
		b, err := s.CreateJob(t.Context(), keyedJob(2, "alice", "kb"), nil, nil)
		must(t, "create job b", err)

		a.State = jobs.StateRunning
		a, err = s.UpdateJob(t.Context(), a)
		must(t, "update job a", err)
		got, err := s.GetJobByIdempotencyKey(t.Context(), "alice", "ka")
		must(t, "get by key after update", err)
		equalJob(t, "job by key after update", got, a)

		taken := b
		taken.IdempotencyKey = "ka"
		taken.Description = "must not be stored"
		_, err = s.UpdateJob(t.Context(), taken, newEvent(jobs.EventJobStopping, "", 3))
		mustErrIs(t, "update to a taken key", err, store.ErrExists)
		stored, err := s.GetJob(t.Context(), b.ID)
		must(t, "get job b", err)
		equalJob(t, "job b after the refused update", stored, b)
		evs, err := s.ListEvents(t.Context(), b.ID, 0, 0)
		must(t, "list events", err)
		if len(evs) != 0 {
			t.Fatalf("the refused update appended events %+v", evs)
		}

		// Moving a key to another owner's namespace is allowed when it is free there.
		b.Owner = jobs.Owner{ID: "id-bob", Login: "bob"}
		b.IdempotencyKey = "ka"
		b, err = s.UpdateJob(t.Context(), b)
		must(t, "update job b to bob's ka", err)
		got, err = s.GetJobByIdempotencyKey(t.Context(), "bob", "ka")
		must(t, "get bob's ka", err)
		equalJob(t, "bob's job by key", got, b)
		_, err = s.GetJobByIdempotencyKey(t.Context(), "alice", "kb")
		mustErrIs(t, "get the released key", err, store.ErrNotFound)
		// The released key can be used again.
		_, err = s.CreateJob(t.Context(), keyedJob(3, "alice", "kb"), nil, nil)
		must(t, "create job with the released key", err)
	})

	t.Run("ConcurrentCreatesOneWins", func(t *testing.T) {
		s := newStore(t)
		errs := make([]error, racers)
		results := make([]jobs.Job, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				<-start
				results[i], errs[i] = s.CreateJob(t.Context(), keyedJob(i+1, "alice", "same"), newNodes("a", "b"),
					[]jobs.Event{newEvent(jobs.EventNodeRunning, "a", i)})
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("racers %d and %d both created a job with the same key", winner, i)
				}
				winner = i
			case !errors.Is(err, store.ErrExists):
				t.Fatalf("racer %d: error = %v, want nil or ErrExists", i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("no racer succeeded; errors: %v", errs)
		}
		all, total, err := s.ListJobs(t.Context(), store.JobQuery{})
		must(t, "list jobs", err)
		if total != 1 || len(all) != 1 {
			t.Fatalf("%d jobs stored (total %d), want 1", len(all), total)
		}
		equalJob(t, "stored job", all[0], results[winner])
		got, err := s.GetJobByIdempotencyKey(t.Context(), "alice", "same")
		must(t, "get by key", err)
		equalJob(t, "job by key", got, results[winner])
	})
}
