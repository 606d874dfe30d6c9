package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

// Request is one non-blocking request as a ModuleHandler sees it.
type Request struct {
	// TransactionID is the PXP transaction id (the idempotency key).
	TransactionID string
	// RequestID is the PCP id of the request message.
	RequestID string
	Module    string
	Action    string
	// Params are the request's params, as sent (may hold secrets: never log or store them).
	Params json.RawMessage
	// Timeout is params.timeout in seconds when > 0; the agent ends the handler's context with
	// cause ErrTimedOut when it elapses.
	Timeout time.Duration
	// Dir is the transaction's spool directory (0700), which the handler may use for its own
	// files. The names metadata, result.json, error.json, acked, sent, started, pid, stdout,
	// stderr, exitcode and supervisor.err are the agent's.
	Dir string
}

// ModuleHandler runs one non-blocking request and returns its results (a JSON object sent as
// the rpc_non_blocking_response results). An error is reported as an rpc_error_message instead.
// The agent answers the provisional response, spools the outcome until the server acknowledges
// it, and ends ctx on timeout (cause ErrTimedOut), cancel (ErrCanceled) or shutdown
// (ErrAgentStopped); the handler must then stop its work promptly (RunCommand does).
// A "results" object with an integer "exitcode" (and optional "stdout"/"stderr" strings)
// lets status queries report success or failure; without one, success is assumed.
type ModuleHandler func(ctx context.Context, req Request) (results json.RawMessage, err error)

// WithModule registers h for non-blocking requests to module/action, replacing any earlier
// handler for the pair (including the built-in `task run`).
func WithModule(name, action string, h ModuleHandler) Option {
	return func(a *Agent) { a.modules[moduleKey{name, action}] = module{handler: h} }
}

type moduleKey struct{ module, action string }

type module struct {
	handler ModuleHandler
	// validate, when set, checks params before anything is spooled; its error is reported as
	// "invalid input for <label>".
	validate func(params json.RawMessage) error
}

type transaction struct {
	cancel context.CancelCauseFunc
	// provisional sends the provisional response if the transaction is still running when it
	// fires (Config.ProvisionalDelay).
	provisional *time.Timer
}

func label(blocking bool, module, action, txn string) string {
	kind := "non blocking"
	if blocking {
		kind = "blocking"
	}
	return fmt.Sprintf("%s '%s %s' request (transaction %s)", kind, module, action, txn)
}

// handleFrame decodes and answers one incoming frame. It never fails the connection.
func (a *Agent) handleFrame(ctx context.Context, data []byte) {
	env, err := protocol.Decode(data)
	if err != nil {
		if msg, ok := gatewayErrorFrame(data); ok {
			a.gatewayError(msg) // not the server's: nothing to answer
			return
		}
		a.log.Warn("undecodable message", "id", env.ID, "error", err)
		a.reply(ctx, protocol.NewErrorMessage(env.ID, err.Error()))
		return
	}
	switch env.MessageType {
	case protocol.TypeNonBlockingRequest:
		var r protocol.NonBlockingRequest
		if err := protocol.DecodeData(env, &r); err != nil {
			a.reply(ctx, protocol.NewErrorMessage(env.ID, err.Error()))
			return
		}
		a.handleNonBlocking(ctx, env, r)
	case protocol.TypeBlockingRequest:
		var r protocol.BlockingRequest
		if err := protocol.DecodeData(env, &r); err != nil {
			a.reply(ctx, protocol.NewErrorMessage(env.ID, err.Error()))
			return
		}
		a.handleBlocking(ctx, env, r)
	case protocol.TypeResultAck:
		var r protocol.ResultAck
		if err := protocol.DecodeData(env, &r); err != nil {
			a.reply(ctx, protocol.NewErrorMessage(env.ID, err.Error()))
			return
		}
		a.acknowledged(r.TransactionID)
		a.forgetHeld(r.TransactionID)
		if err := a.spool.ack(r.TransactionID); err != nil {
			a.log.Warn("acknowledge result", "transaction_id", r.TransactionID, "error", err)
			return
		}
		a.log.Debug("result acknowledged", "transaction_id", r.TransactionID)
	case protocol.TypeCancel:
		var r protocol.Cancel
		if err := protocol.DecodeData(env, &r); err != nil {
			a.reply(ctx, protocol.NewErrorMessage(env.ID, err.Error()))
			return
		}
		a.mu.Lock()
		t := a.running[r.TransactionID]
		if t != nil {
			t.cancel(ErrCanceled)
		}
		a.mu.Unlock()
		a.log.Info("cancel requested", "transaction_id", r.TransactionID, "was_running", t != nil)
	case protocol.TypeErrorMessage:
		// Never answer an error with an error: that could ping-pong forever.
		ed, err := protocol.DecodeErrorMessage(env)
		if err != nil {
			a.log.Warn("server reported an error", "in_reply_to", env.InReplyTo, "data", string(env.Data))
			return
		}
		if !a.refused(ed) {
			a.log.Warn("server reported an error", "in_reply_to", ed.ID, "description", ed.Description, "retry", ed.Retry)
		}
	case protocol.TypeAssociateResponse:
		a.log.Warn("unexpected associate_response", "data", string(env.Data))
	default:
		a.reply(ctx, protocol.NewErrorMessage(env.ID,
			fmt.Sprintf("message_type %s is not accepted by an agent", env.MessageType)))
	}
}

