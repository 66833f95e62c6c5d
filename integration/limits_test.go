package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Limits (issue 6, promises 3 and 4): per-socket request rate, a cap on
// sockets, failed logins per remote address, revoked keys' sockets closed
// within a second, the handshake timeout, firehoses per socket.

// relPings is n pipelined pings with rq prefix-0 … prefix-(n-1).
func relPings(prefix string, n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = map[string]any{"a": "fd1.debug.ping", "rq": fmt.Sprintf("%s-%d", prefix, i)}
	}
	return out
}

// relAllOK checks that every reply of a callAll is a success.
func relAllOK(t *testing.T, who string, got map[string]*packet) {
	t.Helper()
	for rq, p := range got {
		if p.Error != nil {
			t.Fatalf("%s: request %s: %s", who, rq, p.raw)
		}
	}
}

func TestRequestRateLimit(t *testing.T) {
	l := startLane(t, "--request-rate", "20", "--request-burst", "20")
	flood := l.login("", l.key, "")
	other := l.login("", l.key, "")

	// 100 pings at once: the burst passes, the rest are refused clearly,
	// each answered once with its own rq. (A refusal is sent by the read
	// pump at once, so it may overtake the replies to accepted requests.)
	const n = 100
	start := time.Now()
	for _, p := range relPings("f", n) {
		flood.send(p)
	}
	got := map[string]*packet{}
	for range n {
		r := flood.next()
		if got[r.rpKey()] != nil || !strings.HasPrefix(r.rpKey(), `"f-`) {
			t.Fatalf("unexpected or repeated reply: %s", r.raw)
		}
		got[r.rpKey()] = r
	}
	var ok, limited int
	for i := range n {
		r := got[fmt.Sprintf(`"f-%d"`, i)]
		if r.Error == nil {
			ok++
			continue
		}
		r.wantError(t, "rate_limited")
		if !strings.Contains(r.Error.Message, "20 requests a second") || !strings.Contains(r.Error.Message, "slow down") {
			t.Fatalf("rate_limited message %q does not say the limit and what to do", r.Error.Message)
		}
		if i < 19 {
			t.Fatalf("request %d of a fresh socket (burst 20, one token spent on login) was refused: %s", i, r.raw)
		}
		limited++
	}
	elapsed := time.Since(start)
	// The login took a token; 20 a second refill while the flood is served.
	most := 20 + int(20*elapsed.Seconds()) + 1
	if ok < 19 || ok > most || limited == 0 {
		t.Fatalf("of %d pings in %v, %d passed and %d were rate_limited; want 19…%d to pass", n, elapsed, ok, limited, most)
	}

	// Another socket is not slowed by this one.
	relAllOK(t, "the other socket", other.callAll(relPings("o", 15)...))

	// After a pause (the limit is a rate: a second refills 20 tokens) the
	// flooding socket is served again.
	time.Sleep(1100 * time.Millisecond)
	relAllOK(t, "the flooding socket after a pause", flood.callAll(relPings("p", 15)...))
	t.Logf("flood of %d: %d served, %d rate_limited in %v", n, ok, limited, elapsed.Round(time.Millisecond))
}

