package httpapi

import (
	"context"
	"encoding/json"

	"github.com/baton-run/baton/shared/inventory"
)

// FactSource supplies a node's facts from elsewhere than its agent (PuppetDB): found is false
// when it has none for the node.
type FactSource interface {
	Facts(ctx context.Context, certname string) (facts map[string]any, found bool, err error)
}

// FactsFromPuppetDB is the facts_source of GET /inventory/{node} when the facts shown are
// PuppetDB's (the field is absent when they are the agent's).
const FactsFromPuppetDB = "puppetdb"

// WithFactSource makes GET /inventory/{node} show f's facts for a node whose agent reported
// none, marked facts_source "puppetdb". When f fails, the agent's (empty) facts are shown.
func WithFactSource(f FactSource) Option { return func(a *API) { a.facts = f } }

// withSourcedFacts fills v's facts from the FactSource when the agent reported none.
func (a *API) withSourcedFacts(ctx context.Context, n inventory.Node, v inventoryView) inventoryView {
	if a.facts == nil {
		return v
	}
	if agent, err := inventory.DecodeFacts(n.Facts); err != nil || len(agent) > 0 {
		return v
	}
	facts, found, err := a.facts.Facts(ctx, n.Name)
	if err != nil {
		a.log.Warn("facts from PuppetDB", "node", n.Name, "err", err)
		return v
	}
	if !found {
		return v
	}
	b, err := json.Marshal(facts)
	if err != nil {
		a.log.Warn("facts from PuppetDB", "node", n.Name, "err", err)
		return v
	}
	v.Facts, v.FactsSource = b, FactsFromPuppetDB
	return v
}
