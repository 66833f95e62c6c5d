package integration

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/server"
)

// scrape reads /metrics with an Authorization header (none when auth is
// ""): the status and every sample as `name{labels}` → value.
func (l *lane) scrape(auth string) (int, map[string]float64) {
	l.t.Helper()
	return l.scrapeURL("http://"+l.addr+"/metrics", auth)
}

// scrapeURL is scrape at url (--metrics-addr's).
func (l *lane) scrapeURL(url, auth string) (int, map[string]float64) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		l.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	samples := map[string]float64{}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, samples
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			l.t.Fatalf("metrics line %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return resp.StatusCode, samples
}

func (l *lane) get(path string) (int, string) {
	l.t.Helper()
	resp, err := http.Get("http://" + l.addr + path)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetricsAfterAScriptedPresell: a tablet builds and parks a presell, a
// counter recalls, pays and completes it; /metrics shows each request
// family's counter moved by exactly the requests sent, the open sockets by
// purpose and the build.
func TestMetricsAfterAScriptedPresell(t *testing.T) {
	alongside(t)
	const token = "metrics-s3cret"
	l := startLane(t, "--metrics-token", token)
	bearer := "Bearer " + token
	for _, auth := range []string{"", "Bearer wrong", token} {
		if code, _ := l.scrape(auth); code != http.StatusUnauthorized {
			t.Errorf("/metrics with Authorization %q: %d, want 401", auth, code)
		}
	}
	code, before := l.scrape(bearer)
	if code != http.StatusOK {
		t.Fatalf("/metrics with the token: %d", code)
	}
	tabKey, tillKey := l.newKey("tablet-1", "presell"), l.newKey("till-1", "counter")

	tab := l.login(presellQuery, tabKey, "")
	till := l.login("", tillKey, "")
	k := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, tab, sbA+"sale_add_product", k, map[string]any{"pid": 1001, "qty": 1})
	sale(t, tab, sbA+"sale_add_product", k, map[string]any{"pid": 1001, "qty": 1})
	ticket := sale(t, tab, sbA+"sale_park", k, nil)["ticket"]
	recalled := sale(t, till, presellA+"recall", nil, map[string]any{"ticket": ticket})
	total := num(recalled["saletotal"])
	if total <= 0 {
		t.Fatalf("recall: no saletotal in %v", recalled)
	}
	sale(t, till, sbA+"sale_add_payment", k, map[string]any{"type": 1, "amount": total})
	if s := sale(t, till, sbA+"salesbuilder_complete", k, nil); num(s["phase"]) != 1 {
		t.Fatalf("complete: %v", s)
	}
	// One refused call: its code is counted apart from the ok ones.
	r := do(t, till, sbA+"sale_park", "no-such-sale", nil)
	if r.Error == nil {
		t.Fatalf("sale_park of no sale answered %s", r.raw)
	}
	refused := string(r.Error.Code)

	_, after := l.scrape(bearer)
	moved := func(name string) float64 { return after[name] - before[name] }
	for name, want := range map[string]float64{
		`greenlane_requests_total{code="ok",family="session"}`:                   2, // the two logins
		`greenlane_requests_total{code="ok",family="salesbuilder"}`:              6,
		`greenlane_requests_total{code="ok",family="presell"}`:                   1,
		`greenlane_requests_total{code="` + refused + `",family="salesbuilder"}`: 1,
		`greenlane_request_duration_seconds_count{family="salesbuilder"}`:        7,
		`greenlane_request_duration_seconds_count{family="presell"}`:             1,
		`greenlane_logins_total{outcome="ok"}`:                                   2,
	} {
		if got := moved(name); got != want {
			t.Errorf("%s moved by %v, want %v", name, got, want)
		}
	}
	for name, want := range map[string]float64{
		`greenlane_sockets_open{purpose="presell"}`:         1,
		`greenlane_sockets_open{purpose="fd1"}`:             1,
		`greenlane_sockets_open{purpose="customerdisplay"}`: 0,
		`greenlane_presells_open`:                           0,
	} {
		if got, ok := after[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	if after[`greenlane_writer_mutations_total`] <= before[`greenlane_writer_mutations_total`] {
		t.Errorf("greenlane_writer_mutations_total did not move: %v → %v", before[`greenlane_writer_mutations_total`], after[`greenlane_writer_mutations_total`])
	}
	build := 0
	for name, v := range after {
		if strings.HasPrefix(name, `greenlane_build_info{goversion="go`) && v == 1 {
			build++
		}
	}
	if build != 1 {
		t.Errorf("want one greenlane_build_info{goversion=...,version=...} 1, got %d", build)
	}
	for name := range after {
		if strings.Contains(name, k) || strings.Contains(name, tabKey) || strings.Contains(name, tillKey) {
			t.Errorf("a label holds a sale key or an API key: %s", name)
		}
	}
	if code, body := l.get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: %d %s", code, body)
	}
}

// TestLogFormatJSON: with --log-format json every line the lane writes is
// one JSON object; HTTP requests and socket sessions get their access
// lines; no line holds the API key, whether it came in a login packet, the
// x-api-key header or a _k in the query.
func TestLogFormatJSON(t *testing.T) {
	alongside(t)
	l := startLane(t, "--log-format", "json")
	key := l.newKey("tablet-7", "presell")
	tab := l.login(presellQuery, key, "")
	sale(t, tab, sbA+"sale_create", nil, nil)
	tab.ws.Close()
	if code, _ := l.httpCall("GET", "/fd1/debug/ping", map[string]string{"x-api-key": key}, ""); code != http.StatusOK {
		t.Errorf("HTTP ping with x-api-key: %d", code)
	}
	l.httpCall("GET", "/fd1/debug/ping?_k="+key, nil, "")
	if code, body := l.get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: %d %s", code, body)
	}
	l.stop()

	var sawHTTP, sawOpened, sawClosed bool
	for _, line := range strings.Split(strings.TrimSpace(l.log()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON line: %q (%v)", line, err)
			continue
		}
		if strings.Contains(line, key) {
			t.Errorf("a log line holds the API key: %s", line)
		}
		switch rec["msg"] {
		case "http":
			if rec["path"] == "/fd1/debug/ping" && rec["status"] == float64(200) && rec["method"] == "GET" {
				sawHTTP = true
			}
		case "websocket opened":
			sawOpened = rec["purpose"] == "presell"
		case "websocket closed":
			sawClosed = rec["key"] == "tablet-7" && rec["requests"] == float64(2) && rec["replies"] == float64(2)
		}
	}
	if !sawHTTP || !sawOpened || !sawClosed {
		t.Errorf("access lines: http %v, websocket opened %v, websocket closed (key name, 2 requests, 2 replies) %v\n%s",
			sawHTTP, sawOpened, sawClosed, l.log())
	}
}

