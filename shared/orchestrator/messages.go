package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/protocol"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/tasks"
)

// ErrForbidden is returned when a node speaks for a transaction that was not sent to it.
var ErrForbidden = errors.New("message not authorized")

// ErrUnexpected is returned for a well-formed message the control plane does not take from agents.
var ErrUnexpected = errors.New("unexpected message type")

// HandleAgentMessage takes one message from node's agent. The caller has authenticated the
// connection: node is who the agent is, whatever the envelope's sender says. An error means
// the message was refused; the caller answers the agent with a PCP error_message.
func (s *Service) HandleAgentMessage(ctx context.Context, node string, e protocol.Envelope) error {
	switch e.MessageType {
	case protocol.TypeKeepalive:
		return nil // it kept the connection open; nothing to record
	case protocol.TypeFacts:
		var f protocol.Facts
		if err := protocol.DecodeData(e, &f); err != nil {
			return err
		}
		if err := s.updateFacts(ctx, node, f.Facts); err != nil {
			return err
		}
		return s.deliverPending(ctx, node)
	case protocol.TypeProvisionalResponse:
		var r protocol.ProvisionalResponse
		if err := protocol.DecodeData(e, &r); err != nil {
			return err
		}
		return s.onProvisional(ctx, node, r.TransactionID)
	case protocol.TypeNonBlockingResponse:
		var r protocol.NonBlockingResponse
		if err := protocol.DecodeData(e, &r); err != nil {
			return err
		}
		return s.onOutcome(ctx, node, r.TransactionID, func(job jobs.Job, n jobs.Node) (jobs.NodeEvent, map[string]any, string, error) {
			if job.Type == jobs.TypeDeploy {
				return s.puppetOutcome(job, n, r.Results)
			}
			return s.taskOutcome(job, n, r.Results)
		})
	case protocol.TypeRPCError:
		var r protocol.RPCError
		if err := protocol.DecodeData(e, &r); err != nil {
			return err
		}
		return s.onOutcome(ctx, node, r.TransactionID, func(job jobs.Job, n jobs.Node) (jobs.NodeEvent, map[string]any, string, error) {
			msg := fmt.Sprintf("Error on %s: %s", n.Name, r.Description)
			return jobs.NodeError, errorResult("puppetlabs.orchestrator/execution-failure", r.Description, map[string]any{"node": n.Name}), msg, nil
		})
	default:
		return fmt.Errorf("%w: %s", ErrUnexpected, e.MessageType)
	}
}

func (s *Service) updateFacts(ctx context.Context, name string, facts map[string]any) error {
	b, err := json.Marshal(facts)
	if err != nil {
		return fmt.Errorf("encode facts: %w", err)
	}
	return s.updateInventory(ctx, name, func(n *inventoryNode) { n.Facts = b })
}

// findOwn returns the job node record of txn and checks that it belongs to node.
func (s *Service) findOwn(ctx context.Context, node, txn string) (jobs.Node, error) {
	n, err := s.store.FindJobNodeByTransaction(ctx, txn)
	if err != nil {
		return n, fmt.Errorf("transaction %s: %w", txn, err)
	}
	if n.Name != node {
		s.log.Warn("node answered another node's transaction", "node", node, "transaction", txn, "owner", n.Name)
		return n, fmt.Errorf("%w: transaction %s was not sent to %s", ErrForbidden, txn, node)
	}
	return n, nil
}

func (s *Service) onProvisional(ctx context.Context, node, txn string) error {
	n, err := s.findOwn(ctx, node, txn)
	if errors.Is(err, store.ErrNotFound) {
		return nil // a late answer for a transaction we no longer know: nothing to do
	}
	if err != nil {
		return err
	}
	defer s.lock(n.JobID)()
	defer s.charge(ctx, n.JobID)
	for attempt := 0; ; attempt++ {
		n, err := s.store.GetJobNode(ctx, n.JobID, n.Name)
		if err != nil {
			return fmt.Errorf("provisional %s: %w", txn, err)
		}
		if n.TransactionID != txn || n.State != jobs.NodeReady {
			return nil
		}
		job, err := s.store.GetJob(ctx, n.JobID)
		if err != nil {
			return fmt.Errorf("provisional %s: %w", txn, err)
		}
		_, err = s.markRunning(ctx, job, n)
		if errors.Is(err, store.ErrConflict) && attempt < maxRetries {
			continue
		}
		return err
	}
}

