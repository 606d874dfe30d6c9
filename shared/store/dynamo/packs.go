package dynamo

import (
	"encoding/json"
	"fmt"

	"github.com/baton-run/baton/shared/jobs"
)

// Event packs. A job with counter shards writes the events of its creation (a node_running
// for every record claimed at creation) as packs: one item holds up to eventsPerPack
// consecutive events of one sequencer (consecutive seqs), keyed like its last event (the
// partition of its sequencer and seq, the sort key of its id), with that event's id and
// seq, and the events in one JSON attribute, gzip-compressed (writer.json). Their texts
// repeat from one node to the next, so a pack of 64 node_running events takes 2 or 3 write
// units where 64 items took 64: a write unit less per node-run of a job claimed at creation.
// Readers of events (listEventsSharded) expand a pack into its events' items before anything
// else; a query from an id finds every pack holding an event at or past it, since a pack's
// sort key is its last id. Packs are written only with a job's creation; every later event
// is an item of its own.

// eventsPerPack bounds the events of one pack, and packRawBytes its JSON before compression.
const (
	eventsPerPack = 64
	packRawBytes  = 96 << 10
)

// packedEvent is an event in a pack.
type packedEvent struct {
	ID        int64           `json:"i"`
	Seq       int64           `json:"q"`
	Type      string          `json:"t"`
	Timestamp string          `json:"ts"`
	Node      string          `json:"n,omitempty"`
	Message   string          `json:"m,omitempty"`
	Detail    json.RawMessage `json:"d,omitempty"`
}

// creationEventItems encodes the events of job m's creation, evs[i] numbered by
// creationAlloc(m, i): an item each in a job without counter shards; packs in a job with.
func (s *Store) creationEventItems(m jobMeta, evs []jobs.Event) ([]item, error) {
	if m.counters == 0 {
		out := make([]item, len(evs))
		for i, e := range evs {
			it, err := s.eventItem(e, creationAlloc(m, i).seq, m)
			if err != nil {
				return nil, err
			}
			out[i] = it
		}
		return out, nil
	}
	q := m.seqs()
	var out []item
	for j := range q {
		var run []packedEvent
		raw := 0
		flush := func() error {
			if len(run) == 0 {
				return nil
			}
			it, err := s.packItem(m, run)
			if err != nil {
				return err
			}
			out = append(out, it)
			run, raw = nil, 0
			return nil
		}
		for i := j; i < len(evs); i += q {
			e, a := evs[i], creationAlloc(m, i)
			ts, err := encodeTime(e.Timestamp)
			if err != nil {
				return nil, fmt.Errorf("job %d event %d: %w", m.id, a.id, err)
			}
			p := packedEvent{ID: a.id, Seq: a.seq, Type: e.Type, Timestamp: ts, Node: e.Node, Message: e.Message, Detail: e.Detail}
			size := len(p.Type) + len(p.Timestamp) + len(p.Node) + len(p.Message) + len(p.Detail) + 64
			if len(run) == eventsPerPack || (len(run) > 0 && raw+size > packRawBytes) {
				if err := flush(); err != nil {
					return nil, err
				}
			}
			run = append(run, p)
			raw += size
		}
		if err := flush(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// packItem encodes run, consecutive events of one sequencer of job m, as a pack.
func (s *Store) packItem(m jobMeta, run []packedEvent) (item, error) {
	last := run[len(run)-1]
	raw, err := json.Marshal(run)
	if err != nil {
		return nil, fmt.Errorf("job %d event pack %d: %w", m.id, last.ID, err)
	}
	w := newWriter(m.eventKey(last.ID, last.Seq))
	w.n(attrJobID, m.id)
	w.n(attrID, last.ID)
	w.n(attrSeq, last.Seq)
	w.json(attrPack, raw)
	w.n(attrWritten, s.now().UnixMilli())
	w.n(TTLAttribute, m.expires)
	if w.err != nil {
		return nil, fmt.Errorf("job %d event pack %d: %w", m.id, last.ID, w.err)
	}
	if err := checkSize(fmt.Sprintf("job %d event pack %d", m.id, last.ID), w.it); err != nil {
		return nil, err
	}
	return w.it, nil
}

// expandPacks returns items with each pack replaced by its events' items (as eventItem
// writes them, with the pack's keys and time written), in order.
func expandPacks(items []item) ([]item, error) {
	out := items[:0:0]
	for _, it := range items {
		if _, ok := it[attrPack]; !ok {
			out = append(out, it)
			continue
		}
		r := reader{it: it}
		raw := r.json(attrPack)
		jobID, written := r.n(attrJobID), r.n(attrWritten)
		if r.err != nil {
			return nil, fmt.Errorf("event pack %s %s: %w", str(it[PartitionKey]), str(it[SortKey]), r.err)
		}
		var run []packedEvent
		if err := json.Unmarshal(raw, &run); err != nil {
			return nil, fmt.Errorf("event pack %s %s: %w", str(it[PartitionKey]), str(it[SortKey]), err)
		}
		for _, p := range run {
			w := newWriter(item{PartitionKey: it[PartitionKey], SortKey: it[SortKey]})
			w.n(attrJobID, jobID)
			w.n(attrID, p.ID)
			w.n(attrSeq, p.Seq)
			w.s(attrType, p.Type)
			w.s(attrTimestamp, p.Timestamp)
			w.s(attrNode, p.Node)
			w.json(attrDetail, p.Detail)
			w.s(attrMessage, p.Message)
			w.n(attrWritten, written)
			out = append(out, w.it)
		}
	}
	return out, nil
}
