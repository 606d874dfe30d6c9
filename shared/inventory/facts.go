package inventory

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// DecodeFacts decodes a facts object with numbers as json.Number; empty input is no facts.
func DecodeFacts(raw []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode facts: %w", err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

// FactAt returns the scalar at path in facts, walking nested objects by key: a string, a
// number (json.Number or float64, as decoded) or a boolean. ok is false when a key is
// missing, a value on the way is not an object, or the value is null, an object or an array:
// the values a scope query can compare.
func FactAt(facts map[string]any, path []string) (v any, ok bool) {
	if len(path) == 0 {
		return nil, false
	}
	var cur any = facts
	for _, seg := range path {
		m, isObj := cur.(map[string]any)
		if !isObj {
			return nil, false
		}
		if cur, ok = m[seg]; !ok {
			return nil, false
		}
	}
	switch cur.(type) {
	case string, json.Number, float64, bool:
		return cur, true
	}
	return nil, false
}

// FactPathKey is a fact path as one string, unambiguous whatever the keys hold: the JSON
// array of its keys. Stores use it to index fact values.
func FactPathKey(path []string) string {
	b, err := json.Marshal(path)
	if err != nil { // a []string always encodes
		panic(fmt.Sprintf("encode fact path: %v", err))
	}
	return string(b)
}

// EncodeFactValue and DecodeFactValue carry a scalar from FactAt through a store as JSON
// text, numbers keeping their exact digits.
func EncodeFactValue(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode fact value: %w", err)
	}
	return string(b), nil
}

// DecodeFactValue is the inverse of EncodeFactValue.
func DecodeFactValue(s string) (any, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode fact value: %w", err)
	}
	return v, nil
}

// AgentFact is the fact under which a Baton agent reports itself (agent.AgentFact): its task
// features, the Puppet version it found and its interpreters.
const AgentFact = "baton_agent"

// AgentInfo is what an agent reported about itself under AgentFact.
type AgentInfo struct {
	// Features are the task features the agent selects implementations with ("shell",
	// "powershell", "puppet-agent"); nil when the agent reported none (an older agent).
	Features      []string          `json:"features"`
	PuppetVersion string            `json:"puppet_version,omitempty"`
	Interpreters  map[string]string `json:"interpreters,omitempty"`
}

// ReportedAgent returns the AgentInfo in a node's facts; ok is false when the facts hold none
// (or not in the expected shape).
func ReportedAgent(facts json.RawMessage) (info AgentInfo, ok bool) {
	if len(bytes.TrimSpace(facts)) == 0 {
		return AgentInfo{}, false
	}
	var f struct {
		Agent *AgentInfo `json:"baton_agent"`
	}
	if err := json.Unmarshal(facts, &f); err != nil || f.Agent == nil || f.Agent.Features == nil {
		return AgentInfo{}, false
	}
	return *f.Agent, true
}
