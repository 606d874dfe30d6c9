package dynamo

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/baton-run/baton/shared/store"
)

// The sizes the key design is built on; doc.go explains where they come from.
const (
	// nodesPerShard is how many node records a shard (one partition key) of a job holds at
	// most, up to maxShards shards: a shard then takes at most 1/shards of the job's node
	// writes (doc.go, "Ceilings").
	nodesPerShard = 250
	maxShards     = 16
	// eventsPerShard and maxEventShards size a job's event shards (events go round-robin
	// by id: id mod shards).
	eventsPerShard = 250
	maxEventShards = 8
	// pageSize is how many node names one page item of a job holds (in creation order).
	pageSize = 400
	// slotShards is how many items (SLOTS#<k>) count the active node records of all
	// unfinished jobs; together they are the server-wide running cap's semaphore.
	slotShards = 4
	// dueShards is how many GSI2 partitions (DUE#<k>) index the records with a DueAt.
	dueShards = 8
	// usageShards is how many items (JOB#<id>#U<k>) hold the usage counters of a job of
	// more than usagePerShard nodes (one for a smaller job).
	usageShards   = 4
	usagePerShard = 250
	// A job of counterShardsFrom nodes or more (WithCounterShardsFrom) has counter shards
	// (JOB#<id>#C<k>): one per nodesPerCounterShard nodes, between minCounterShards and
	// maxCounterShards. The updates of its records (results, sends, the sweep's) add to the
	// record's counter shard instead of the counters item, and each shard is an event
	// sequencer of its own (doc.go, "Counter shards and event ids").
	counterShardsFrom    = 500
	nodesPerCounterShard = 2500
	minCounterShards     = 2
	maxCounterShards     = 4
)

// counterShardsFor returns how many counter shards a job of n nodes has when jobs of from
// nodes or more have some (from <= 0: none has).
func counterShardsFor(n, from int) int {
	if from <= 0 || n < from {
		return 0
	}
	return max(minCounterShards, min(maxCounterShards, (n+nodesPerCounterShard-1)/nodesPerCounterShard))
}

// shardsFor returns how many of n go in shards of per, between 1 and most.
func shardsFor(n, per, most int) int {
	return max(1, min(most, (n+per-1)/per))
}

// jobMeta is what a job's items are keyed and sized by: fixed when the job is created,
// kept on the job item.
type jobMeta struct {
	id          int64
	shards      int   // node record shards
	eventShards int   // event shards
	pages       int   // pages of node names
	usage       int   // usage shards
	counters    int   // counter shards (0: none)
	own         bool  // each counter shard counts its own records (every record claimed at creation)
	concurrency int   // the job's own cap (0: none)
	expires     int64 // TTL of every item of the job (epoch seconds)
}

func newMeta(id int64, nodes, concurrency int, written time.Time, retention time.Duration, counterFrom int) jobMeta {
	m := jobMeta{
		id:          id,
		shards:      shardsFor(nodes, nodesPerShard, maxShards),
		eventShards: shardsFor(nodes, eventsPerShard, maxEventShards),
		pages:       (nodes + pageSize - 1) / pageSize,
		usage:       shardsFor(nodes, usagePerShard, usageShards),
		counters:    counterShardsFor(nodes, counterFrom),
		concurrency: concurrency,
		expires:     ceilUnix(written.Add(retention)),
	}
	if m.counters > 0 {
		m.eventShards = 2 * m.counters // eventPartitions: the counters item's, and one per shard
	}
	return m
}

// seqs is how many event sequencers job m has: the counters item (sequencer 0) and its
// counter shards (sequencer k+1 is shard k). An event allocated by sequencer j at clock c
// has id c*seqs()+j: ids of different sequencers never collide, and a sequencer's ids
// increase with its clock.
func (m jobMeta) seqs() int { return m.counters + 1 }

// seqKey is the item of sequencer j of job m.
func (m jobMeta) seqKey(j int) item {
	if j == 0 {
		return jobCountersKey(m.id)
	}
	return counterShardKey(m.id, j-1)
}

// seqOf returns the sequencer that counts the updates of record name: its counter shard,
// or the counters item for a job without counter shards.
func (m jobMeta) seqOf(name string) int {
	if m.counters == 0 {
		return 0
	}
	return 1 + shardOf(name, m.counters)
}

