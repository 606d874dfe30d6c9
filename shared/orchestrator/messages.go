package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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
		ferr := s.updateFacts(ctx, node, f.Facts)
		if ferr != nil && !errors.Is(ferr, protocol.ErrInvalid) {
			return ferr
		}
		// Facts refused for their size still bring the agent its work.
		if err := s.deliverPending(ctx, node); err != nil {
			return err
		}
		return ferr
	case protocol.TypeOutput:
		var o protocol.Output
		if err := protocol.DecodeData(e, &o); err != nil {
			return err
		}
		return s.onOutput(ctx, node, o)
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
	case protocol.TypeBlockingResponse:
		var r protocol.BlockingResponse
		if err := protocol.DecodeData(e, &r); err != nil {
			return err
		}
		var st protocol.StatusResults
		if err := json.Unmarshal(r.Results, &st); err != nil {
			return fmt.Errorf("%w: blocking response: results are not a status query's: %v", ErrUnexpected, err)
		}
		if err := st.Validate(); err != nil {
			return fmt.Errorf("%w: blocking response: %v", ErrUnexpected, err)
		}
		return s.onStatus(ctx, node, st)
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

// MaxFactsBytes caps a node's facts as stored (encoded as JSON): they are parsed by every
// query-scoped job and permission. Facter's output is typically well under 1 MiB.
const MaxFactsBytes = 4 << 20

func (s *Service) updateFacts(ctx context.Context, name string, facts map[string]any) error {
	b, err := json.Marshal(facts)
	if err != nil {
		return fmt.Errorf("encode facts: %w", err)
	}
	if len(b) > MaxFactsBytes {
		return fmt.Errorf("%w: facts of %d bytes, more than the %d allowed: the previous facts are kept", protocol.ErrInvalid, len(b), MaxFactsBytes)
	}
	if err := s.store.SetNodeFacts(ctx, name, b); err != nil {
		return fmt.Errorf("inventory %s: %w", name, err)
	}
	return nil
}

// findOwn returns the job node record of txn and checks that it belongs to node.
func (s *Service) findOwn(ctx context.Context, node, txn string) (jobs.Node, error) {
	var (
		n   jobs.Node
		err error
	)
	if jobID, ok := jobs.TransactionJob(txn); ok {
		// The id names its job and the connection names the node: one read, no index.
		n, err = s.store.GetJobNode(ctx, jobID, node)
		if errors.Is(err, store.ErrNotFound) || err == nil && n.TransactionID != txn {
			s.log.Warn("node answered a transaction that was not sent to it", "node", node, "transaction", txn)
			return n, fmt.Errorf("%w: transaction %s was not sent to %s", ErrForbidden, txn, node)
		}
		if err != nil {
			return n, fmt.Errorf("transaction %s: %w", txn, err)
		}
		return n, nil
	}
	n, err = s.store.FindJobNodeByTransaction(ctx, txn)
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
	if n, ok := s.started.get(txn); ok && n.Name == node {
		s.charge(ctx, n.JobID) // the message is the job's cost all the same
		return nil             // recorded running by this process: nothing to do, nothing to read
	}
	n, err := s.findOwn(ctx, node, txn)
	if errors.Is(err, store.ErrNotFound) {
		return nil // a late answer for a transaction we no longer know: nothing to do
	}
	if err != nil {
		return err
	}
	defer s.charge(ctx, n.JobID)
	if n.State != jobs.NodeReady {
		return nil // already recorded running (or done)
	}
	sp, err := s.specByID(ctx, n.JobID)
	if err != nil {
		return fmt.Errorf("provisional %s: %w", txn, err)
	}
	for attempt := 0; ; attempt++ {
		run, ev, err := s.runningRecord(sp, n, s.clock())
		if err != nil {
			return err
		}
		written, err := s.store.UpdateJobNode(ctx, run, ev)
		if err == nil {
			s.started.add(written)
		}
		if !errors.Is(err, store.ErrConflict) || attempt >= maxRetries {
			return err
		}
		if n, err = s.store.GetJobNode(ctx, n.JobID, n.Name); err != nil {
			return fmt.Errorf("provisional %s: %w", txn, err)
		}
		if n.TransactionID != txn || n.State != jobs.NodeReady {
			return nil
		}
	}
}

type outcomeFunc func(job jobs.Job, n jobs.Node) (jobs.NodeEvent, map[string]any, string, error)

