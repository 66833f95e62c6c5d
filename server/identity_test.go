package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// TestRequestReadBeforeLoginStaysRefused: a request read before the login
// is judged as the socket was then, even when the login completes while the
// request still waits in the socket's queue.
func TestRequestReadBeforeLoginStaysRefused(t *testing.T) {
	ctx := context.Background()
	db, err := lanedb.Open(ctx, filepath.Join(t.TempDir(), "lane.db"), lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key, err := db.CreateAPIKey(ctx, "till-1", []string{"counter"})
	if err != nil {
		t.Fatal(err)
	}
	srv := New(DefaultConfig(), db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ws := dialSocket(t, srv, "")

	// Hold the socket's one worker busy, so that the next request waits
	// in the queue while the read pump goes on to the login behind it.
	sk := onlySocket(t, srv)
	release, busy := make(chan struct{}), make(chan struct{})
	if !sk.pool.submit("", func() { close(busy); <-release }, sk.ctx.Done()) {
		t.Fatal("could not occupy the socket's worker")
	}
	<-busy
	send := func(pkt string) {
		t.Helper()
		if err := ws.WriteMessage(websocket.TextMessage, []byte(pkt)); err != nil {
			t.Fatal(err)
		}
	}
	next := func() (rp string, code protocol.Code) {
		t.Helper()
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			RP    string          `json:"rp"`
			Error *protocol.Error `json:"error"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("reply %s: %v", b, err)
		}
		if r.Error != nil {
			code = r.Error.Code
		}
		return r.RP, code
	}
	send(`{"a":"fd1.debug.ping","rq":"early"}`)
	send(`{"a":"fd1.session.login","rq":"login","v":{"apikey":"` + key + `"}}`)
	if rp, code := next(); rp != "login" || code != "" {
		t.Fatalf("first reply rp=%q code=%q, want the login's, accepted", rp, code)
	}
	close(release)
	if rp, code := next(); rp != "early" || code != protocol.CodeLoginRequired {
		t.Fatalf("the request sent before login got rp=%q code=%q, want login_required", rp, code)
	}
	send(`{"a":"fd1.debug.ping","rq":"late"}`)
	if rp, code := next(); rp != "late" || code != "" {
		t.Fatalf("a request after login got rp=%q code=%q, want a pong", rp, code)
	}
}

// onlySocket waits for the server's one socket to be registered.
func onlySocket(t *testing.T, srv *Server) *socket {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		srv.mu.Lock()
		for _, sk := range srv.sockets {
			srv.mu.Unlock()
			return sk
		}
		srv.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no socket registered")
	return nil
}

// TestCancelRequestStopsEveryRequestWithThatRQ: requests that share an rq
// are all cancelled by it, one finishing never hides another, and nothing
// is left behind once they have all finished.
func TestCancelRequestStopsEveryRequestWithThatRQ(t *testing.T) {
	tests := []struct {
		name          string
		steps         []string // "start RQ" ("-": none), "finish I", "cancel RQ"
		wantCancelled []int    // requests (by start order) whose context ends
		wantFound     bool     // what the last cancel reports
		wantLeft      int      // rqs still tracked at the end
	}{
		{"two in flight, one cancel stops both",
			[]string{"start r1", "start r1", "cancel r1"}, []int{0, 1}, true, 1},
		{"the first finishes; the second is still cancellable",
			[]string{"start r1", "start r1", "finish 0", "cancel r1"}, []int{1}, true, 1},
		{"the second finishes; the first is still cancellable",
			[]string{"start r1", "start r1", "finish 1", "cancel r1"}, []int{0}, true, 1},
		{"both finish: nothing left, nothing to cancel",
			[]string{"start r1", "start r1", "finish 0", "finish 1", "cancel r1"}, nil, false, 0},
		{"another rq is untouched",
			[]string{"start r1", "start r2", "cancel r1"}, []int{0}, true, 2},
		{"a request without rq is never tracked",
			[]string{"start -", "cancel -"}, nil, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sk := &socket{inflight: map[string][]*flight{}}
			var (
				reqs    []*protocol.Request
				flights []*flight
				ctxs    []context.Context
				found   bool
			)
			for _, s := range tt.steps {
				op, arg, _ := strings.Cut(s, " ")
				switch op {
				case "start":
					req := &protocol.Request{A: "fd1.debug.ping"}
					if arg != "-" {
						req.RQ = json.RawMessage(`"` + arg + `"`)
					}
					ctx, cancel := context.WithCancel(context.Background())
					t.Cleanup(cancel)
					reqs, ctxs = append(reqs, req), append(ctxs, ctx)
					flights = append(flights, sk.track(req, cancel))
				case "finish":
					i := int(arg[0] - '0')
					sk.untrack(reqs[i], flights[i])
				case "cancel":
					found = sk.cancelRequest(arg)
				}
			}
			for i, ctx := range ctxs {
				want := slices.Contains(tt.wantCancelled, i)
				if got := errors.Is(ctx.Err(), context.Canceled); got != want {
					t.Errorf("request %d cancelled = %v, want %v", i, got, want)
				}
			}
			if found != tt.wantFound {
				t.Errorf("cancelRequest reported %v, want %v", found, tt.wantFound)
			}
			if len(sk.inflight) != tt.wantLeft {
				t.Errorf("%d rqs tracked, want %d: %v", len(sk.inflight), tt.wantLeft, sk.inflight)
			}
			// Finish whatever is still in flight: no entry may outlive its
			// requests.
			for i := range reqs {
				sk.untrack(reqs[i], flights[i])
			}
			if len(sk.inflight) != 0 {
				t.Errorf("entries left after every request finished: %v", sk.inflight)
			}
		})
	}
}

// TestWithKey: each login adds its key with its own scopes; the socket's
// purpose is set by the URL or the first login and never changed by a
// later one.
func TestWithKey(t *testing.T) {
	tablet := &lanedb.APIKey{KeyID: "id-tablet", Name: "tablet", Scopes: "presell"}
	till := &lanedb.APIKey{KeyID: "id-till", Name: "till", Scopes: "counter"}
	display := &lanedb.APIKey{KeyID: "id-display", Name: "display", Scopes: "display"}
	support := &lanedb.APIKey{KeyID: "id-support", Name: "support", Scopes: "debug,counter"}
	type login struct {
		key  *lanedb.APIKey
		want protocol.Purpose
		code protocol.Code // "" = accepted
	}
	tests := []struct {
		name        string
		url         protocol.Purpose
		logins      []login
		wantPurpose protocol.Purpose
		wantKeys    []string
	}{
		{"presell URL, tablet then till", protocol.PurposePresell,
			[]login{{tablet, "", ""}, {till, "", ""}}, protocol.PurposePresell, []string{"id-tablet", "id-till"}},
		{"a later login cannot turn a presell socket into a display", protocol.PurposePresell,
			[]login{{tablet, "", ""}, {display, protocol.PurposeCustomerDisplay, protocol.CodeConflict}}, protocol.PurposePresell, []string{"id-tablet"}},
		{"a later login asking for no purpose keeps the display's", protocol.PurposeNone,
			[]login{{display, protocol.PurposeCustomerDisplay, ""}, {till, "", ""}}, protocol.PurposeCustomerDisplay, []string{"id-display", "id-till"}},
		{"a later login asking for another purpose is refused", protocol.PurposeNone,
			[]login{{display, protocol.PurposeCustomerDisplay, ""}, {support, protocol.PurposeDebugScope, protocol.CodeConflict}}, protocol.PurposeCustomerDisplay, []string{"id-display"}},
		{"the same purpose again is fine", protocol.PurposeNone,
			[]login{{support, protocol.PurposeDebugScope, ""}, {support, protocol.PurposeDebugScope, ""}}, protocol.PurposeDebugScope, []string{"id-support"}},
		{"the first login sets the purpose", protocol.PurposeNone,
			[]login{{support, protocol.PurposeDebugScope, ""}, {till, "", ""}}, protocol.PurposeDebugScope, []string{"id-support", "id-till"}},
		{"an ordinary socket stays ordinary", protocol.PurposeNone,
			[]login{{till, "", ""}, {support, protocol.PurposeDebugScope, protocol.CodeConflict}}, protocol.PurposeNone, []string{"id-till"}},
		{"a purpose needs its scope", protocol.PurposeNone,
			[]login{{till, protocol.PurposeCustomerDisplay, protocol.CodeForbidden}}, protocol.PurposeNone, nil},
		{"a presell socket needs a presell key", protocol.PurposePresell,
			[]login{{till, "", protocol.CodeForbidden}, {tablet, "", ""}}, protocol.PurposePresell, []string{"id-tablet"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := protocol.Caller{Purpose: tt.url, Transport: "ws"}
			for i, l := range tt.logins {
				next, err := withKey(c, l.key, l.want)
				var code protocol.Code
				if err != nil {
					code = protocol.AsError(err).Code
				}
				if code != l.code {
					t.Fatalf("login %d (%s): code %q (%v), want %q", i, l.key.Name, code, err, l.code)
				}
				if err == nil {
					c = next
				}
			}
			if c.Purpose != tt.wantPurpose {
				t.Errorf("purpose %q, want %q", c.Purpose, tt.wantPurpose)
			}
			if got := c.KeyIDs(); !slices.Equal(got, tt.wantKeys) {
				t.Errorf("keys %v, want %v", got, tt.wantKeys)
			}
			for _, l := range c.Logins {
				if len(l.Scopes) == 0 {
					t.Errorf("key %s kept no scopes of its own", l.KeyName)
				}
			}
		})
	}
}
