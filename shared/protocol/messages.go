package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ValidTransactionID reports whether id is acceptable as a PXP transaction id: 1-128
// characters of [A-Za-z0-9_.-], the first a letter or digit. It keeps transaction ids
// filesystem-safe: agents use them as spool directory names. (A loop, not a regular
// expression: it runs for every message at fleet scale.)
func ValidTransactionID(id string) bool {
	if len(id) == 0 || len(id) > 128 || !alnum(id[0]) {
		return false
	}
	for i := 1; i < len(id); i++ {
		if c := id[i]; !alnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }

func checkTxn(id string) error {
	if !ValidTransactionID(id) {
		return errors.New("transaction_id must be 1-128 characters of [A-Za-z0-9_.-]")
	}
	return nil
}

// BlockingRequest is the data of rpc_blocking_request.
type BlockingRequest struct {
	TransactionID string          `json:"transaction_id"`
	Module        string          `json:"module"`
	Action        string          `json:"action"`
	Params        json.RawMessage `json:"params,omitempty"`
}

func (r BlockingRequest) Validate() error {
	if r.Module == "" || r.Action == "" {
		return errors.New("module and action are required")
	}
	return checkTxn(r.TransactionID)
}

// BlockingResponse is the data of rpc_blocking_response.
type BlockingResponse struct {
	TransactionID string          `json:"transaction_id"`
	Results       json.RawMessage `json:"results"`
}

func (r BlockingResponse) Validate() error {
	if len(r.Results) == 0 {
		return errors.New("results is required")
	}
	return checkTxn(r.TransactionID)
}

// NonBlockingRequest is the data of rpc_non_blocking_request.
type NonBlockingRequest struct {
	TransactionID string          `json:"transaction_id"`
	NotifyOutcome bool            `json:"notify_outcome"`
	Module        string          `json:"module"`
	Action        string          `json:"action"`
	Params        json.RawMessage `json:"params,omitempty"`
	// NoAck (a Baton extension) says that the server pays per message (AWS) and will not
	// acknowledge the outcome (TypeResultAck): the agent takes a sent outcome as delivered,
	// does not send it again on a timer or a new connection, and sends it again only when the
	// server asks (a status query or a repeated request), refuses it with a retryable
	// error_message, or when API Gateway answers with an error frame; a lost outcome is found
	// by the server's status queries. Nor does the agent send a provisional response of its
	// own accord (the server recorded the node running when it sent the request): only in
	// answer to a repeated request. Absent: every outcome is acknowledged, as before.
	NoAck bool `json:"no_ack,omitempty"`
}

func (r NonBlockingRequest) Validate() error {
	if r.Module == "" || r.Action == "" {
		return errors.New("module and action are required")
	}
	return checkTxn(r.TransactionID)
}

// ProvisionalResponse is the data of rpc_provisional_response.
type ProvisionalResponse struct {
	TransactionID string `json:"transaction_id"`
}

func (r ProvisionalResponse) Validate() error { return checkTxn(r.TransactionID) }

// NonBlockingResponse is the data of rpc_non_blocking_response.
type NonBlockingResponse struct {
	TransactionID string          `json:"transaction_id"`
	Results       json.RawMessage `json:"results"`
}

func (r NonBlockingResponse) Validate() error {
	if len(r.Results) == 0 {
		return errors.New("results is required")
	}
	return checkTxn(r.TransactionID)
}

// RPCError is the data of rpc_error_message: the request could not be run. ID is the PCP id of
// the request message.
type RPCError struct {
	TransactionID string `json:"transaction_id"`
	ID            string `json:"id"`
	Description   string `json:"description"`
}

func (r RPCError) Validate() error {
	if r.Description == "" {
		return errors.New("description is required")
	}
	return checkTxn(r.TransactionID)
}

// AssociateResponse is the data of associate_response.
type AssociateResponse struct {
	ID      string `json:"id"`
	Success bool   `json:"success"`
	Reason  string `json:"reason,omitempty"`
}

func (r AssociateResponse) Validate() error {
	if r.ID == "" {
		return errors.New("id is required")
	}
	return nil
}

// ResultAck is the data of TypeResultAck.
type ResultAck struct {
	TransactionID string `json:"transaction_id"`
}

func (r ResultAck) Validate() error { return checkTxn(r.TransactionID) }

// Facts is the data of TypeFacts.
type Facts struct {
	Facts map[string]any `json:"facts"`
}

func (f Facts) Validate() error {
	if f.Facts == nil {
		return errors.New("facts is required")
	}
	return nil
}

// Cancel is the data of TypeCancel.
type Cancel struct {
	TransactionID string `json:"transaction_id"`
}

func (c Cancel) Validate() error { return checkTxn(c.TransactionID) }

// FileURI says where an agent downloads a file: Path is either a path on the server the agent is
// connected to (its http(s) base URL is prepended) or an absolute http(s) URL (a presigned URL);
// Params are query parameters added to it.
type FileURI struct {
	Path   string            `json:"path"`
	Params map[string]string `json:"params,omitempty"`
}

// TaskFile is one file of a task in a task run request (reference §4.8).
type TaskFile struct {
	Filename  string  `json:"filename"`
	URI       FileURI `json:"uri"`
	SHA256    string  `json:"sha256"`
	SizeBytes int64   `json:"size_bytes"`
}

// TaskParams are the params of a `task` `run` request (reference §4.8). Metadata is the task's
// metadata JSON (Task Spec v1); Timeout, when > 0, is a Baton extension: seconds after which the
// agent kills the task's process group.
type TaskParams struct {
	Task     string          `json:"task"`
	Input    json.RawMessage `json:"input"`
	Files    []TaskFile      `json:"files"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	Timeout  int             `json:"timeout,omitempty"`
	// ResultUpload (Baton extension) is where results too large for one message go.
	ResultUpload *ResultUpload `json:"result_upload,omitempty"`
	// Stream (Baton extension) asks for the task's live output (TypeOutput) while it runs.
	Stream bool `json:"stream,omitempty"`
}

// ResultUpload is a presigned PUT URL for a transaction's full results; Key names the object.
type ResultUpload struct {
	URL string `json:"url"`
	Key string `json:"key"`
}

// OutputObject describes results uploaded to a ResultUpload URL: the inline Stdout and Stderr
// then hold only a head and a tail of each stream.
type OutputObject struct {
	Key       string `json:"key"`
	SizeBytes int64  `json:"size_bytes"`
	SHA256    string `json:"sha256"`
}

func (p TaskParams) Validate() error {
	if p.Task == "" {
		return errors.New("task is required")
	}
	if len(p.Files) == 0 {
		return errors.New("files needs at least one file")
	}
	for _, f := range p.Files {
		if f.Filename == "" || f.URI.Path == "" || f.SHA256 == "" {
			return errors.New("each file needs filename, uri.path and sha256")
		}
	}
	return nil
}

// TaskResults are the results of a task run as pxp-agent reports them (reference §4.8 step 9),
// plus Baton's TimedOut flag. The control plane turns them into a Bolt-style result.
type TaskResults struct {
	Exitcode int    `json:"exitcode"`
	Stdout   string `json:"stdout,omitempty"`
	Stderr   string `json:"stderr,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
	Canceled bool   `json:"canceled,omitempty"`
	// OutcomeUnknown (Baton extension) says the agent restarted while the task ran and could
	// not learn how it ended: Exitcode is -1 and Stdout an _error of kind
	// "baton/task-outcome-unknown", so a server that does not know the flag reports it all
	// the same.
	OutcomeUnknown bool `json:"outcome_unknown,omitempty"`
	// Output (Baton extension) is set when the full results were uploaded elsewhere.
	Output *OutputObject `json:"output_object,omitempty"`
}

// StatusQueryParams are the params of a `status` `query` blocking request.
type StatusQueryParams struct {
	TransactionID string `json:"transaction_id"`
}

func (p StatusQueryParams) Validate() error { return checkTxn(p.TransactionID) }

// StatusResults are the results of a status query (reference §4.5).
type StatusResults struct {
	TransactionID string `json:"transaction_id"`
	Status        string `json:"status"` // unknown | running | success | failure
	Exitcode      *int   `json:"exitcode,omitempty"`
	Stdout        string `json:"stdout,omitempty"`
	Stderr        string `json:"stderr,omitempty"`
}

func (r StatusResults) Validate() error {
	switch r.Status {
	case "unknown", "running", "success", "failure":
	default:
		return fmt.Errorf("status %q is not one of unknown, running, success, failure", r.Status)
	}
	return checkTxn(r.TransactionID)
}

// ErrorData is the data of an error_message in Baton's extended form. PCP v2's error_message
// carries the description as a bare JSON string; a Baton server sends this object instead when
// it can say more (PCP v1's error_message data was an object {id, description} too):
//
//	{"id": "<refused message id>", "description": "...", "retry": true, "retry_after_ms": 250}
//
// Retry says the refusal is temporary (a rate limit, a store that could not write): the sender
// should send the same message again, not before RetryAfterMS when that is set (otherwise
// after a backoff of its own). Without Retry the refusal is final for that message. ID repeats
// the envelope's in_reply_to. Read either form with DecodeErrorMessage; a peer that expects a
// string and does not find one loses only the description (Baton agents before this form log
// an empty one). Compatibility rule: fields are only ever added, and all are optional but
// description.
type ErrorData struct {
	ID           string `json:"id,omitempty"`
	Description  string `json:"description"`
	Retry        bool   `json:"retry,omitempty"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
}

// Validate checks that an error has a description.
func (d ErrorData) Validate() error {
	if d.Description == "" {
		return errors.New("description is required")
	}
	if d.RetryAfterMS < 0 {
		return errors.New("retry_after_ms must not be negative")
	}
	return nil
}
