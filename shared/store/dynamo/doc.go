// Package dynamo is the DynamoDB backend of store.Store: every record in one on-demand table,
// read by GetItem, BatchGetItem and Query, never by Scan, written by single-item conditional
// writes and BatchWriteItem — no transaction on the path of a node-run (transactions bill
// double and serialize on hot items). It passes the store/storetest suite against an
// in-process DynamoDB-API emulator. It does not create its table when it starts: CreateTable
// does (tests, local runs), or the CDK app, which declares the same keys and indexes from
// TableSchema. The design targets 100,000 agents, 10,000-node jobs and 1,000 node-runs
// per second for one job whose records are claimed when it is created (400 for a job whose
// records are claimed by refills one at a time), and more overall, with no partition key
// over DynamoDB's 1,000 WCU or 3,000 RCU per second. Data written by earlier designs of this package is not migrated
// (there was no production deployment): a table from before must be emptied.
//
// # Items
//
// <id> is a job id in decimal, <id20> the same zero-padded to 20 digits, <k> a shard number,
// <due> a time as fixed-width UTC text (which sorts chronologically).
//
//	item                 pk                 sk              index keys (GSI: partition / sort)
//	job                  JOB#<id>           JOB             GSI3: JOBS / <id20>
//	                                                        GSI1: UNFINISHED / <created>#<id20>, while not terminal
//	job counters         JOB#<id>           COUNTERS        -
//	counter shard        JOB#<id>#C<k>      COUNTERS        -   (jobs of 500 nodes or more)
//	page of node names   JOB#<id>#P         P#<page>        -
//	node record          JOB#<id>#<shard>   NODE#<name>     GSI2: DUE#<k> / <due>#<id20>#<name>, while it has a DueAt
//	                                                        GSI1: TXN#<txn> / <id20>, only for an id that names no job
//	job event            JOB#<id>#E<id%E>   EV#<event id20> -   (a job without counter shards)
//	                     JOB#<id>#E<j>      EV#<event id20> -   (with: sequencer j > 0's events)
//	                     JOB#<id>#E0.<x>    EV#<event id20> -   (with: the counters item's, x = seq mod K)
//	event pack           as its last event  EV#<last id20>  -   (a job with counter shards: its creation's events, packs.go)
//	usage shard          JOB#<id>#U<k>      USAGE           -
//	idempotency key      IDEMPOTENCY#<login> <key>          -
//	job id counter       COUNTERS           JOB_ID          -
//	ACTIVE semaphore     SLOTS#<k>          SLOTS           -   (k < 4)
//	inventory node       NODE#<name>        NODE            GSI1: INV#<k> / <name>   (k = FNV-1a(name) mod 16)
//	facts                NODE#<name>        FACTS           -
//	lease                LEASE#<name>       LEASE           -
//	node group           GROUPS             <name>          -
//	API token            TOKEN#<hash>       TOKEN           GSI1: TOKENS#<login> / <created>#<hash>
//	                                                        GSI2: TOKENS / <created>#<hash>
//	role, user           ROLES, USERS       <name>, <login> -
//	connect nonce        NONCE#<nonce>      NONCE           -
//
// A job's meta — its node shards S (one per 250 nodes, 1 to 16), event shards E (one per 250
// nodes, 1 to 8), counter shards K (none below 500 nodes; one per 2,500 nodes, 2 to 4),
// pages (400 names each) and TTL — is fixed at creation and kept on the job item; processes cache it (it never changes), so finding a record costs no read of the job.
// A node record's shard is FNV-1a(name) mod S. The job counters item holds the job's last
// event id (its event sequencer), how many records are in each state (c_<state>), how many
// are active, the claim cursor (a creation index before which no record is queued), whether
// the job is terminal or has a stop request, and the job's quota of the ACTIVE semaphore
// (q<k>: slots taken from SLOTS#<k>). The pages list the job's node names in creation order:
// claims read the queue from them, from the cursor on, without an index of queued records.
//
// # Indexes
//
// The three indexes and their projections are those of the previous design (TableSchema did
// not change); what goes into them did. GSI1 (keys only) lists unfinished jobs (UNFINISHED,
// one entry per job, written at creation and when it ends), the inventory (INV#<k>, 16
// partitions, written at enrolment and removal only: connects, disconnects and facts never
// touch it), a login's tokens, and the records whose transaction id does not name their job
// (TXN#; the orchestrator makes ids that do, jobs.TransactionID, so in practice none). GSI2
// (keys only) indexes the records with a DueAt, over 8 partitions (DUE#<k>, k from the job and
// node), by due time: the sweep reads only what is overdue; and lists every token. GSI3
// (projecting JobListAttributes) serves ListJobs. An index entry is written when an item with
// its keys is created or deleted or its keys change (a delete and a put), and, for GSI3, when
// a projected attribute changes; entries are about 150 bytes, one write unit each. Index reads
// are eventually consistent (lag well under a second): the store reads what it returns from
// the table and checks it again.
//
// # Writes of a node-run
//
// Job creation (CreateJob, CreateJobClaiming) takes an id (UpdateItem ADD on JOB_ID), puts
// the idempotency reservation (conditional: store.ErrExists, and nothing else is written),
// then writes the counters item, the pages, the usage shards, the node records and the events
// with BatchWriteItem (25 items a call, 16 calls at once, unprocessed items retried), and the
// job item last: it is the commit point, since every reader finds a job's items through its
// meta. A failure deletes what was written; a process that dies leaves unreachable items that
// TTL deletes. A 10,000-node job is about 400 BatchWriteItem calls: under 2 s against the
// emulator (TestBigJobCreatedInBatches), a few seconds against DynamoDB. CreateJobClaiming
// writes the records it claims claimed (one write each: never queued first).
//
// ClaimJobNodes reads the counters item (flags, active count, cursor, quota), the pages from
// the cursor and as many records as it can take (eventually consistent BatchGetItem), takes
// slots of the ACTIVE semaphore if the job's quota has no room, then moves the counters first
// (one UpdateItem: ADD states, active count, event ids, quota; SET the cursor; conditional on
// the cursor and the quota being as read, on the job being neither terminal nor stopped and
// on the active count leaving room in the job's Concurrency and in its quota), then writes
// each record (UpdateItem conditional on its version and on it being queued) and its events.
// Claims of one job so take turns on its cursor and never go for the same records; a claim
// that lost its turn (a refused write, which DynamoDB bills as one unit) backs off and reads
// again. A record another writer changed meanwhile is given back (counts; its event ids are
// written void). The counters moving first is what makes the caps hold across Lambda
// instances; a process that dies in between leaves the counts ahead (never behind: no cap is
// exceeded), which RecountJob repairs. Claims are the one place where concurrency costs: 16
// workers each claiming after every result (TestClaimsUnderContention) take about 15 write
// units per node-run instead of 10. A claim with store.Claim.Attempts 1 (the orchestrator's
// refill after a result) makes one round: when another claim has the turn, that one takes
// the free slots, and no result handler queues behind the job's counters item (with a
// server-wide cap and refills after every result, queued claims took over 29 s each under
// load: TestCapacity at N = 1,000 with the orchestrator's default cap of 250).
//
// UpdateJobNode (a result, a send, a sweep's update) needs no read: one UpdateItem of the
// record (every attribute, conditional on the version the caller passes; ReturnValues
// ALL_OLD tells the state it replaced), then, when the state changed or there are events, one
// UpdateItem ADD of the job's counters, then the events (a PutItem each). The counters move
// only after the record's conditional write succeeded, so a refused or repeated result never
// counts twice; a process that dies between the two leaves the counts behind until RecountJob.
// In a job without counter shards, the counters item is the job's event sequencer and ids
// are dense: they are allocated by the ADD, after the record is written, so that a refused
// update takes none. (A job with counter shards adds to the record's shard instead, which
// numbers the events: see Counter shards and event ids.) To spare a second write of the record
// (its LatestEventID), the store guesses the ids from an eventually consistent read of the
// counters (half a read unit); the ADD itself is unconditional: a condition on the guess
// was refused whenever another writer of the job got ids in between — nearly always at
// scale — a billed write of the hot item and then a second one (3 WCU per node-run on the
// counters key at N = 1,000). When the guess was wrong, the record's LatestEventID is set by
// one more UpdateItem, a write of the record's own key, before the events are written
// and conditional on the version written. Refused, it means a later write of the record
// came in between; when that one changed the record's state and its LatestEventID is not
// past these events (it may have numbered its own first: a send's record of a node claimed
// ready, overtaken by the node's result), these events are written void rather than be
// listed after the later ones (TestOvertakenSendLeavesNoRunningAfterTheEnd). An end is
// never voided, nor are events overtaken by a write that kept the state
// (TestLaterWriteKeepsAStopsEvent). UpdateJobNodes does this for many records together: one counters update
// and one BatchWriteItem of events per job. UpdateJob reads the job, writes it (PutItem on its
// version; a transaction only when the idempotency key changes) and, for events or a change
// of its terminal state or stop request, updates the counters (a job that ends gives its quota
// back to the ACTIVE semaphore).
//
// UpdateJobNodeFrom (prior.go) is what a result uses in a job with counter shards whose
// records were all claimed at its creation and that has no error limit (any other job's
// results go UpdateJobNode's way: a failure or an end counted for a moment before its write
// is refused would mislead a claim's cap or an error limit): the caller passes the record it
// read, so the store knows the state it replaces before writing. It moves the counters first (the
// counts and the event ids), then writes the record once with its LatestEventID right, then
// the event: three writes and no read, where UpdateJobNode takes four at scale (its guess of
// the ids nearly always loses to another writer of the job, and the record is written
// again). A refused record write (its version moved) takes its counts back and writes its
// ids void. The price of this order: the counts run ahead of the records for the moment
// between the two writes (forever, if the process dies there), so a job whose counts say
// done is ended only by a caller of MayEndJob, which holds a check of the job (a
// conditional write of chk on its counters item, doneCheckHold) and reads its records
// until none is unfinished (again after 25 ms, 50 ms, … 3.2 s in all: a write on its way); the other
// result handlers that see the counts done meanwhile do nothing. A job whose counts ran
// ahead for good (a dead process) is recounted by the sweep, which then asks the node; a
// recount waits until no counter shard of such a job has moved for RecountSettle (a result's
// record write may be behind its counters' update).
//
// In a job with counter shards whose records were all claimed at its creation (no queued
// record: the AWS default), each counter shard holds the counts of its own records from the
// start (own), and no claim ever moves a count to the counters item: a result whose shard
// still counts an unfinished record after its update knows the job is not done without
// reading the job's counts (open), and the orchestrator skips that read (K+1 read units).
// A recount puts the difference on the counters item; a shard that then counts one
// unfinished too many keeps saying open, and the sweep ends the job.
//
// The creation's events of a job with counter shards are written in packs of up to 64
// consecutive events of one sequencer (packs.go): gzip-compressed JSON, 2 or 3 write units
// for 64 node_running events where 64 items took 64. ListEvents expands them.
//
// Usage rides on the counter updates: the usage tally of the caller's context (shared/usage)
// is ADDed to the counters item or shard in the update that moves the counts, with no write
// of its own; JobUsage adds the usage shards and the counters. What an invocation does after
// that update stays in its tally (the orchestrator leaves it for the job's next result in
// the same process, orchestrator.Config.UsageCarry).
//
// # Lost responses
//
// A write whose effect later writes depend on — a record's write (its counters follow), a
// claim's counters update (its records follow), a job's write (its counters follow) — runs
// under a context its caller cannot cancel (bounded by 30 s): a caller giving up (a Lambda's
// deadline, API Gateway's 29 s) could otherwise cut the request after DynamoDB applied it
// and before the response came, leaving the write done and its follow-ups not, which
// showed as counts drifting from the records under load (a job that never ended, counts
// below zero). What remains — a process that dies between two writes, an SDK retry of an
// ADD whose first response was lost — the sweep repairs: a job whose counts stayed the
// same for two minutes of sweeps is recounted once (orchestrator recountIfQuiet, RecountJob).
// RecountJob refuses while a record moved less than RecountSettle (a minute) ago by its
// ready, start or finish time, which the orchestrator sets to the time of each state
// change: a recount that ran between a record's write and its counters' update would count
// that write twice. TestCountersMatchRecountUnderConcurrency runs one job's records
// through every transition from 16 goroutines (claims, sends racing results, duplicate
// results, due-time moves, connect timeouts) and checks the counters against a recount.
//
// # Caps
//
// A job's Concurrency is checked by the claim's conditional counters update. The server-wide
// cap (store.Claim.GlobalCap, PE's task_concurrency) is a semaphore of 4 items, SLOTS#<k>:
// each holds at most its share of the cap, by the condition of the ADD that takes slots, so
// that claims in any number of processes stay within the cap together. Slots are taken by a
// job as quota (q<k> on its counters) and used again by its next claims as its records end,
// without writing the semaphore: a node-run writes the semaphore only when its job needs more
// quota. A job gives its surplus back once it has no queued record left, 16 slots at a time,
// and all of it when it ends; a job in its tail so holds fewer than 16 slots it does not use.
// Records made active outside a claim take quota unconditionally. CountActiveNodes sums the
// active counts of the unfinished jobs (the UNFINISHED partition, then a BatchGetItem of their
// counters): its cost follows the number of unfinished jobs.
//
// # Reads
//
// GetJob, GetJobNode (after the meta, cached), JobCounts (the counters item; with counter
// shards, a consistent BatchGetItem of it and its K shards, summed) and the other Get
// methods are one consistent GetItem; GetNode is one consistent BatchGetItem of the
// connection item and the facts item; Connections (the AWS deployment's lookup before it
// sends) one BatchGetItem of the connection items alone, 100 names a call. ListJobNodes queries the S shards in parallel and merges by
// creation order: it serves the API's listing, never a result. ListJobNodesInState of queued
// records reads the pages and records from the cursor (cost follows limit); of other states
// it is a filtered query of the shards (stops and the sweep only). ListDueJobNodes queries the
// 8 DUE partitions up to now (limit each), reads the first limit records and checks them.
// ListJobNodesByName (every agent's connect asks it) reads the unfinished jobs — at most
// once a second per process, so that a reconnect storm does not read the UNFINISHED index
// partition once per agent — and BatchGets the node's record in each.
// FindJobNodeByTransaction is a query of the job's shards for an id that names its job (the
// orchestrator uses GetJobNode with the node instead) and a GSI1 TXN# lookup otherwise.
// ListJobs queries GSI3's JOBS partition, which TTL keeps to the retention period. NodeNames
// queries the 16 INV partitions; ListNodes then BatchGets every node's two items.
// EnrolledNodes BatchGets the connection items of the names asked.
//
// ListEvents (a job without counter shards) queries the job's E event shards from start
// (limit each) and merges by id. It returns the run of ids from start with none missing: an id allocated but not written yet
// (its writer is between the counters update and the event's PutItem) ends the run, so a
// follower polling with start = last id + 1 sees every event once, in id order. An id stays
// missing only if its writer died; ListEvents reads past it once an event after it is older
// than the gap wait (WithGapWait, 30 s). Void ids (claims that lost their record) are passed
// over. Ids are unique, increasing and, but for those two cases, without gaps.
//
// # Counter shards and event ids
//
// One job at 1,000 node-runs per second writes its counters item 1,000 times a second if
// every result adds to it: DynamoDB's limit for one key (TestCapacity at N = 1,000 measured
// 1.08 WCU per node-run on it before this design). A job of 500 nodes or more
// (WithCounterShardsFrom) so has K counter shards (K = nodes/2,500, 2 to 4): UpdateJobNode
// and UpdateJobNodes add a record's changes (state counts, active count) to its shard
// (FNV-1a(name) mod K), not to the counters item, which claims, UpdateJob and recounts keep
// writing. The job's counts are the item's plus the shards': JobCounts, claims (the active
// count against the job's Concurrency and quota: the conditions are on the item's count
// with the shards' as read, which only falls but for records made active outside a claim),
// CountActiveNodes, RecountJob (which writes the item so that the sum is the recount) and
// the surplus quota's return (looked at by one shard update in 16) read them all. A job's
// completion is seen as before: the orchestrator reads JobCounts (consistent reads of every
// item) after each result that may have ended the job (every result, but in a job whose
// shards count their own records, where only a result that empties its shard may), so the
// result whose update came last sees no record unfinished; MayEndJob lets one of those that
// see it end the job, and finishing the job is a conditional write of the job item.
//
// Each of the Q = K+1 items (the counters item is sequencer 0, shard k sequencer k+1)
// numbers the events of the updates it counts: an allocation of n ids ADDs n to its count
// (seq) and to its clock clk, and the ids are clk*Q+j — unique (j differs), increasing per
// sequencer, not dense. The creation's events go round the sequencers (ids Q, Q+1, ...: in
// their order), and every clock starts equal. A sequencer's ids must come after the events
// they follow: a result's clock is lifted past the clock of its record's latest event (a
// node_running event the counters item numbered when a refill claimed it), a claim's past
// its records', and a job's event (UpdateJob) past every shard's, by SETting the clock
// instead of adding to it, on condition that it is not past the floor yet (else it adds).
// Events of sequencer j live in their own partition (the counters item's, which claims by
// refills write one per node-run, in K partitions by seq), each event with its seq.
//
// ListEvents of such a job returns only ids below a bound B such that every id below B it
// does not return will never exist, which is what a follower polling with start = last id
// + 1 needs to see every event once (the storetest suite's Following case, which the SQLite
// store passes with its dense ids; TestCountersMatchRecountUnderConcurrency with a follower
// polling throughout). It reads each sequencer (consistent), then its events from start
// and the one before start (consistent queries). Per sequencer, walking its events by seq:
// a missing seq (allocated, being written) bounds it at the missing event's least possible
// id, (clock of the event before + 1)*Q+j; so does an id counted but not seen after the
// last one; a query cut by limit bounds it after its last event; when every id counted was
// seen, its next id is above its clock: (clk+1)*Q+j. B is the least bound. A sequencer that
// allocates less than the others (at a job's end, a shard whose nodes are done) would hold
// B down: when events seen are held back by one with nothing in flight, the reader moves
// its clock to the greatest clock seen, conditional on its count being as read (no id
// allocated meanwhile) — a write only when a reader is held back, at most one per sequencer
// per call. An id whose writer died is read past after the gap wait, as in a job without
// shards. Cost: two queries of each of its 2K event partitions (from start, and the one
// before start) and one BatchGetItem of the K+1 sequencers per call; a job under 500 nodes
// keeps dense ids and the cheaper read.
//
// # Inventory
//
// A node's connection item (name, credential hash, connection, broker, times, version, the
// SHA-256 of its facts) is about 250 bytes: MarkNodeConnected and MarkNodeDisconnected are one
// UpdateItem of it (one write unit), conditional on it existing (to connect, also on the
// recorded connection being no newer — API Gateway's connectedAt orders a node's connects,
// which concurrent $connect invocations may record out of order; to disconnect, on the
// connection being the one closing). Facts live in their own item, written only when their
// hash changes (SetNodeFacts reads the connection item, compares, and writes nothing for the
// same facts). FactValues reads the facts of every enrolled node in batches of 100, keeping
// only the values asked for, and refuses an inventory of more than 20,000 nodes
// (WithFactValuesCap) with store.ErrLimit before reading any facts: query targeting of a
// bigger fleet needs an index of fact values, which this store does not keep.
// MarkAllNodesDisconnected reads and may write the whole inventory; on AWS nothing calls it
// (API Gateway keeps connections when functions restart, and $disconnect reports each one).
//
// # Cost per node-run
//
// Measured by TestCostPerNodeRun (the meter's estimates, which follow DynamoDB's billing
// rules for the items and index entries written), for a node-run as the orchestrator does it:
// claimed running with a node_running event, its result written finished with its event
// (UpdateJobNodeFrom), the job's counts read after each result that may have ended it:
//
//	claimed when the job is created, counter shards (the AWS case from 500 nodes):
//	                                   4.1 WCU, 0.2 RCU, 3.2 requests   ($2.6 per million)
//	  creation: record 1, node_running event 1/30 (packed); result: counter shard 1,
//	  record 1, event 1; reads: the counts only after the result that empties a shard
//	the same without counter shards:   5.3 WCU, 1.0 RCU, 4.3 requests   ($3.4 per million)
//	  creation: record 1, node_running event 1; result: counters 1, record 1, event 1;
//	  reads: counts 1
//	claimed by refills one at a time:  7.0 WCU, 4.5 RCU, 9.4 requests   ($4.9 per million)
//	  plus the record's claim write 1 and the claim's counters update 1 (shared by the
//	  records of one claim: 1/8 each with refills of 8), and the claim's reads
//
// at $0.625 per million write and $0.125 per million read request units. The same at 100 and
// at 2,000 nodes: no work per node-run grows with the job. Records with a DueAt (claimed
// ready, waiting for their agent; running under a timeout or a status check) add index
// writes: 1 when the entry is created, 2 each time the due time moves, 1 when it is cleared.
// With counter shards and refills, the reads are 9 to 10 RCU (every counter after each
// result, and the shard's clock before it: TestCostPerNodeRun's sharded budgets). The
// orchestrator adds, per node-run, a consistent read of the record before its result and of
// the node's connection when the job is created (1 RCU each), and per Lambda instance that
// serves the job a read of the job and a write of the usage it left over.
//
// # Measured at fleet scale
//
// TestCapacity (make capacity; BATON_CAPACITY_SIZES=1000 go test -run TestCapacity -v
// ./shared/awsapp) runs simulated agents through the AWS stand-in, one bench::noop job on
// all of them, every node claimed at creation (no server-wide cap: the AWS default), each
// function in a pool of instances that run one invocation at a time (at most its reserved
// concurrency). 2026-12-06 13:42, a shared 2-core machine: at N = 1,000 the job ends 2.1 s
// after its POST, 4.32 WCU and 2.73 RCU per node-run, $5.41 per million node-runs with
// Lambda and WebSocket messages; at N = 10,000 (K = 4 counter shards, 16 node shards) 21 s,
// 4.16 WCU, 2.77 RCU, $5.31. (The same day, before this store's changes and with every
// function in one process, which hid a read of the record and the counts' reads per result:
// 7.12 WCU, 1.84 RCU, $7.05; measured with the pools, that code cost $7.17 and, with the
// counts read after every result, would have been $6.67 after the write changes.) The
// busiest keys at N = 1,000: the event partitions of the two counter shards (JOB#<id>#E1,
// E2: half the results' events each, 0.51 WCU per node-run), the node record shards (0.50
// each over 4: created and ended) and the counter shards (0.50 each over 2); for reads, the
// job's partition (its counters item and job item: 0.48 RCU per node-run, mostly each
// instance's first read of the job). At N = 10,000 the writes spread over twice the keys:
// 0.25 WCU per node-run on an event partition and on a counter shard, 0.13 on a node shard.
// Before counter shards the job's counters item took 1.08 WCU per node-run (1,080 WCU/s at
// the target rate: over a key's limit). The inventory takes 1 RCU per node-run (the job's
// creation reads each node's connection item once, WithReadCache), each node on its own key.
//
// Where a node-run's 4.16 write units go at N = 10,000: its record 2 (created claimed, its
// result), its result's event 1, its counter shard 1 (which numbers the event and carries
// the invocation's usage), the creation's packed event and the job's own items 0.1, the
// usage each instance leaves over 0.03. The messages are $2.00 of the $5.31: the request
// and the result. What the $5 target still needs: a record not written at creation (implicit
// until its first write; every reader, a result above all, would then read the pages to
// know a node belongs to the job), or the read before a result and the connection read
// made cheaper (README, "What it costs to run").
//
// # Ceilings
//
// Per job with counter shards (500 nodes or more), a result writes its counter shard (1/K
// of them each), an event partition (one per sequencer) and a node shard (1/S), and, but in
// a job claimed whole at creation, reads every counter (JobCounts: K+1 items): at 1,000
// node-runs per second of a 10,000-node job that is 250 WCU/s and up to 1,000 RCU/s on each
// counter shard and the counters item, about 250 WCU/s on each event partition, under 200
// WCU/s on each node shard. Claims take turns on
// the counters item (its cursor): one write per claim round, so a job whose records are
// claimed by refills one at a time (a job Concurrency or a server-wide cap) writes it once
// per node-run and tops out near 1,000 node-runs per second, 400 with margin
// (TestCostPerNodeRun's refill regime); a job claimed in batches (CreateJobClaiming, refills
// of 8) goes past that. A job under 500 nodes keeps one counters item: at most about 900
// node-runs per second, which such a job never sustains for a second. Overall, jobs share
// no item on the node-run path: the SLOTS#<k> semaphore takes a write only when a job needs
// quota, the DUE#<k> index partitions take about 2-3 writes per due node-run over 8
// partitions (2,500 and more due node-runs per second), the JOB_ID counter and the
// UNFINISHED and JOBS index partitions a few writes per job (about 250 jobs per second).
// Connects, disconnects and facts write one item of the node's own: no partition limit
// applies; 100,000 agents reconnecting take 100,000 write units (plus the authorizer's read
// of the node) — 25 s at the 4,000 WCU/s a new on-demand table serves at first, under 3 s
// once the table has served 40,000. Quotas and settings: the table's on-demand maximum
// throughput (40,000 read and write request units per second per table by default,
// raisable: 1,000 node-runs per second take about 7,000 WCU/s and 6,000 RCU/s); set the
// table's warm throughput (or run a load once) to at least the reconnect storm's rate
// before the fleet's first storm; the account's per-table quota if the fleet grows past
// 400,000 agents.
//
// # TTL
//
// TTLAttribute is set on every item of a job (the job, its counters, pages, node records,
// events, usage shards and idempotency reservation) to its creation (the store's clock) plus
// the retention (WithRetention, DefaultRetention 90 days): DynamoDB deletes a job whole some
// time after, which also bounds the JOBS partition ListJobs reads. A job must not run longer
// than the retention. It is also set on API tokens that expire (TokenRetention after their
// expiry), on used connect nonces (their expiry) and on leases (a day after their end). What
// TTL has not yet deleted is still read as usual (an expired token or nonce is refused by its
// time, not by its absence).
//
// # Sizes
//
// DynamoDB items hold at most 400 KB. JSON values of 1 KB or more (options, status, node
// results, event details, facts) are stored gzip-compressed when that makes them smaller. A
// record still larger than MaxItemBytes (350 KB) is refused with ErrItemTooLarge and nothing
// is written. Node results arrive in agent messages of at most 128 KB (API Gateway's limit).
// One record update appends at most 100 events.
//
// # Capacity metering
//
// Every call asks for ReturnConsumedCapacity INDEXES and reports the units to the Meter given
// with WithMeter (op, read and write units) and, when the Meter implements PartitionMeter,
// per partition key of the table and of each index. When the response carries none (the
// emulator never does), the store reports an estimate: 1 write unit per started KB (twice in
// a transaction), 1 read unit per started 4 KB for a consistent read, half for an eventually
// consistent one, and the index writes described under Indexes. When DynamoDB reports units,
// the table's and each index's are spread over the keys the estimate names, in proportion.
package dynamo
