package dynamo

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/store"
)

// errEmptyName refuses a record without a name: DynamoDB keys cannot be empty strings.
var errEmptyName = errors.New("empty name")

// invShards is how many GSI1 partitions (INV#<k>) list the inventory's names. The entries
// are written when a node is enrolled or removed, never on connect, disconnect or facts.
const invShards = 16

// DefaultFactValuesCap is the most nodes FactValues reads facts of (WithFactValuesCap).
const DefaultFactValuesCap = 20000

// factsHash is the hex SHA-256 of facts, "" for none.
func factsHash(facts []byte) string {
	if len(facts) == 0 {
		return ""
	}
	sum := sha256.Sum256(facts)
	return hex.EncodeToString(sum[:])
}

// invItem encodes the connection item of n (everything but its facts, whose hash it holds).
func invItem(n inventory.Node) (item, error) {
	if n.Name == "" {
		return nil, errEmptyName
	}
	w := newWriter(invKey(n.Name))
	w.s(attrName, n.Name)
	w.s(attrCredHash, n.CredentialHash)
	w.s(attrFactsHash, factsHash(n.Facts))
	w.b(attrConnected, n.Connected)
	w.s(attrBroker, n.Broker)
	w.s(attrConnection, n.Connection)
	w.timePtr(attrConnectedAt, n.ConnectedAt)
	w.time(attrCreated, n.CreatedAt)
	w.n(attrVersion, n.Version)
	if w.err != nil {
		return nil, w.err
	}
	w.s(GSI1PK, gsiInvPrefix+strconv.Itoa(shardOf(n.Name, invShards)))
	w.s(GSI1SK, n.Name)
	if err := checkSize("inventory node "+n.Name, w.it); err != nil {
		return nil, err
	}
	return w.it, nil
}

// factsItem encodes node name's facts item.
func factsItem(name string, facts []byte) (item, error) {
	w := newWriter(factsKey(name))
	w.json(attrFacts, facts)
	w.s(attrFactsHash, factsHash(facts))
	if w.err != nil {
		return nil, w.err
	}
	if err := checkSize("facts of node "+name, w.it); err != nil {
		return nil, err
	}
	return w.it, nil
}

// decodeInv decodes a connection item and, when given, its facts item.
func decodeInv(it, facts item) (inventory.Node, error) {
	r := reader{it: it}
	n := inventory.Node{
		Name:           r.s(attrName),
		CredentialHash: r.s(attrCredHash),
		Connected:      r.b(attrConnected),
		Broker:         r.s(attrBroker),
		Connection:     r.s(attrConnection),
		ConnectedAt:    r.timePtr(attrConnectedAt),
		CreatedAt:      r.time(attrCreated),
		Version:        r.n(attrVersion),
	}
	if facts != nil && r.optS(attrFactsHash) != "" {
		fr := reader{it: facts}
		n.Facts = fr.json(attrFacts)
		if fr.err != nil {
			r.err = fr.err
		}
	}
	if r.err != nil {
		return inventory.Node{}, fmt.Errorf("decode inventory node %s: %w", str(it[PartitionKey]), r.err)
	}
	return n, nil
}

// CreateNode implements store.Store: a PutItem of the connection item that the name must not
// exist, then a PutItem of the facts item when there are facts.
func (s *Store) CreateNode(ctx context.Context, n inventory.Node) (inventory.Node, error) {
	n.Version = 1
	it, err := invItem(n)
	if err != nil {
		return inventory.Node{}, fmt.Errorf("create node %s: %w", n.Name, err)
	}
	var e expr
	_, err = s.put(ctx, it, e.notExists(PartitionKey), &e)
	if _, ok := conditionFailed(err); ok {
		return inventory.Node{}, fmt.Errorf("create node %s: %w", n.Name, store.ErrExists)
	}
	if err != nil {
		return inventory.Node{}, fmt.Errorf("create node %s: %w", n.Name, err)
	}
	if err := s.putFacts(ctx, n.Name, n.Facts); err != nil {
		return inventory.Node{}, fmt.Errorf("create node %s: %w", n.Name, err)
	}
	return n, nil
}

