package dynamo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/baton-run/baton/shared/store"
)

var _ store.Store = (*Store)(nil)

// ErrItemTooLarge is returned for a record that would not fit in one DynamoDB item
// (MaxItemBytes). Nothing is written.
var ErrItemTooLarge = errors.New("record too large for one DynamoDB item")

// Limits the store keeps below DynamoDB's (400 KB per item; 100 actions and 4 MB per
// transaction), leaving room for the bytes DynamoDB counts that the estimate does not.
const (
	MaxItemBytes  = 350 * 1024
	maxTxItems    = 100
	maxTxBytes    = 3500 * 1024
	maxBatchWrite = 25  // BatchWriteItem requests per call
	maxBatchGet   = 100 // BatchGetItem keys per call
)

// Meter receives the capacity units every DynamoDB call consumed; op is the API operation
// ("GetItem", "TransactWriteItems", ...). A Meter that also implements PartitionMeter gets
// the units by partition key and index too.
type Meter interface {
	AddDynamo(op string, rcu, wcu float64)
}

// Config configures the store.
type Config struct {
	Table string // the table, created by CreateTable or the CDK app
}

var tableNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,255}$`)

// Validate reports a missing or malformed table name.
func (c Config) Validate() error {
	if !tableNameRE.MatchString(c.Table) {
		return fmt.Errorf("dynamo config: table name %q must be 3-255 letters, digits, '_', '-' or '.'", c.Table)
	}
	return nil
}

type options struct {
	meter       Meter
	logger      *slog.Logger
	maxAttempts int
	workers     int
	retention   time.Duration
	factCap     int
	gapWait     time.Duration
	now         func() time.Time
	counterFrom int
}

// Option configures New.
type Option func(*options)

// WithMeter reports consumed capacity to m.
func WithMeter(m Meter) Option { return func(o *options) { o.meter = m } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithMaxAttempts sets how many times an update is tried when it loses a race on a job's
// counters, which callers never see, before it fails with store.ErrConflict (default 50).
func WithMaxAttempts(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxAttempts = n
		}
	}
}

// WithWorkers sets how many DynamoDB calls one store operation makes at once when it has
// many to make (creating a big job, writing a batch of node updates); default 16.
func WithWorkers(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.workers = n
		}
	}
}

// DefaultRetention is how long after its creation a job's items are kept (WithRetention).
const DefaultRetention = 90 * 24 * time.Hour

// WithRetention sets how long after its creation DynamoDB's TTL may delete a job's items
// (the job, its node records, events, counters and usage); default DefaultRetention.
func WithRetention(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.retention = d
		}
	}
}

// WithFactValuesCap sets the most enrolled nodes FactValues reads facts of before it refuses
// with store.ErrLimit; default DefaultFactValuesCap.
func WithFactValuesCap(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.factCap = n
		}
	}
}

// DefaultGapWait is how long ListEvents waits for an event id that was allocated but not
// written (its writer died) before it reads past it (WithGapWait).
const DefaultGapWait = 30 * time.Second

// WithGapWait sets DefaultGapWait's value, and the clock it is measured on (nil: the wall
// clock).
func WithGapWait(d time.Duration, now func() time.Time) Option {
	return func(o *options) {
		if d > 0 {
			o.gapWait = d
		}
		if now != nil {
			o.now = now
		}
	}
}

// WithCounterShardsFrom sets the size of job (in nodes) from which a job has counter shards
// (default 500; doc.go, "Counter shards and event ids"); 0 or less: no job has any. Tests
// set it low to run small jobs the way big ones run.
func WithCounterShardsFrom(n int) Option {
	return func(o *options) { o.counterFrom = n }
}

// Store is a store.Store on one DynamoDB table.
type Store struct {
	db          *dynamodb.Client
	table       *string
	meter       Meter
	log         *slog.Logger
	maxAttempts int
	workers     int
	retention   time.Duration
	factCap     int
	gapWait     time.Duration
	now         func() time.Time
	counterFrom int

	metas      metaCache      // what each job's records are keyed by (immutable per job)
	unfinished unfinishedList // ListJobNodesByName's list of unfinished jobs
	// checks holds, per job id, the end of a MayEndJob check as this process last read it
	// with the job's counters (int64 Unix ms).
	checks sync.Map
}

// New returns a store on the table of cfg. It makes no call: the table must exist
// (CreateTable or the CDK app).
func New(client *dynamodb.Client, cfg Config, opts ...Option) (*Store, error) {
	if client == nil {
		return nil, errors.New("new dynamo store: nil client")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new dynamo store: %w", err)
	}
	o := options{logger: slog.New(slog.DiscardHandler), maxAttempts: 50, workers: 16,
		retention: DefaultRetention, factCap: DefaultFactValuesCap, gapWait: DefaultGapWait, now: time.Now,
		counterFrom: counterShardsFrom}
	for _, opt := range opts {
		opt(&o)
	}
	return &Store{
		db:          client,
		table:       aws.String(cfg.Table),
		meter:       o.meter,
		log:         o.logger.With("component", "dynamo", "table", cfg.Table),
		maxAttempts: o.maxAttempts,
		workers:     o.workers,
		retention:   o.retention,
		factCap:     o.factCap,
		gapWait:     o.gapWait,
		now:         o.now,
		counterFrom: o.counterFrom,
	}, nil
}

// --- expressions -------------------------------------------------------------------------

// expr collects the attribute names and values of an expression. Placeholders are
// fixed-width ("#n000", ":v000") so that none is a prefix of another.
type expr struct {
	names  map[string]string
	values map[string]types.AttributeValue
	byName map[string]string
}

// name returns the placeholder of attribute a.
func (e *expr) name(a string) string {
	if p, ok := e.byName[a]; ok {
		return p
	}
	if e.byName == nil {
		e.byName, e.names = map[string]string{}, map[string]string{}
	}
	p := fmt.Sprintf("#n%03d", len(e.byName))
	e.byName[a], e.names[p] = p, a
	return p
}

// value returns the placeholder of v.
func (e *expr) value(v types.AttributeValue) string {
	if e.values == nil {
		e.values = map[string]types.AttributeValue{}
	}
	p := fmt.Sprintf(":v%03d", len(e.values))
	e.values[p] = v
	return p
}

// eq returns "a = v".
func (e *expr) eq(a string, v types.AttributeValue) string { return e.name(a) + " = " + e.value(v) }

// exists returns "attribute_exists(a)"; notExists its negation.
func (e *expr) exists(a string) string    { return "attribute_exists(" + e.name(a) + ")" }
func (e *expr) notExists(a string) string { return "attribute_not_exists(" + e.name(a) + ")" }

// attrNames and attrValues return the maps, nil when empty (DynamoDB refuses empty maps).
func (e *expr) attrNames() map[string]string {
	if len(e.names) == 0 {
		return nil
	}
	return e.names
}

func (e *expr) attrValues() map[string]types.AttributeValue {
	if len(e.values) == 0 {
		return nil
	}
	return e.values
}

// projection returns a ProjectionExpression of attrs.
func (e *expr) projection(attrs ...string) string {
	out := ""
	for i, a := range attrs {
		if i > 0 {
			out += ", "
		}
		out += e.name(a)
	}
	return out
}

// --- capacity metering -------------------------------------------------------------------

// readUnits estimates the read units of reading size bytes: one per started 4 KB (at least
// one), half for an eventually consistent read.
func readUnits(size int, consistent bool) float64 {
	u := math.Max(1, math.Ceil(float64(size)/4096))
	if !consistent {
		u /= 2
	}
	return u
}

// writeUnits estimates the write units of writing an item of size bytes: one per started KB.
func writeUnits(size int) float64 { return math.Max(1, math.Ceil(float64(size)/1024)) }

// --- calls -------------------------------------------------------------------------------

// get reads one item with a strongly consistent read; nil when it does not exist.
func (s *Store) get(ctx context.Context, k item) (item, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:              s.table,
		Key:                    k,
		ConsistentRead:         aws.Bool(true),
		ReturnConsumedCapacity: types.ReturnConsumedCapacityIndexes,
	})
	if err != nil {
		return nil, err
	}
	s.record(ctx, "GetItem", one(out.ConsumedCapacity), []use{readUse(k, itemSize(out.Item), true)})
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

// failedWrite meters a write refused by its condition: DynamoDB bills it (one unit for the
// estimate).
func (s *Store) failedWrite(ctx context.Context, op string, k item, err error) {
	if _, ok := conditionFailed(err); ok {
		s.record(ctx, op, nil, []use{writeUse(k, 1, false)})
	}
}

// getEventual reads one item with an eventually consistent read (half the units); nil when
// it does not exist.
func (s *Store) getEventual(ctx context.Context, k item) (item, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:              s.table,
		Key:                    k,
		ConsistentRead:         aws.Bool(false),
		ReturnConsumedCapacity: types.ReturnConsumedCapacityIndexes,
	})
	if err != nil {
		return nil, err
	}
	s.record(ctx, "GetItem", one(out.ConsumedCapacity), []use{readUse(k, itemSize(out.Item), false)})
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

// put writes one item under a condition (cond may be nil) and returns the item it replaced
// (nil when there was none), which also tells the meter what the indexes wrote.
func (s *Store) put(ctx context.Context, it item, cond string, e *expr) (item, error) {
	in := &dynamodb.PutItemInput{
		TableName:              s.table,
		Item:                   it,
		ReturnValues:           types.ReturnValueAllOld,
		ReturnConsumedCapacity: types.ReturnConsumedCapacityIndexes,
	}
	if cond != "" {
		in.ConditionExpression = aws.String(cond)
		in.ExpressionAttributeNames, in.ExpressionAttributeValues = e.attrNames(), e.attrValues()
		in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	}
	out, err := s.db.PutItem(ctx, in)
	if err != nil {
		s.failedWrite(ctx, "PutItem", it, err)
		return nil, err
	}
	s.record(ctx, "PutItem", one(out.ConsumedCapacity), writeUses(out.Attributes, it, false))
	if len(out.Attributes) == 0 {
		return nil, nil
	}
	return out.Attributes, nil
}

// del deletes one item under a condition and returns it (nil when there was none).
func (s *Store) del(ctx context.Context, k item, cond string, e *expr) (item, error) {
	in := &dynamodb.DeleteItemInput{
		TableName:              s.table,
		Key:                    k,
		ReturnValues:           types.ReturnValueAllOld,
		ReturnConsumedCapacity: types.ReturnConsumedCapacityIndexes,
	}
	if cond != "" {
		in.ConditionExpression = aws.String(cond)
		in.ExpressionAttributeNames, in.ExpressionAttributeValues = e.attrNames(), e.attrValues()
	}
	out, err := s.db.DeleteItem(ctx, in)
	if err != nil {
		return nil, err
	}
	old := out.Attributes
	if len(old) == 0 {
		old = nil
	}
	uses := writeUses(old, nil, false)
	if old == nil {
		uses = []use{writeUse(k, 1, false)}
	}
	s.record(ctx, "DeleteItem", one(out.ConsumedCapacity), uses)
	return old, nil
}

// update applies an update expression to one item under a condition (cond may be empty)
// and returns the item as rv asks (ReturnValueAllNew or ReturnValueAllOld). The meter is
// told the units of the larger of the returned item and the key; index writes are
// estimated from the index keys the update sets (idx, nil when it sets none).
func (s *Store) update(ctx context.Context, k item, update, cond string, e *expr, rv types.ReturnValue, idx item) (item, error) {
	in := &dynamodb.UpdateItemInput{
		TableName:                 s.table,
		Key:                       k,
		UpdateExpression:          aws.String(update),
		ExpressionAttributeNames:  e.attrNames(),
		ExpressionAttributeValues: e.attrValues(),
		ReturnValues:              rv,
		ReturnConsumedCapacity:    types.ReturnConsumedCapacityIndexes,
	}
	if cond != "" {
		in.ConditionExpression = aws.String(cond)
		in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	}
	out, err := s.db.UpdateItem(ctx, in)
	if err != nil {
		s.failedWrite(ctx, "UpdateItem", k, err)
		return nil, err
	}
	size := max(itemSize(out.Attributes), itemSize(k))
	uses := []use{writeUse(k, writeUnits(size), false)}
	if idx != nil {
		var old item
		if rv == types.ReturnValueAllOld {
			old = out.Attributes
		}
		uses = append(uses, indexUses(old, merged(old, idx))...)
	}
	s.record(ctx, "UpdateItem", one(out.ConsumedCapacity), uses)
	return out.Attributes, nil
}

// add atomically adds delta to the number attribute attrCount of the item at k (creating it
// at 0) and returns the new value.
func (s *Store) add(ctx context.Context, k item, delta int64) (int64, error) {
	var e expr
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 s.table,
		Key:                       k,
		UpdateExpression:          aws.String("ADD " + e.name(attrCount) + " " + e.value(avN(delta))),
		ExpressionAttributeNames:  e.attrNames(),
		ExpressionAttributeValues: e.attrValues(),
		ReturnValues:              types.ReturnValueUpdatedNew,
		ReturnConsumedCapacity:    types.ReturnConsumedCapacityIndexes,
	})
	if err != nil {
		return 0, err
	}
	s.record(ctx, "UpdateItem", one(out.ConsumedCapacity), []use{writeUse(k, writeUnits(itemSize(k)+len(attrCount)+8), false)})
	r := reader{it: out.Attributes}
	n := r.n(attrCount)
	return n, r.err
}

// query runs in, following pages, until it has limit items (0: all). ConsistentRead is set
// unless in queries an index (indexes only serve eventually consistent reads).
func (s *Store) query(ctx context.Context, in *dynamodb.QueryInput, limit int) ([]item, error) {
	in.TableName = s.table
	in.ReturnConsumedCapacity = types.ReturnConsumedCapacityIndexes
	consistent := in.IndexName == nil
	in.ConsistentRead = aws.Bool(consistent)
	var out []item
	for {
		if limit > 0 {
			in.Limit = aws.Int32(int32(min(limit-len(out), math.MaxInt32)))
		}
		page, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, err
		}
		size := 0
		for _, it := range page.Items {
			size += itemSize(it)
		}
		s.record(ctx, "Query", one(page.ConsumedCapacity), []use{{index: aws.ToString(in.IndexName), pk: queryPK(in), rcu: readUnits(size, consistent)}})
		out = append(out, page.Items...)
		if len(page.LastEvaluatedKey) == 0 || (limit > 0 && len(out) >= limit) {
			return out, nil
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}

// batchGet reads keys with strongly consistent reads and returns the items found, by
// keyString. Keys may repeat.
func (s *Store) batchGet(ctx context.Context, keys []item) (map[string]item, error) {
	return s.batchGetRead(ctx, keys, true)
}

// batchGetRead is batchGet with consistent or eventually consistent reads (half the units).
func (s *Store) batchGetRead(ctx context.Context, keys []item, consistent bool) (map[string]item, error) {
	found := make(map[string]item, len(keys))
	seen := make(map[string]bool, len(keys))
	var pending []item
	for _, k := range keys {
		if ks := keyString(k); !seen[ks] {
			seen[ks] = true
			pending = append(pending, k)
		}
	}
	for attempt := 0; len(pending) > 0; attempt++ {
		n := min(len(pending), maxBatchGet)
		chunk := pending[:n]
		pending = pending[n:]
		out, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{
			RequestItems:           map[string]types.KeysAndAttributes{*s.table: {Keys: chunk, ConsistentRead: aws.Bool(consistent)}},
			ReturnConsumedCapacity: types.ReturnConsumedCapacityIndexes,
		})
		if err != nil {
			return nil, err
		}
		got := out.Responses[*s.table]
		uses := make([]use, 0, len(chunk))
		hit := make(map[string]bool, len(got))
		for _, it := range got {
			found[keyString(it)] = it
			hit[keyString(it)] = true
			uses = append(uses, readUse(it, itemSize(it), consistent))
		}
		unprocessed := make(map[string]bool)
		for _, k := range out.UnprocessedKeys[*s.table].Keys {
			unprocessed[keyString(k)] = true
		}
		for _, k := range chunk {
			if ks := keyString(k); !hit[ks] && !unprocessed[ks] {
				uses = append(uses, readUse(k, 0, consistent)) // a miss bills as a small item
			}
		}
		s.record(ctx, "BatchGetItem", out.ConsumedCapacity, uses)
		if un := out.UnprocessedKeys[*s.table].Keys; len(un) > 0 {
			if err := s.backoff(ctx, attempt); err != nil {
				return nil, err
			}
			pending = append(pending, un...)
		}
	}
	return found, nil
}

// batchWrite runs the write requests, 25 per call, retrying unprocessed ones.
func (s *Store) batchWrite(ctx context.Context, reqs []types.WriteRequest) error {
	pending := reqs
	for attempt := 0; len(pending) > 0; attempt++ {
		n := min(len(pending), maxBatchWrite)
		chunk := pending[:n]
		pending = pending[n:]
		out, err := s.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
			RequestItems:           map[string][]types.WriteRequest{*s.table: chunk},
			ReturnConsumedCapacity: types.ReturnConsumedCapacityIndexes,
		})
		if err != nil {
			return err
		}
		un := out.UnprocessedItems[*s.table]
		skip := make(map[string]bool, len(un))
		for _, r := range un {
			skip[requestKey(r)] = true
		}
		var uses []use
		for _, r := range chunk {
			if skip[requestKey(r)] {
				continue
			}
			if r.PutRequest != nil {
				// A batch put of a new item: its index entries are new too.
				uses = append(uses, writeUses(nil, r.PutRequest.Item, false)...)
			} else {
				uses = append(uses, writeUse(r.DeleteRequest.Key, 1, false))
			}
		}
		s.record(ctx, "BatchWriteItem", out.ConsumedCapacity, uses)
		if len(un) > 0 {
			if err := s.backoff(ctx, attempt); err != nil {
				return err
			}
			pending = append(pending, un...)
		}
	}
	return nil
}

// transact runs a write transaction. A cancelled transaction returns a *txCanceled.
func (s *Store) transact(ctx context.Context, items []types.TransactWriteItem) error {
	out, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems:          items,
		ReturnConsumedCapacity: types.ReturnConsumedCapacityIndexes,
	})
	if err != nil {
		var tce *types.TransactionCanceledException
		if errors.As(err, &tce) {
			codes := make([]string, len(items))
			for i, r := range tce.CancellationReasons {
				if i < len(codes) {
					codes[i] = aws.ToString(r.Code)
				}
			}
			return &txCanceled{codes: codes, err: err}
		}
		return err
	}
	// Transactions bill two units per started KB of each item written.
	var uses []use
	for _, ti := range items {
		k, it := txItemKey(ti)
		if ti.Put != nil {
			uses = append(uses, writeUses(nil, it, true)...)
			continue
		}
		uses = append(uses, writeUse(k, 2*writeUnits(txItemSize(ti)), false))
	}
	s.record(ctx, "TransactWriteItems", out.ConsumedCapacity, uses)
	return nil
}

// transactRetry runs a write transaction, trying it again while it only loses races with
// other transactions (TransactionConflict, which DynamoDB reports when concurrent
// transactions touch the same item, such as ACTIVE_NODES).
func (s *Store) transactRetry(ctx context.Context, items []types.TransactWriteItem) error {
	for attempt := 0; ; attempt++ {
		err := s.transact(ctx, items)
		tc, ok := canceled(err)
		if !ok || !tc.contended() || slices.Contains(tc.codes, "ConditionalCheckFailed") || attempt+1 >= s.maxAttempts {
			return err
		}
		if err := s.backoff(ctx, attempt); err != nil {
			return err
		}
	}
}

// txItemSize estimates the size of the item a transaction action writes.
func txItemSize(ti types.TransactWriteItem) int {
	switch {
	case ti.Put != nil:
		return itemSize(ti.Put.Item)
	case ti.Update != nil:
		n := itemSize(ti.Update.Key)
		for _, v := range ti.Update.ExpressionAttributeValues {
			n += valueSize(v) + 4
		}
		return n
	case ti.Delete != nil:
		return itemSize(ti.Delete.Key)
	case ti.ConditionCheck != nil:
		return itemSize(ti.ConditionCheck.Key)
	}
	return 0
}

// txCanceled is a cancelled transaction with the reason code of each action ("" or "None"
// for an action that did not cause it).
type txCanceled struct {
	codes []string
	err   error
}

func (e *txCanceled) Error() string { return e.err.Error() }
func (e *txCanceled) Unwrap() error { return e.err }

// failed reports whether action i failed its condition.
func (e *txCanceled) failed(i int) bool {
	return i >= 0 && i < len(e.codes) && e.codes[i] == "ConditionalCheckFailed"
}

// contended reports whether the transaction lost a race with another one and may simply be
// tried again.
func (e *txCanceled) contended() bool {
	for _, c := range e.codes {
		if c == "TransactionConflict" {
			return true
		}
	}
	return false
}

// canceled returns the cancellation of err, if it is one.
func canceled(err error) (*txCanceled, bool) {
	var tc *txCanceled
	ok := errors.As(err, &tc)
	return tc, ok
}

// conditionFailed reports whether err is a failed condition of a single-item write.
func conditionFailed(err error) (*types.ConditionalCheckFailedException, bool) {
	var ccf *types.ConditionalCheckFailedException
	ok := errors.As(err, &ccf)
	return ccf, ok
}

// writeGrace bounds a write that must not be cut by its caller's context (see committing).
const writeGrace = 30 * time.Second

// committing returns the context for a write whose effect later writes depend on (a
// record's write, whose counters follow; a claim's counters, whose records follow): not
// cancelled with ctx, so that a caller giving up (a Lambda's deadline, an integration
// timeout) cannot cut the request after DynamoDB applied it but before its response
// arrived — that would leave the write done and its follow-ups not — but bounded by
// writeGrace. A ctx already done is refused before anything is written.
func committing(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if err := ctx.Err(); err != nil {
		return ctx, func() {}, err
	}
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeGrace)
	return c, cancel, nil
}

// backoff sleeps before attempt+1 of a contended operation: a random time up to
// min(2^attempt ms, 100 ms).
func (s *Store) backoff(ctx context.Context, attempt int) error {
	ceiling := min(time.Millisecond<<min(attempt, 10), 100*time.Millisecond)
	t := time.NewTimer(rand.N(ceiling) + 100*time.Microsecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// txPut, txUpdate and txDelete build transaction actions.
func (s *Store) txPut(it item, cond string, e *expr) types.TransactWriteItem {
	p := &types.Put{TableName: s.table, Item: it}
	if cond != "" {
		p.ConditionExpression = aws.String(cond)
		p.ExpressionAttributeNames, p.ExpressionAttributeValues = e.attrNames(), e.attrValues()
	}
	return types.TransactWriteItem{Put: p}
}

func (s *Store) txUpdate(k item, update, cond string, e *expr) types.TransactWriteItem {
	u := &types.Update{
		TableName:                 s.table,
		Key:                       k,
		UpdateExpression:          aws.String(update),
		ExpressionAttributeNames:  e.attrNames(),
		ExpressionAttributeValues: e.attrValues(),
	}
	if cond != "" {
		u.ConditionExpression = aws.String(cond)
	}
	return types.TransactWriteItem{Update: u}
}

func (s *Store) txDelete(k item, cond string, e *expr) types.TransactWriteItem {
	d := &types.Delete{TableName: s.table, Key: k}
	if cond != "" {
		d.ConditionExpression = aws.String(cond)
		d.ExpressionAttributeNames, d.ExpressionAttributeValues = e.attrNames(), e.attrValues()
	}
	return types.TransactWriteItem{Delete: d}
}

// checkSize fails with ErrItemTooLarge when it is larger than MaxItemBytes.
func checkSize(what string, it item) error {
	if n := itemSize(it); n > MaxItemBytes {
		return fmt.Errorf("%s is %d bytes, more than %d: %w", what, n, MaxItemBytes, ErrItemTooLarge)
	}
	return nil
}

// refusedItem is the item at k as a refused conditional write found it: the one the refusal
// carries (ReturnValuesOnConditionCheckFailure), or, when it carries none (DynamoDB Local and
// the emulator leave it out), a consistent read; nil when there is no item.
func (s *Store) refusedItem(ctx context.Context, k item, ccf *types.ConditionalCheckFailedException) (item, error) {
	if ccf != nil && len(ccf.Item) > 0 {
		return ccf.Item, nil
	}
	return s.get(ctx, k)
}

// versionMiss explains a failed version condition on the item at k: store.ErrNotFound if it
// is gone, else store.ErrConflict.
func (s *Store) versionMiss(ctx context.Context, k item, ccf *types.ConditionalCheckFailedException) error {
	it, err := s.refusedItem(ctx, k, ccf)
	if err != nil {
		return err
	}
	if it == nil {
		return store.ErrNotFound
	}
	return store.ErrConflict
}
