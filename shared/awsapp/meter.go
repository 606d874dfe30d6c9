package awsapp

import (
	"fmt"
	"strings"
	"sync"

	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/store/dynamo"
	"github.com/baton-run/baton/shared/usage"
)

// Meter counts the billable work the AWS adapters cause. It implements the meter hooks of
// the dynamo store, the S3 catalog and the WebSocket sender.
type Meter struct {
	mu       sync.Mutex
	rcu, wcu float64
	dynamo   map[string]int
	s3       map[string]int
	msgIn    int
	msgOut   int
	unitsIn  int
	unitsOut int
	lambdas  map[string]int
	// partitions holds the DynamoDB units by partition key ("index|pk"), when recording.
	partitions map[string]PartitionUnits
}

// PartitionUnits are the DynamoDB capacity units one partition key took.
type PartitionUnits struct {
	Index, PK string // Index "" is the table
	RCU, WCU  float64
}

var _ dynamo.PartitionMeter = (*Meter)(nil)

// NewMeter returns an empty Meter.
func NewMeter() *Meter {
	return &Meter{dynamo: map[string]int{}, s3: map[string]int{}, lambdas: map[string]int{}}
}

// AddDynamo implements dynamo.Meter.
func (m *Meter) AddDynamo(op string, rcu, wcu float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rcu += rcu
	m.wcu += wcu
	m.dynamo[op]++
}

// AddPartition implements dynamo.PartitionMeter: the units by partition key, kept from
// RecordPartitions on.
func (m *Meter) AddPartition(index, pk string, rcu, wcu float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.partitions == nil {
		return
	}
	k := index + "|" + pk
	u := m.partitions[k]
	u.Index, u.PK = index, pk
	u.RCU += rcu
	u.WCU += wcu
	m.partitions[k] = u
}

// RecordPartitions starts (again) counting units by partition key, forgetting what was
// counted before.
func (m *Meter) RecordPartitions() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.partitions = map[string]PartitionUnits{}
}

// Partitions returns the units by partition key since RecordPartitions.
func (m *Meter) Partitions() []PartitionUnits {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]PartitionUnits, 0, len(m.partitions))
	for _, u := range m.partitions {
		out = append(out, u)
	}
	return out
}

// AddS3 implements s3catalog.Meter.
func (m *Meter) AddS3(op string, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.s3[op] += n
}

// AddMessages implements awsgw.Meter.
func (m *Meter) AddMessages(direction string, n, units int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if direction == "in" {
		m.msgIn += n
		m.unitsIn += units
	} else {
		m.msgOut += n
		m.unitsOut += units
	}
}

// AddInvocation counts one Lambda invocation of function fn.
func (m *Meter) AddInvocation(fn string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lambdas[fn]++
}

// Usage is a snapshot of a Meter.
type Usage struct {
	DynamoRCU, DynamoWCU float64
	DynamoCalls          map[string]int
	S3Requests           map[string]int
	MessagesIn           int
	MessagesOut          int
	MessageUnits         int // 32 KB billing units, both directions
	Invocations          map[string]int
}

// Snapshot returns the counts so far.
func (m *Meter) Snapshot() Usage {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := Usage{DynamoRCU: m.rcu, DynamoWCU: m.wcu, MessagesIn: m.msgIn, MessagesOut: m.msgOut, MessageUnits: m.unitsIn + m.unitsOut,
		DynamoCalls: map[string]int{}, S3Requests: map[string]int{}, Invocations: map[string]int{}}
	for k, v := range m.dynamo {
		u.DynamoCalls[k] = v
	}
	for k, v := range m.s3 {
		u.S3Requests[k] = v
	}
	for k, v := range m.lambdas {
		u.Invocations[k] = v
	}
	return u
}

// Sub returns u minus an earlier snapshot.
func (u Usage) Sub(before Usage) Usage {
	d := Usage{DynamoRCU: u.DynamoRCU - before.DynamoRCU, DynamoWCU: u.DynamoWCU - before.DynamoWCU,
		MessagesIn: u.MessagesIn - before.MessagesIn, MessagesOut: u.MessagesOut - before.MessagesOut,
		MessageUnits: u.MessageUnits - before.MessageUnits, DynamoCalls: map[string]int{}, S3Requests: map[string]int{}, Invocations: map[string]int{}}
	for k, v := range u.DynamoCalls {
		d.DynamoCalls[k] = v - before.DynamoCalls[k]
	}
	for k, v := range u.S3Requests {
		d.S3Requests[k] = v - before.S3Requests[k]
	}
	for k, v := range u.Invocations {
		d.Invocations[k] = v - before.Invocations[k]
	}
	return d
}

// Prices and USEast1 are the usage package's (one place for the price list).
type Prices = usage.Prices

// USEast1 are the us-east-1 list prices.
var USEast1 = usage.USEast1

// Cost returns the dollar cost of u at prices p.
func (u Usage) Cost(p Prices) float64 {
	var su store.Usage
	for _, v := range u.Invocations {
		su.Invocations += int64(v)
	}
	for op, v := range u.S3Requests {
		switch strings.ToUpper(op) {
		case "PUT", "LIST", "DELETE", "COPY", "POST":
			su.S3Writes += int64(v)
		default:
			su.S3Reads += int64(v)
		}
	}
	su.MessageUnits, su.WriteUnits, su.ReadUnits = int64(u.MessageUnits), u.DynamoWCU, u.DynamoRCU
	return usage.Cost(su, p)
}

// String renders u in one line.
func (u Usage) String() string {
	inv := 0
	for _, v := range u.Invocations {
		inv += v
	}
	s3 := 0
	for _, v := range u.S3Requests {
		s3 += v
	}
	return fmt.Sprintf("lambda invocations %d, websocket messages %d in + %d out (%d billing units), dynamodb %.1f RCU + %.1f WCU, s3 requests %d",
		inv, u.MessagesIn, u.MessagesOut, u.MessageUnits, u.DynamoRCU, u.DynamoWCU, s3)
}
