package dynamo

import (
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/usage"
)

// PartitionMeter is implemented by a Meter that also wants the units by partition key:
// AddPartition is called once per partition key (of the table when index is "", else of
// that global secondary index) that a call read or wrote, besides AddDynamo's totals, with
// the units that key took. Per-key rates (units per second, per node-run) follow from
// summing what it gets over a run.
type PartitionMeter interface {
	AddPartition(index, pk string, rcu, wcu float64)
}

// use is the capacity one call took on one partition key of the table (index "") or of an
// index.
type use struct {
	index, pk string
	rcu, wcu  float64
}

// readUse is reading an item of size bytes at key k.
func readUse(k item, size int, consistent bool) use {
	return use{pk: str(k[PartitionKey]), rcu: readUnits(size, consistent)}
}

// writeUse is writing units at key k (twice as many in a transaction).
func writeUse(k item, units float64, tx bool) use {
	if tx {
		units *= 2
	}
	return use{pk: str(k[PartitionKey]), wcu: units}
}

// writeUses is a write that replaced old (nil: none) with new (nil: a delete): the table
// item and the index entries it created, moved, changed or deleted.
func writeUses(old, new item, tx bool) []use {
	var uses []use
	switch {
	case new != nil:
		uses = append(uses, writeUse(new, writeUnits(max(itemSize(new), itemSize(old))), tx))
	case old != nil:
		uses = append(uses, writeUse(old, writeUnits(itemSize(old)), tx))
	}
	return append(uses, indexUses(old, new)...)
}

// indexEntryOverhead is what DynamoDB adds to each index entry's size (100 bytes).
const indexEntryOverhead = 100

// indexUses estimates the index writes of replacing old with new (either may be nil): an
// entry is written when an item with the index's keys is created, when those keys change
// (a delete and a put), and when an attribute the index projects changes; it is deleted
// when the item loses them. Each entry write takes one unit per started KB of the entry.
func indexUses(old, new item) []use {
	var uses []use
	for _, g := range TableSchema().GSIs {
		oldPK, oldSK := str(old[g.PartitionKey]), str(old[g.SortKey])
		newPK, newSK := str(new[g.PartitionKey]), str(new[g.SortKey])
		hadEntry, hasEntry := oldPK != "" && oldSK != "", newPK != "" && newSK != ""
		entry := func(it item, pk, sk string) use {
			size := len(PartitionKey) + len(SortKey) + len(str(it[PartitionKey])) + len(str(it[SortKey])) +
				len(g.PartitionKey) + len(g.SortKey) + len(pk) + len(sk) + indexEntryOverhead
			for _, a := range g.NonKeyAttributes {
				if v, ok := it[a]; ok {
					size += len(a) + valueSize(v)
				}
			}
			return use{index: g.Name, pk: pk, wcu: writeUnits(size)}
		}
		switch {
		case hadEntry && hasEntry && oldPK == newPK && oldSK == newSK:
			for _, a := range g.NonKeyAttributes {
				if !sameValue(old[a], new[a]) {
					uses = append(uses, entry(new, newPK, newSK))
					break
				}
			}
		default:
			if hadEntry {
				uses = append(uses, entry(old, oldPK, oldSK))
			}
			if hasEntry {
				uses = append(uses, entry(new, newPK, newSK))
			}
		}
	}
	return uses
}

