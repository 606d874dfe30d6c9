package dynamo

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// item is one DynamoDB item.
type item = map[string]types.AttributeValue

// Key values. Every pk and sk is built here.
const (
	pkCounters   = "COUNTERS"     // sk skJobID
	skJobID      = "JOB_ID"       // the job id counter
	pkJobPrefix  = "JOB#"         // + id: a job's item, counters and sequencer
	skJob        = "JOB"          // the job
	skJobCounter = "COUNTERS"     // the job's event sequencer, state counts and claim cursor
	skNodePrefix = "NODE#"        // + node name: a node record (pk JOB#<id>#<shard>)
	skEventPref  = "EV#"          // + zero-padded event id (pk JOB#<id>#E<id mod event shards>)
	skPagePrefix = "P#"           // + zero-padded page number (pk JOB#<id>#P)
	skUsage      = "USAGE"        // a job's usage shard (pk JOB#<id>#U<k>)
	pkIdemPrefix = "IDEMPOTENCY#" // + owner login; sk the key
	pkNodePrefix = "NODE#"        // + node name: inventory node (sk skNode) and its facts (sk skFacts)
	skNode       = "NODE"
	skFacts      = "FACTS"
	pkSlotPrefix = "SLOTS#" // + shard: a shard of the active node record count (sk skSlots)
	skSlots      = "SLOTS"
	pkLeasePref  = "LEASE#" // + lease name (sk skLease)
	skLease      = "LEASE"
	pkGroups     = "GROUPS" // node groups; sk the group name
	pkTokenPref  = "TOKEN#" // + token hash
	skToken      = "TOKEN"
	pkNoncePref  = "NONCE#" // + connect nonce
	skNonce      = "NONCE"
	pkRoles      = "ROLES" // roles; sk the role name
	pkUsers      = "USERS" // users; sk the login

	gsiUnfinished = "UNFINISHED" // GSI1PK of unfinished jobs
	gsiInvPrefix  = "INV#"       // + shard: GSI1PK of inventory nodes (GSI1SK the name)
	gsiTxnPrefix  = "TXN#"       // + transaction id: GSI1PK of node records whose id names no job
	gsiDuePrefix  = "DUE#"       // + shard: GSI2PK of node records with a DueAt
	gsiJobs       = "JOBS"       // GSI3PK of every job
	gsiLoginToken = "TOKENS#"    // + login: GSI1PK of a login's API tokens
	gsiTokens     = "TOKENS"     // GSI2PK of every API token
)

