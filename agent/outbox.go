package agent

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

// outbox follows the outcomes sent on the current connection until the server acknowledges
// them. An outcome not acknowledged within Config.AckTimeout is sent again on the same
// connection, then after twice as long each time (up to Config.MaxAckTimeout); one the server
// refuses with a retryable error_message (protocol.ErrorData) is sent again after the wait it
// names, or after a backoff of its own. Nothing here is kept across connections: every new
// connection starts by sending everything the spool holds unacknowledged.
//
// Waiting costs no goroutine: each outcome has a timer (time.AfterFunc).
type outbox struct {
	mu    sync.Mutex
	ctx   context.Context // the current connection's; nil between connections
	gen   uint64          // counts connections, so that a late timer of an old one does nothing
	byTxn map[string]*delivery
	byMsg map[string]string // message id of the latest sending → transaction id
	facts string            // message id of the latest facts
	// noAck lists the no_ack outcomes sent on this connection within Config.AckTimeout,
	// oldest first: what an API Gateway error frame or a refusal may be about (noack.go).
	noAck []sentNoAck
	gw    gatewayRetry
}

type delivery struct {
	msgID string
	// ackWait is the wait for an acknowledgement after the next sending; retryWait the wait
	// after the next retryable refusal without a wait of its own.
	ackWait, retryWait time.Duration
	timer              *time.Timer
}

// minRetryWait is the first backoff after a retryable refusal that names no wait, and the
// least wait after one that does.
const minRetryWait = 100 * time.Millisecond

// jitter returns d plus up to half of it again, at random, so that outcomes refused together
// are not all sent again at the same moment.
func jitter(d time.Duration) time.Duration { return d + rand.N(d/2+1) }

// outboxOpen starts following outcomes on a new connection whose context is ctx.
func (a *Agent) outboxOpen(ctx context.Context) {
	a.outboxClose()
	o := &a.out
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ctx = ctx
}

// outboxClose forgets every outcome followed on the connection that ended.
func (a *Agent) outboxClose() {
	o := &a.out
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, d := range o.byTxn {
		d.timer.Stop()
	}
	o.gen++
	if o.gw.timer != nil {
		o.gw.timer.Stop()
	}
	o.ctx, o.byTxn, o.byMsg, o.facts, o.noAck = nil, map[string]*delivery{}, map[string]string{}, "", nil
	o.gw = gatewayRetry{backoff: o.gw.backoff, last: o.gw.last}
}

// deliver sends a finished transaction's outcome and follows it until it is acknowledged;
// one the server will not acknowledge (no_ack) is marked sent once it went out.
func (a *Agent) deliver(ctx context.Context, st txnState) error {
	e, err := outcomeEnvelope(st)
	if err != nil {
		return err
	}
	if txn := st.meta.TransactionID; st.meta.NoAck {
		// Followed before it is sent: a refusal or a gateway frame may come back at once.
		a.sentNoAck(txn, e.ID)
		if err := a.send(ctx, e); err != nil {
			return err
		}
		if err := a.spool.markSent(txn); err != nil {
			// Not marked: the next connection sends it again, which the server recognises.
			a.log.Warn("mark result as sent", "transaction_id", txn, "error", err)
		}
		return nil
	}
	// Followed before it is sent: the server's answer may come back at once.
	a.sent(st.meta.TransactionID, e.ID)
	return a.send(ctx, e)
}

// sent records that the outcome of txn went out as message msgID, and (re)arms its wait for
// the acknowledgement.
func (a *Agent) sent(txn, msgID string) {
	o := &a.out
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ctx == nil {
		return // the connection ended meanwhile: the next one sends it again
	}
	d := o.byTxn[txn]
	if d == nil {
		d = &delivery{ackWait: a.cfg.AckTimeout, retryWait: minRetryWait}
		gen := o.gen
		d.timer = time.AfterFunc(time.Hour, func() { a.redeliver(gen, txn) })
		o.byTxn[txn] = d
	} else {
		delete(o.byMsg, d.msgID)
	}
	d.msgID = msgID
	o.byMsg[msgID] = txn
	d.timer.Reset(jitter(d.ackWait))
	d.ackWait = min(2*d.ackWait, a.cfg.MaxAckTimeout)
}

