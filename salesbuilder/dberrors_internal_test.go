package salesbuilder

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// A lane DB error a client can act on becomes an FD1 error whose message
// names the real cause, with the cause named for a page to tell apart from
// plain busy (protocol.Error.Cause); anything else stays internal.
func TestMapDBError(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		code  protocol.Code
		cause protocol.Cause
		says  []string
	}{
		{"another lane holds the store's write lock",
			fmt.Errorf("%w: %w: take the journal lock: timeout", lanedb.ErrUnavailable, lanedb.ErrStoreLocked),
			protocol.CodeUnavailable, protocol.CauseDBLocked,
			[]string{"another lane holds the store database's write lock", "this change was not made", "retry"}},
		{"commit cut off",
			fmt.Errorf("%w: %w: commit: %w", lanedb.ErrUnavailable, lanedb.ErrOutcomeUnknown, pgconn.ErrConnClosed),
			protocol.CodeUnavailable, protocol.CauseOutcomeUnknown,
			[]string{"may have been made", "retry with the same ik"}},
		{"connection closed under a statement",
			fmt.Errorf("begin write: %w", pgconn.ErrConnClosed),
			protocol.CodeUnavailable, protocol.CauseDBUnreachable,
			[]string{"the store database cannot be reached", "this change was not made"}},
		{"store database down",
			fmt.Errorf("%w: dial: connection refused", lanedb.ErrUnavailable),
			protocol.CodeUnavailable, protocol.CauseDBUnreachable,
			[]string{"the store database cannot be reached"}},
		{"writer closed", lanedb.ErrWriterClosed, protocol.CodeUnavailable, "", []string{"shutting down"}},
		{"race lost", lanedb.ErrRaceLost, protocol.CodeConflict, "", []string{"another lane changed the same data"}},
		{"a bug", errors.New("boom"), "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mapDBError(tt.err)
			var pe *protocol.Error
			if !errors.As(got, &pe) {
				if tt.code != "" {
					t.Fatalf("mapDBError(%v) = %v, want %s", tt.err, got, tt.code)
				}
				return
			}
			if pe.Code != tt.code || pe.Cause != tt.cause {
				t.Fatalf("mapDBError(%v) = %s (cause %q), want %s (cause %q)", tt.err, pe, pe.Cause, tt.code, tt.cause)
			}
			for _, s := range tt.says {
				if !strings.Contains(pe.Message, s) {
					t.Errorf("message %q does not say %q", pe.Message, s)
				}
			}
		})
	}
}