// putFacts writes node name's facts item (deletes it for no facts).
func (s *Store) putFacts(ctx context.Context, name string, facts []byte) error {
	if len(facts) == 0 {
		_, err := s.del(ctx, factsKey(name), "", nil)
		return err
	}
	it, err := factsItem(name, facts)
	if err != nil {
		return err
	}
	_, err = s.put(ctx, it, "", nil)
	return err
}

// GetNode implements store.Store: one consistent BatchGetItem of the node's connection item
// and its facts item (a read unit each when small; a Query of the partition would bill one
// for both, but costs the emulator a pass over the whole table, and the path that needs
// only the connection reads it alone: Connections).
func (s *Store) GetNode(ctx context.Context, name string) (inventory.Node, error) {
	if name == "" {
		return inventory.Node{}, fmt.Errorf("get node: %w", store.ErrNotFound)
	}
	got, err := s.batchGetRead(ctx, []item{invKey(name), factsKey(name)}, true)
	if err != nil {
		return inventory.Node{}, fmt.Errorf("get node %s: %w", name, err)
	}
	conn, facts := got[keyString(invKey(name))], got[keyString(factsKey(name))]
	if conn == nil {
		return inventory.Node{}, fmt.Errorf("get node %s: %w", name, store.ErrNotFound)
	}
	return decodeInv(conn, facts)
}