// Attribute names (short: DynamoDB bills attribute names as item bytes).
const (
	attrID          = "id"
	attrType        = "typ"
	attrState       = "st"
	attrEnv         = "env"
	attrDesc        = "desc"
	attrTask        = "task"
	attrTaskFold    = "tf" // strings.ToLower(task), for the task filter
	attrOwnerID     = "oid"
	attrOwnerLogin  = "ol"
	attrOptions     = "opt"
	attrPayload     = "pay"
	attrConcurrency = "conc"
	attrTimeout     = "tmo"
	attrNodeCount   = "nc"
	attrCreated     = "ca"
	attrUpdated     = "ua"
	attrFinished    = "fa"
	attrStatus      = "stat"
	attrIdemKey     = "idk"
	attrMaxErrors   = "me"
	attrStop        = "stop"
	attrVersion     = "ver"

	attrLastEvent = "ev"   // job counters: id of the last event
	attrActive    = "act"  // job counters: active node records of the job
	attrTerminal  = "term" // job counters: the job's state is terminal
	attrStopped   = "stp"  // job counters: the job has a stop request
	attrCursor    = "cur"  // job counters: creation index before which no record is new
	attrStatePref = "c_"   // job counters: + node state: records in that state

	attrShards        = "ns"  // job: node record shards
	attrEventShards   = "es"  // job: event shards
	attrPages         = "np"  // job: pages of node names
	attrUsageShards   = "nu"  // job: usage shards
	attrCounterShards = "ncs" // job: counter shards (0: none, the counters item takes every update)
	attrClock         = "clk" // job counters, counter shard: the sequencer's clock (event ids)
	attrAllocAt       = "aat" // job counters, counter shard: when it last allocated event ids (Unix ms)
	attrNames         = "nm"  // page: node names
	attrQuotaPref     = "q"   // job counters: + slot shard: ACTIVE slots the job holds from it
	attrVoid          = "vd"  // event: an id given up (a claim that lost its record)
	attrWritten       = "wt"  // event: when it was written (Unix ms, the writer's clock)
	attrOwnCounts     = "own" // counter shard: counts its records from the job's creation (create.go)
	attrChecking      = "chk" // job counters: until when (Unix ms) a caller checks whether every record is done
	attrPack          = "evp" // event pack: its events (JSON, gzip-compressed when that is smaller)
	attrFactsHash     = "fh"  // inventory node: SHA-256 of its facts (hex), "" without
	attrOwner         = "ow"  // lease: owner
	attrUntil         = "lu"  // lease: end (timeLayout)

	// Job counters: the job's usage (store.Usage), absent until usage is first added.
	attrUsageInvocations  = "uinv"
	attrUsageMessagesIn   = "umin"
	attrUsageMessagesOut  = "umout"
	attrUsageMessageUnits = "umu"
	attrUsageReadUnits    = "urcu" // a decimal number
	attrUsageWriteUnits   = "uwcu" // a decimal number
	attrUsageS3Writes     = "us3w"
	attrUsageS3Reads      = "us3r"

	attrJobID    = "job"
	attrName     = "name"
	attrSeq      = "seq" // creation order of a node record
	attrTxn      = "txn"
	attrReadyAt  = "ra"
	attrStarted  = "sa"
	attrResult   = "res"
	attrMessage  = "msg"
	attrLatestEv = "lev"
	attrDueAt    = "due"

	attrTimestamp = "ts"
	attrNode      = "node"
	attrDetail    = "det"

	attrCredHash    = "ch"
	attrFacts       = "facts"
	attrConnected   = "conn"
	attrBroker      = "brk"
	attrConnection  = "cid"
	attrConnectedAt = "cat"

	attrNodes = "nodes"
	attrQuery = "q"

	attrHash    = "hash"
	attrLogin   = "login"
	attrLabel   = "label"
	attrExpires = "xa"
	attrRevoked = "rev"

	attrPerms = "perm"  // a role's permissions, as JSON
	attrRoles = "roles" // a user's role names

	attrCount = "n" // global counters
)

// padID renders an id so that ids sort as strings in numeric order.
func padID(id int64) string { return fmt.Sprintf("%020d", id) }

func jobPK(id int64) string { return pkJobPrefix + strconv.FormatInt(id, 10) }

func key(pk, sk string) item {
	return item{PartitionKey: avS(pk), SortKey: avS(sk)}
}

func jobKey(id int64) item         { return key(jobPK(id), skJob) }
func jobCountersKey(id int64) item { return key(jobPK(id), skJobCounter) }

// counterShardKey is counter shard k of job id (pk JOB#<id>#C<k>, sk COUNTERS).
func counterShardKey(id int64, k int) item {
	return key(jobPK(id)+"#C"+strconv.Itoa(k), skJobCounter)
}
func eventSK(id int64) string      { return skEventPref + padID(id) }
func idemKey(login, k string) item { return key(pkIdemPrefix+login, k) }
func invKey(name string) item      { return key(pkNodePrefix+name, skNode) }
func factsKey(name string) item    { return key(pkNodePrefix+name, skFacts) }
func slotKey(k int) item           { return key(pkSlotPrefix+strconv.Itoa(k), skSlots) }
func usageKey(id int64, k int) item {
	return key(jobPK(id)+"#U"+strconv.Itoa(k), skUsage)
}
func pageKey(id int64, page int) item {
	return key(jobPK(id)+"#P", skPagePrefix+fmt.Sprintf("%06d", page))
}

