package integration

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// The counter process: a second OS process that writes the lane DB while
// greenlane serves it, the way the lane's counter program does. The test
// binary plays it: started with GREENLANE_IT_COUNTERPROC=<db path> it runs
// counterProcMain instead of the tests and exits.
const (
	counterProcEnv    = "GREENLANE_IT_COUNTERPROC"
	counterProcForEnv = "GREENLANE_IT_COUNTERPROC_FOR" // optional run time limit (Go duration); default 2m
)

func init() {
	if db := os.Getenv(counterProcEnv); db != "" {
		os.Exit(counterProcMain(db))
	}
}

// counterProcMain runs short write transactions on the lane DB until SIGTERM
// (or the time limit), alternating a staff insert+update and a completed
// one-line cash sale. It prints "tx N" after each commit and, on a clean
// stop, "done txs=N sales=M staff=S slowest=D". Any error ends it with status 1.
func counterProcMain(db string) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "counterproc: "+format+"\n", args...)
		return 1
	}
	limit := 2 * time.Minute
	if s := os.Getenv(counterProcForEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fail("%s=%q: %v", counterProcForEnv, s, err)
		}
		limit = d
	}
	abs, err := filepath.Abs(db)
	if err != nil {
		return fail("%v", err)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	dsn := (&url.URL{Scheme: "file", Path: abs}).String() + "?" + q.Encode()
	conn, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fail("open %s: %v", abs, err)
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	deadline := time.After(limit)
	ctx := context.Background()
	var txs, sales, staff int
	var slowest time.Duration
	for {
		select {
		case <-stop:
			fmt.Printf("done txs=%d sales=%d staff=%d slowest=%s\n", txs, sales, staff, slowest)
			return 0
		case <-deadline:
			fmt.Printf("done txs=%d sales=%d staff=%d slowest=%s\n", txs, sales, staff, slowest)
			return 0
		default:
		}
		var err error
		began := time.Now()
		if txs%2 == 0 {
			err = counterStaffTx(ctx, conn, txs)
			if err == nil {
				staff++
			}
		} else {
			err = counterSaleTx(ctx, conn)
			if err == nil {
				sales++
			}
		}
		if err != nil {
			return fail("transaction %d: %v", txs, err)
		}
		slowest = max(slowest, time.Since(began))
		txs++
		fmt.Printf("tx %d\n", txs)
		// A counter rings up a sale every few milliseconds at most; the
		// pause also lets SQLite's busy handler of the lane get its turn.
		time.Sleep(3 * time.Millisecond)
	}
}

// counterStaffTx inserts a staff member and updates them.
func counterStaffTx(ctx context.Context, conn *sql.DB, n int) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	physkey := newUUID()
	if _, err := tx.ExecContext(ctx, `INSERT INTO staff (tid, physkey, name, firstname, lastname)
		VALUES ((SELECT COALESCE(MAX(tid), 0) + 1 FROM staff), ?, ?, 'Counter', 'Process')`, physkey, fmt.Sprintf("Counter Process %d", n)); err != nil {
		return fmt.Errorf("insert staff: %w", err)
	}
	res, err := tx.ExecContext(ctx, `UPDATE staff SET name = name || ' (temp)', active = 0 WHERE physkey = ?`, physkey)
	if err != nil {
		return fmt.Errorf("update staff: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("update staff changed %d rows", n)
	}
	return tx.Commit()
}

// counterSaleTx rings up and completes a one-line cash sale (not a presell),
// numbering it with the lane's next sid as the lane itself does.
func counterSaleTx(ctx context.Context, conn *sql.DB) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	var sid int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(sid), 0) + 1 FROM sales`).Scan(&sid); err != nil {
		return fmt.Errorf("next sid: %w", err)
	}
	now := time.Now()
	local, utc := now.Format("2006-01-02 15:04:05"), now.UTC().Format("2006-01-02 15:04:05")
	physkey := newUUID()
	if _, err := tx.ExecContext(ctx, `INSERT INTO sales (physkey, random_key, sid, phase, startdt, completeddt,
		completeddtutc, saletotal_cents, teller, location, created_by, updated_utc)
		VALUES (?, ?, ?, 1, ?, ?, ?, 550, 1, 1, 'counterproc', ?)`, physkey, newUUID(), sid, local, local, utc, utc); err != nil {
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
	return tx.Commit()
}

// counterProc is a running counter process.
type counterProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	ready   chan struct{} // closed at its first commit
	commits atomic.Int64  // transactions committed so far
	last    string        // its last line, valid after exited
	stderr  bytes.Buffer
	exited  chan struct{}
	err     error // from Wait, valid after exited
	done    bool
}

// startCounterProc starts the counter process on db and returns once it has
// committed its first transaction.
func startCounterProc(t *testing.T, db string) *counterProc {
	t.Helper()
	if isStoreURL(db) {
		t.Skip("the counter process shares the SQLite file's write lock with the server; a store database has no such lock " +
			"(instances writing one PostgreSQL database at once are TestStore*)")
	}
	cp := &counterProc{t: t, ready: make(chan struct{}), exited: make(chan struct{})}
	cp.cmd = exec.Command(os.Args[0], "-test.run=^$")
	cp.cmd.Env = append(quietEnv(), counterProcEnv+"="+db, counterProcForEnv+"=3m")
	cp.cmd.Stderr = &cp.stderr
	out, err := cp.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.cmd.Start(); err != nil {
		t.Fatalf("start counter process: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if n, ok := strings.CutPrefix(line, "tx "); ok {
				v, _ := strconv.ParseInt(n, 10, 64)
				cp.commits.Store(v)
				if v == 1 {
					close(cp.ready)
				}
				continue
			}
			cp.last = line
		}
		cp.err = cp.cmd.Wait()
		close(cp.exited)
	}()
	t.Cleanup(func() {
		if !cp.done {
			_ = cp.cmd.Process.Kill()
			<-cp.exited
		}
	})
	select {
	case <-cp.ready:
	case <-cp.exited:
		t.Fatalf("counter process ended before its first commit: %v %q\n%s", cp.err, cp.last, cp.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("counter process did not commit a transaction within 30s")
	}
	return cp
}

var counterDone = regexp.MustCompile(`^done txs=(\d+) sales=(\d+) staff=(\d+) slowest=(\S+)$`)

// stop sends SIGTERM, waits for a clean exit and returns how many sales and
// staff rows the process committed. A failed process fails the test.
func (cp *counterProc) stop() (sales, staff int) {
	cp.t.Helper()
	cp.done = true
	_ = cp.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-cp.exited:
	case <-time.After(30 * time.Second):
		_ = cp.cmd.Process.Kill()
		<-cp.exited
		cp.t.Fatalf("counter process did not stop within 30s of SIGTERM")
	}
	if cp.err != nil {
		cp.t.Fatalf("counter process failed: %v\n%s", cp.err, cp.stderr.String())
	}
	m := counterDone.FindStringSubmatch(cp.last)
	if m == nil {
		cp.t.Fatalf("counter process ended with %q, want its totals", cp.last)
	}
	txs, _ := strconv.Atoi(m[1])
	sales, _ = strconv.Atoi(m[2])
	staff, _ = strconv.Atoi(m[3])
	if txs < 1 || sales+staff != txs || int64(txs) != cp.commits.Load() {
		cp.t.Fatalf("counter process reports %d transactions (%d sales, %d staff) and announced %d", txs, sales, staff, cp.commits.Load())
	}
	cp.t.Logf("counter process: %d transactions, the slowest took %s", txs, m[4])
	return sales, staff
}