type outcomeFunc func(job jobs.Job, n jobs.Node) (jobs.NodeEvent, map[string]any, string, error)

// onOutcome records a transaction's outcome exactly once, acknowledges it to the agent, and
// moves the job on.
func (s *Service) onOutcome(ctx context.Context, node, txn string, outcome outcomeFunc) error {
	n, err := s.findOwn(ctx, node, txn)
	if errors.Is(err, store.ErrNotFound) {
		s.log.Warn("result for unknown transaction", "node", node, "transaction", txn)
		return s.ack(ctx, node, txn)
	}
	if err != nil {
		return err
	}
	unlock := s.lock(n.JobID)
	err = s.recordOutcome(ctx, n.JobID, n.Name, txn, outcome)
	if err == nil {
		err = s.dispatchLocked(ctx, n.JobID)
	}
	unlock()
	if err != nil {
		return err
	}
	err = s.ack(ctx, node, txn)
	s.charge(ctx, n.JobID)
	return err
}

func (s *Service) recordOutcome(ctx context.Context, jobID int64, name, txn string, outcome outcomeFunc) error {
	for attempt := 0; ; attempt++ {
		n, err := s.store.GetJobNode(ctx, jobID, name)
		if err != nil {
			return fmt.Errorf("record %s: %w", txn, err)
		}
		if n.TransactionID != txn || n.State.Terminal() {
			return nil // a duplicate, or an answer to a superseded request: recorded already
		}
		job, err := s.store.GetJob(ctx, jobID)
		if err != nil {
			return fmt.Errorf("record %s: %w", txn, err)
		}
		if n.State == jobs.NodeReady { // the result overtook our own bookkeeping of the send
			if n, err = s.markRunning(ctx, job, n); err != nil {
				if errors.Is(err, store.ErrConflict) && attempt < maxRetries {
					continue
				}
				return err
			}
		}
		ev, result, msg, err := outcome(job, n)
		if err != nil {
			return err
		}
		_, err = s.endNode(ctx, n, ev, result, msg)
		if errors.Is(err, store.ErrConflict) && attempt < maxRetries {
			continue
		}
		return err
	}
}

// endNode moves n to a terminal state with its result and the matching event.
func (s *Service) endNode(ctx context.Context, n jobs.Node, ev jobs.NodeEvent, result map[string]any, msg string) (jobs.Node, error) {
	now := s.clock()
	n, err := jobs.ApplyNode(n, ev, now)
	if err != nil {
		return n, err
	}
	n.Result = mustJSON(result)
	n.Message = msg
	detail := map[string]any{}
	if n.StartedAt != nil {
		detail["run-time"] = now.Sub(*n.StartedAt).Seconds()
	}
	e := jobs.Event{Type: jobs.NodeEventType(n.State), Timestamp: now, Node: n.Name, Message: msg, Detail: mustJSON(detail)}
	n, err = s.store.UpdateJobNode(ctx, n, e)
	if err != nil {
		return n, fmt.Errorf("end node %s: %w", n.Name, err)
	}
	return n, nil
}