// TestKeyRequestRateLimit: one API key's requests are counted together over
// all its sockets and its HTTP-mode calls, so more sockets (or HTTP mode,
// which has no socket to count on) buy no more than the key's rate; other
// keys, and admin, are not slowed.
func TestKeyRequestRateLimit(t *testing.T) {
	skipIfRemote(t, "sets the lane's per-key limit")
	l := startLane(t, "--key-request-rate", "10", "--key-request-burst", "30")
	tablet := l.newKey("tablet-1", "presell")
	neighbour := l.newKey("tablet-2", "presell")
	a, b := l.login("", tablet, ""), l.login("", tablet, "")

	// 30 pings on each of two sockets, and 10 HTTP calls, of one key: the
	// burst (30) and what refills meanwhile pass, the rest are refused.
	start := time.Now()
	ok, limited := 0, 0
	count := func(p *packet) {
		if p.Error == nil {
			ok++
			return
		}
		p.wantError(t, "rate_limited")
		if !strings.Contains(p.Error.Message, "tablet-1") || !strings.Contains(p.Error.Message, "over all its sockets") {
			t.Fatalf("rate_limited message %q does not name the key and say why", p.Error.Message)
		}
		limited++
	}
	for _, p := range a.callAll(relPings("a", 30)...) {
		count(p)
	}
	for _, p := range b.callAll(relPings("b", 30)...) {
		count(p)
	}
	httpLimited := 0
	for range 10 {
		status, p := l.httpCall("GET", "/fd1/debug/ping", map[string]string{"x-api-key": tablet}, "")
		count(p)
		if status == http.StatusTooManyRequests {
			httpLimited++
		}
	}
	elapsed := time.Since(start)
	most := 30 + int(10*elapsed.Seconds()) + 1
	if ok > most || httpLimited == 0 || limited == 0 {
		t.Fatalf("of 70 requests of one key in %v, %d passed (want at most %d) and %d were refused, %d of 10 HTTP calls with 429",
			elapsed, ok, most, limited, httpLimited)
	}

	// Another key, and the admin key, are served in full meanwhile.
	relAllOK(t, "another key", l.login("", neighbour, "").callAll(relPings("n", 25)...))
	relAllOK(t, "the admin key", l.login("", l.key, "").callAll(relPings("x", 100)...))

	// The limit is a rate: a second later the key is served again.
	time.Sleep(1100 * time.Millisecond)
	relAllOK(t, "the key after a pause", a.callAll(relPings("p", 5)...))
	t.Logf("one key: %d served, %d rate_limited in %v", ok, limited, elapsed.Round(time.Millisecond))
}

// relDialStatus dials a socket and returns the refusal's HTTP status and
// body, or the socket (status 0) when it was let in.
func relDialStatus(addr string) (*websocket.Conn, int, string, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, resp, err := d.Dial("ws://"+addr+"/fd1/open_websocket", nil)
	if err == nil {
		return ws, 0, "", nil
	}
	if resp == nil {
		return nil, -1, "", err
	}
	body, _ := io.ReadAll(resp.Body)
	return nil, resp.StatusCode, string(body), err
}

