// Package inventory holds the record Baton keeps for each enrolled node: its credential hash,
// its last reported facts and whether its agent is connected. It is a data type only; the
// store persists it and the orchestrator and gateway update it.
package inventory

import (
	"encoding/json"
	"time"
)

// Node is one enrolled node.
type Node struct {
	Name string
	// CredentialHash is the hex SHA-256 of the node's secret; the secret itself is never stored.
	CredentialHash string
	// Facts is the JSON object last reported by the agent ({} before the first report).
	Facts       json.RawMessage
	Connected   bool
	Broker      string     // which endpoint holds the connection (pcp://host/server)
	Connection  string     // connection id (the API Gateway connection id on AWS)
	ConnectedAt *time.Time // when the current (or last) connection was made
	CreatedAt   time.Time
	// Version is the optimistic-concurrency version, managed by the store.
	Version int64
}
