package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
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

// txn is the committer's transaction: statements on its connection, prepared once.
type txn struct{ s *Store }

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
	return st.ExecContext(ctx, args...)
}

func (t *txn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
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
		return st, nil
	}
	return keptStmt{st}, nil
}

// keptStmt is a cached statement whose Close keeps it.
type keptStmt struct{ *sql.Stmt }

func (keptStmt) Close() error { return nil }

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