func TestSocketCap(t *testing.T) {
	l := startLane(t, "--max-sockets", "5")
	socks := make([]*conn, 5)
	for i := range socks {
		socks[i] = l.login("", l.key, "")
	}
	// A crowd of extra dials, at once: each refused before the upgrade
	// with 503 and a reason, none crashes the lane.
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws, status, body, err := relDialStatus(l.addr)
			if ws != nil {
				ws.Close()
			}
			if status != http.StatusServiceUnavailable || !strings.Contains(body, "maximum of open sockets") {
				errs <- fmt.Sprintf("dial beyond the cap: status %d body %q err %v; want 503 saying the lane is full", status, body, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, c := range socks {
		c.ping()
	}
	// HTTP mode and health are not sockets: they still answer.
	if status, _ := l.httpCall("GET", "/healthz", nil, ""); status != http.StatusOK {
		t.Fatalf("healthz while the lane is full: %d", status)
	}
	if status, p := l.httpCall("GET", "/fd1/debug/ping?_rq=h", map[string]string{"x-api-key": l.key}, ""); status != http.StatusOK || p.Error != nil {
		t.Fatalf("HTTP mode while the lane is full: %d %s", status, p.raw)
	}

	// One closes (a proper close handshake); a new socket then gets in.
	gone := socks[0]
	_ = gone.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(5*time.Second))
	_ = gone.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := gone.ws.ReadMessage(); err != nil {
			break
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	var in *conn
	for in == nil {
		ws, status, body, err := relDialStatus(l.addr)
		switch {
		case status == 0:
			t.Cleanup(func() { ws.Close() })
			in = &conn{t: t, ws: ws}
		case status != http.StatusServiceUnavailable:
			t.Fatalf("dial after a socket closed: %d %q %v", status, body, err)
		case time.Now().After(deadline):
			t.Fatalf("10s after a socket closed the lane still refuses new ones")
		default:
			time.Sleep(20 * time.Millisecond) // the lane forgets the closed socket asynchronously
		}
	}
	// in is the fifth socket: the lane is full again, and still serving.
	if r := in.call(map[string]any{"a": "fd1.session.login", "rq": "L", "v": map[string]any{"apikey": l.key}}); r.Error != nil {
		t.Fatalf("login on the socket let in: %s", r.raw)
	}
	in.ping()
	if ws, status, body, _ := relDialStatus(l.addr); status != http.StatusServiceUnavailable {
		if ws != nil {
			ws.Close()
		}
		t.Fatalf("a sixth socket after one came back: status %d %q, want 503", status, body)
	}
	for _, c := range socks[1:] {
		c.ping()
	}
}

// relDialFrom opens a socket from a given loopback address (the login
// guard counts per remote address).
func relDialFrom(t *testing.T, l *lane, ip string) *conn {
	t.Helper()
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, NetDialContext: nd.DialContext}
	ws, _, err := d.Dial("ws://"+l.addr+"/fd1/open_websocket", nil)
	if err != nil {
		t.Fatalf("dial from %s: %v", ip, err)
	}
	t.Cleanup(func() { ws.Close() })
	return &conn{t: t, ws: ws}
}

// relHTTPFrom makes an HTTP-mode GET from a given loopback address.
func relHTTPFrom(t *testing.T, l *lane, ip, path, key string) (int, *packet) {
	t.Helper()
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	hc := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: nd.DialContext}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(context.Background(), "GET", "http://"+l.addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-api-key", key)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	p := &packet{raw: b}
	if err := json.Unmarshal(b, p); err != nil {
		t.Fatalf("HTTP %s: body is not JSON: %s", path, b)
	}
	return resp.StatusCode, p
}

func TestLoginRateLimit(t *testing.T) {
	l := startLane(t, "--login-failures", "3")
	good := l.newKey("counter-1", "counter")
	login := func(key string) map[string]any {
		return map[string]any{"a": "fd1.session.login", "rq": "L", "v": map[string]any{"apikey": key}}
	}
	early := l.login("", good, "") // logged in before anyone fails

	// Three wrong keys from 127.0.0.1 are refused as wrong…
	c := l.dial("")
	for i := range 3 {
		c.call(login(fmt.Sprintf("gl_wrong_%d", i))).wantError(t, "login_failed")
	}
	// …then this address's failures are slowed: a wrong key gets
	// rate_limited with a time to retry, over a socket and HTTP mode…
	r := c.call(login("gl_wrong_again"))
	r.wantError(t, "rate_limited")
	if !strings.Contains(r.Error.Message, "failed logins") || !strings.Contains(r.Error.Message, "try again in") {
		t.Fatalf("rate_limited login message %q does not say why and when to retry", r.Error.Message)
	}
	status, p := l.httpCall("GET", "/fd1/products/get_products_list?_rq=h", map[string]string{"x-api-key": "gl_wrong_http"}, "")
	if status != http.StatusTooManyRequests || p.Error == nil || p.Error.Code != "rate_limited" {
		t.Fatalf("HTTP mode with a wrong key from the slowed address: %d %s", status, p.raw)
	}
	// …but a correct key still logs in from it, on this socket, on a new
	// one and over HTTP mode.
	if r := c.call(login(good)); r.Error != nil {
		t.Fatalf("a correct key after the failure budget: %s", r.raw)
	}
	c.ping()
	if r := l.dial("").call(login(good)); r.Error != nil {
		t.Fatalf("a correct key on a new socket after the failure budget: %s", r.raw)
	}
	status, p = l.httpCall("GET", "/fd1/products/get_products_list?_rq=h", map[string]string{"x-api-key": good}, "")
	if status != http.StatusOK || p.Error != nil {
		t.Fatalf("HTTP mode with a correct key from the slowed address: %d %s", status, p.raw)
	}
	// Sockets already logged in carry on.
	if rows := early.call(map[string]any{"a": "fd1.products.get_products_list", "rq": "p"}).rows(t); len(rows) == 0 {
		t.Fatal("the logged-in socket lost its products")
	}
	early.ping()

	// The budget is per remote address: a wrong key from 127.0.0.2 is
	// just wrong.
	other := relDialFrom(t, l, "127.0.0.2")
	other.call(login("gl_wrong_from_2")).wantError(t, "login_failed")

	// Failed HTTP-mode logins count too: three from 127.0.0.3 use its
	// budget, for HTTP mode and sockets alike.
	for i := range 3 {
		status, p := relHTTPFrom(t, l, "127.0.0.3", "/fd1/debug/ping?_rq=h", fmt.Sprintf("gl_wrong_http_%d", i))
		if status != http.StatusUnauthorized || p.Error == nil || p.Error.Code != "login_failed" {
			t.Fatalf("HTTP mode with a wrong key: %d %s", status, p.raw)
		}
	}
	relDialFrom(t, l, "127.0.0.3").call(login("gl_wrong_ws")).wantError(t, "rate_limited")
	if status, p := relHTTPFrom(t, l, "127.0.0.3", "/fd1/debug/ping?_rq=h", good); status != http.StatusOK || p.Error != nil {
		t.Fatalf("HTTP mode with a correct key after 3 failures: %d %s", status, p.raw)
	}
}

// relReadUntilClose reads a socket until it fails and reports when.
func relReadUntilClose(ws *websocket.Conn, limit time.Duration) (time.Time, error) {
	_ = ws.SetReadDeadline(time.Now().Add(limit))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			return time.Now(), err
		}
	}
}