// merged returns old with the attributes of set put over it (a new map).
func merged(old, set item) item {
	out := make(item, len(old)+len(set))
	for k, v := range old {
		out[k] = v
	}
	for k, v := range set {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

// sameValue compares two scalar attribute values (enough for the projected attributes).
func sameValue(a, b types.AttributeValue) bool {
	switch a := a.(type) {
	case nil:
		return b == nil
	case *types.AttributeValueMemberS:
		b, ok := b.(*types.AttributeValueMemberS)
		return ok && a.Value == b.Value
	case *types.AttributeValueMemberN:
		b, ok := b.(*types.AttributeValueMemberN)
		return ok && a.Value == b.Value
	case *types.AttributeValueMemberBOOL:
		b, ok := b.(*types.AttributeValueMemberBOOL)
		return ok && a.Value == b.Value
	}
	return false
}

// queryPK returns the partition key value a query's key condition names.
func queryPK(in *dynamodb.QueryInput) string {
	// The store's key conditions always start "<#name> = <:value>".
	cond := aws.ToString(in.KeyConditionExpression)
	if i := strings.Index(cond, " = "); i >= 0 {
		rest := cond[i+3:]
		if j := strings.IndexByte(rest, ' '); j >= 0 {
			rest = rest[:j]
		}
		return str(in.ExpressionAttributeValues[rest])
	}
	return ""
}

// requestKey identifies a batch write request by its item's key.
func requestKey(r types.WriteRequest) string {
	if r.PutRequest != nil {
		return keyString(r.PutRequest.Item)
	}
	if r.DeleteRequest != nil {
		return keyString(r.DeleteRequest.Key)
	}
	return ""
}

// txItemKey returns the key a transaction action works on, and the item it puts.
func txItemKey(ti types.TransactWriteItem) (item, item) {
	switch {
	case ti.Put != nil:
		return ti.Put.Item, ti.Put.Item
	case ti.Update != nil:
		return ti.Update.Key, nil
	case ti.Delete != nil:
		return ti.Delete.Key, nil
	case ti.ConditionCheck != nil:
		return ti.ConditionCheck.Key, nil
	}
	return nil, nil
}

// record reports consumed capacity to the usage in ctx and to the meter: what DynamoDB
// returned (ReturnConsumedCapacity INDEXES: the table's and each index's units), or, when it
// returned nothing (the emulator never does), the estimate est. Partition keys come from
// est: reported units of the table or an index are spread over est's keys of it in
// proportion to their estimates.
func (s *Store) record(ctx context.Context, op string, consumed []types.ConsumedCapacity, est []use) {
	type split struct{ rcu, wcu float64 }
	reported := map[string]split{} // by index name, "" for the table
	got := false
	for _, c := range consumed {
		add := func(index string, cu *types.Capacity) {
			if cu == nil {
				return
			}
			r := reported[index]
			r.rcu += aws.ToFloat64(cu.ReadCapacityUnits)
			r.wcu += aws.ToFloat64(cu.WriteCapacityUnits)
			if cu.ReadCapacityUnits == nil && cu.WriteCapacityUnits == nil && cu.CapacityUnits != nil {
				if isWrite(op) {
					r.wcu += *cu.CapacityUnits
				} else {
					r.rcu += *cu.CapacityUnits
				}
			}
			reported[index] = r
			got = true
		}
		add("", c.Table)
		for name, cu := range c.GlobalSecondaryIndexes {
			add(name, &cu)
		}
		if c.Table == nil && len(c.GlobalSecondaryIndexes) == 0 && c.CapacityUnits != nil {
			add("", &types.Capacity{CapacityUnits: c.CapacityUnits})
		}
	}
	uses := est
	if got {
		estBy := map[string]split{}
		for _, u := range est {
			e := estBy[u.index]
			e.rcu, e.wcu = e.rcu+u.rcu, e.wcu+u.wcu
			estBy[u.index] = e
		}
		uses = nil
		for index, r := range reported {
			e := estBy[index]
			matched := false
			for _, u := range est {
				if u.index != index {
					continue
				}
				var share use = use{index: index, pk: u.pk}
				if e.rcu > 0 {
					share.rcu = r.rcu * u.rcu / e.rcu
				}
				if e.wcu > 0 {
					share.wcu = r.wcu * u.wcu / e.wcu
				}
				if share.rcu > 0 || share.wcu > 0 {
					uses = append(uses, share)
					matched = true
				}
			}
			if !matched && (r.rcu > 0 || r.wcu > 0) {
				uses = append(uses, use{index: index, pk: "?", rcu: r.rcu, wcu: r.wcu})
			}
		}
	}
	var rcu, wcu float64
	for _, u := range uses {
		rcu += u.rcu
		wcu += u.wcu
	}
	usage.From(ctx).Add(store.Usage{ReadUnits: rcu, WriteUnits: wcu})
	if s.meter == nil {
		return
	}
	s.meter.AddDynamo(op, rcu, wcu)
	if pm, ok := s.meter.(PartitionMeter); ok {
		for _, u := range uses {
			pm.AddPartition(u.index, u.pk, u.rcu, u.wcu)
		}
	}
}

// isWrite reports whether op writes.
func isWrite(op string) bool {
	switch op {
	case "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems":
		return true
	}
	return false
}

func one(c *types.ConsumedCapacity) []types.ConsumedCapacity {
	if c == nil {
		return nil
	}
	return []types.ConsumedCapacity{*c}
}
