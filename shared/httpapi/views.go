package httpapi

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

type link struct {
	ID string `json:"id"`
}

type jobView struct {
	ID          string             `json:"id"`
	Name        string             `json:"name"`
	State       jobs.State         `json:"state"`
	Command     string             `json:"command"`
	Type        jobs.Type          `json:"type"`
	Options     json.RawMessage    `json:"options"`
	Owner       jobs.Owner         `json:"owner"`
	Description string             `json:"description"`
	Environment map[string]string  `json:"environment"`
	Timestamp   time.Time          `json:"timestamp"`
	Created     time.Time          `json:"created_timestamp"`
	Finished    *time.Time         `json:"finished_timestamp"`
	NodeCount   int                `json:"node_count"`
	NodeStates  map[string]int     `json:"node_states"`
	Status      []jobs.StatusEntry `json:"status"`
	Nodes       link               `json:"nodes"`
	Report      link               `json:"report"`
	Events      link               `json:"events"`
	// Usage (Baton extension) is what the job cost in a metered (AWS) deployment.
	Usage *usageView `json:"baton_usage,omitempty"`
}

type usageView struct {
	store.Usage
	EstimatedCost  float64 `json:"estimated_cost_usd"`
	CostPerNodeRun float64 `json:"estimated_cost_usd_per_node_run"`
	Prices         string  `json:"prices"`
}

func newJobView(base string, j jobs.Job, counts jobs.StateCounts) jobView {
	self := base + "/jobs/" + j.Name()
	v := jobView{ID: self, Name: j.Name(), State: j.State, Command: string(j.Type), Type: j.Type, Options: j.Options,
		Owner: j.Owner, Description: j.Description, Environment: map[string]string{"name": j.Environment},
		Timestamp: j.UpdatedAt, Created: j.CreatedAt, NodeCount: j.NodeCount, Status: j.Status,
		Nodes: link{self + "/nodes"}, Report: link{self + "/report"}, Events: link{self + "/events"}}
	if v.Status == nil {
		v.Status = []jobs.StatusEntry{}
	}
	if j.State.Terminal() {
		t := j.UpdatedAt
		v.Finished = &t
	}
	if counts.Total() > 0 {
		v.NodeStates = map[string]int{}
		for st, c := range counts {
			if c > 0 {
				v.NodeStates[string(st)] = c
			}
		}
	}
	return v
}

type nodeView struct {
	Name            string          `json:"name"`
	State           jobs.NodeState  `json:"state"`
	Transport       string          `json:"transport"`
	StartTimestamp  *time.Time      `json:"start_timestamp"`
	FinishTimestamp *time.Time      `json:"finish_timestamp"`
	Duration        *float64        `json:"duration"`
	Timestamp       *time.Time      `json:"timestamp"`
	TransactionUUID *string         `json:"transaction_uuid"`
	LatestEventID   *int64          `json:"latest-event-id"`
	Details         map[string]any  `json:"details"`
	Result          json.RawMessage `json:"result"`
}

func nodeTimestamp(n jobs.Node) *time.Time {
	for _, t := range []*time.Time{n.FinishedAt, n.StartedAt, n.ReadyAt} {
		if t != nil {
			return t
		}
	}
	return nil
}

func newNodeView(n jobs.Node, now time.Time) nodeView {
	v := nodeView{Name: n.Name, State: n.State, Transport: "pcp", StartTimestamp: n.StartedAt, FinishTimestamp: n.FinishedAt,
		Timestamp: nodeTimestamp(n), Details: map[string]any{"message": n.Message}, Result: n.Result}
	if n.StartedAt != nil {
		end := now
		if n.FinishedAt != nil {
			end = *n.FinishedAt
		}
		d := end.Sub(*n.StartedAt).Seconds()
		v.Duration = &d
	}
	if n.LatestEventID > 0 {
		id := n.LatestEventID
		v.LatestEventID = &id
	}
	if len(v.Result) == 0 {
		v.Result = json.RawMessage("null")
	}
	return v
}

type eventView struct {
	ID        string         `json:"id"`
	Type      string         `json:"type"`
	Timestamp time.Time      `json:"timestamp"`
	Details   map[string]any `json:"details"`
	Message   string         `json:"message"`
}

func newEventView(e jobs.Event) eventView {
	details := map[string]any{}
	if e.Node != "" {
		details["node"] = e.Node
	}
	if len(e.Detail) > 0 && string(e.Detail) != "null" {
		details["detail"] = e.Detail
	}
	return eventView{ID: strconv.FormatInt(e.ID, 10), Type: e.Type, Timestamp: e.Timestamp, Details: details, Message: e.Message}
}

// nextEvents is PE's next-events link: where a client polling for events goes on from.
func nextEvents(base string, jobID int64, evs []jobs.Event, start int64) map[string]string {
	next := start
	if n := len(evs); n > 0 {
		next = evs[n-1].ID + 1
	}
	if next < 1 {
		next = 1
	}
	return map[string]string{"id": fmt.Sprintf("%s/jobs/%d/events?start=%d", base, jobID, next), "event": strconv.FormatInt(next, 10)}
}

type inventoryView struct {
	Name      string          `json:"name"`
	Connected bool            `json:"connected"`
	Broker    string          `json:"broker,omitempty"`
	Timestamp *time.Time      `json:"timestamp,omitempty"`
	Facts     json.RawMessage `json:"facts,omitempty"`
	// FactsSource is "puppetdb" when Facts are PuppetDB's (WithFactSource), absent when they
	// are the agent's.
	FactsSource string `json:"facts_source,omitempty"`
	// Features and PuppetVersion are what the node's agent reported (facts.baton_agent): the
	// task features it selects implementations with.
	Features      []string `json:"features,omitempty"`
	PuppetVersion string   `json:"puppet_version,omitempty"`
}

func newInventoryView(n inventory.Node, withFacts bool) inventoryView {
	v := inventoryView{Name: n.Name, Connected: n.Connected}
	if n.Connected {
		v.Broker, v.Timestamp = n.Broker, n.ConnectedAt
	}
	if withFacts {
		v.Facts = n.Facts
		if len(v.Facts) == 0 {
			v.Facts = json.RawMessage("{}")
		}
		if info, ok := inventory.ReportedAgent(n.Facts); ok {
			v.Features, v.PuppetVersion = info.Features, info.PuppetVersion
			if v.Features == nil {
				v.Features = []string{}
			}
		}
	}
	return v
}
