package server

import (
	"errors"
	"fmt"
	"testing"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// TestRefusalReasonIsBounded: a refused login's metric label is one of a
// few words, never the error's text (which may quote a client's input).
func TestRefusalReasonIsBounded(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("authenticate: %w", lanedb.ErrBadKey), "bad_key"},
		{lanedb.ErrRevokedKey, "revoked_key"},
		{protocol.Errorf(protocol.CodeRateLimited, "too many failed logins from 10.0.0.7"), "rate_limited"},
		{errors.New("no API key header"), "no_key"},
	} {
		if got := refusalReason(tt.err); got != tt.want {
			t.Errorf("refusalReason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
