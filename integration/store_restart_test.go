package integration

// PostgreSQL restarting under a store-mode lane (issue 15, "Failure"): the
// lane answers unavailable meanwhile, never hangs or crashes, and serves
// again by itself afterwards; every acknowledged change is in the store
// database exactly once.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// privatePG is a PostgreSQL cluster of the test's own, made by .ci/pg
// start, so that stopping it disturbs no other test (the shared
// GREENLANE_TEST_PG cluster serves other packages at the same time).
type privatePG struct {
	t    *testing.T
	dir  string // GREENLANE_PG_DIR: the cluster's folder (data/, its socket, server.log)
	url  string // GREENLANE_TEST_PG: its greenlane_test database
	port string
}

// startPrivatePG starts a cluster with .ci/pg and stops it when the test
// ends. Like pgtest.FreshDB it is skipped, saying why, only outside CI
// when no PostgreSQL is set up for the tests (.ci/pg installs the server
// when it is missing, which needs root).
func startPrivatePG(t *testing.T) *privatePG {
	t.Helper()
	needsOwnLane(t)
	if os.Getenv("GREENLANE_TEST_PG") == "" {
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatal("GREENLANE_TEST_PG is unset under CI: .ci/run must start PostgreSQL (.ci/pg start)")
		}
		t.Skip("GREENLANE_TEST_PG is unset: no PostgreSQL set up for the store mode tests (eval \"$(.ci/pg start)\")")
	}
	script, err := filepath.Abs(filepath.Join("..", ".ci", "pg"))
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", script, "start")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf(".ci/pg start: %v\n%s", err, stderr.String())
	}
	p := &privatePG{t: t}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		name, value, _ := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
		switch name {
		case "GREENLANE_PG_DIR":
			p.dir = value
		case "GREENLANE_TEST_PG":
			p.url = value
		}
	}
	if p.dir == "" || p.url == "" {
		t.Fatalf(".ci/pg start printed no cluster:\n%s\n%s", stdout.String(), stderr.String())
	}
	t.Cleanup(func() {
		if out, err := exec.Command("bash", script, "stop", p.dir).CombinedOutput(); err != nil {
			t.Errorf(".ci/pg stop %s: %v\n%s", p.dir, err, out)
		}
	})
	u, err := url.Parse(p.url)
	if err != nil {
		t.Fatalf("the cluster's URL %q: %v", p.url, err)
	}
	p.port = u.Port()
	return p
}

// pgCtl runs the cluster's pg_ctl as its owner, as .ci/pg does (the
// postgres user when the test runs as root: the server refuses root).
func (p *privatePG) pgCtl(args ...string) {
	p.t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		p.t.Fatal("no pg_ctl under /usr/lib/postgresql/*/bin")
	}
	sort.Slice(bins, func(i, j int) bool { return pgMajor(bins[i]) < pgMajor(bins[j]) }) // the newest, as .ci/pg picks
	argv := append([]string{bins[len(bins)-1], "-D", filepath.Join(p.dir, "data")}, args...)
	if os.Geteuid() == 0 {
		argv = append([]string{"runuser", "-u", "postgres", "--"}, argv...)
	}
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		p.t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

// pgMajor is the major version in a /usr/lib/postgresql/N/bin path.
func pgMajor(path string) int {
	var n int
	fmt.Sscanf(filepath.Base(filepath.Dir(filepath.Dir(path))), "%d", &n)
	return n
}

// stop stops the server (fast: it ends every connection, as a restart does).
func (p *privatePG) stop() { p.pgCtl("-m", "fast", "-w", "stop") }

// start starts it again where .ci/pg had it: same port, socket folder and
// log.
func (p *privatePG) start() {
	p.pgCtl("-l", filepath.Join(p.dir, "server.log"), "-w", "-t", "60",
		"-o", "-p "+p.port+" -k "+p.dir+" -c listen_addresses=127.0.0.1", "start")
}

// restartTablet is a tablet adding lines to one sale on its own socket,
// without testing.T so that it can run beside the test: each change keeps
// its ik until the lane acknowledges it, as the web tablet's queue does.
type restartTablet struct {
	ws      *websocket.Conn
	pk      string
	rq      int
	acked   []string     // iks acknowledged, in order
	before  atomic.Int64 // acknowledged before the test stopped PostgreSQL
	unavail atomic.Int64
	okAfter atomic.Int64 // acknowledged after PostgreSQL was started again
	longest time.Duration
}

// The test's phases, as the tablet counts its acknowledged changes (one
// in flight when PostgreSQL stops may still be acknowledged).
const (
	phaseBefore int32 = iota
	phaseOutage
	phaseAfter
)