func (a *Agent) reply(ctx context.Context, e protocol.Envelope) {
	if err := a.send(ctx, e); err != nil {
		a.log.Warn("send reply", "message_type", e.MessageType, "error", err)
	}
}

func (a *Agent) replyRPCError(ctx context.Context, txn, requestID, desc string) {
	a.log.Warn("request rejected", "transaction_id", txn, "description", desc)
	if err := a.sendData(ctx, protocol.TypeRPCError,
		protocol.RPCError{TransactionID: txn, ID: requestID, Description: desc}); err != nil {
		a.log.Warn("send rpc_error_message", "transaction_id", txn, "error", err)
	}
}

func (a *Agent) handleBlocking(ctx context.Context, env protocol.Envelope, r protocol.BlockingRequest) {
	lbl := label(true, r.Module, r.Action, r.TransactionID)
	if r.Module != protocol.ModuleStatus {
		if a.knownModule(r.Module) {
			if _, ok := a.modules[moduleKey{r.Module, r.Action}]; !ok {
				a.replyRPCError(ctx, r.TransactionID, env.ID, fmt.Sprintf("unknown action '%s' for module '%s'", r.Action, r.Module))
				return
			}
			a.replyRPCError(ctx, r.TransactionID, env.ID, fmt.Sprintf("the module '%s' supports only non-blocking PXP requests", r.Module))
			return
		}
		a.replyRPCError(ctx, r.TransactionID, env.ID, "unknown module: "+r.Module)
		return
	}
	if r.Action != protocol.ActionQuery {
		a.replyRPCError(ctx, r.TransactionID, env.ID, fmt.Sprintf("unknown action '%s' for module '%s'", r.Action, r.Module))
		return
	}
	var p protocol.StatusQueryParams
	if err := json.Unmarshal(r.Params, &p); err != nil || !protocol.ValidTransactionID(p.TransactionID) {
		a.replyRPCError(ctx, r.TransactionID, env.ID, "invalid input for "+lbl)
		return
	}
	sr, st := a.status(ctx, p.TransactionID)
	res, err := json.Marshal(sr)
	if err != nil {
		a.replyRPCError(ctx, r.TransactionID, env.ID, fmt.Sprintf("Failed to execute the task for the %s. Error: %v", lbl, err))
		return
	}
	if err := a.sendData(ctx, protocol.TypeBlockingResponse,
		protocol.BlockingResponse{TransactionID: r.TransactionID, Results: res}); err != nil {
		a.log.Warn("send status response", "transaction_id", r.TransactionID, "error", err)
	}
	// A server that asks about a finished transaction it has not acknowledged lacks its
	// outcome: send that again too, whole (the status answer carries only part of it).
	if st.pending() {
		if err := a.deliver(ctx, st); err != nil {
			a.log.Warn("resend result", "transaction_id", p.TransactionID, "error", err)
		}
	}
}

func (a *Agent) knownModule(name string) bool {
	for k := range a.modules {
		if k.module == name {
			return true
		}
	}
	return false
}

