package agent

import (
	"slices"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

// An outcome whose request said no_ack (protocol.NonBlockingRequest.NoAck) gets no
// acknowledgement: once written to the connection it counts as delivered (its spool entry is
// marked sent, and no new connection sends it again). It is sent again when the server asks
// (a status query, a repeated request), when the server refuses it with a retryable
// error_message, and when API Gateway answers some message with an error frame of its own
// ({"message": "Too Many Requests", "connectionId": …}), which does not say which message it
// is about: then every no_ack outcome sent on the connection in the last Config.AckTimeout
// goes again, after a backoff that grows while the frames keep coming.

// sentNoAck is a no_ack outcome sent on the current connection.
type sentNoAck struct {
	txn, msgID string
	at         time.Time
	retryWait  time.Duration // the wait after the next retryable refusal without a wait of its own
}

// gatewayRetry schedules the resending that API Gateway's error frames call for: one timer at a
// time, the outcomes of every frame until it fires merged into it.
type gatewayRetry struct {
	timer   *time.Timer // nil when no resending is scheduled
	txns    []string
	backoff time.Duration // the wait before the next scheduled resending
	last    time.Time     // the latest frame
}

// gatewayRetryWait is the first wait before outcomes go again after a gateway error frame; it
// doubles while frames keep coming (up to Config.MaxAckTimeout), and starts again after a
// quiet Config.MaxAckTimeout.
const gatewayRetryWait = time.Second

// sentNoAck records that the no_ack outcome of txn goes out as message msgID on the current
// connection, and forgets those sent longer than Config.AckTimeout ago.
func (a *Agent) sentNoAck(txn, msgID string) {
	o := &a.out
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ctx == nil {
		return
	}
	now := time.Now()
	retry := minRetryWait
	kept := o.noAck[:0]
	for _, s := range o.noAck {
		switch {
		case s.txn == txn:
			retry = s.retryWait
		case now.Sub(s.at) <= a.cfg.AckTimeout:
			kept = append(kept, s)
		}
	}
	o.noAck = append(kept, sentNoAck{txn: txn, msgID: msgID, at: now, retryWait: retry})
}

// refusedNoAck handles the server's error_message about message ed.ID when that is a no_ack
// outcome: retryable, it goes again after the wait named (or a backoff of its own); final, it
// is left to the server's status queries. The caller holds o.mu. It reports whether ed.ID was
// such an outcome.
func (a *Agent) refusedNoAck(ed protocol.ErrorData, wait time.Duration) bool {
	o := &a.out
	i := slices.IndexFunc(o.noAck, func(s sentNoAck) bool { return s.msgID == ed.ID })
	if i < 0 {
		return false
	}
	s := &o.noAck[i]
	if !ed.Retry {
		a.log.Warn("the server refused a result", "transaction_id", s.txn, "description", ed.Description)
		return true
	}
	wait = a.retryAfter(ed, wait, &s.retryWait, s.txn)
	gen, txn := o.gen, s.txn
	time.AfterFunc(wait, func() { a.resendNoAck(gen, []string{txn}, "sent again after the server's refusal") })
	return true
}

// gatewayError handles an API Gateway error frame: the no_ack outcomes sent on this connection
// in the last Config.AckTimeout go again after the backoff (merged with those of any frame
// already waiting). Outcomes the server acknowledges have their own timers.
func (a *Agent) gatewayError(msg string) {
	o := &a.out
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	for _, s := range o.noAck {
		if now.Sub(s.at) <= a.cfg.AckTimeout && !slices.Contains(o.gw.txns, s.txn) {
			o.gw.txns = append(o.gw.txns, s.txn)
		}
	}
	if now.Sub(o.gw.last) > a.cfg.MaxAckTimeout || o.gw.backoff == 0 {
		o.gw.backoff = min(gatewayRetryWait, a.cfg.MaxAckTimeout)
	}
	o.gw.last = now
	a.log.Warn("API Gateway refused a message", "message", msg, "results_to_send_again", len(o.gw.txns))
	if o.ctx == nil || o.gw.timer != nil || len(o.gw.txns) == 0 {
		return // nothing to send, or a resending is scheduled already: it takes these too
	}
	wait := jitter(o.gw.backoff)
	o.gw.backoff = min(2*o.gw.backoff, a.cfg.MaxAckTimeout)
	gen := o.gen
	o.gw.timer = time.AfterFunc(wait, func() {
		o.mu.Lock()
		if o.gen != gen {
			o.mu.Unlock()
			return
		}
		txns := o.gw.txns
		o.gw.txns, o.gw.timer = nil, nil
		o.mu.Unlock()
		a.resendNoAck(gen, txns, "sent again after API Gateway's error frame")
	})
}

// resendNoAck sends the outcomes of txns again on connection gen, unless it has ended or the
// server acknowledged them meanwhile.
func (a *Agent) resendNoAck(gen uint64, txns []string, why string) {
	o := &a.out
	o.mu.Lock()
	ctx := o.ctx
	current := o.gen == gen
	o.mu.Unlock()
	if !current || ctx == nil || ctx.Err() != nil {
		return // the next connection, or the server's status queries, take over
	}
	for _, txn := range txns {
		st, err := a.loadOutcome(txn)
		if err != nil || !st.pending() {
			continue
		}
		if err := a.deliver(ctx, st); err != nil {
			a.log.Warn("resend result", "transaction_id", txn, "error", err)
			return
		}
		a.log.Info("result "+why, "transaction_id", txn)
	}
}
