package puppet

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/baton-run/baton/shared/puppetrun"
)

// report is what Run uses of Puppet's last_run_report.yaml.
type report struct {
	time, transactionUUID, environment, status, configurationVersion string
	noopPending                                                      bool
	metrics                                                          *puppetrun.Metrics
}

// parseReport reads a Puppet::Transaction::Report as Puppet writes it: YAML whose nodes carry
// Ruby tags (!ruby/object:...), which are ignored. Metrics come from metrics.resources.values,
// a list of [name, label, value] triples; a report without them has nil metrics.
func parseReport(data []byte) (report, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return report{}, fmt.Errorf("parse yaml: %w", err)
	}
	root := deref(&doc)
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = deref(root.Content[0])
	}
	if root.Kind != yaml.MappingNode {
		return report{}, errors.New("not a Puppet report: the document is not a mapping")
	}
	var rep report
	for k, v := range pairs(root) {
		switch k {
		case "time":
			rep.time = scalar(v)
		case "transaction_uuid":
			rep.transactionUUID = scalar(v)
		case "environment":
			rep.environment = scalar(v)
		case "status":
			rep.status = scalar(v)
		case "configuration_version":
			rep.configurationVersion = scalar(v)
		case "noop_pending":
			rep.noopPending = scalar(v) == "true"
		case "metrics":
			m, err := resourceMetrics(v)
			if err != nil {
				return report{}, err
			}
			rep.metrics = m
		}
	}
	if rep.status == "" || rep.transactionUUID == "" {
		return report{}, errors.New("not a Puppet report: no status or transaction_uuid")
	}
	return rep, nil
}

func resourceMetrics(metrics *yaml.Node) (*puppetrun.Metrics, error) {
	resources := lookup(metrics, "resources")
	values := lookup(resources, "values")
	if values == nil {
		return nil, nil
	}
	if values.Kind != yaml.SequenceNode {
		return nil, errors.New("metrics.resources.values is not a list")
	}
	var m puppetrun.Metrics
	for _, item := range values.Content {
		item = deref(item)
		if item.Kind != yaml.SequenceNode || len(item.Content) != 3 {
			return nil, errors.New("metrics.resources.values holds an entry that is not [name, label, value]")
		}
		name := scalar(deref(item.Content[0]))
		n, err := strconv.ParseFloat(scalar(deref(item.Content[2])), 64)
		if err != nil {
			return nil, fmt.Errorf("resource metric %q: %w", name, err)
		}
		v := int(math.Round(n))
		switch name {
		case "total":
			m.Total = v
		case "changed":
			m.Changed = v
		case "failed":
			m.Failed = v
		case "skipped":
			m.Skipped = v
		case "restarted":
			m.Restarted = v
		case "scheduled":
			m.Scheduled = v
		case "out_of_sync":
			m.OutOfSync = v
		case "failed_to_restart":
			m.FailedToRestart = v
		case "corrective_change":
			m.CorrectiveChange = v
		}
	}
	return &m, nil
}

// deref follows YAML aliases (Ruby's YAML emits anchors for shared objects).
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// pairs iterates the key/value pairs of a mapping node.
func pairs(m *yaml.Node) func(yield func(string, *yaml.Node) bool) {
	return func(yield func(string, *yaml.Node) bool) {
		if m == nil || m.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			if !yield(scalar(deref(m.Content[i])), deref(m.Content[i+1])) {
				return
			}
		}
	}
}

// lookup returns the value of key in mapping m, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	for k, v := range pairs(m) {
		if k == key {
			return v
		}
	}
	return nil
}

// scalar is a scalar node's text; "" for null and for anything that is not a scalar.
func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return ""
	}
	return n.Value
}