// onOutcome records a transaction's outcome exactly once, acknowledges it to the agent (with
// NoResultAck, only a repeat), and moves the job on: its work does not depend on the job's size.
func (s *Service) onOutcome(ctx context.Context, node, txn string, outcome outcomeFunc) error {
	n, held := s.started.get(txn)
	if !held || n.Name != node {
		var err error
		n, err = s.findOwn(ctx, node, txn)
		if errors.Is(err, store.ErrNotFound) {
			s.log.Warn("result for unknown transaction", "node", node, "transaction", txn)
			return s.ack(ctx, node, txn)
		}
		if err != nil {
			return err
		}
	}
	s.takeCarried(ctx, n.JobID)
	defer s.chargeResult(ctx, n.JobID)
	sp, err := s.specByID(ctx, n.JobID)
	if err != nil {
		return fmt.Errorf("record %s: %w", txn, err)
	}
	recorded, jobEnded, open, err := s.recordOutcome(ctx, sp, n, txn, outcome)
	if err != nil {
		return err
	}
	if !recorded && !jobEnded {
		// A repeat, or the end of a transaction a forced stop cancelled: record that the
		// kill is confirmed.
		if cur, err := s.store.GetJobNode(ctx, n.JobID, n.Name); err == nil && cur.State == jobs.NodeStopped && cur.TransactionID == txn {
			if err := s.confirmKill(ctx, cur); err != nil {
				return err
			}
		}
	}
	s.started.remove(txn)
	if !recorded || !s.cfg.NoResultAck {
		// With NoResultAck only a repeat is acknowledged: its agent sent it again (it was
		// asked, or it does not know no_ack) and stops on the acknowledgement.
		if err := s.ack(ctx, node, txn); err != nil {
			return err
		}
	}
	if !recorded || jobEnded {
		return nil // a repeat (the job moved on when it was first recorded), or the job's end
	}
	if open {
		// The store knows without a read that the job has a node unfinished, and none is
		// queued (open is only said of a job whose records were all claimed when it was
		// created, and without an error limit: updateFrom): nothing to refill, no end to see.
		return nil
	}
	// The job as created is enough here: whether it may still start nodes is the claim's to
	// check (atomically, in the store); a stop's skipping is the stop's and the sweep's work.
	return s.refill(ctx, sp.job)
}

// recordOutcome writes the outcome of txn to its node record n (read just before), unless
// it is recorded already; recorded says whether this call wrote it.
func (s *Service) recordOutcome(ctx context.Context, sp *jobSpec, n jobs.Node, txn string, outcome outcomeFunc) (recorded, jobEnded, open bool, err error) {
	for attempt := 0; ; attempt++ {
		if n.TransactionID != txn || n.State.Terminal() {
			return false, false, false, nil // a duplicate, or an answer to a superseded request
		}
		now := s.clock()
		read := n // the record as stored, which the write replaces
		var events []jobs.Event
		if n.State == jobs.NodeReady { // the result overtook our own record of the send
			var ev jobs.Event
			if n, ev, err = s.runningRecord(sp, n, now); err != nil {
				return false, false, false, err
			}
			events = append(events, ev)
		}
		nodeEv, result, msg, err := outcome(sp.job, n)
		if err != nil {
			return false, false, false, err
		}
		end, ev, err := endedRecord(n, nodeEv, result, msg, now)
		if err != nil {
			return false, false, false, err
		}
		if sp.job.NodeCount == 1 && s.endWithJob(ctx, end, append(events, ev), now) {
			return true, true, false, nil
		}
		_, open, err := s.updateFrom(ctx, sp, read, end, append(events, ev)...)
		if errors.Is(err, store.ErrConflict) && attempt < maxRetries {
			if n, err = s.store.GetJobNode(ctx, n.JobID, n.Name); err != nil {
				return false, false, false, fmt.Errorf("record %s: %w", txn, err)
			}
			continue
		}
		if err != nil {
			return false, false, false, fmt.Errorf("record %s: %w", txn, err)
		}
		return true, false, open, nil
	}
}

// priorUpdater is a store that writes a record update cheaper when told the record it
// replaces, as read at the update's version (the dynamo store: the counters first, then the
// record once with its latest event id). Such a store can leave a job's counts ahead of its
// records when a process dies between the two: it is an endChecker too.
// It also says when the job is surely not done (open), known without reading its counts.
type priorUpdater interface {
	UpdateJobNodeFrom(ctx context.Context, prev, n jobs.Node, events ...jobs.Event) (written jobs.Node, open bool, err error)
}

