package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

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

// TestReadyzAtOnceShareOneProbe: /readyz needs no key and probes the lane
// DB's one write connection, so callers at once share one probe. With
// the connection taken, ten /readyz wait on one probe, not ten, and all
// are answered ready once it is free.
func TestReadyzAtOnceShareOneProbe(t *testing.T) {
	s, db := testServer(t, DefaultConfig())
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	release, holding := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.WriteTx(context.Background(), func(*lanedb.Tx) error { close(holding); <-release; return nil })
	}()
	<-holding
	const callers = 10
	codes := make(chan int, callers)
	for range callers {
		go func() {
			resp, err := http.Get(srv.URL + "/readyz")
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	// Give them a moment to come at once (well within the probe's 2 s):
	// what is checked is how many probes ran.
	time.Sleep(300 * time.Millisecond)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for range callers {
		if code := <-codes; code != http.StatusOK {
			t.Fatalf("/readyz answered %d once the write connection was free", code)
		}
	}
	if n := s.readyProbes.Load(); n >= callers {
		t.Fatalf("%d /readyz at once ran %d probes, want them to share", callers, n)
	}
}
