package bench

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/greenlane-pos/greenlane/lanedb"
)

// The counter child (`greenlane bench child counter`) writes the lane DB
// as the lane's counter program does, from another OS process and through
// SQLite's own locking rather than greenlane's writer: a short
// BEGIN IMMEDIATE transaction every counterEvery, in turn inserting a staff
// member and completing a one-line cash sale (as integration's counter
// process does). It is ready after its first transaction, and its result is
// a counterResult.
//
// A transaction that gives up on the lock (SQLITE_BUSY after the busy
// timeout: the lane kept the file locked for 10 s) is counted and the loop
// goes on, since that is what the soak measures; any other error ends it.

// counterEvery is the counter's pace: a busy counter rings up a sale every
// few seconds, so this is generous, and frequent enough that the lane's
// writer sees another process writing all the time (see its yieldPolicy).
const counterEvery = 20 * time.Millisecond

// counterBusyTimeout is the counter's busy_timeout, in milliseconds, as the
// counter program opens the lane DB.
const counterBusyTimeout = 10000

type counterResult struct {
	Transactions int64     `json:"transactions"` // committed
	Sales        int64     `json:"sales"`
	Staff        int64     `json:"staff"`
	Busy         int64     `json:"busy"` // gave up on the lock
	BusyExample  string    `json:"busy_example,omitempty"`
	Wait         histogram `json:"wait"`          // BEGIN IMMEDIATE: the wait for the write lock
	SlowestTx    int64     `json:"slowest_tx_ns"` // BEGIN to COMMIT, the slowest
	ElapsedNS    int64     `json:"elapsed_ns"`
}

type counterLoop struct {
	conn    *sql.DB
	res     counterResult
	slowest time.Duration
}

func counterChild(ctx context.Context, o childOrder, ready func(int) error, orders <-chan childOrder) (any, error) {
	conn, err := openCounterDB(o.DB)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for range orders {
		}
		stop()
	}()
	c := &counterLoop{conn: conn}
	if err := c.run(ctx, ready); err != nil {
		return nil, err
	}
	c.res.SlowestTx = int64(c.slowest)
	return &c.res, nil
}

// openCounterDB opens the lane DB as the counter program does: its own
// connection, WAL, a 10 s busy timeout, every transaction BEGIN IMMEDIATE.
func openCounterDB(path string) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("counter DB path %q: %w", path, err)
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", counterBusyTimeout))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	conn, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: abs}).String()+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open the lane DB %s: %w", abs, err)
	}
	conn.SetMaxOpenConns(1)
	if err := conn.Ping(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("open the lane DB %s: %w", abs, err)
	}
	return conn, nil
}

func (c *counterLoop) run(ctx context.Context, ready func(int) error) error {
	tick := time.NewTicker(counterEvery)
	defer tick.Stop()
	start := time.Now()
	defer func() { c.res.ElapsedNS = int64(time.Since(start)) }()
	// A transaction is never interrupted half-way: stopping waits for it.
	txCtx := context.WithoutCancel(ctx)
	for n := 0; ; n++ {
		if err := c.transaction(txCtx, n); err != nil {
			return err
		}
		if n == 0 {
			if err := ready(1); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// transaction runs the n-th transaction: a staff row or a sale in turn.
func (c *counterLoop) transaction(ctx context.Context, n int) error {
	began := time.Now()
	tx, err := c.conn.BeginTx(ctx, nil) // BEGIN IMMEDIATE: waits for the write lock
	c.res.Wait.record(time.Since(began))
	if err == nil {
		if n%2 == 0 {
			err = counterStaff(ctx, tx, n)
		} else {
			err = counterSale(ctx, tx)
		}
		if err == nil {
			err = tx.Commit()
		} else {
			_ = tx.Rollback()
		}
	}
	switch {
	case lanedb.IsBusy(err):
		c.res.Busy++
		if c.res.BusyExample == "" {
			c.res.BusyExample = err.Error()
		}
		return nil
	case err != nil:
		return fmt.Errorf("counter transaction %d: %w", n+1, err)
	}
	c.slowest = max(c.slowest, time.Since(began))
	c.res.Transactions++
	if n%2 == 0 {
		c.res.Staff++
	} else {
		c.res.Sales++
	}
	return nil
}

func counterStaff(ctx context.Context, tx *sql.Tx, n int) error {
	physkey := uuid.NewString()
	if _, err := tx.ExecContext(ctx, `INSERT INTO staff (tid, physkey, name, firstname, lastname)
		VALUES ((SELECT COALESCE(MAX(tid), 0) + 1 FROM staff), ?, ?, 'Counter', 'Process')`,
		physkey, fmt.Sprintf("Counter Process %d", n)); err != nil {
		return fmt.Errorf("insert staff: %w", err)
	}
	res, err := tx.ExecContext(ctx, `UPDATE staff SET name = name || ' (temp)', active = 0 WHERE physkey = ?`, physkey)
	if err != nil {
		return fmt.Errorf("update staff: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("update staff changed %d rows", n)
	}
	return nil
}

// counterSale rings up and completes a one-line cash sale (not a presell),
// numbered with the lane's next sid as the lane itself numbers sales.
func counterSale(ctx context.Context, tx *sql.Tx) error {
	var sid int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(sid), 0) + 1 FROM sales`).Scan(&sid); err != nil {
		return fmt.Errorf("next sid: %w", err)
	}
	now := time.Now()
	local, utc := now.Format(time.DateTime), now.UTC().Format(time.DateTime)
	physkey := uuid.NewString()
	if _, err := tx.ExecContext(ctx, `INSERT INTO sales (physkey, random_key, sid, phase, startdt, completeddt,
		completeddtutc, saletotal_cents, teller, location, created_by, updated_utc)
		VALUES (?, ?, ?, 1, ?, ?, ?, 550, 1, 1, 'bench counter-proc', ?)`,
		physkey, uuid.NewString(), sid, local, local, utc, utc); err != nil {
		return fmt.Errorf("insert sale: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO sale_lines (sale_physkey, seqnce, pid, description, plu, qty,
		unitprice_cents, prediscountprice_cents, totalprice_cents, linesource)
		VALUES (?, 1, 1001, 'Flat White', 'FW', 1, 550, 550, 550, 1)`, physkey); err != nil {
		return fmt.Errorf("insert line: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO payments (sale_physkey, sequence, type, amount_cents, dt)
		VALUES (?, 1, (SELECT code FROM payment_types WHERE globalcode = 1), 550, ?)`, physkey, local); err != nil {
		return fmt.Errorf("insert payment: %w", err)
	}
	return nil
}
