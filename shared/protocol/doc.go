// Package protocol is Baton's wire protocol between the control plane and agents: the PCP v2
// envelope (one JSON object per text WebSocket frame) carrying PXP v1 messages, plus the few
// message types Baton adds beyond PXP (result acknowledgement, facts, cancel).
//
// It imports only the standard library. It does not know about connections, jobs or storage;
// Decode rejects what is not a well-formed envelope of a known type so that callers can answer
// with an error_message and carry on.
package protocol
