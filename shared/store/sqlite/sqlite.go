package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	sqlitedrv "modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/baton-run/baton/shared/store"
)

var _ store.Store = (*Store)(nil)

// Store is a store.Store on one SQLite file. Writes go through a single connection, so
// writers in this process never contend for the database lock, and they are committed in
// groups: one goroutine runs every write waiting at the time in one transaction (see
// runGroup), and commits them together — one fsync for many writes, each caller still
// told of its own outcome once it is durable. Reads use a separate pool of read-only
// connections, which WAL mode lets run alongside the writer.
type Store struct {
	path   string
	w      *sql.DB // exactly one connection: wconn
	wconn  *sql.Conn
	wstmts map[string]*sql.Stmt // prepared on wconn; the committer's alone
	r      *sql.DB              // read-only pool
	rq     *readPool            // r with cached statements
	log    *slog.Logger
	// authStamp is the database's token change stamp as last opened for reading
	// (authstamp.go); nil until AuthGeneration opens it.
	stampMu    sync.Mutex
	authStamp  *os.File
	stampInfo  os.FileInfo // authStamp's, when it was opened
	stampOpens int

	ops      chan *writeOp // writes waiting for the committer
	quit     chan struct{}
	done     chan struct{}
	maxGroup int

	statsMu sync.Mutex
	stats   WriteStats
}

// WriteStats counts the store's writes and the transactions that committed them.
type WriteStats struct {
	Writes  int64 // write operations run
	Commits int64 // transactions committed (each one fsync of the WAL)
	Reruns  int64 // groups rolled back and run again in savepoints (see runGroup)
}

// Stats returns the write counters since Open.
func (s *Store) Stats() WriteStats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

type config struct {
	logger      *slog.Logger
	busyTimeout time.Duration
	readConns   int
	maxGroup    int
}

// Option configures Open.
type Option func(*config)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithBusyTimeout sets how long a statement waits for a lock held by another process before
// failing with SQLITE_BUSY (default 5s). Writers within one Store never wait on each other.
func WithBusyTimeout(d time.Duration) Option {
	return func(c *config) { c.busyTimeout = d }
}

// WithReadConns sets the size of the read connection pool (default: twice GOMAXPROCS, at
// least 4).
func WithReadConns(n int) Option {
	return func(c *config) { c.readConns = n }
}

// WithMaxGroup caps how many writes one transaction commits together (default 512; 1
// commits every write on its own).
func WithMaxGroup(n int) Option {
	return func(c *config) { c.maxGroup = n }
}

// Open opens the database file at path, creating it if needed, switches it to WAL mode and
// creates or migrates the schema. A database with a newer schema fails with ErrSchemaTooNew.
// path must be a plain file name: not ":memory:", a "file:" URI or a name containing '?'.
func Open(path string, opts ...Option) (*Store, error) {
	cfg := config{
		logger:      slog.New(slog.DiscardHandler),
		busyTimeout: 5 * time.Second,
		readConns:   max(4, 2*runtime.GOMAXPROCS(0)),
		maxGroup:    512,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open store %q: path must be a plain file name", path)
	}
	if cfg.busyTimeout < 0 || cfg.readConns < 1 || cfg.maxGroup < 1 {
		return nil, fmt.Errorf("open store %s: invalid options: busy timeout %v, read connections %d, group %d",
			path, cfg.busyTimeout, cfg.readConns, cfg.maxGroup)
	}

	if err := privateFiles(path); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}

	common := url.Values{}
	common.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", cfg.busyTimeout.Milliseconds()))
	common.Add("_pragma", "foreign_keys(1)")

	wq := url.Values{}
	wq["_pragma"] = append([]string{"journal_mode(WAL)", "temp_store(MEMORY)"}, common["_pragma"]...)
	w, err := sql.Open("sqlite", path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	ctx := context.Background()
	// The committer holds the write pool's one connection for the store's life: its cached
	// statements stay prepared on it, and transactions are plain BEGIN/COMMIT statements.
	wconn, err := w.Conn(ctx)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	var mode string
	if err := wconn.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		wconn.Close()
		w.Close()
		return nil, fmt.Errorf("open store %s: read journal mode: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		wconn.Close()
		w.Close()
		return nil, fmt.Errorf("open store %s: journal mode is %q, want wal (is the file system local?)", path, mode)
	}
	s := &Store{path: path, w: w, wconn: wconn, wstmts: map[string]*sql.Stmt{}, log: cfg.logger, maxGroup: cfg.maxGroup,
		ops: make(chan *writeOp, cfg.maxGroup), quit: make(chan struct{}), done: make(chan struct{})}
	go s.commitLoop()
	closeWrite := func() {
		s.stopCommitter()
		wconn.Close()
		w.Close()
	}
	if err := s.migrate(ctx); err != nil {
		closeWrite()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}

	rq := url.Values{"_pragma": append([]string{"query_only(1)"}, common["_pragma"]...)}
	r, err := sql.Open("sqlite", path+"?"+rq.Encode())
	if err != nil {
		closeWrite()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	r.SetMaxOpenConns(cfg.readConns)
	r.SetMaxIdleConns(cfg.readConns)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		closeWrite()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s.r = r
	s.rq = &readPool{db: r, stmts: map[string]*sql.Stmt{}}
	s.AuthGeneration() // creates the stamp beside the database if it is missing
	return s, nil
}

// Close closes the database. It must not be called while other methods are running.
func (s *Store) Close() error {
	s.stopCommitter()
	s.rq.close()
	var stamp error
	s.stampMu.Lock()
	if s.authStamp != nil {
		stamp = s.authStamp.Close()
		s.authStamp = nil
	}
	s.stampMu.Unlock()
	if err := errors.Join(s.r.Close(), s.closeWriteStmts(), s.wconn.Close(), s.w.Close(), stamp); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

// errClosed answers writes after Close.
var errClosed = errors.New("store closed")

// writeOp is one write waiting for the committer.
type writeOp struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx dbtx) error
	done chan error
}