func (a *Agent) handleNonBlocking(ctx context.Context, env protocol.Envelope, r protocol.NonBlockingRequest) {
	lbl := label(false, r.Module, r.Action, r.TransactionID)
	mod, ok := a.modules[moduleKey{r.Module, r.Action}]
	switch {
	case ok:
	case r.Module == protocol.ModuleStatus:
		a.replyRPCError(ctx, r.TransactionID, env.ID, fmt.Sprintf("the module '%s' supports only blocking PXP requests", r.Module))
		return
	case a.knownModule(r.Module):
		a.replyRPCError(ctx, r.TransactionID, env.ID, fmt.Sprintf("unknown action '%s' for module '%s'", r.Action, r.Module))
		return
	default:
		a.replyRPCError(ctx, r.TransactionID, env.ID, "unknown module: "+r.Module)
		return
	}
	timeout, err := readParams(r.Params)
	if err != nil {
		a.replyRPCError(ctx, r.TransactionID, env.ID, fmt.Sprintf("invalid input for %s: %v", lbl, err))
		return
	}
	if mod.validate != nil {
		if err := mod.validate(r.Params); err != nil {
			a.replyRPCError(ctx, r.TransactionID, env.ID, fmt.Sprintf("invalid input for %s: %v", lbl, err))
			return
		}
	}
	req := Request{
		TransactionID: r.TransactionID, RequestID: env.ID, Module: r.Module, Action: r.Action,
		Params: r.Params, Timeout: timeout, Dir: a.spool.txnDir(r.TransactionID),
	}

	a.mu.Lock()
	if a.stopping {
		a.mu.Unlock()
		a.replyRPCError(ctx, r.TransactionID, env.ID, fmt.Sprintf("Failed to execute the task for the %s. Error: %v", lbl, ErrAgentStopped))
		return
	}
	if _, busy := a.running[r.TransactionID]; busy {
		a.mu.Unlock()
		a.log.Info("request repeated while running; not run again", "transaction_id", r.TransactionID)
		a.sendProvisional(ctx, r.TransactionID)
		return
	}
	meta := txnMetadata{
		Module: r.Module, Action: r.Action, RequestParams: "{}", TransactionID: r.TransactionID,
		RequestID: env.ID, NotifyOutcome: r.NotifyOutcome, Start: time.Now().UTC(), Status: statusRunning,
		Timeout: int64(req.Timeout / time.Second), NoAck: r.NoAck,
	}
	created, err := a.spool.create(meta)
	if err != nil {
		a.mu.Unlock()
		a.replyRPCError(ctx, r.TransactionID, env.ID, fmt.Sprintf("Failed to execute the task for the %s. Error: %v", lbl, err))
		return
	}
	if !created {
		a.mu.Unlock()
		a.answerRepeat(ctx, env, r, meta)
		return
	}
	tctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	t := &transaction{cancel: cancel}
	a.running[r.TransactionID] = t
	a.tasks.Add(1)
	// A no_ack server pays per message and has recorded the node running when it sent the
	// request: it gets a provisional response only when it asks (a repeated request).
	if d := a.cfg.ProvisionalDelay; d > 0 && !r.NoAck {
		txn := r.TransactionID
		t.provisional = time.AfterFunc(d, func() {
			a.mu.Lock()
			_, still := a.running[txn]
			a.mu.Unlock()
			if still {
				a.sendProvisional(ctx, txn)
			}
		})
	}
	a.mu.Unlock()

	a.log.Info("transaction started", "transaction_id", r.TransactionID, "module", r.Module, "action", r.Action)
	if a.cfg.ProvisionalDelay < 0 && !r.NoAck {
		a.sendProvisional(ctx, r.TransactionID)
	}
	go a.execute(tctx, cancel, mod.handler, req, meta, lbl)
}

func (a *Agent) sendProvisional(ctx context.Context, txn string) {
	if err := a.sendData(ctx, protocol.TypeProvisionalResponse,
		protocol.ProvisionalResponse{TransactionID: txn}); err != nil {
		a.log.Warn("send provisional response", "transaction_id", txn, "error", err)
	}
}

