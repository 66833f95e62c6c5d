package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestConnCount(t *testing.T) {
	type step struct {
		take    string // an address to take a place for, or
		give    string // one to give one back for
		refused string // when taking: the words of the refusal, "" if let in
	}
	tests := []struct {
		name           string
		total, perAddr int
		steps          []step
	}{
		{"per address", 10, 2, []step{
			{take: "a"}, {take: "a"}, {take: "a", refused: "this address"},
			{take: "b"}, {give: "a"}, {take: "a"}, {take: "a", refused: "this address"},
		}},
		{"in total", 3, 2, []step{
			{take: "a"}, {take: "b"}, {take: "c"}, {take: "d", refused: "the lane has its maximum"},
			{give: "b"}, {take: "d"}, {take: "c", refused: "the lane has its maximum"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newConnCount(tc.total, tc.perAddr, slog.New(slog.DiscardHandler))
			for i, s := range tc.steps {
				if s.give != "" {
					c.give(s.give)
					continue
				}
				why := c.take(s.take)
				if (why == "") != (s.refused == "") || !strings.Contains(why, s.refused) {
					t.Fatalf("step %d, take %q: refusal %q, want one saying %q", i, s.take, why, s.refused)
				}
			}
		})
	}
}

// TestConnectionsAreCapped runs the real listener: connections that never
// send a byte, from one address and then from others (127.0.0.0/8 is all
// loopback), past each cap; sockets and HTTP requests count and give their
// place back.
func TestConnectionsAreCapped(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.MaxSockets, cfg.MaxConns, cfg.MaxConnsPerAddress = 4, 5, 3
	s, _ := testServer(t, cfg)
	s.conns.evictAfter = time.Hour // refusals here; TestIdleConnectionMakesRoom evicts
	addr := serve(t, s)

	dialFrom := func(local string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
		nc, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial from %s: %v", local, err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc
	}
	// closedAtOnce says whether the lane closed nc without a word.
	closedAtOnce := func(nc net.Conn) bool {
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := nc.Read(make([]byte, 1))
		var ne net.Error
		return n == 0 && !(errors.As(err, &ne) && ne.Timeout())
	}
	waitOpen := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for s.conns.openNow() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections counted, want %d", s.conns.openNow(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	idle := []net.Conn{dialFrom("127.0.0.1"), dialFrom("127.0.0.1"), dialFrom("127.0.0.1")}
	waitOpen(3)
	if over := dialFrom("127.0.0.1"); !closedAtOnce(over) {
		t.Fatal("a 4th connection from one address was kept open past --max-conns-per-address 3")
	}
	// Other addresses still get in, up to the lane-wide cap.
	dialFrom("127.0.0.2")
	ws, _, err := (&websocket.Dialer{NetDial: func(network, a string) (net.Conn, error) {
		return (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).Dial(network, a)
	}}).Dial("ws://"+addr+"/fd1/open_websocket", nil)
	if err != nil {
		t.Fatalf("a socket from a second address: %v", err)
	}
	waitOpen(5)
	if over := dialFrom("127.0.0.3"); !closedAtOnce(over) {
		t.Fatal("a 6th connection was kept open past --max-conns 5")
	}
	if got := s.Stats().ConnsRefused; got != 2 {
		t.Fatalf("Stats().ConnsRefused = %d, want 2", got)
	}
	// A socket and an idle connection that close give their places back.
	ws.Close()
	idle[0].Close()
	waitOpen(3)
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("after two places came free: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %s", resp.Status)
	}
}

// TestConnCapIsNeverBelowTheSocketCap: every socket is a connection, so a
// --max-conns below --max-sockets (a --max-sockets raised alone) counts as
// --max-sockets rather than cutting sockets off at connect.
func TestConnCapIsNeverBelowTheSocketCap(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxSockets = cfg.MaxConns + 1000
	if err := cfg.Validate(); err != nil {
		t.Fatalf("--max-sockets above --max-conns: %v", err)
	}
	s, _ := testServer(t, cfg)
	if s.conns.total != cfg.MaxSockets {
		t.Fatalf("connection cap %d, want the socket cap %d", s.conns.total, cfg.MaxSockets)
	}
}

// serve runs s.ListenAndServe until the test ends and returns its address.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- s.ListenAndServe(ctx, func(a net.Addr) { addrc <- a.String() }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ListenAndServe: %v", err)
		}
	})
	select {
	case a := <-addrc:
		return a
	case err := <-done:
		t.Fatalf("ListenAndServe: %v", err)
	}
	return ""
}

// TestIdleConnectionMakesRoom: at the lane-wide cap, a new connection
// closes the one that has done nothing longest (here, ones that never sent
// a byte, from several addresses: a slowloris per place held them all and
// locked every device out); a WebSocket is never closed for room, and at
// the cap with nothing idle the new one is refused.
func TestIdleConnectionMakesRoom(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.MaxSockets, cfg.MaxConns, cfg.MaxConnsPerAddress = 3, 3, 2
	s, _ := testServer(t, cfg)
	s.conns.evictAfter = 0
	addr := serve(t, s)
	dialFrom := func(local string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
		return d.Dial("tcp", addr)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/fd1/open_websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var idle []net.Conn
	for _, from := range []string{"127.0.0.2", "127.0.0.3"} {
		nc, err := dialFrom(from)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		idle = append(idle, nc)
	}
	for deadline := time.Now().Add(5 * time.Second); s.conns.openNow() != 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections counted, want 3", s.conns.openNow())
		}
	}
	// A page load from a fourth address gets in: the oldest idle one goes.
	client := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.4")}}).DialContext(ctx, network, a)
		},
	}}
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("a request at the cap, with idle connections open: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_ = idle[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := idle[0].Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("the oldest idle connection: read %d bytes, %v; want it closed to make room", n, err)
	}
	// The socket is still served.
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"a":"fd1.session.ping","rq":"1"}`)); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatalf("the socket after the room was made: %v", err)
	}
	if got := s.conns.evicted.Load(); got < 1 {
		t.Fatalf("evicted %d, want at least 1", got)
	}
}