// write runs fn in a write transaction and returns once what it wrote is committed (or, when
// fn fails, undone). fn runs on the committer's goroutine, in a transaction shared with
// other writes, and may run twice (see runGroup): it must set its outputs afresh each time; it gets a context that carries ctx's values but is
// never cancelled, so that a caller going away cannot interrupt a statement of the shared
// connection midway. A ctx that ends before fn starts fails the write.
func (s *Store) write(ctx context.Context, fn func(ctx context.Context, tx dbtx) error) error {
	op := &writeOp{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case s.ops <- op:
	case <-ctx.Done():
		return fmt.Errorf("begin write: %w", ctx.Err())
	case <-s.quit:
		return fmt.Errorf("begin write: %w", errClosed)
	}
	// Once queued, wait for the outcome whatever ctx does: the write may be committing.
	return <-op.done
}

func (s *Store) stopCommitter() {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	<-s.done
}

// commitLoop runs writes in groups: every write queued while the previous group committed
// goes into the next transaction, up to maxGroup.
func (s *Store) commitLoop() {
	defer close(s.done)
	batch := make([]*writeOp, 0, s.maxGroup)
	for {
		select {
		case op := <-s.ops:
			batch = append(batch[:0], op)
		case <-s.quit:
			return
		}
	gather:
		for len(batch) < s.maxGroup {
			select {
			case op := <-s.ops:
				batch = append(batch, op)
			default:
				break gather
			}
		}
		s.runGroup(batch)
		clear(batch)
	}
}

// runGroup runs ops in one transaction and tells each its outcome after the commit.
//
// The operations run one after another without savepoints: an operation that fails having
// changed nothing (a version miss, a refused claim: nearly every failure) needs nothing
// undone, and a savepoint costs a copy of every page an operation touches. When one fails
// after changing something, the transaction is rolled back and the whole group run again
// carefully, each operation in a savepoint of its own that undoes its changes alone.
// Operations may therefore run twice; each assigns its outputs afresh when it runs.
func (s *Store) runGroup(ops []*writeOp) {
	results := make([]error, len(ops))
	defer func() {
		for i, op := range ops {
			op.done <- results[i]
		}
	}()
	if s.runTxn(ops, results, false) {
		return
	}
	s.statsMu.Lock()
	s.stats.Reruns++
	s.statsMu.Unlock()
	s.runTxn(ops, results, true)
}

// errUndo is the failure of an operation that changed the database before it failed.
type errUndo struct{ err error }

func (e errUndo) Error() string { return e.err.Error() }

// runTxn runs ops in one transaction, each in a savepoint when careful, and commits what
// succeeded. Without care it gives up at the first operation that fails after changing
// something, rolls back and returns false.
func (s *Store) runTxn(ops []*writeOp, results []error, careful bool) bool {
	ctx := context.Background()
	tx := &txn{s: s, careful: careful}
	if _, err := tx.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		for i := range results {
			results[i] = fmt.Errorf("begin write: %w", err)
		}
		return true
	}
	ok := 0
	for i, op := range ops {
		if err := op.ctx.Err(); err != nil {
			results[i] = fmt.Errorf("begin write: %w", err)
			continue
		}
		results[i] = runOne(tx, op)
		if _, dirty := results[i].(errUndo); dirty { // only without care: a savepoint undoes
			if _, err := tx.ExecContext(ctx, `ROLLBACK`); err != nil {
				s.log.Warn("roll back a group to run it again", "err", err)
			}
			return false
		}
		if results[i] == nil {
			ok++
		}
	}
	if ok == 0 {
		if _, err := tx.ExecContext(ctx, `ROLLBACK`); err != nil {
			s.log.Warn("roll back a group of failed writes", "err", err)
		}
		return true
	}
	if _, err := tx.ExecContext(ctx, `COMMIT`); err != nil {
		if _, rbErr := tx.ExecContext(ctx, `ROLLBACK`); rbErr != nil {
			err = errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
		}
		for i := range results {
			if results[i] == nil {
				results[i] = fmt.Errorf("commit: %w", err)
			}
		}
		return true
	}
	s.statsMu.Lock()
	s.stats.Writes += int64(ok)
	s.stats.Commits++
	s.statsMu.Unlock()
	return true
}

