package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/internal/syncbuf"
	"github.com/greenlane-pos/greenlane/lanetls"
)

// TestLineBudget: an address gets its burst of lines, then one every
// addrLineEvery; the line after a gap says how many were left out; all
// addresses share the lane-wide rate. (The table of addresses is
// AddrLimiter's: TestLoginGuardForgetsIdleAddresses.)
func TestLineBudget(t *testing.T) {
	t0 := time.Now()
	type step struct {
		remote  string
		at      time.Duration
		ok      bool
		leftOut int64
	}
	burst := func(remote string, at time.Duration) []step {
		var s []step
		for range addrLineBurst {
			s = append(s, step{remote, at, true, 0})
		}
		return s
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"burst, then one a second with the count", append(burst("10.0.0.1:5000", 0),
			step{"10.0.0.1:5001", 0, false, 0},
			step{"10.0.0.1:5002", 0, false, 0},
			step{"10.0.0.1:5003", addrLineEvery, true, 2},
			step{"10.0.0.1:5004", addrLineEvery, false, 0},
			step{"10.0.0.1:5004", 2 * addrLineEvery, true, 1},
		)},
		{"addresses are apart", append(burst("10.0.0.1:5000", 0),
			step{"10.0.0.1:5000", 0, false, 0},
			step{"10.0.0.2:5000", 0, true, 0},
		)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newLineBudget()
			for i, st := range tt.steps {
				ok, n := b.take(st.remote, t0.Add(st.at))
				if ok != st.ok || n != st.leftOut {
					t.Fatalf("step %d (%s at %v): take = %v, %d; want %v, %d", i, st.remote, st.at, ok, n, st.ok, st.leftOut)
				}
			}
		})
	}

	t.Run("lane-wide", func(t *testing.T) {
		b := newLineBudget()
		written := 0
		for i := range 2000 {
			if ok, _ := b.take(fmt.Sprintf("10.1.%d.%d:1", i/250, i%250), t0); ok {
				written++
			}
		}
		if written != 20*laneLinesPerSecond {
			t.Fatalf("%d lines from 2000 addresses at once, want the lane's burst %d", written, 20*laneLinesPerSecond)
		}
		if got := b.leftOut.Load(); got != int64(2000-written) {
			t.Fatalf("left out %d, want %d", got, 2000-written)
		}
	})
}

// TestStrangerFloodIsLoggedWithinBudget: a caller flooding HTTP mode with
// a bad key from one address makes the lane write its address's burst of
// lines, not two lines per request; a key's own calls are all logged; the
// lines left out are counted for /metrics.
func TestStrangerFloodIsLoggedWithinBudget(t *testing.T) {
	_, db := testServer(t, DefaultConfig())
	var logs syncbuf.Buffer
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	s := New(cfg, db, slog.New(slog.NewTextHandler(&logs, nil)))
	addr := serve(t, s)
	key, err := db.CreateAPIKey(context.Background(), "till-1", []string{"counter"})
	if err != nil {
		t.Fatal(err)
	}
	call := func(k string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+"/fd1/debug/ping", nil)
		req.Header.Set("x-api-key", k)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	const flood = 300
	for range flood {
		if code := call("glk.nosuchkey.secret"); code != http.StatusUnauthorized && code != http.StatusTooManyRequests {
			t.Fatalf("a bad key got HTTP %d", code)
		}
	}
	const keyed = 5
	for range keyed {
		if code := call(key); code != http.StatusOK {
			t.Fatalf("the key got HTTP %d", code)
		}
	}
	out := logs.String()
	stranger := strings.Count(out, "msg=http ") - keyed + strings.Count(out, `msg="login refused"`)
	if stranger > addrLineBurst {
		t.Fatalf("%d lines for %d refused requests from one address, want at most %d:\n%s", stranger, flood, addrLineBurst, out)
	}
	if got := strings.Count(out, "msg=http method=GET path=/fd1/debug/ping status=200"); got != keyed {
		t.Fatalf("%d lines for the key's %d calls, want every one:\n%s", got, keyed, out)
	}
	if left := s.Stats().LogLinesLeftOut; left < 2*flood-addrLineBurst {
		t.Fatalf("%d lines counted as left out, want at least %d", left, 2*flood-addrLineBurst)
	}
}

// TestTLSHandshakeFloodIsLoggedWithinBudget: connections that send the
// TLS port garbage each fail their handshake; net/http's line for each
// comes out of the address's line budget too.
func TestTLSHandshakeFloodIsLoggedWithinBudget(t *testing.T) {
	_, db := testServer(t, DefaultConfig())
	files := lanetls.FilesFor(filepath.Join(t.TempDir(), "lane.db"))
	if err := lanetls.Init(files, []string{"localhost"}, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	var err error
	if cfg.TLS, err = lanetls.ServerConfig(files.Cert, files.Key); err != nil {
		t.Fatal(err)
	}
	s := New(cfg, db, slog.New(slog.NewTextHandler(&logs, nil)))
	addr := serve(t, s)
	const flood = 100
	for range flood {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		// Not a TLS record, not plain HTTP either: a failed handshake.
		_, _ = c.Write([]byte{0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5})
		_, _ = io.Copy(io.Discard, c) // until the lane closes it
		c.Close()
	}
	// net/http logs after closing: wait for the lines left out to be
	// counted (the deadline only ends a wait that would never end).
	for deadline := time.Now().Add(30 * time.Second); s.Stats().LogLinesLeftOut < flood-addrLineBurst; {
		if time.Now().After(deadline) {
			t.Fatalf("%d lines left out after %d failed handshakes from one address:\n%s", s.Stats().LogLinesLeftOut, flood, logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	out := logs.String()
	if n := strings.Count(out, `msg="TLS handshake error"`); n == 0 || n > addrLineBurst {
		t.Fatalf("%d handshake lines for %d failed handshakes, want 1 to %d:\n%s", n, flood, addrLineBurst, out)
	}
}