// eventID is the id of the event sequencer j allocated at clock clk.
func (m jobMeta) eventID(j int, clk int64) int64 { return clk*int64(m.seqs()) + int64(j) }

func (m jobMeta) shardPK(shard int) string { return jobPK(m.id) + "#" + strconv.Itoa(shard) }

func (m jobMeta) nodeKey(name string) item {
	return key(m.shardPK(shardOf(name, m.shards)), skNodePrefix+name)
}

// eventKey is the key of event id, the seq-th of its sequencer. In a job without counter
// shards events go round its event shards by id. In a job with, each partition holds
// events of one sequencer (id mod seqs()), in order: a counter shard's in one
// (JOB#<id>#E<j>), the counters item's — the claims', which after the job's creation are
// all of one job's node_running events when refills claim — in m.counters partitions by
// seq (JOB#<id>#E0.<seq mod m.counters>).
func (m jobMeta) eventKey(id, seq int64) item {
	if m.counters == 0 {
		return key(jobPK(m.id)+"#E"+strconv.FormatInt(id%int64(m.eventShards), 10), eventSK(id))
	}
	j := int(id % int64(m.seqs()))
	return key(m.eventPartitions(j)[seqPart(m, j, seq)], eventSK(id))
}

// seqPart is which of sequencer j's event partitions holds its seq-th event.
func seqPart(m jobMeta, j int, seq int64) int64 {
	if j != 0 {
		return 0
	}
	return seq % int64(m.counters)
}

// eventPartitions are the partition keys of sequencer j's events (a job with counter
// shards).
func (m jobMeta) eventPartitions(j int) []string {
	if j != 0 {
		return []string{jobPK(m.id) + "#E" + strconv.Itoa(j)}
	}
	out := make([]string, m.counters)
	for x := range out {
		out[x] = jobPK(m.id) + "#E0." + strconv.Itoa(x)
	}
	return out
}

// metaFromJob decodes the meta attributes of a job item.
func metaFromJob(it item) (jobMeta, error) {
	r := reader{it: it}
	m := jobMeta{
		id:          r.n(attrID),
		shards:      int(r.n(attrShards)),
		eventShards: int(r.n(attrEventShards)),
		pages:       int(r.n(attrPages)),
		usage:       int(r.n(attrUsageShards)),
		counters:    int(r.optN(attrCounterShards)),
		own:         r.optB(attrOwnCounts),
		concurrency: int(r.n(attrConcurrency)),
		expires:     r.n(TTLAttribute),
	}
	if r.err != nil {
		return jobMeta{}, fmt.Errorf("job item %s: %w", str(it[PartitionKey]), r.err)
	}
	if m.shards < 1 || m.eventShards < 1 || m.usage < 1 {
		return jobMeta{}, fmt.Errorf("job item %s: %d shards, %d event shards", str(it[PartitionKey]), m.shards, m.eventShards)
	}
	return m, nil
}

// metaCacheSize bounds the cache: past it, the cache starts over.
const metaCacheSize = 10000

// metaCache keeps the metas of jobs this process used: they never change.
type metaCache struct {
	mu sync.Mutex
	m  map[int64]jobMeta
}

func (c *metaCache) get(id int64) (jobMeta, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.m[id]
	return m, ok
}

func (c *metaCache) put(m jobMeta) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= metaCacheSize {
		c.m = make(map[int64]jobMeta)
	}
	c.m[m.id] = m
}

// meta returns job id's meta: from the cache, else from the job item (one consistent read).
// An unknown job (or one whose creation has not committed) is store.ErrNotFound.
func (s *Store) meta(ctx context.Context, id int64) (jobMeta, error) {
	if m, ok := s.metas.get(id); ok {
		return m, nil
	}
	it, err := s.get(ctx, jobKey(id))
	if err != nil {
		return jobMeta{}, err
	}
	if it == nil {
		return jobMeta{}, fmt.Errorf("job %d: %w", id, store.ErrNotFound)
	}
	m, err := metaFromJob(it)
	if err != nil {
		return jobMeta{}, err
	}
	s.metas.put(m)
	return m, nil
}

var _ store.Recounter = (*Store)(nil)