// acknowledged stops following txn's outcome.
func (a *Agent) acknowledged(txn string) {
	o := &a.out
	o.mu.Lock()
	defer o.mu.Unlock()
	if d := o.byTxn[txn]; d != nil {
		d.timer.Stop()
		delete(o.byMsg, d.msgID)
		delete(o.byTxn, txn)
	}
}

// refused handles the server's error_message about message ed.ID. A retryable refusal of an
// outcome brings its next sending forward to the wait the server names (or a backoff); a final
// one stops sending it on this connection (the next connection tries again). A retryable
// refusal of the facts sends them again. It reports whether the message was one it follows.
func (a *Agent) refused(ed protocol.ErrorData) bool {
	o := &a.out
	o.mu.Lock()
	defer o.mu.Unlock()
	if ed.ID == "" || o.ctx == nil {
		return false
	}
	wait := time.Duration(ed.RetryAfterMS) * time.Millisecond
	if ed.ID == o.facts {
		if ed.Retry {
			ctx := o.ctx
			time.AfterFunc(jitter(max(wait, minRetryWait)), func() { a.sendFacts(ctx, false) })
		}
		return true
	}
	txn, ok := o.byMsg[ed.ID]
	if !ok {
		return a.refusedNoAck(ed, wait)
	}
	d := o.byTxn[txn]
	if !ed.Retry {
		a.log.Warn("the server refused a result; it is sent again on the next connection",
			"transaction_id", txn, "description", ed.Description)
		d.timer.Stop()
		delete(o.byMsg, d.msgID)
		delete(o.byTxn, txn)
		return true
	}
	wait = a.retryAfter(ed, wait, &d.retryWait, txn)
	d.timer.Reset(wait)
	return true
}

// retryAfter is the wait before a result the server refused with a retryable error goes again:
// the wait it named, or the result's own backoff (doubled for next time, up to
// MaxAckTimeout), jittered.
func (a *Agent) retryAfter(ed protocol.ErrorData, wait time.Duration, backoff *time.Duration, txn string) time.Duration {
	if wait <= 0 {
		wait = *backoff
		*backoff = min(2**backoff, a.cfg.MaxAckTimeout)
	}
	wait = jitter(max(wait, minRetryWait))
	a.log.Info("the server could not take a result now; sending it again", "transaction_id", txn,
		"wait", wait, "description", ed.Description)
	return wait
}

// factsSent records the message id of the facts just sent.
func (a *Agent) factsSent(msgID string) {
	o := &a.out
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ctx != nil {
		o.facts = msgID
	}
}

// redeliver sends txn's outcome again, unless the connection it was sent on has ended or
// the outcome was acknowledged meanwhile.
func (a *Agent) redeliver(gen uint64, txn string) {
	o := &a.out
	o.mu.Lock()
	ctx := o.ctx
	current := o.gen == gen && o.byTxn[txn] != nil
	o.mu.Unlock()
	if !current || ctx == nil || ctx.Err() != nil {
		return
	}
	st, err := a.loadOutcome(txn)
	if err != nil || !st.pending() {
		a.acknowledged(txn) // acknowledged meanwhile, or gone: nothing left to send
		return
	}
	a.log.Info("no acknowledgement for a result; sending it again", "transaction_id", txn)
	if err := a.deliver(ctx, st); err != nil && ctx.Err() == nil {
		a.log.Warn("resend result", "transaction_id", txn, "error", err)
	}
}

// outcomeEnvelope builds a finished transaction's rpc_non_blocking_response or
// rpc_error_message.
func outcomeEnvelope(st txnState) (protocol.Envelope, error) {
	m := st.meta
	if st.errDesc != "" {
		return protocol.New(protocol.TypeRPCError, protocol.ServerURI,
			protocol.RPCError{TransactionID: m.TransactionID, ID: m.RequestID, Description: st.errDesc})
	}
	return protocol.New(protocol.TypeNonBlockingResponse, protocol.ServerURI,
		protocol.NonBlockingResponse{TransactionID: m.TransactionID, Results: st.results})
}