func TestRevokedKeyClosesSockets(t *testing.T) {
	l := startLane(t)
	doomed := l.newKey("doomed-1", "counter")
	kept := l.newKey("kept-1", "counter")
	a := l.login("", doomed, "")
	b := l.login("", doomed, "")
	mixed := l.login("", kept, "") // logged in with both keys: what the revoked key granted goes with it
	if r := mixed.call(map[string]any{"a": "fd1.session.login", "rq": "L2", "v": map[string]any{"apikey": doomed}}); r.Error != nil {
		t.Fatalf("second login: %s", r.raw)
	}
	bystander := l.login("", kept, "")
	type closed struct {
		at  time.Time
		err error
	}
	victims := map[string]*conn{"first socket": a, "second socket": b, "socket with both keys": mixed}
	results := map[string]chan closed{}
	for name, c := range victims {
		ch := make(chan closed, 1)
		results[name] = ch
		go func() {
			at, err := relReadUntilClose(c.ws, 10*time.Second)
			ch <- closed{at, err}
		}()
	}

	cmd := exec.Command(binary, "apikey", "revoke", "doomed-1", "--db", l.db)
	cmd.Env = quietEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	began := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("apikey revoke: %v: %s", err, out.String())
	}
	revoked := time.Now() // the revocation committed before the CLI exited
	var worst time.Duration
	for name, ch := range results {
		c := <-ch
		var ce *websocket.CloseError
		if !errors.As(c.err, &ce) || ce.Code != websocket.ClosePolicyViolation || !strings.Contains(ce.Text, "revoked") {
			t.Errorf("%s: ended with %v, want close 1008 \"API key revoked\"", name, c.err)
			continue
		}
		after := max(c.at.Sub(revoked), 0)
		worst = max(worst, after)
		if after > 1500*time.Millisecond {
			t.Errorf("%s closed %v after the revocation committed, want within about a second", name, after)
		}
	}
	// Another key's socket is untouched; the revoked key no longer logs in.
	bystander.ping()
	l.dial("").call(map[string]any{"a": "fd1.session.login", "rq": "L", "v": map[string]any{"apikey": doomed}}).wantError(t, "login_failed")
	t.Logf("sockets of the revoked key closed with 1008 at most %v after the revoke command exited (%v after it started)",
		worst.Round(time.Millisecond), (worst + revoked.Sub(began)).Round(time.Millisecond))
}