// updateFrom writes n of job sp, which replaces prev (read at n.Version), with events; open:
// the job has a node unfinished, known without a read (priorUpdater). A job with an error
// limit is written the usual way: its limit acts on the failure count, which a store that
// counts before it writes could show with a refused write's failure for a moment.
func (s *Service) updateFrom(ctx context.Context, sp *jobSpec, prev, n jobs.Node, events ...jobs.Event) (jobs.Node, bool, error) {
	if pu, ok := s.store.(priorUpdater); ok && sp.job.MaxErrors == 0 {
		return pu.UpdateJobNodeFrom(ctx, prev, n, events...)
	}
	written, err := s.store.UpdateJobNode(ctx, n, events...)
	return written, false, err
}

// endWithJob writes the end of a one-node job's node and the end of the job in one write,
// which saves the job's own write (and its latency). false: nothing was written (the job moved
// meanwhile, say a stop): the caller goes the usual way.
func (s *Service) endWithJob(ctx context.Context, end jobs.Node, events []jobs.Event, now time.Time) bool {
	counts := jobs.StateCounts{end.State: 1}
	_, written, err := s.endJobNodeAndJob(ctx, end, events, func(job jobs.Job) (jobs.Job, []jobs.Event, error) {
		if job.State.Terminal() {
			return job, nil, errJobEnded
		}
		ended, ev, err := s.endedJob(job, counts, now)
		return ended, []jobs.Event{ev}, err
	})
	if err != nil {
		return false
	}
	s.jobEndedHere(written.ID)
	s.finished.wake(written.ID, endedJob{written, counts})
	s.log.Info("job ended", "job", written, "node_states", counts)
	return true
}

// endJobNodeAndJob is the store's EndJobNodeAndJob (jobEnder), or for a store without it the
// job read, then the node and the job written together.
func (s *Service) endJobNodeAndJob(ctx context.Context, n jobs.Node, nodeEvents []jobs.Event, end func(jobs.Job) (jobs.Job, []jobs.Event, error)) (jobs.Node, jobs.Job, error) {
	if je, ok := s.store.(jobEnder); ok {
		return je.EndJobNodeAndJob(ctx, n, nodeEvents, end)
	}
	job, err := s.store.GetJob(ctx, n.JobID)
	if err != nil {
		return jobs.Node{}, jobs.Job{}, err
	}
	ended, jobEvents, err := end(job)
	if err != nil {
		return jobs.Node{}, jobs.Job{}, err
	}
	return s.store.UpdateJobNodeAndJob(ctx, n, nodeEvents, ended, jobEvents)
}

// jobEnder is a store that ends a one-node job's node and the job in one write, reading the
// job within it (the sqlite store): no read of the job before the write, and the job cannot
// change between the two. end gets the job as stored; its error is returned and nothing is
// written.
type jobEnder interface {
	EndJobNodeAndJob(ctx context.Context, n jobs.Node, nodeEvents []jobs.Event, end func(jobs.Job) (jobs.Job, []jobs.Event, error)) (jobs.Node, jobs.Job, error)
}

