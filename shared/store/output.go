package store

import "context"

// OutputChunk is one stored piece of a node's live task output (protocol.OutputChunk as
// kept): Seq counts the chunks of one node-run from 1; Stream is "stdout" or "stderr".
type OutputChunk struct {
	Seq    int64
	Stream string
	Data   string
}

// MaxOutputList bounds the limit of one ListOutput call.
const MaxOutputList = 1000

// Output is the live task output part of the contract: a node's chunks within a job, each
// stored once under its Seq.
type Output interface {
	// PutOutput stores chunks of node's output in job jobID (each with Seq >= 1), all in one
	// call's writes (batched). Storing a Seq again with the same chunk changes nothing, so
	// duplicates and reordering never change what is stored; a Seq's chunk never changes
	// (agents send the same chunk again, never another one). It does not check that the job
	// or the node exist (the caller checked the transaction the chunks came with); what it
	// stores expires with the job.
	PutOutput(ctx context.Context, jobID int64, node string, chunks []OutputChunk) error
	// ListOutput returns up to limit (1 to MaxOutputList) of node's chunks in job jobID whose
	// Seq is greater than after, by Seq; gaps are returned as they are (chunks missing in
	// between are not waited for). No output is an empty list. Its cost follows what it
	// returns, not the length of the output.
	ListOutput(ctx context.Context, jobID int64, node string, after int64, limit int) ([]OutputChunk, error)
}