// TestMetricsOnTheirOwnAddress: --metrics-addr serves /metrics there and
// not on the FD1 port.
func TestMetricsOnTheirOwnAddress(t *testing.T) {
	alongside(t)
	l := startLane(t, "--metrics-addr", "127.0.0.1:0")
	m := regexp.MustCompile(`msg="metrics listening" url=(\S+)`).FindStringSubmatch(l.log())
	if m == nil {
		t.Fatalf("no metrics listening line:\n%s", l.log())
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "greenlane_build_info{") {
		t.Errorf("GET %s: %d\n%s", m[1], resp.StatusCode, b)
	}
	if code, _ := l.get("/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics on the FD1 port: %d, want 404 when --metrics-addr is set", code)
	}
}

// TestMetricsAddressConnectionsAreCounted: connections to --metrics-addr
// count against the lane's caps: one address that opens them and sends
// nothing holds at most --max-conns-per-address, counted with those it
// holds on the FD1 port, and the one past the cap is closed as it arrives.
// (Kept-alive scrapes were never closed, and thousands of them took every
// file descriptor: the FD1 port stopped accepting.)
func TestMetricsAddressConnectionsAreCounted(t *testing.T) {
	alongside(t)
	l := startLane(t, "--metrics-addr", "127.0.0.1:0", "--max-conns-per-address", "5")
	needsOwnLane(t)
	m := regexp.MustCompile(`msg="metrics listening" url=(http://(\S+)/metrics)`).FindStringSubmatch(l.log())
	if m == nil {
		t.Fatalf("no metrics listening line:\n%s", l.log())
	}
	for _, addr := range []string{l.addr, l.addr, m[2], m[2]} {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
	}
	// The scrapes' kept-alive connection is the fifth; once the lane counts
	// five open, it has accepted the four idle ones too.
	_, got := l.scrapeURL(m[1], "")
	for deadline := time.Now().Add(10 * time.Second); got["greenlane_connections_open"] != 5 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		_, got = l.scrapeURL(m[1], "")
	}
	if got["greenlane_connections_open"] != 5 {
		t.Fatalf("greenlane_connections_open = %v, want 5: two idle on each port and the scrape's", got["greenlane_connections_open"])
	}
	over, err := net.Dial("tcp", m[2])
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	_ = over.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := over.Read(make([]byte, 1)); n != 0 || err == nil || os.IsTimeout(err) {
		t.Fatalf("a 6th connection from one address, to the metrics port: read %d bytes, %v; want it closed at once", n, err)
	}
}