// TestHandshakeTimeout: a connection that never completes its HTTP
// request, headers or body, is closed within the handshake timeout. serve has no flag for it
// (server.Config.HandshakeTimeout, default 10s), so this runs with the
// default.
func TestHandshakeTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	l := startLane(t, "--handshake-timeout", "2s")
	c := l.login("", l.key, "")
	cases := []struct {
		name  string
		write func(nc net.Conn)
	}{
		{"silent", func(net.Conn) {}},
		{"half a request", func(nc net.Conn) {
			_, _ = nc.Write([]byte("GET /fd1/open_websocket HTTP/1.1\r\nHost: lane\r\nUpgrade: websocket\r\n"))
		}},
		{"a byte every 250ms", func(nc net.Conn) {
			req := "GET /fd1/open_websocket HTTP/1.1\r\nHost: lane\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
			for i := range len(req) {
				if _, err := nc.Write([]byte{req[i]}); err != nil {
					return
				}
				time.Sleep(250 * time.Millisecond) // a slowloris client
			}
		}},
		// An HTTP-mode call whose body never comes, or comes a byte at a time.
		{"headers, then no body", func(nc net.Conn) {
			_, _ = fmt.Fprintf(nc, "POST /fd1/debug/ping HTTP/1.1\r\nHost: lane\r\nx-api-key: %s\r\nContent-Length: 60000\r\n\r\n", l.key)
		}},
		{"a body byte every 250ms", func(nc net.Conn) {
			_, _ = fmt.Fprintf(nc, "POST /fd1/debug/ping HTTP/1.1\r\nHost: lane\r\nx-api-key: %s\r\nContent-Length: 60000\r\n\r\n", l.key)
			for range 60000 {
				if _, err := nc.Write([]byte{' '}); err != nil {
					return
				}
				time.Sleep(250 * time.Millisecond)
			}
		}},
	}
	var wg sync.WaitGroup
	took := make([]time.Duration, len(cases))
	errs := make([]error, len(cases))
	for i, tc := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.Dial("tcp", l.addr)
			if err != nil {
				errs[i] = err
				return
			}
			defer nc.Close()
			start := time.Now()
			go tc.write(nc)
			_ = nc.SetReadDeadline(start.Add(timeout + 4*time.Second))
			_, err = io.Copy(io.Discard, nc) // until the lane hangs up
			took[i] = time.Since(start)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				errs[i] = fmt.Errorf("still open after %v", took[i].Round(time.Millisecond))
			}
		}()
	}
	wg.Wait()
	for i, tc := range cases {
		if errs[i] != nil {
			t.Errorf("%s: %v; want closed within the %v handshake timeout", tc.name, errs[i], timeout)
			continue
		}
		t.Logf("%s: closed after %v", tc.name, took[i].Round(time.Millisecond))
	}
	c.ping() // the lane served on meanwhile
}