// errJobEnded: the job of a node whose end is recorded had already ended.
var errJobEnded = errors.New("the job has already ended")

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
	case r.OutcomeUnknown:
		// The task was started but the agent cannot tell how it ended (it restarted while the
		// task ran, or could not record its exit code): failed — it may well have run, so
		// never "could not be run" — with the agent's own error kind and words.
		reason := "the agent cannot tell how the task ended; outcome unknown"
		var e struct {
			Error struct {
				Msg string `json:"msg"`
			} `json:"_error"`
		}
		if json.Unmarshal([]byte(r.Stdout), &e) == nil && e.Error.Msg != "" {
			reason = e.Error.Msg
		}
		msg := fmt.Sprintf("Task on %s: %s", n.Name, reason)
		res := errorResult("baton/task-outcome-unknown", reason, map[string]any{"node": n.Name})
		if r.Stderr != "" {
			res["_error"].(map[string]any)["details"].(map[string]any)["stderr"] = r.Stderr
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

// NodeConnected records that node's agent has connected over connection conn at time at (the
// zero time: now, by the service's clock). A connection made before the one recorded changes
// nothing, so a late $connect cannot point the inventory at a connection that was replaced.
// Nothing is sent yet (API Gateway refuses messages to a connection until its $connect has
// returned): the agent's first message, its facts, is what brings it its pending work.
func (s *Service) NodeConnected(ctx context.Context, node, conn string, at time.Time) error {
	if at.IsZero() {
		at = s.clock()
	}
	if err := s.store.MarkNodeConnected(ctx, node, s.cfg.Broker, conn, at); err != nil {
		return fmt.Errorf("inventory %s: %w", node, err)
	}
	return nil
}

// DeliverPending sends a newly connected node's agent the work waiting for it (see
// deliverPending). baton serve calls it as soon as the agent connects; on AWS, where nothing
// can be sent during $connect, the agent's facts bring it.
func (s *Service) DeliverPending(ctx context.Context, node string) error {
	return s.deliverPending(ctx, node)
}

// deliverPending sends a node's agent what it is waiting for: requests for its nodes holding
// a slot, and — so nothing is lost across restarts of either side — the requests of its
// running nodes again (agents never run a transaction twice, and answer a repeat with its
// spooled result).
func (s *Service) deliverPending(ctx context.Context, node string) error {
	pending, err := s.store.ListJobNodesByName(ctx, node, jobs.NodeReady, jobs.NodeRunning)
	if err != nil {
		return fmt.Errorf("pending work for %s: %w", node, err)
	}
	for _, p := range pending {
		if err := s.resend(ctx, p); err != nil {
			s.log.Warn("send pending request", "node", p, "err", err)
		}
	}
	return nil
}

// resend sends active record n's request again, and records it running if it was only ready.
func (s *Service) resend(ctx context.Context, n jobs.Node) error {
	_, err := s.resendDelivered(ctx, n)
	return err
}

// resendDelivered is resend, reporting whether the request went out.
func (s *Service) resendDelivered(ctx context.Context, n jobs.Node) (bool, error) {
	defer s.charge(ctx, n.JobID)
	job, err := s.store.GetJob(ctx, n.JobID)
	if err != nil {
		return false, err
	}
	if job.State.Terminal() || !n.State.Active() || job.Stop == jobs.StopForce {
		return false, nil
	}
	sp, err := s.spec(job)
	if err != nil {
		return false, err
	}
	if !s.deliver(ctx, sp, n) {
		return false, nil
	}
	now := s.clock()
	var (
		run jobs.Node
		evs []jobs.Event
	)
	switch {
	case n.State == jobs.NodeReady:
		r, ev, err := s.runningRecord(sp, n, now)
		if err != nil {
			return true, err
		}
		run, evs = r, []jobs.Event{ev}
	case n.StartedAt == nil: // recorded running when claimed, delivered only now
		run = n
		run.StartedAt, run.DueAt = &now, s.runningDue(sp, now)
	default:
		return true, nil
	}
	if _, err := s.store.UpdateJobNode(ctx, run, evs...); err != nil && !errors.Is(err, store.ErrConflict) {
		return true, fmt.Errorf("mark %s running: %w", n.Name, err)
	}
	return true, nil
}

// onStatus acts on an agent's answer to a status query (checkStatus). "running": nothing to
// do, the node is due for its next check already. Anything else means a message was lost:
// a finished transaction whose result never arrived, or a request that never arrived
// ("unknown"). Both are answered by sending the request again: an agent never runs a
// transaction twice and answers a repeat with its spooled result, and runs a request it
// never had.
func (s *Service) onStatus(ctx context.Context, node string, st protocol.StatusResults) error {
	n, err := s.findOwn(ctx, node, st.TransactionID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // a job we no longer know
	}
	if err != nil {
		return err
	}
	if n.State != jobs.NodeRunning || st.Status == "running" {
		return nil
	}
	if st.Status == "unknown" && n.StartedAt != nil {
		// A request that never arrived is not started past its job's timeout: the sweep
		// ends the node failed instead.
		sp, err := s.specByID(ctx, n.JobID)
		if err != nil {
			return err
		}
		if d := s.timeoutDeadline(sp, *n.StartedAt); d != nil && !s.clock().Before(*d) {
			s.log.Info("status query: the request never arrived and its timeout has passed", "node", n)
			return nil
		}
	}
	s.log.Info("status query: sending the request again", "node", n, "status", st.Status)
	return s.resend(ctx, n)
}

// NodeDisconnected records that connection conn of node has closed. A close of a connection
// that a newer one has replaced changes nothing.
func (s *Service) NodeDisconnected(ctx context.Context, node, conn string) error {
	if err := s.store.MarkNodeDisconnected(ctx, node, conn); err != nil {
		return fmt.Errorf("inventory %s: %w", node, err)
	}
	return nil
}
