package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"unicode"
)

// SQLite spends most of a small statement's time parsing it: the store prepares each query
// once and keeps it, on the committer's connection for writes and per connection of the read
// pool (database/sql keeps a prepared statement per connection) for reads outside
// transactions. Queries whose text varies without bound (IN lists, filters) beyond
// maxCachedStmts distinct texts are prepared each time instead.
const maxCachedStmts = 512

// dbtx is what a store operation runs its statements on: a write transaction (txn) or a read
// one (rtx).
type dbtx interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) scanner
	// PrepareContext returns a statement to run many times; closing it is always right.
	PrepareContext(ctx context.Context, query string) (preparedStmt, error)
}

type preparedStmt interface {
	ExecContext(ctx context.Context, args ...any) (sql.Result, error)
	Close() error
}

// errRow is a row whose statement could not be prepared.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// txn is the committer's transaction: statements on its connection, prepared once. It
// notes whether the running operation may have changed the database (changed): an
// operation that fails without changing anything needs nothing undone, so operations run
// without savepoints unless careful (see Store.runGroup).
type txn struct {
	s       *Store
	careful bool  // each operation (and each inSavepoint item) runs in a savepoint
	changed bool  // a statement of the running operation may have changed the database
	undo    error // an item of the running operation failed after changing something
}

// noteExec records what an executed statement may have changed. A data-changing statement
// (INSERT, UPDATE, DELETE, REPLACE, or one of these after WITH) changed rows when it says
// so; one that failed on a constraint was backed out whole by SQLite (its conflict
// resolution is ABORT). Any other statement, and any other failure, counts as a change.
func (t *txn) noteExec(query string, res sql.Result, err error) {
	if !changesRows(query) {
		t.changed = true
		return
	}
	if err != nil {
		if !isConstraint(err) {
			t.changed = true
		}
		return
	}
	// (That holds for the schema's constraints and statements: none resolves conflicts by
	// FAIL or by ROLLBACK, and no trigger raises an error, any of which would keep or drop
	// rows already changed. TestNoConflictResolutionThatKeepsChanges guards it.)
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		t.changed = true
	}
}

// changesRows reports whether query's first keyword is one of a data-changing statement,
// whose changed rows sql.Result counts.
func changesRows(query string) bool {
	switch firstKeyword(query) {
	case "INSERT", "UPDATE", "DELETE", "REPLACE", "WITH":
		return true
	}
	return false
}

// readsOnly reports whether query is a SELECT, which changes nothing.
func readsOnly(query string) bool { return firstKeyword(query) == "SELECT" }

// firstKeyword is query's first word, upper-cased.
func firstKeyword(query string) string {
	query = strings.TrimLeft(query, " \t\r\n(")
	end := strings.IndexFunc(query, func(r rune) bool { return !unicode.IsLetter(r) })
	if end < 0 {
		end = len(query)
	}
	return strings.ToUpper(query[:end])
}

func (t *txn) stmt(ctx context.Context, query string) (*sql.Stmt, bool, error) {
	if st, ok := t.s.wstmts[query]; ok {
		return st, true, nil
	}
	st, err := t.s.wconn.PrepareContext(ctx, query)
	if err != nil {
		return nil, false, err
	}
	if len(t.s.wstmts) >= maxCachedStmts {
		return st, false, nil
	}
	t.s.wstmts[query] = st
	return st, true, nil
}

func (t *txn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, cached, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if !cached {
		defer st.Close()
	}
	res, err := st.ExecContext(ctx, args...)
	t.noteExec(query, res, err)
	return res, err
}

func (t *txn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if !readsOnly(query) {
		t.changed = true // RETURNING: its rows changed are not counted
	}
	st, cached, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if !cached {
		// An uncached statement must outlive its rows: run the query unprepared instead.
		st.Close()
		return t.s.wconn.QueryContext(ctx, query, args...)
	}
	return st.QueryContext(ctx, args...)
}

func (t *txn) QueryRowContext(ctx context.Context, query string, args ...any) scanner {
	if !readsOnly(query) {
		t.changed = true
	}
	st, cached, err := t.stmt(ctx, query)
	if err != nil {
		return errRow{err}
	}
	if !cached {
		st.Close()
		return t.s.wconn.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

func (t *txn) PrepareContext(ctx context.Context, query string) (preparedStmt, error) {
	st, cached, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if !cached {
		return notedStmt{st, t, query, true}, nil
	}
	return notedStmt{st, t, query, false}, nil
}

// notedStmt is a statement prepared on the committer's connection whose executions the
// transaction notes; a cached one's Close keeps it.
type notedStmt struct {
	*sql.Stmt
	t     *txn
	query string
	owned bool // not cached: Close closes it
}

func (n notedStmt) ExecContext(ctx context.Context, args ...any) (sql.Result, error) {
	res, err := n.Stmt.ExecContext(ctx, args...)
	n.t.noteExec(n.query, res, err)
	return res, err
}

func (n notedStmt) Close() error {
	if n.owned {
		return n.Stmt.Close()
	}
	return nil
}

// closeWriteStmts closes the committer's statements (after the committer stopped).
func (s *Store) closeWriteStmts() error {
	var errs []error
	for q, st := range s.wstmts {
		errs = append(errs, st.Close())
		delete(s.wstmts, q)
	}
	return errors.Join(errs...)
}

// rtx is a read transaction of the pool. Its statements are parsed each time: preparing a
// cached statement needs a connection of the pool, which a transaction holding one must not
// wait for.
type rtx struct{ tx *sql.Tx }

func (r rtx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return r.tx.ExecContext(ctx, query, args...)
}

func (r rtx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return r.tx.QueryContext(ctx, query, args...)
}

func (r rtx) QueryRowContext(ctx context.Context, query string, args ...any) scanner {
	return r.tx.QueryRowContext(ctx, query, args...)
}

func (r rtx) PrepareContext(ctx context.Context, query string) (preparedStmt, error) {
	return r.tx.PrepareContext(ctx, query)
}

// readPool runs reads outside transactions on the pool, with cached statements.
type readPool struct {
	db    *sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

func (p *readPool) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	p.mu.Lock()
	st, ok := p.stmts[query]
	full := len(p.stmts) >= maxCachedStmts
	p.mu.Unlock()
	if ok || full {
		return st, nil // nil when the cache is full: the caller runs the query unprepared
	}
	st, err := p.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.stmts[query]; ok { // another goroutine prepared it meanwhile
		st.Close()
		return prev, nil
	}
	p.stmts[query] = st
	return st, nil
}

func (p *readPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := p.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return p.db.QueryContext(ctx, query, args...)
	}
	return st.QueryContext(ctx, args...)
}

func (p *readPool) QueryRowContext(ctx context.Context, query string, args ...any) scanner {
	st, err := p.stmt(ctx, query)
	if err != nil {
		return errRow{err}
	}
	if st == nil {
		return p.db.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

func (p *readPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for q, st := range p.stmts {
		st.Close()
		delete(p.stmts, q)
	}
}