// runOne runs one write: when careful, in a savepoint of the group's transaction, so that
// its failure undoes its own changes only; otherwise as is, its failure an errUndo when it
// may have changed something, when it panicked (what it changed before is not known), or
// when SQLite failed it for another reason than a constraint (an I/O error, a full disk:
// SQLite may have rolled back the whole transaction). A panic in fn becomes its error.
func runOne(tx *txn, op *writeOp) (err error) {
	ctx := context.WithoutCancel(op.ctx)
	if !tx.careful {
		tx.changed, tx.undo = false, nil
		defer func() {
			panicked := false
			if p := recover(); p != nil {
				err, panicked = fmt.Errorf("write panicked: %v", p), true
			}
			switch {
			case tx.undo != nil:
				err = errUndo{tx.undo}
			case err != nil && (tx.changed || panicked || sqliteFailure(err)):
				err = errUndo{err}
			}
		}()
		return op.fn(ctx, tx)
	}
	if _, err := tx.ExecContext(ctx, `SAVEPOINT op`); err != nil {
		return fmt.Errorf("begin write: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("write panicked: %v", p)
		}
		if err != nil {
			if _, rbErr := tx.ExecContext(ctx, `ROLLBACK TO op`); rbErr != nil {
				err = errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
			}
		}
		if _, relErr := tx.ExecContext(ctx, `RELEASE op`); relErr != nil && err == nil {
			err = fmt.Errorf("release savepoint: %w", relErr)
		}
	}()
	return op.fn(ctx, tx)
}

// read runs fn in a read transaction, which sees one consistent snapshot.
func (s *Store) read(ctx context.Context, fn func(tx dbtx) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // read-only: nothing to undo
	return fn(rtx{tx})
}

// sqliteFailure reports whether err holds an SQLite error other than a constraint's (which
// backs out its statement alone).
func sqliteFailure(err error) bool {
	var e *sqlitedrv.Error
	return errors.As(err, &e) && !isConstraint(err)
}

// isConstraint reports whether err is SQLite refusing a statement on a constraint.
func isConstraint(err error) bool {
	var e *sqlitedrv.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}

// isUnique reports whether err is a primary-key or unique constraint violation.
func isUnique(err error) bool {
	var e *sqlitedrv.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// affected returns the number of rows res changed.
func affected(res sql.Result) (int64, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("rows affected: %w", err)
	}
	return n, nil
}

// exists reports whether query (a SELECT 1 ...) returns a row.
func exists(ctx context.Context, tx dbtx, query string, args ...any) (bool, error) {
	var one int
	err := tx.QueryRowContext(ctx, query, args...).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// versionMiss explains an optimistic update that changed no row: ErrNotFound if the record
// (selected by existsQuery) is gone, else ErrConflict.
func versionMiss(ctx context.Context, tx dbtx, existsQuery string, args ...any) error {
	ok, err := exists(ctx, tx, existsQuery, args...)
	if err != nil {
		return err
	}
	if !ok {
		return store.ErrNotFound
	}
	return store.ErrConflict
}

// placeholders returns "?, ?, ?" for n values.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// timeLayout is fixed-width (always nine fractional digits, always UTC "Z") so that stored
// times sort as text in chronological order.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// encoder converts values to column values, keeping the first error.
type encoder struct{ err error }

func (e *encoder) time(t time.Time) string {
	u := t.UTC()
	if y := u.Year(); y < 0 || y > 9999 {
		if e.err == nil {
			e.err = fmt.Errorf("time %v: year outside 0-9999", t)
		}
		return ""
	}
	return u.Format(timeLayout)
}

func (e *encoder) timePtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return e.time(*t)
}

// blob stores empty as NULL.
func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// decoder converts column values back, keeping the first error.
type decoder struct{ err error }

func (d *decoder) time(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil && d.err == nil {
		d.err = fmt.Errorf("parse stored time %q: %w", s, err)
	}
	return t
}

func (d *decoder) timePtr(s sql.NullString) *time.Time {
	if !s.Valid {
		return nil
	}
	t := d.time(s.String)
	return &t
}

// bytesOrNil returns nil for an empty or NULL blob.
func bytesOrNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// privateFiles makes the database file readable by its owner only: it creates it 0600 when
// it does not exist (SQLite then gives its -wal and -shm files the same mode), and takes
// group and other permissions away from the file and its -wal and -shm files when they
// exist with them.
func privateFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		return f.Close()
	case !errors.Is(err, os.ErrExist):
		return fmt.Errorf("create database file: %w", err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm", path + authStampSuffix} {
		st, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("database file mode: %w", err)
		}
		if perm := st.Mode().Perm(); perm&0o077 != 0 {
			if err := os.Chmod(p, perm&0o700); err != nil {
				return fmt.Errorf("database file %s has mode %v and cannot be made private: %w", p, perm, err)
			}
		}
	}
	return nil
}