// replyWait bounds each reply: well past the lane's --db-busy-timeout, so
// a lane that waits on the dead server longer than that is caught hanging.
const (
	restartBusyTimeout = 2 * time.Second
	replyWait          = 5*restartBusyTimeout + 10*time.Second
)

// call sends one packet and reads its reply.
func (c *restartTablet) call(pkt map[string]any) (*packet, error) {
	c.rq++
	pkt["rq"] = fmt.Sprint("r", c.rq)
	b, err := json.Marshal(pkt)
	if err != nil {
		return nil, err
	}
	sent := time.Now()
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		return nil, fmt.Errorf("send %s: %w", pkt["a"], err)
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(replyWait))
	_, msg, err := c.ws.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("no reply to %s %s (the lane hung or dropped the socket): %w", pkt["a"], b, err)
	}
	c.longest = max(c.longest, time.Since(sent))
	p := &packet{raw: msg}
	if err := json.Unmarshal(msg, p); err != nil {
		return nil, fmt.Errorf("reply is not JSON: %s", msg)
	}
	if string(p.RP) != fmt.Sprintf("%q", pkt["rq"]) {
		return nil, fmt.Errorf("reply %s to request %s", msg, pkt["rq"])
	}
	return p, nil
}

// add adds one flat white under a new ik, resending it with that ik while
// the lane answers unavailable, until it is acknowledged or stop is closed
// (then the unacknowledged change is left, as a tablet switched off would).
// Any answer but a success or unavailable is an error.
func (c *restartTablet) add(stop <-chan struct{}, phase *atomic.Int32) error {
	ik := newUUID()
	for {
		r, err := c.call(map[string]any{"a": sbA + "sale_add_product", "k": c.pk, "ik": ik, "v": map[string]any{"pid": 1001}})
		if err != nil {
			return err
		}
		switch {
		case r.Error == nil:
			c.acked = append(c.acked, ik)
			switch phase.Load() {
			case phaseBefore:
				c.before.Add(1)
			case phaseAfter:
				c.okAfter.Add(1)
			}
			return nil
		case r.Error.Code != "unavailable":
			return fmt.Errorf("an add answered %s, want a success or unavailable: %s", r.Error.Code, r.raw)
		}
		c.unavail.Add(1)
		select {
		case <-stop:
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestStoreRestartPostgres: a lane on a store database of its own cluster;
// a tablet keeps adding lines while PostgreSQL stops and starts again.
// Meanwhile every request is answered unavailable (within the reply bound,
// never an internal error, never a crash) and /readyz says not ready;
// afterwards the same process serves again (a new socket logs in too),
// the tablet's waiting change lands with its ik, and the store database holds each acknowledged line
// exactly once.
func TestStoreRestartPostgres(t *testing.T) {
	alongside(t)
	pg := startPrivatePG(t)
	if _, err := cli(t, "fixture", "load", "demo", "--db", pg.url); err != nil {
		t.Fatal(err)
	}
	admin, err := cli(t, "apikey", "create", "--db", pg.url, "--name", "admin", "--scope", "admin")
	if err != nil {
		t.Fatal(err)
	}
	l := startStoreLane(t, pg.url, strings.TrimSpace(admin), "--db-busy-timeout", restartBusyTimeout.String())
	key := l.newKeys("tablet", "presell", 1)[0]
	login := l.login(presellQuery, key, "")
	pk := sale(t, login, sbA+"sale_create", nil, nil)["physkey"].(string)
	tab := &restartTablet{ws: login.ws, pk: pk}

	stop := make(chan struct{})
	var phase atomic.Int32
	var tabErr error // the tablet's, once done is closed
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if tabErr = tab.add(stop, &phase); tabErr != nil {
				return
			}
		}
	}()
	// waitFor waits until cond holds, failing if the tablet stops on an
	// error, the lane exits, or a minute passes.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for !cond() {
			select {
			case <-done:
				t.Fatalf("waiting for %s, the tablet stopped: %v; lane log:\n%s", what, tabErr, l.log())
			case <-l.exited:
				t.Fatalf("the lane exited while waiting for %s:\n%s", what, l.log())
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s within a minute; lane log:\n%s", what, l.log())
			}
		}
	}
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	})
	ready := func() int { code, _ := l.httpCall("GET", "/readyz", nil, ""); return code }

	waitFor("three lines before the restart", func() bool { return tab.before.Load() >= 3 })
	phase.Store(phaseOutage)
	pg.stop()
	waitFor("three unavailable answers", func() bool { return tab.unavail.Load() >= 3 })
	if code, body := l.get("/readyz"); code != 503 || !strings.HasPrefix(body, "not ready: the store database cannot be reached: ") {
		t.Errorf("/readyz with PostgreSQL down: %d %q, want 503 saying plainly that the store database cannot be reached", code, body)
	}
	pg.start()
	phase.Store(phaseAfter)
	waitFor("three lines after the restart", func() bool { return tab.okAfter.Load() >= 3 })
	waitFor("the store lock taken again", func() bool { return strings.Contains(l.log(), "store lock taken again") })
	close(stop)
	<-done
	if tabErr != nil {
		t.Fatal(tabErr)
	}
	if code := ready(); code != 200 {
		t.Errorf("/readyz after PostgreSQL came back: %d, want 200", code)
	}
	// The store lock went with its connection; the lane takes it again by
	// itself, and a fixture command is refused again.
	if out, err := cli(t, "fixture", "reset", "--db", pg.url); err == nil || !strings.Contains(err.Error(), "a lane is serving it") {
		t.Errorf("fixture reset once the lane took its store lock again: %v %s, want refused: a lane is serving it", err, out)
	}
	// A tablet that lost its socket meanwhile logs in again (its key is
	// read from the store database) and is served.
	again := l.login(presellQuery, key, "")
	if r := doPkt(t, again, map[string]any{"a": "salesbuilder.sale_fetch", "rq": "fetch", "k": pk}); r.Error != nil {
		t.Errorf("a new socket after the restart: %s", r.raw)
	}
	select {
	case <-l.exited:
		t.Fatalf("the lane exited:\n%s", l.log())
	default:
	}

	lines := storeRows(t, pg.url, `SELECT count(*) AS n FROM sale_lines WHERE sale_physkey = `+sqlQuote(pk))
	stored := storeRows(t, pg.url, `SELECT count(*) AS n FROM idempotency WHERE ik IN `+sqlList(tab.acked))
	if n := int(lines[0]["n"].(float64)); n != len(tab.acked) || int(stored[0]["n"].(float64)) != len(tab.acked) {
		t.Errorf("the sale has %d lines and %v stored iks; the tablet was told of %d adds (each must be there once)",
			n, stored[0]["n"], len(tab.acked))
	}
	// The changes refused meanwhile are told as a full disk's are: one
	// ERROR when it begins, not one a change, and the recovery; and
	// counted by cause.
	if n := strings.Count(l.log(), `level=ERROR msg="the store database cannot be reached: every change is refused`); n != 1 {
		t.Errorf("%d ERROR lines tell the store database out of reach, want 1; lane log:\n%s", n, l.log())
	}
	if !regexp.MustCompile(`msg="the store database is reachable again[^"]*" refused=[1-9]`).MatchString(l.log()) {
		t.Errorf("the log does not tell the recovery with the changes refused; lane log:\n%s", l.log())
	}
	if _, m := l.scrape(""); m[`greenlane_writer_refused_total{cause="db_unreachable"}`] < 1 {
		t.Errorf("greenlane_writer_refused_total{cause=\"db_unreachable\"} = %v after changes were refused", m[`greenlane_writer_refused_total{cause="db_unreachable"}`])
	}
	if bad := restartTroubles(l); bad != "" {
		t.Errorf("the lane logged trouble besides PostgreSQL being away:\n%s", bad)
	}
	t.Logf("%d adds acknowledged (%d before the stop, %d after the restart), %d answers unavailable meanwhile; longest reply %v (busy timeout %v; machine shared)",
		len(tab.acked), tab.before.Load(), tab.okAfter.Load(), tab.unavail.Load(), tab.longest.Round(time.Millisecond), restartBusyTimeout)
}

// restartTroubles is the lane's WARN and ERROR lines that are not about
// the store database being away (PostgreSQL's own words for a server
// shutting down or starting, a refused or dropped connection, the lane's
// unavailable, or its store lock lost with its connection), "" when none.
func restartTroubles(l *lane) string {
	away := []string{"SQLSTATE 57P01", "SQLSTATE 57P03", "connect: connection refused", "unexpected EOF",
		"conn closed", "connection reset by peer", "broken pipe", "unavailable", "store lock lost with its PostgreSQL connection",
		"the store database cannot be reached", "the store database still cannot be reached"}
	var bad []string
next:
	for _, line := range strings.Split(l.troubles(), "\n") {
		for _, a := range away {
			if line == "" || strings.Contains(line, a) {
				continue next
			}
		}
		bad = append(bad, line)
	}
	return strings.Join(bad, "\n")
}