// shardOf returns the shard, of n, of name: FNV-1a, so that it is the same in every process.
func shardOf(name string, n int) int {
	if n <= 1 {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// keyString identifies an item by its primary key, for maps of fetched items.
func keyString(it item) string {
	return str(it[PartitionKey]) + "\x00" + str(it[SortKey])
}

// jobIDFromPK parses the id of a "JOB#<id>" partition key (or "JOB#<id>#<suffix>").
func jobIDFromPK(pk string) (int64, error) {
	s, ok := strings.CutPrefix(pk, pkJobPrefix)
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	if !ok {
		return 0, fmt.Errorf("partition key %q is not a job's", pk)
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("partition key %q: %w", pk, err)
	}
	return id, nil
}

func avS(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
func avN(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

// avF renders a finite float as a decimal DynamoDB number (never in exponent form).
func avF(f float64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatFloat(f, 'f', -1, 64)}
}
func avB(b []byte) types.AttributeValue  { return &types.AttributeValueMemberB{Value: b} }
func avBool(b bool) types.AttributeValue { return &types.AttributeValueMemberBOOL{Value: b} }

// str returns the value of a string attribute, "" for anything else.
func str(av types.AttributeValue) string {
	if s, ok := av.(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

// timeLayout is fixed-width (nine fractional digits, always UTC "Z") so that stored times
// sort as strings in chronological order.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// compressAbove is the size from which JSON values are stored gzip-compressed (as a binary
// attribute) when that makes them smaller: DynamoDB bills writes per started KB.
const compressAbove = 1024

// writer builds an item, keeping the first encoding error.
type writer struct {
	it  item
	err error
}

func newWriter(k item) *writer {
	it := make(item, 24)
	for n, v := range k {
		it[n] = v
	}
	return &writer{it: it}
}

func (w *writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

func (w *writer) s(name, v string)       { w.it[name] = avS(v) }
func (w *writer) n(name string, v int64) { w.it[name] = avN(v) }
func (w *writer) b(name string, v bool)  { w.it[name] = avBool(v) }

// bytes stores v, leaving the attribute out when v is empty.
func (w *writer) bytes(name string, v []byte) {
	if len(v) > 0 {
		w.it[name] = avB(v)
	}
}

// encodeTime renders t in timeLayout; years outside 0-9999 cannot be stored.
func encodeTime(t time.Time) (string, error) {
	u := t.UTC()
	if y := u.Year(); y < 0 || y > 9999 {
		return "", fmt.Errorf("time %v: year outside 0-9999", t)
	}
	return u.Format(timeLayout), nil
}

func (w *writer) time(name string, t time.Time) {
	s, err := encodeTime(t)
	if err != nil {
		w.fail(err)
		return
	}
	w.it[name] = avS(s)
}

// timePtr stores t, leaving the attribute out when t is nil.
func (w *writer) timePtr(name string, t *time.Time) {
	if t != nil {
		w.time(name, *t)
	}
}

// json stores raw as a string, or gzip-compressed as binary when it is large and compresses;
// empty leaves the attribute out.
func (w *writer) json(name string, raw []byte) {
	if len(raw) == 0 {
		return
	}
	if len(raw) >= compressAbove {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, err := zw.Write(raw)
		if err == nil {
			err = zw.Close()
		}
		if err != nil {
			w.fail(fmt.Errorf("compress %s: %w", name, err))
			return
		}
		if buf.Len() < len(raw) {
			w.it[name] = avB(buf.Bytes())
			return
		}
	}
	w.it[name] = avS(string(raw))
}

// strs stores v as a list of strings, leaving the attribute out when v is empty.
func (w *writer) strs(name string, v []string) {
	if len(v) == 0 {
		return
	}
	l := make([]types.AttributeValue, len(v))
	for i, s := range v {
		l[i] = avS(s)
	}
	w.it[name] = &types.AttributeValueMemberL{Value: l}
}

// reader decodes an item, keeping the first error.
type reader struct {
	it  item
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

// s returns a required string attribute.
func (r *reader) s(name string) string {
	v, ok := r.it[name].(*types.AttributeValueMemberS)
	if !ok {
		r.fail("attribute %s: missing or not a string", name)
		return ""
	}
	return v.Value
}

// optS returns an optional string attribute ("" when absent).
func (r *reader) optS(name string) string {
	if _, ok := r.it[name]; !ok {
		return ""
	}
	return r.s(name)
}

// n returns a required integer attribute.
func (r *reader) n(name string) int64 {
	v, ok := r.it[name].(*types.AttributeValueMemberN)
	if !ok {
		r.fail("attribute %s: missing or not a number", name)
		return 0
	}
	n, err := strconv.ParseInt(v.Value, 10, 64)
	if err != nil {
		r.fail("attribute %s: %w", name, err)
	}
	return n
}

// optN returns an optional integer attribute (0 when absent).
func (r *reader) optN(name string) int64 {
	if _, ok := r.it[name]; !ok {
		return 0
	}
	return r.n(name)
}

// optF returns an optional decimal number attribute (0 when absent).
func (r *reader) optF(name string) float64 {
	av, ok := r.it[name]
	if !ok {
		return 0
	}
	v, ok := av.(*types.AttributeValueMemberN)
	if !ok {
		r.fail("attribute %s: not a number", name)
		return 0
	}
	f, err := strconv.ParseFloat(v.Value, 64)
	if err != nil {
		r.fail("attribute %s: %w", name, err)
	}
	return f
}

// optB returns an optional boolean attribute (false when absent).
func (r *reader) optB(name string) bool {
	v, ok := r.it[name].(*types.AttributeValueMemberBOOL)
	return ok && v.Value
}

func (r *reader) b(name string) bool {
	v, ok := r.it[name].(*types.AttributeValueMemberBOOL)
	if !ok {
		r.fail("attribute %s: missing or not a boolean", name)
		return false
	}
	return v.Value
}

// bytes returns an optional binary attribute (nil when absent).
func (r *reader) bytes(name string) []byte {
	av, ok := r.it[name]
	if !ok {
		return nil
	}
	v, ok := av.(*types.AttributeValueMemberB)
	if !ok {
		r.fail("attribute %s: not binary", name)
		return nil
	}
	if len(v.Value) == 0 {
		return nil
	}
	return v.Value
}

func (r *reader) time(name string) time.Time {
	s := r.s(name)
	if r.err != nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		r.fail("attribute %s: %w", name, err)
	}
	return t
}

// timePtr returns an optional time attribute (nil when absent).
func (r *reader) timePtr(name string) *time.Time {
	if _, ok := r.it[name]; !ok {
		return nil
	}
	t := r.time(name)
	return &t
}

// json returns a JSON attribute written by writer.json (nil when absent).
func (r *reader) json(name string) json.RawMessage {
	switch v := r.it[name].(type) {
	case nil:
		return nil
	case *types.AttributeValueMemberS:
		if v.Value == "" {
			return nil
		}
		return json.RawMessage(v.Value)
	case *types.AttributeValueMemberB:
		zr, err := gzip.NewReader(bytes.NewReader(v.Value))
		if err != nil {
			r.fail("attribute %s: %w", name, err)
			return nil
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			r.fail("attribute %s: %w", name, err)
			return nil
		}
		return raw
	default:
		r.fail("attribute %s: not a string or binary", name)
		return nil
	}
}

// strs returns an optional list of strings (nil when absent or empty).
func (r *reader) strs(name string) []string {
	av, ok := r.it[name]
	if !ok {
		return nil
	}
	l, ok := av.(*types.AttributeValueMemberL)
	if !ok {
		r.fail("attribute %s: not a list", name)
		return nil
	}
	if len(l.Value) == 0 {
		return nil
	}
	out := make([]string, len(l.Value))
	for i, v := range l.Value {
		s, ok := v.(*types.AttributeValueMemberS)
		if !ok {
			r.fail("attribute %s[%d]: not a string", name, i)
			return nil
		}
		out[i] = s.Value
	}
	return out
}

// itemSize estimates the size DynamoDB bills for it (attribute names plus values, following
// the "Item sizes and formats" rules of the DynamoDB developer guide).
func itemSize(it item) int {
	n := 0
	for name, v := range it {
		n += len(name) + valueSize(v)
	}
	return n
}

func valueSize(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return (len(strings.TrimLeft(v.Value, "-0"))+1)/2 + 1
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			n += 1 + len(k) + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n
	default:
		return 0
	}
}
