// Package protocol is Baton's wire protocol between the control plane and agents: the PCP v2
// envelope (one JSON object per text WebSocket frame) carrying PXP v1 messages, plus the few
// message types Baton adds beyond PXP (result acknowledgement, facts, cancel, keepalive).
//
// One extension changes the data of an existing type: a Baton server's error_message may carry
// an object (ErrorData: id, description, retry, retry_after_ms) instead of PCP v2's bare
// description string, to say that a refused message — typically a result the server could not
// record, or one over the connection's rate limit — should be sent again, and when. Peers read
// both forms with DecodeErrorMessage; golden files error_message.json and
// error_message_retry.json pin them. Task results carry Baton's flags beside pxp-agent's fields
// (timed_out, canceled, output_object, and outcome_unknown: the agent restarted while the task
// ran and cannot know how it ended; golden file rpc_non_blocking_response_outcome_unknown.json).
//
// It imports only the standard library. It does not know about connections, jobs or storage;
// Decode rejects what is not a well-formed envelope of a known type so that callers can answer
// with an error_message and carry on.
package protocol