// NodeNames implements store.Store: the INV#<k> partitions of GSI1 (keys only), merged.
func (s *Store) NodeNames(ctx context.Context) ([]string, error) {
	parts := make([][]string, invShards)
	err := s.parallel(ctx, invShards, func(ctx context.Context, k int) error {
		var e expr
		items, err := s.query(ctx, &dynamodb.QueryInput{
			IndexName:                 aws.String(GSI1),
			KeyConditionExpression:    aws.String(e.eq(GSI1PK, avS(gsiInvPrefix+strconv.Itoa(k)))),
			ProjectionExpression:      aws.String(e.projection(GSI1SK)),
			ExpressionAttributeNames:  e.attrNames(),
			ExpressionAttributeValues: e.attrValues(),
		}, 0)
		if err != nil {
			return err
		}
		for _, it := range items {
			parts[k] = append(parts[k], str(it[GSI1SK]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list node names: %w", err)
	}
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	slices.Sort(out)
	return out, nil
}

// ListNodes implements store.Store: NodeNames, then the connection and facts items of
// every node (BatchGetItem). It reads the whole inventory: it serves the API's listing, never
// a job or a connection.
func (s *Store) ListNodes(ctx context.Context) ([]inventory.Node, error) {
	names, err := s.NodeNames(ctx)
	if err != nil {
		return nil, err
	}
	keys := make([]item, 0, 2*len(names))
	for _, n := range names {
		keys = append(keys, invKey(n), factsKey(n))
	}
	got, err := s.batchGet(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	var out []inventory.Node
	for _, name := range names {
		it, ok := got[keyString(invKey(name))]
		if !ok {
			continue // removed meanwhile
		}
		n, err := decodeInv(it, got[keyString(factsKey(name))])
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		out = append(out, n)
	}
	return out, nil
}

// UpdateNode implements store.Store: a PutItem of the connection item on the version read,
// then, only when the facts changed (their hash differs from the one it replaced), of the
// facts item.
func (s *Store) UpdateNode(ctx context.Context, n inventory.Node) (inventory.Node, error) {
	next := n
	next.Version++
	it, err := invItem(next)
	if err != nil {
		return inventory.Node{}, fmt.Errorf("update node %s: %w", n.Name, err)
	}
	var e expr
	old, err := s.put(ctx, it, e.eq(attrVersion, avN(n.Version)), &e)
	if ccf, ok := conditionFailed(err); ok {
		return inventory.Node{}, fmt.Errorf("update node %s at version %d: %w", n.Name, n.Version, s.versionMiss(ctx, invKey(n.Name), ccf))
	}
	if err != nil {
		return inventory.Node{}, fmt.Errorf("update node %s at version %d: %w", n.Name, n.Version, err)
	}
	if str(old[attrFactsHash]) != str(it[attrFactsHash]) {
		if err := s.putFacts(ctx, n.Name, n.Facts); err != nil {
			return inventory.Node{}, fmt.Errorf("update node %s facts: %w", n.Name, err)
		}
	}
	return next, nil
}

// DeleteNode implements store.Store; an unknown name is ErrNotFound.
func (s *Store) DeleteNode(ctx context.Context, name string) error {
	if name == "" {
		return fmt.Errorf("delete node: %w", store.ErrNotFound)
	}
	var e expr
	_, err := s.del(ctx, invKey(name), e.exists(PartitionKey), &e)
	if _, ok := conditionFailed(err); ok {
		return fmt.Errorf("delete node %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete node %s: %w", name, err)
	}
	if _, err := s.del(ctx, factsKey(name), "", nil); err != nil {
		return fmt.Errorf("delete node %s facts: %w", name, err)
	}
	return nil
}

// EnrolledNodes implements store.Store: BatchGetItem of the names' connection items.
func (s *Store) EnrolledNodes(ctx context.Context, names []string) (map[string]bool, error) {
	got, err := s.connItems(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("look up nodes: %w", err)
	}
	out := make(map[string]bool, len(got))
	for n := range got {
		out[n] = true
	}
	return out, nil
}

// SetNodeFacts implements store.Store: a read of the connection item; when the facts' hash
// is the one it holds, nothing more. Otherwise a PutItem of the facts item, then an
// UpdateItem of the connection item (the hash, Version+1; conditional on the version read).
func (s *Store) SetNodeFacts(ctx context.Context, name string, facts []byte) error {
	fail := func(err error) error { return fmt.Errorf("set facts of node %s: %w", name, err) }
	h := factsHash(facts)
	for attempt := 0; ; attempt++ {
		it, err := s.getNamed(ctx, pkNodePrefix+name, skNode, name)
		if err != nil {
			return fail(err)
		}
		if str(it[attrFactsHash]) == h {
			return nil
		}
		if err := s.putFacts(ctx, name, facts); err != nil {
			return fail(err)
		}
		r := reader{it: it}
		ver := r.n(attrVersion)
		if r.err != nil {
			return fail(r.err)
		}
		var e expr
		upd := "SET " + e.eq(attrFactsHash, avS(h)) + ", " + e.eq(attrVersion, avN(ver+1))
		_, err = s.update(ctx, invKey(name), upd, e.eq(attrVersion, avN(ver)), &e, types.ReturnValueNone, nil)
		if _, ok := conditionFailed(err); ok && attempt+1 < s.maxAttempts {
			continue
		}
		if err != nil {
			return fail(err)
		}
		return nil
	}
}

// FactValues implements store.Store: the facts items of every enrolled node, read in
// batches of 100 and decoded one at a time (only the values at path are kept). It refuses,
// with store.ErrLimit and before reading any facts, an inventory of more than the cap
// (WithFactValuesCap, DefaultFactValuesCap): query targeting of a bigger fleet needs an
// index of fact values, which this store does not keep.
func (s *Store) FactValues(ctx context.Context, path []string) (map[string]any, error) {
	names, err := s.NodeNames(ctx)
	if err != nil {
		return nil, err
	}
	if len(names) > s.factCap {
		return nil, fmt.Errorf("fact values of %d nodes: more than the %d this store reads for one query: %w", len(names), s.factCap, store.ErrLimit)
	}
	out := map[string]any{}
	for start := 0; start < len(names); start += maxBatchGet {
		chunk := names[start:min(start+maxBatchGet, len(names))]
		keys := make([]item, len(chunk))
		for i, n := range chunk {
			keys[i] = factsKey(n)
		}
		got, err := s.batchGet(ctx, keys)
		if err != nil {
			return nil, fmt.Errorf("fact values: %w", err)
		}
		for _, n := range chunk {
			it, ok := got[keyString(factsKey(n))]
			if !ok {
				continue
			}
			r := reader{it: it}
			m, err := inventory.DecodeFacts(r.json(attrFacts))
			if err != nil || r.err != nil {
				continue
			}
			if v, ok := inventory.FactAt(m, path); ok {
				out[n] = v
			}
		}
	}
	return out, nil
}

// MarkNodeConnected implements store.Store: one UpdateItem of the small connection item
// (conditional on it existing); facts are not touched.
func (s *Store) MarkNodeConnected(ctx context.Context, name, broker, conn string, at time.Time) error {
	fail := func(err error) error { return fmt.Errorf("mark node %s connected: %w", name, err) }
	if name == "" {
		return fail(store.ErrNotFound)
	}
	t, err := encodeTime(at)
	if err != nil {
		return fail(err)
	}
	var e expr
	upd := "SET " + e.eq(attrConnected, avBool(true)) + ", " + e.eq(attrBroker, avS(broker)) + ", " +
		e.eq(attrConnection, avS(conn)) + ", " + e.eq(attrConnectedAt, avS(t)) +
		" ADD " + e.name(attrVersion) + " " + e.value(avN(1))
	// A connection made before the recorded one changes nothing (a late $connect): the time
	// layout is fixed-width, so the strings compare as the times do.
	cond := e.exists(PartitionKey) + " AND (" + e.notExists(attrConnectedAt) + " OR " +
		e.name(attrConnectedAt) + " <= " + e.value(avS(t)) + ")"
	_, err = s.update(ctx, invKey(name), upd, cond, &e, types.ReturnValueNone, nil)
	if ccf, ok := conditionFailed(err); ok {
		err = s.refusedInventoryUpdate(ctx, name, ccf) // nil: a newer connection is recorded
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

// MarkNodeDisconnected implements store.Store: one UpdateItem of the connection item,
// conditional on it being connected over conn (any connection for ""); a failed condition
// is a read to tell an unknown node (store.ErrNotFound) from nothing to do.
func (s *Store) MarkNodeDisconnected(ctx context.Context, name, conn string) error {
	fail := func(err error) error { return fmt.Errorf("mark node %s disconnected: %w", name, err) }
	if name == "" {
		return fail(store.ErrNotFound)
	}
	var e expr
	upd := "SET " + e.eq(attrConnected, avBool(false)) + " ADD " + e.name(attrVersion) + " " + e.value(avN(1))
	cond := e.eq(attrConnected, avBool(true))
	if conn != "" {
		cond += " AND " + e.eq(attrConnection, avS(conn))
	}
	_, err := s.update(ctx, invKey(name), upd, cond, &e, types.ReturnValueNone, nil)
	if ccf, ok := conditionFailed(err); ok {
		err = s.refusedInventoryUpdate(ctx, name, ccf) // nil: not connected over conn
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

// refusedInventoryUpdate tells why a conditional update of node name's connection item was
// refused: store.ErrNotFound when there is no such item, nil when it exists (its state made
// the update unnecessary). The item in the refusal answers; without it (DynamoDB Local
// leaves it out), a read does.
func (s *Store) refusedInventoryUpdate(ctx context.Context, name string, ccf *types.ConditionalCheckFailedException) error {
	it, err := s.refusedItem(ctx, invKey(name), ccf)
	if err != nil {
		return err
	}
	if it == nil {
		return store.ErrNotFound
	}
	return nil
}

// MarkAllNodesDisconnected implements store.Store: it reads every connection item and
// disconnects those connected, 16 at a time. It reads and may write the whole inventory, so
// nothing on a request path calls it; on AWS nothing calls it at all (the API Gateway keeps
// the connections when a function restarts, and $disconnect reports each one that ends).
func (s *Store) MarkAllNodesDisconnected(ctx context.Context) error {
	names, err := s.NodeNames(ctx)
	if err != nil {
		return err
	}
	keys := make([]item, len(names))
	for i, n := range names {
		keys[i] = invKey(n)
	}
	got, err := s.batchGet(ctx, keys)
	if err != nil {
		return fmt.Errorf("mark all nodes disconnected: %w", err)
	}
	var connected []string
	for _, it := range got {
		if b, ok := it[attrConnected].(*types.AttributeValueMemberBOOL); ok && b.Value {
			connected = append(connected, str(it[attrName]))
		}
	}
	var mu sync.Mutex
	var errs []error
	_ = s.parallel(ctx, len(connected), func(ctx context.Context, i int) error {
		if err := s.MarkNodeDisconnected(ctx, connected[i], ""); err != nil && !errors.Is(err, store.ErrNotFound) {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		return nil
	})
	return errors.Join(errs...)
}

// CreateNodes implements store.Store: transactions of up to maxTxItems conditional puts of
// connection items (the name must not exist), then the facts items (BatchWriteItem). When a
// transaction fails, the nodes the earlier ones wrote are deleted again, so that none of
// them stays.
func (s *Store) CreateNodes(ctx context.Context, nodes []inventory.Node) error {
	fail := func(err error) error { return fmt.Errorf("create %d nodes: %w", len(nodes), err) }
	seen := make(map[string]bool, len(nodes))
	items := make([]item, 0, len(nodes))
	var facts []types.WriteRequest
	for _, n := range nodes {
		if n.Name == "" {
			return fail(errEmptyName)
		}
		if seen[n.Name] {
			return fail(fmt.Errorf("node %s given twice: %w", n.Name, store.ErrExists))
		}
		seen[n.Name] = true
		n.Version = 1
		it, err := invItem(n)
		if err != nil {
			return fail(err)
		}
		items = append(items, it)
		if len(n.Facts) > 0 {
			f, err := factsItem(n.Name, n.Facts)
			if err != nil {
				return fail(err)
			}
			facts = append(facts, types.WriteRequest{PutRequest: &types.PutRequest{Item: f}})
		}
	}
	var written []item
	for start := 0; start < len(items); start += maxTxItems {
		chunk := items[start:min(start+maxTxItems, len(items))]
		tx := make([]types.TransactWriteItem, len(chunk))
		for i, it := range chunk {
			var e expr
			tx[i] = s.txPut(it, e.notExists(PartitionKey), &e)
		}
		err := s.transactRetry(ctx, tx)
		if err != nil {
			if len(written) > 0 {
				reqs := make([]types.WriteRequest, len(written))
				for i, it := range written {
					reqs[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key(str(it[PartitionKey]), str(it[SortKey]))}}
				}
				if derr := s.batchWrite(context.WithoutCancel(ctx), reqs); derr != nil {
					s.log.Error("undo a partial node enrolment", "nodes", len(written), "err", derr)
				}
			}
			if tc, ok := canceled(err); ok && slices.Contains(tc.codes, "ConditionalCheckFailed") {
				return fail(store.ErrExists)
			}
			return fail(err)
		}
		written = append(written, chunk...)
	}
	if err := s.batchWrite(ctx, facts); err != nil {
		return fail(fmt.Errorf("write facts: %w", err))
	}
	return nil
}

// parallel runs fn(ctx, i) for i in [0, n), at most s.workers at a time, and returns the
// first error (the others still run to the end).
func (s *Store) parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	if n == 0 {
		return nil
	}
	workers := min(s.workers, n)
	next := make(chan int)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := fn(ctx, i); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
