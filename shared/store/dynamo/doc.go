// Package dynamo is the DynamoDB backend of store.Store: every record in one on-demand table,
// read by GetItem, BatchGetItem and Query, never by Scan, and updated with conditional writes
// and transactions. It passes the store/storetest suite against an in-process DynamoDB-API
// emulator. It does not create its table when it starts: CreateTable does (tests, local
// runs), or the CDK app, which declares the same keys and indexes from TableSchema.
//
// # Items
//
// <id> is a job id in decimal, <id20> the same zero-padded to 20 digits (so that ids sort as
// strings), <created> a creation time as fixed-width UTC text (which sorts chronologically).
//
//	item             pk                   sk                  index keys (GSI: partition / sort)
//	job              JOB#<id>             JOB                 GSI3: JOBS / <id20>
//	                                                          GSI1: UNFINISHED / <created>#<id20>, while not terminal
//	job counters     JOB#<id>             COUNTERS            -
//	node record      JOB#<id>             NODE#<name>         GSI1: NAME#<name> / <id20>
//	                                                          GSI2: TXN#<transaction> / <id20>, once it has one
//	event            JOB#<id>             EVENT#<event id20>  -
//	idempotency key  IDEMPOTENCY#<login>  <key>               -
//	job id counter   COUNTERS             JOB_ID              -
//	active counter   COUNTERS             ACTIVE_NODES        -
//	inventory node   NODES                <name>              -
//	node group       GROUPS               <name>              -
//	API token        TOKEN#<hash>         TOKEN               GSI1: TOKENS#<login> / <created>#<hash>
//	                                                          GSI2: TOKENS / <created>#<hash>
//	role             ROLES                <name>              -
//	user             USERS                <login>             -
//	connect nonce    NONCE#<nonce>        NONCE               -
//
// A job's counters item holds the id of its last event, the number of its node records that
// are active (ready or running) and whether the job is terminal. The frequent writes (node
// updates, event appends) touch it instead of the job item, which is larger and billed per
// KB, so appending events never changes the job's Version. It also holds the job's usage
// (store.Usage): the counters as numbers and the capacity units as decimal numbers, absent
// until usage is first added. The idempotency item holds the id of the job that owns
// (login, key), which makes that pair unique.
//
// # Indexes
//
// GSI1 (keys only) serves ListJobNodesByName (partition NAME#<name>), ListUnfinishedJobs
// (partition UNFINISHED, which a job leaves when it becomes terminal) and ListTokens of one
// login (partition TOKENS#<login>). GSI2 (keys only) serves FindJobNodeByTransaction and
// ListTokens of every login (partition TOKENS). GSI3 (projecting the attributes in
// JobListAttributes) serves ListJobs. Keys-only indexes cost an index write only when their
// keys change, not on every node update. Index reads are eventually consistent: the store
// reads what it returns from the table with consistent reads and checks it again (a job's
// state, a record's transaction), so what it returns is current, but a job or record
// written a moment ago (typically well under a second) may be missing from a listing.
//
// # Reads
//
// GetJob, GetJobNode, GetNode, GetGroup, GetToken, GetRole, GetUser, CountActiveNodes and
// JobUsage (the job's counters item) are one consistent GetItem; GetJobByIdempotencyKey two. ListJobNodes and ListEvents query
// the job's partition (ListEvents also reads the counters item when it finds nothing, to
// tell an unknown job). ListNodes, ListGroups, ListRoles and ListUsers query the NODES,
// GROUPS, ROLES and USERS partitions. ListTokens queries its GSI1 or GSI2 partition
// backwards (newest first; equal times by hash, descending) and reads the tokens it names
// (BatchGetItem), leaving out any that TTL has deleted; tokens are few (a handful per user),
// so it reads them all. ListJobs
// queries the JOBS partition of GSI3 in full and filters, counts, orders and pages in
// memory, then reads the page's jobs (BatchGetItem). An index entry is about 300 bytes with
// DynamoDB's per-entry overhead, so 10,000 jobs cost about 3 MB, three pages and 350 read
// units per listing: acceptable for the job history of one orchestrator; with far more, add
// a GSI per order key or expire old jobs. ListJobNodesByName reads the UNFINISHED partition, then the node's NAME# partition
// from the oldest unfinished job on, so its cost follows the jobs run on that node since
// then, not the whole history.
//
// # Writes
//
// Every update is conditional on the Version read (store.ErrConflict when it moved,
// store.ErrNotFound when the record is gone, told apart by the returned item or one more
// read); creates are conditional on the key not existing (store.ErrExists); deletes on it
// existing. PutRole and PutUser are one PutItem of either kind, by their Version; RevokeToken
// is one UpdateItem conditional on the token existing. AddJobUsage is one UpdateItem that
// ADDs every usage counter to the job's counters item, conditional on it existing
// (store.ErrNotFound otherwise): ADD is atomic, so concurrent adds all count, and the job
// item, with its Version, is not written; it is tried again when it collides with a
// transaction on that item (TransactionConflict). UseNonce is one PutItem conditional
// on no live record of the nonce (attribute_not_exists(pk) OR expires_at < now), so exactly
// one of concurrent uses succeeds. Job ids come from the JOB_ID counter (UpdateItem ADD, ReturnValues UPDATED_NEW):
// they increase, and a failed create leaves a gap. These writes are transactions
// (TransactWriteItems, whose cancellation reasons tell which condition failed):
//
//   - CreateJob: the job, its counters, the idempotency item, the node records, the events
//     and the ACTIVE_NODES increment.
//   - UpdateJob: the job (on its version) and, as needed, its counters (ADD the events, on
//     the last event id read; flip terminal, on the active count read, moving that count in
//     or out of ACTIVE_NODES), the idempotency items (delete the old, create the new:
//     store.ErrExists when taken) and the events.
//   - UpdateJobNode with events, or when the record becomes active or stops being active:
//     the record (on its version), the job's counters (ADD events and active count, on the
//     last event id read and on the job's terminal flag read), ACTIVE_NODES when the job is
//     not terminal, and the events. Other node updates are one conditional PutItem.
//
// ACTIVE_NODES is therefore exact at every commit: it changes in the same transaction as
// every record that enters or leaves ready/running and every job that enters or leaves a
// terminal state. When a transaction fails only on a job's counters (another append or
// activity change won the race) or on DynamoDB's TransactionConflict, the store reads again
// and retries (WithMaxAttempts) instead of returning store.ErrConflict. ACTIVE_NODES is one
// item written by every activity change across all jobs; DynamoDB serves one item about
// 1,000 write units a second, some 500 transactional writes, far more than the
// orchestrator's dispatch rate; sharding the counter is the step beyond that.
//
// # Big jobs
//
// One transaction holds 100 actions and 4 MB. A job whose items do not fit is written in two
// steps: the node records and events that do not fit go first (BatchWriteItem, 25 at a
// time), then one transaction writes the rest with the job item, its counters, its
// idempotency item and the ACTIVE_NODES increment. The job item is the commit point:
// nothing reaches the staged items without it (GetJob, ListJobs and ListUnfinishedJobs read
// the job item, the name and transaction lookups check the job's counters), so readers see
// the whole job or none of it. Only a reader that guesses the new id before CreateJob
// returns could see part of it, through GetJobNode, ListJobNodes or ListEvents. If the final transaction fails (a taken idempotency
// key, which is also checked before staging), the staged items are deleted; if the process
// dies in between, they stay as unreachable items under an id that is never reused.
//
// # Sizes
//
// DynamoDB items hold at most 400 KB. JSON values of 1 KB or more (options, status, node
// results, event details, facts) are stored gzip-compressed when that makes them smaller.
// A record still larger than MaxItemBytes (350 KB) is refused with ErrItemTooLarge and
// nothing is written; it is not split. Node results arrive in agent messages of at most
// 128 KB (API Gateway's limit), so only a pathological record reaches this. One update
// appends at most 95 events (UpdateJob) or 97 (UpdateJobNode).
//
// # TTL
//
// TTLAttribute is set on API tokens that expire: TokenRetention after their expiry,
// DynamoDB may delete them (the API refuses them from their expiry on). It is also set on
// used connect nonces, to their expiry (rounded up to the second): DynamoDB deletes them
// some time after (typically within days), and until then UseNonce's condition treats a
// record past its expiry as absent. Nothing else expires.
//
// # Capacity
//
// Every call asks for ReturnConsumedCapacity TOTAL and reports the units to the Meter given
// with WithMeter. When the response carries none (the emulator never does), the store
// reports an estimate from the items it read or wrote: 1 write unit per started KB (twice in
// a transaction), 1 read unit per started 4 KB for a consistent read, half for the
// eventually consistent index queries; index writes are not estimated.
package dynamo