// TestHeadersAreBounded: a request whose headers pass server.MaxHeaderBytes
// is answered 431 on the FD1 port and on --metrics-addr (Go's default of
// 1 MiB per connection let thousands of connections without a key hold
// gigabytes).
func TestHeadersAreBounded(t *testing.T) {
	alongside(t)
	l := startLane(t, "--metrics-addr", "127.0.0.1:0")
	needsOwnLane(t)
	m := regexp.MustCompile(`msg="metrics listening" url=http://(\S+)/metrics`).FindStringSubmatch(l.log())
	if m == nil {
		t.Fatalf("no metrics listening line:\n%s", l.log())
	}
	big := strings.Repeat("x", 2*server.MaxHeaderBytes) // net/http allows 4 KiB of slack
	for _, url := range []string{"http://" + l.addr + "/healthz", "http://" + m[1] + "/metrics"} {
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Big", big)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s with %d bytes of headers: %v", url, len(big), err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("GET %s with %d bytes of headers: %d, want 431", url, len(big), resp.StatusCode)
		}
	}
}

// TestAnswersNotReadAreCutOff: a client that pipelines requests for a big
// asset and never reads the answers has its connection closed once an
// answer has not been written within --request-timeout and --write-wait;
// it held the connection (and megabytes of send buffer) for good.
func TestAnswersNotReadAreCutOff(t *testing.T) {
	alongside(t)
	l := startLane(t, "--request-timeout", "1s", "--write-wait", "1s")
	needsOwnLane(t)
	_, page := l.get("/tablet/")
	asset := regexp.MustCompile(`/assets/[^"]+/tablet/tablet\.js`).FindString(page)
	if asset == "" {
		t.Fatalf("no tablet.js in the tablet page:\n%s", page)
	}
	nc, err := net.Dial("tcp", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	go func() { // the lane stops reading once its answers back up: never waited for
		req := "GET " + asset + " HTTP/1.1\r\nHost: lane\r\n\r\n"
		for range 400 {
			if _, err := io.WriteString(nc, req); err != nil {
				return
			}
		}
	}()
	// The scrapes' connection is the only one left open once the lane has
	// given up on the reader that does not read.
	_, m := l.scrape("")
	for deadline := time.Now().Add(30 * time.Second); m["greenlane_connections_open"] != 1 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		_, m = l.scrape("")
	}
	if m["greenlane_connections_open"] != 1 {
		t.Fatalf("greenlane_connections_open = %v 30 s on, want 1 (the scrape's): the connection that does not read is still held", m["greenlane_connections_open"])
	}
}