// answerRepeat answers a request for a transaction already in the spool (and not running):
// it is never run again, and the request always gets an answer: a provisional response, and
// a finished transaction's outcome again unless the server acknowledged it (a status query
// tells it then, as with pxp-agent). An entry that cannot be read is repaired into a failure
// whose outcome is unknown; one that was accepted but has neither an outcome nor a process
// here (its outcome could not be spooled) is concluded the same way; either is then sent.
func (a *Agent) answerRepeat(ctx context.Context, env protocol.Envelope, r protocol.NonBlockingRequest, meta txnMetadata) {
	txn := r.TransactionID
	log := a.log.With("transaction_id", txn)
	log.Info("request repeated; already in the spool, not run again")
	st, err := a.loadOutcome(txn)
	if err != nil {
		log.Warn("spooled transaction unreadable; repairing it", "error", err)
		if st, err = a.spool.repair(txn, meta, time.Now().UTC()); err != nil {
			log.Error("repair spooled transaction", "error", err)
			a.replyRPCError(ctx, txn, env.ID, fmt.Sprintf("Failed to execute the task for the %s. Error: %s",
				label(false, r.Module, r.Action, txn), unreadableError))
			return
		}
	}
	if !st.finished() {
		log.Warn("accepted transaction has no outcome and no process; its outcome is unknown")
		a.concludeUnknown(ctx, st, protocol.TaskResults{}, "its outcome was never recorded")
		return
	}
	a.sendProvisional(ctx, txn)
	if !st.pending() {
		return // acknowledged, or not to be notified: a status query tells its outcome
	}
	if err := a.deliver(ctx, st); err != nil {
		log.Warn("resend spooled result", "error", err)
	}
}

// execute runs the handler, spools its outcome and sends it.
func (a *Agent) execute(ctx context.Context, cancel context.CancelCauseFunc, h ModuleHandler, req Request, meta txnMetadata, lbl string) {
	defer a.tasks.Done()
	defer cancel(nil)
	runCtx := ctx
	if req.Timeout > 0 {
		var stop context.CancelFunc
		runCtx, stop = context.WithTimeoutCause(ctx, req.Timeout, ErrTimedOut)
		defer stop()
	}
	results, err := h(runCtx, req)
	if err == nil {
		err = checkResults(results)
	}
	var desc string
	if err != nil {
		desc = fmt.Sprintf("Failed to execute the task for the %s. Error: %v", lbl, err)
		results = nil
	}
	if a.cfg.FaultHook != nil {
		a.cfg.FaultHook(FaultTaskEnded)
	}
	a.conclude(ctx, txnState{meta: txnMetadata{Module: req.Module, Action: req.Action,
		TransactionID: req.TransactionID, RequestID: req.RequestID, NotifyOutcome: meta.NotifyOutcome, NoAck: meta.NoAck}}, results, desc)
}

// readParams checks that params, when given, is a JSON object (or null), and reads its
// optional positive integer "timeout" (seconds; anything else: no timeout). One decode: it
// runs for every request.
func readParams(p json.RawMessage) (time.Duration, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var t struct {
		Timeout json.RawMessage `json:"timeout"`
	}
	if err := json.Unmarshal(p, &t); err != nil {
		return 0, errors.New("params must be a JSON object")
	}
	if len(t.Timeout) == 0 {
		return 0, nil
	}
	var n json.Number
	if json.Unmarshal(t.Timeout, &n) != nil {
		return 0, nil
	}
	secs, err := n.Int64()
	if err != nil || secs <= 0 {
		return 0, nil
	}
	return time.Duration(secs) * time.Second, nil
}

// checkResults checks that a module's results are a JSON object: valid JSON that starts
// with '{', checked in one pass without decoding.
func checkResults(r json.RawMessage) error {
	if !json.Valid(r) || !bytes.HasPrefix(bytes.TrimLeft(r, " \t\r\n"), []byte("{")) {
		return errors.New("the module returned results that are not a JSON object")
	}
	return nil
}

// gatewayErrorFrame reports whether data is one of API Gateway's own error frames, sent to
// a WebSocket client whose message was throttled or whose route failed:
// {"message": "Too Many Requests", "connectionId": "…", "requestId": "…"}.
func gatewayErrorFrame(data []byte) (string, bool) {
	var f struct {
		Message      string `json:"message"`
		ConnectionID string `json:"connectionId"`
		RequestID    string `json:"requestId"`
		MessageType  string `json:"message_type"`
	}
	if json.Unmarshal(data, &f) != nil || f.Message == "" || f.MessageType != "" || (f.ConnectionID == "" && f.RequestID == "") {
		return "", false
	}
	return f.Message, true
}