// TestIdleHTTPConnectionIsClosed: a connection that made one HTTP request
// and then sits idle (keep-alive) must not be held open forever: these are
// not sockets, so --max-sockets does not bound them.
func TestIdleHTTPConnectionIsClosed(t *testing.T) {
	t.Parallel()
	l := startLane(t, "--idle-timeout", "2s")
	nc, err := net.Dial("tcp", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("GET /healthz HTTP/1.1\r\nHost: lane\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = nc.SetReadDeadline(start.Add(15 * time.Second))
	n, err := io.Copy(io.Discard, nc)
	var ne net.Error
	if n == 0 || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("an idle keep-alive connection was still open after %v (read %d bytes, %v)", time.Since(start).Round(time.Millisecond), n, err)
	}
	t.Logf("idle keep-alive connection closed after %v", time.Since(start).Round(time.Millisecond))
}

// TestConnectionsPerAddress: one address that opens connections and
// sends nothing holds at most --max-conns-per-address of them; the one past
// it is closed as it arrives, /metrics counts it, and the lane serves on
// once a place comes free.
func TestConnectionsPerAddress(t *testing.T) {
	t.Parallel()
	l := startLane(t, "--max-conns-per-address", "4")
	var held []net.Conn
	for range 3 { // the scrape's, below, is the fourth
		nc, err := net.Dial("tcp", l.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		held = append(held, nc)
	}
	// The scrape's connection is the fourth; once it has answered, the
	// lane has seen all three idle ones too (it accepts in order).
	if _, m := l.scrape(""); m["greenlane_connections_refused_total"] != 0 {
		t.Fatalf("refused before any was over the cap: %v", m["greenlane_connections_refused_total"])
	}
	over, err := net.Dial("tcp", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	_ = over.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := over.Read(make([]byte, 1)); n != 0 || err == nil || os.IsTimeout(err) {
		t.Fatalf("a 5th connection from one address: read %d bytes, %v; want it closed at once", n, err)
	}
	// The scrapes reuse the first one's kept-alive connection.
	waitMetric := func(name string, want float64) {
		t.Helper()
		_, m := l.scrape("")
		for deadline := time.Now().Add(10 * time.Second); m[name] != want && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
			_, m = l.scrape("")
		}
		if m[name] != want {
			t.Fatalf("%s = %v, want %v", name, m[name], want)
		}
	}
	waitMetric("greenlane_connections_refused_total", 1)
	held[0].Close()
	waitMetric("greenlane_connections_open", 3)
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := fresh.Get("http://" + l.addr + "/healthz")
	if err != nil {
		t.Fatalf("a new connection once a place came free: %v", err)
	}
	resp.Body.Close()
	if !strings.Contains(l.log(), "connection refused") || !strings.Contains(l.log(), "max-conns-per-address") {
		t.Fatalf("the lane's log does not say why it closed the connection:\n%s", l.troubles())
	}
}

func TestTooManyFirehoses(t *testing.T) {
	// Both sockets log in with the admin key: the per-socket cap is what
	// is tested here, not the per-key one (TestFirehosesPerKey).
	l := startLane(t, "--max-firehoses-per-key", "1000")
	c := l.login("", l.key, "")
	open := func(rq string) map[string]any {
		return map[string]any{"a": "fd1.firehose.open_firehose", "rq": rq, "v": map[string]any{"event": "device.event"}}
	}
	var pkts []map[string]any
	for i := range 64 {
		pkts = append(pkts, open(fmt.Sprintf("fh-%d", i)))
	}
	for rq, r := range c.callAll(pkts...) {
		if r.Error != nil || r.SC != "firehose.status" {
			t.Fatalf("firehose %s of the first 64: %s", rq, r.raw)
		}
	}
	r := c.call(open("fh-64"))
	r.wantError(t, "limit_reached")
	if !strings.Contains(r.Error.Message, "64") {
		t.Fatalf("the 65th firehose's refusal %q does not say the limit", r.Error.Message)
	}
	// Thousands more, pipelined in chunks: each refused, the socket alive.
	refused := 0
	for chunk := range 20 {
		pkts = pkts[:0]
		for i := range 100 {
			pkts = append(pkts, open(fmt.Sprintf("more-%d-%d", chunk, i)))
		}
		for rq, r := range c.callAll(pkts...) {
			if r.Error == nil || r.Error.Code != "limit_reached" {
				t.Fatalf("extra firehose %s: %s", rq, r.raw)
			}
			refused++
		}
	}
	c.ping()
	// The 64 still stream: one injected event arrives once on each.
	gateway := l.login("", l.key, "")
	if r := gateway.call(map[string]any{"a": "fd1.debug.inject_event", "rq": "i", "v": map[string]any{"event": "device.event", "sc": "test.limit", "data": map[string]any{"n": 1}}}); r.Error != nil {
		t.Fatalf("inject: %s", r.raw)
	}
	seen := map[string]bool{}
	for range 64 {
		p := c.next()
		if p.SC != "test.limit" || seen[p.rpKey()] {
			t.Fatalf("want one event on each of the 64 firehoses, got %s", p.raw)
		}
		seen[p.rpKey()] = true
	}
	// The cap counts open firehoses: close one, and one more opens.
	if r := c.call(map[string]any{"a": "fd1.firehose.close_firehose", "rq": "x", "k": "fh-3"}); r.Error != nil {
		t.Fatalf("close: %s", r.raw)
	}
	if r := c.call(open("fh-again")); r.Error != nil || r.SC != "firehose.status" {
		t.Fatalf("open after a close: %s", r.raw)
	}
	c.call(open("fh-over")).wantError(t, "limit_reached")
	// The cap is per socket.
	if r := gateway.call(open("own")); r.Error != nil || r.SC != "firehose.status" {
		t.Fatalf("another socket's first firehose: %s", r.raw)
	}
	t.Logf("64 firehoses open, %d more refused with limit_reached", refused+1)
}
