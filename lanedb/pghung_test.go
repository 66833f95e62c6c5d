package lanedb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A lane stopped in the middle of a write batch (kill -STOP) leaves its
// transaction idle, holding the store-wide journal lock that every batch
// takes at BEGIN. The server ends such a session after
// Options.IdleInTxTimeout, so another lane's change waits for it and goes
// through in its own batch; the stopped lane, once resumed, finds its batch
// failed as unavailable, with nothing of it written, and its next change
// goes through on a new connection.
func TestPostgresStoppedLaneLosesTheJournalLock(t *testing.T) {
	stopped, running, _ := openTwoInstances(t)
	ws, wr := stopped.NewWriter(WriterOptions{}), running.NewWriter(WriterOptions{})
	defer ws.Close()
	defer wr.Close()
	ctx := context.Background()
	paused, resume := make(chan struct{}), make(chan struct{})
	stoppedErr := make(chan error, 1)
	go func() {
		stoppedErr <- ws.Do(ctx, func(ctx context.Context, tx *Tx) error {
			if err := insertStaff(1)(ctx, tx); err != nil {
				return err
			}
			close(paused)
			<-resume // the process is stopped: its session idles in its transaction
			return insertStaff(2)(ctx, tx)
		})
	}()
	<-paused
	// Old code: this waited out the whole batch deadline behind the lock
	// and was refused; the stopped lane then resumed and committed.
	if err := wr.Do(ctx, insertStaff(3)); err != nil {
		close(resume)
		<-stoppedErr
		t.Fatalf("a running lane's change while another lane is stopped mid-batch: %v", err)
	}
	close(resume)
	if err := <-stoppedErr; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("the stopped lane's batch, once resumed: err = %v, want ErrUnavailable", err)
	}
	if err := ws.Do(ctx, insertStaff(4)); err != nil {
		t.Fatalf("the resumed lane's next change: %v", err)
	}
	if tids := staffIDs(t, running); fmt.Sprint(tids) != "[3 4]" {
		t.Errorf("staff = %v, want [3 4]: the stopped lane's batch must have written nothing", tids)
	}
}

// A lane that waits for the journal lock longer than its batch may wait
// (another lane holds it) is refused as busy and unavailable, saying that
// another lane holds the store's write lock, not that the store database
// cannot be reached.
func TestPostgresWriterSaysAnotherLaneHoldsTheLock(t *testing.T) {
	u, _, w := shortBusyWriter(t)
	ctx := context.Background()
	holder, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, JournalLockKey); err != nil {
		t.Fatal(err)
	}
	err = w.Do(ctx, insertStaff(1))
	if !IsBusy(err) || !IsUnavailable(err) || !strings.Contains(err.Error(), "another lane holds the store's write lock") {
		t.Fatalf("a change behind another lane's journal lock: err = %v, want busy, saying another lane holds the store's write lock", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Do(ctx, insertStaff(1)); err != nil {
		t.Fatalf("once the lock was let go: %v", err)
	}
}

// A COMMIT cut off by the connection's loss has an unknown outcome: the
// batch is answered ErrUnavailable and ErrOutcomeUnknown, never an
// internal error. (Here the server ends the session from a deferred
// trigger, which runs inside COMMIT, as a server stopped mid-COMMIT would.)
func TestPostgresCommitCutOffIsOutcomeUnknown(t *testing.T) {
	db, u := openPostgresTest(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `
		CREATE FUNCTION end_own_session() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.tid = 1 THEN PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(5); END IF;
			RETURN NULL;
		END $$;
		CREATE CONSTRAINT TRIGGER end_at_commit AFTER INSERT ON staff
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION end_own_session();`); err != nil {
		t.Fatal(err)
	}
	w := db.NewWriter(WriterOptions{})
	defer w.Close()
	err = w.Do(ctx, insertStaff(1))
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrOutcomeUnknown) || !IsUnavailable(err) {
		t.Fatalf("a COMMIT cut off: err = %v, want ErrUnavailable and ErrOutcomeUnknown", err)
	}
	if err := w.Do(ctx, insertStaff(2)); err != nil {
		t.Fatalf("the next change: %v", err)
	}
}

// IsUnavailable knows a lost connection however pgx words it: the
// connection closed under a statement (neither SafeToRetry nor a net
// error), or the server ending the session (a FATAL error of any code).
func TestIsUnavailableLostConnection(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"conn closed", fmt.Errorf("commit: %w", pgconn.ErrConnClosed), true},
		{"begin write: conn closed", fmt.Errorf("begin write: %w", fmt.Errorf("x: %w", pgconn.ErrConnClosed)), true},
		{"unexpected EOF", fmt.Errorf("commit: %w", io.ErrUnexpectedEOF), true},
		{"idle in transaction timeout", &pgconn.PgError{Severity: "FATAL", Code: "25P03"}, true},
		{"any FATAL", &pgconn.PgError{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "XX000"}, true},
		{"admin shutdown", &pgconn.PgError{Severity: "FATAL", Code: "57P01"}, true},
		{"unique violation", &pgconn.PgError{Severity: "ERROR", Code: "23505"}, false},
		{"a plain error", errors.New("boom"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsUnavailable(tt.err); got != tt.want {
				t.Errorf("IsUnavailable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