// taskOutcome turns a task's PXP results into the node's result (Bolt's rules).
func (s *Service) taskOutcome(job jobs.Job, n jobs.Node, raw json.RawMessage) (jobs.NodeEvent, map[string]any, string, error) {
	var r protocol.TaskResults
	if err := json.Unmarshal(raw, &r); err != nil {
		msg := fmt.Sprintf("Error on %s: unreadable task results: %v", n.Name, err)
		return jobs.NodeError, errorResult("puppetlabs.orchestrator/execution-failure", msg, map[string]any{"node": n.Name}), msg, nil
	}
	switch {
	case r.Canceled:
		msg := fmt.Sprintf("Stopped task on %s", n.Name)
		return jobs.NodeKill, errorResult("puppetlabs.orchestrator/job-stopped", "The task was stopped", map[string]any{"node": n.Name}), msg, nil
	case r.TimedOut:
		msg := fmt.Sprintf("Task on %s timed out after %d seconds", n.Name, job.Timeout)
		res := errorResult("puppetlabs.tasks/task-timeout", msg, map[string]any{"timeout": job.Timeout, "node": n.Name})
		if r.Stdout != "" {
			res["_output"] = r.Stdout
		}
		return jobs.NodeFail, res, msg, nil
	}
	result, ok := tasks.NormalizeResult(r.Exitcode, r.Stdout, r.Stderr)
	if r.Output != nil {
		// The full results were too large for a message: keep the head and tail inline and
		// say where the whole of them is.
		result["_output_object"] = map[string]any{"key": r.Output.Key, "size_bytes": r.Output.SizeBytes, "sha256": r.Output.SHA256}
	}
	if ok {
		return jobs.NodeSucceed, result, fmt.Sprintf("Finished task on %s", n.Name), nil
	}
	return jobs.NodeFail, result, fmt.Sprintf("Task failed on %s with exit code %d", n.Name, r.Exitcode), nil
}

func (s *Service) ack(ctx context.Context, node, txn string) error {
	e, err := protocol.New(protocol.TypeResultAck, protocol.AgentURI(node), protocol.ResultAck{TransactionID: txn})
	if err != nil {
		return err
	}
	if err := s.sender.Send(ctx, node, e); err != nil && !errors.Is(err, ErrNotConnected) {
		return fmt.Errorf("ack %s to %s: %w", txn, node, err)
	}
	return nil // an ack that cannot be delivered now is sent again when the agent repeats its result
}

// NodeConnected records that node's agent has connected over connection conn. Nothing is
// sent yet (API Gateway refuses messages to a connection until its $connect has returned):
// the agent's first message, its facts, is what brings it its pending work.
func (s *Service) NodeConnected(ctx context.Context, node, conn string) error {
	now := s.clock()
	return s.updateInventory(ctx, node, func(n *inventoryNode) {
		n.Connected, n.Connection, n.ConnectedAt, n.Broker = true, conn, &now, s.cfg.Broker
	})
}

// deliverPending sends a node's agent what it is waiting for: requests for its queued nodes,
// and — so nothing is lost across restarts of either side — the requests of its running nodes
// again (agents never run a transaction twice, and answer a repeat with its spooled result).
func (s *Service) deliverPending(ctx context.Context, node string) error {
	pending, err := s.store.ListJobNodesByName(ctx, node, jobs.NodeReady, jobs.NodeRunning)
	if err != nil {
		return fmt.Errorf("pending work for %s: %w", node, err)
	}
	for _, p := range pending {
		if err := s.resend(ctx, p.JobID, node); err != nil {
			s.log.Warn("send pending request", "node", p, "err", err)
		}
	}
	return nil
}

func (s *Service) resend(ctx context.Context, jobID int64, name string) error {
	defer s.lock(jobID)()
	defer s.charge(ctx, jobID)
	job, err := s.store.GetJob(ctx, jobID)
	if err != nil {
		return err
	}
	n, err := s.store.GetJobNode(ctx, jobID, name)
	if err != nil {
		return err
	}
	if job.State.Terminal() || !n.State.Active() || job.Stop == "force" {
		return nil
	}
	_, err = s.send(ctx, job, n)
	return err
}

// NodeDisconnected records that connection conn of node has closed. A close of a connection
// that a newer one has replaced changes nothing.
func (s *Service) NodeDisconnected(ctx context.Context, node, conn string) error {
	return s.updateInventory(ctx, node, func(n *inventoryNode) {
		if n.Connection == conn {
			n.Connected = false
		}
	})
}
