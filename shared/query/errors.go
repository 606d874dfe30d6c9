package query

import "fmt"

// Error is the error every failed Parse returns. Pos is the 0-based byte offset in the query
// string where the problem was found (len(query) when the query ended too early). The HTTP
// layer reports it as a 400 puppetlabs.orchestrator/query-error.
type Error struct {
	Pos int
	Msg string
}

func (e *Error) Error() string {
	return fmt.Sprintf("query error at position %d: %s", e.Pos, e.Msg)
}
