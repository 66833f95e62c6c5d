package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Graceful shutdown (issue 6, promise 2): on SIGTERM the lane stops
// accepting sockets, lets the requests it has taken finish within the grace
// period, sends every socket fn1.link.link_status and then a 1001 close,
// and closes the lane DB cleanly. A request that was not answered had no
// effect.

// relStream records everything one socket receives until it closes.
type relStream struct {
	mu       sync.Mutex
	packets  []*packet
	at       []time.Time
	closeErr error
	done     chan struct{}
	burst    int           // replies whose rp starts with burstTag
	burstTag string        // "" when the socket sends no burst
	started  chan struct{} // closed once startAt burst replies arrived
	startAt  int
	bye      func() // called when fn1.link.link_status arrives
}

func relRecord(ws *websocket.Conn, burstTag string, startAt int, bye func()) *relStream {
	s := &relStream{done: make(chan struct{}), burstTag: burstTag, started: make(chan struct{}), startAt: startAt, bye: bye}
	go func() {
		defer close(s.done)
		for {
			_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, msg, err := ws.ReadMessage()
			if err != nil {
				s.mu.Lock()
				s.closeErr = err
				s.mu.Unlock()
				return
			}
			p := &packet{raw: msg}
			if json.Unmarshal(msg, p) != nil {
				p.A = "not JSON"
			}
			if p.A == "fn1.link.link_status" {
				s.bye()
			}
			s.mu.Lock()
			s.packets = append(s.packets, p)
			s.at = append(s.at, time.Now())
			if burstTag != "" && strings.HasPrefix(p.rpKey(), `"`+burstTag) {
				s.burst++
				if s.burst == startAt {
					close(s.started)
				}
			}
			s.mu.Unlock()
		}
	}()
	return s
}

// checkGoodbye checks the end of a stream: the link_status push is the
// last packet, and the close is 1001. It returns the packets before it.
func (s *relStream) checkGoodbye(t *testing.T, who string) []*packet {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var ce *websocket.CloseError
	if !errors.As(s.closeErr, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Errorf("%s: the socket ended with %v, want a 1001 (going away) close", who, s.closeErr)
	}
	at := -1
	for i, p := range s.packets {
		if p.A == "fn1.link.link_status" {
			if at >= 0 {
				t.Errorf("%s: link_status twice: %s", who, p.raw)
			}
			at = i
		}
	}
	if at < 0 {
		t.Errorf("%s: no fn1.link.link_status before the close (last packets: %v)", who, relLastRaw(s.packets, 3))
		return s.packets
	}
	if at != len(s.packets)-1 {
		t.Errorf("%s: %d packets came after link_status, the first: %s", who, len(s.packets)-1-at, s.packets[at+1].raw)
	}
	var v struct {
		Message string `json:"message"`
		Servers []any  `json:"servers"`
	}
	ls := s.packets[at]
	if err := json.Unmarshal(ls.V, &v); err != nil || v.Message == "" || v.Servers == nil || len(v.Servers) != 0 {
		t.Errorf("%s: link_status %s, want v {message, servers: []}", who, ls.raw)
	}
	return s.packets[:at]
}

// relLastRaw is the last n packets, each clipped, for a failure message.
func relLastRaw(ps []*packet, n int) []string {
	var out []string
	for _, p := range ps[max(0, len(ps)-n):] {
		out = append(out, relClip(p.raw))
	}
	return out
}

// relBurstAdd is one pipelined add_product of the shutdown burst.
type relBurstAdd struct {
	rq, ik, physkey string
	pid, n          int // n: the line this add makes on its sale
	pkt             map[string]any
	data            []byte // data of its reply, if answered
}

func TestGracefulShutdown(t *testing.T) {
	const (
		grace  = 5 * time.Second
		sales  = 8   // presells per tablet
		burstN = 240 // add_products each tablet pipelines, round robin over its presells
	)
	db := filepath.Join(t.TempDir(), "lane.db")
	p := relStart(t, db, "--shutdown-grace", grace.String())
	admin := relAdminKey(t, db)
	tablets := []string{"tablet-1", "tablet-2", "tablet-3"}
	keys := relKeys(t, db, map[string]string{"tablet-1": "presell", "tablet-2": "presell", "tablet-3": "presell", "display-1": "display"})

	// Closed when the first socket hears the lane is going away.
	goodbye := make(chan struct{})
	var byeOnce sync.Once
	bye := func() { byeOnce.Do(func() { close(goodbye) }) }

	// A customer display following the whole lane, and an idle admin socket.
	display, err := relDial(p.addr, "", "display")
	if err != nil {
		t.Fatal(err)
	}
	r, err := display.exchange([]map[string]any{{"a": "fd1.session.login", "v": map[string]any{"apikey": keys["display-1"], "purpose": "customerdisplay"}}}, nil)
	if err != nil || r[0].Error != nil {
		t.Fatalf("display login: %v %v", err, r)
	}
	if err := display.ws.WriteJSON(map[string]any{"a": "fd1.firehose.open_firehose", "rq": "cd", "v": map[string]any{"event": "custdisp.sale"}}); err != nil {
		t.Fatal(err)
	}
	if _, ack, err := display.ws.ReadMessage(); err != nil || !bytes.Contains(ack, []byte(`"firehose.status"`)) {
		t.Fatalf("display firehose ack: %s %v", ack, err)
	}
	idle, err := relLogin(p.addr, "", "idle", admin)
	if err != nil {
		t.Fatal(err)
	}
	streams := map[string]*relStream{"display": relRecord(display.ws, "", 0, bye), "idle admin socket": relRecord(idle.ws, "", 0, bye)}

	// Each tablet creates two presells, then pipelines add_products to both,
	// every one with its ik.
	burst := map[string][]*relBurstAdd{}
	conns := map[string]*relClient{}
	for i, name := range tablets {
		c, err := relLogin(p.addr, relPresellQuery, name, keys[name])
		if err != nil {
			t.Fatal(err)
		}
		conns[name] = c
		var pks []string
		var creates []map[string]any
		for range sales {
			pk := newUUID()
			pks = append(pks, pk)
			creates = append(creates, map[string]any{"a": relSB + "sale_create", "ik": newUUID(), "v": map[string]any{"physkey": pk}})
		}
		r, err := c.exchange(creates, nil)
		if err != nil {
			t.Fatalf("%s: create: %v", name, err)
		}
		for _, p := range r {
			if p.Error != nil {
				t.Fatalf("%s: create: %s", name, p.raw)
			}
		}
		lines := map[string]int{}
		for j := range burstN {
			pk := pks[j%sales]
			lines[pk]++
			a := &relBurstAdd{rq: fmt.Sprintf("b%d/%d", i+1, j), ik: newUUID(), physkey: pk, pid: relPIDs[(i*7+j)%len(relPIDs)], n: lines[pk]}
			a.pkt = map[string]any{"a": relSB + "sale_add_product", "k": pk, "ik": a.ik, "v": map[string]any{"pid": a.pid}}
			burst[name] = append(burst[name], a)
		}
		streams[name] = relRecord(c.ws, fmt.Sprintf("b%d/", i+1), 10, bye)
	}
	var writers sync.WaitGroup
	written := map[string]*int{}
	for _, name := range tablets {
		c, n := conns[name], new(int)
		written[name] = n
		writers.Add(1)
		go func() {
			defer writers.Done()
			_ = c.ws.SetWriteDeadline(time.Now().Add(20 * time.Second))
			for _, a := range burst[name] {
				msg, _ := json.Marshal(relWithRQ(a.pkt, a.rq))
				if c.ws.WriteMessage(websocket.TextMessage, msg) != nil {
					return
				}
				*n++
			}
		}()
	}
	// SIGTERM while the bursts are being served: every tablet has had some
	// replies, and has more requests queued on the lane.
	for _, name := range tablets {
		select {
		case <-streams[name].started:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no burst replies within 30s", name)
		}
	}
	sigterm := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// Once any socket has been told the lane is going away, the lane
	// accepts no new socket and no HTTP call.
	select {
	case <-goodbye:
	case <-p.exited:
	case <-time.After(grace + 5*time.Second):
		t.Fatalf("no socket heard the lane is going away within %v of SIGTERM", grace+5*time.Second)
	}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial("ws://"+p.addr+"/fd1/open_websocket", nil)
	if err == nil {
		ws.Close()
		t.Errorf("a new socket was accepted after the lane began shutting down")
	} else if resp != nil && resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a new socket after shutdown began: %v, HTTP %d; want refused (connection refused or 503)", err, resp.StatusCode)
	}
	hc := http.Client{Timeout: 5 * time.Second}
	if hr, err := hc.Get("http://" + p.addr + "/healthz"); err == nil {
		hr.Body.Close()
		if hr.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("healthz after shutdown began: HTTP %d, want refused or 503", hr.StatusCode)
		}
	}

	took, code := p.waitExit(sigterm, grace+2*time.Second)
	if code != 0 {
		t.Fatalf("after SIGTERM the lane exited with %d after %v (-1: still running):\n%s", code, took, p.log())
	}
	writers.Wait()
	for who, s := range streams {
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: still open 10s after the lane exited", who)
		}
	}
	log := p.log()
	if !strings.Contains(log, "stopped; lane DB closed cleanly") {
		t.Errorf("the log does not say the lane DB closed cleanly:\n%s", log)
	}
	if strings.Contains(log, "still open after the shutdown grace") {
		t.Errorf("in-flight requests did not finish within the %v grace:\n%s", grace, log)
	}
	if st, err := os.Stat(db + "-wal"); err == nil && st.Size() > 0 {
		t.Errorf("the WAL file holds %d bytes after a clean stop: the lane DB was not checkpointed and closed", st.Size())
	}

	// Every socket: replies (and events), then link_status, then 1001.
	events := len(streams["display"].checkGoodbye(t, "display"))
	if n := len(streams["idle admin socket"].checkGoodbye(t, "idle admin socket")); n != 0 {
		t.Errorf("the idle socket got %d packets before link_status", n)
	}
	var answered, unanswered, afterSignal int
	for _, name := range tablets {
		s := streams[name]
		got := s.checkGoodbye(t, name)
		byRQ := map[string]*packet{}
		for i, p := range got {
			byRQ[p.rpKey()] = p
			if s.at[i].After(sigterm) {
				afterSignal++
			}
		}
		// The replies answer a prefix of what the tablet sent, each once.
		n := 0
		for n < len(burst[name]) && byRQ[fmt.Sprintf("%q", burst[name][n].rq)] != nil {
			n++
		}
		if len(got) != n {
			t.Errorf("%s: %d replies, but only the first %d of its requests are answered in order (sent %d)", name, len(got), n, *written[name])
		}
		for _, a := range burst[name][:n] {
			p := byRQ[fmt.Sprintf("%q", a.rq)]
			sale, err := relSaleOf(p)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if ls, _ := sale["lines"].([]any); len(ls) != a.n {
				t.Errorf("%s: add %s answered with %d lines, want %d", name, a.rq, len(ls), a.n)
			}
			a.data = p.Data
		}
		answered += n
		unanswered += len(burst[name]) - n
	}
	if unanswered == 0 || afterSignal == 0 {
		t.Errorf("the SIGTERM did not land mid-burst (%d unanswered, %d replies after the signal): the test proves nothing", unanswered, afterSignal)
	}
	if events == 0 {
		t.Errorf("the display saw no event before link_status")
	}
	if t.Failed() {
		t.FailNow()
	}

	// The DB file: every answered add is there once, no unanswered one is.
	if ok := sqliteRows(t, db, `PRAGMA integrity_check`); len(ok) != 1 || ok[0]["integrity_check"] != "ok" {
		t.Fatalf("integrity_check: %v", ok)
	}
	relCheckBurst(t, db, burst, false)

	// Restarted, each tablet retries its unanswered requests with their ik:
	// each is applied once. A second retry of anything gets the first reply.
	p2 := relStart(t, db)
	var retries sync.WaitGroup
	retryErrs := make([]error, len(tablets))
	for i, name := range tablets {
		retries.Add(1)
		go func() {
			defer retries.Done()
			retryErrs[i] = relRetryBurst(p2.addr, name, keys[name], burst[name])
		}()
	}
	retries.Wait()
	for _, err := range retryErrs {
		if err != nil {
			t.Fatal(err)
		}
	}
	stop := time.Now()
	_ = p2.cmd.Process.Signal(syscall.SIGTERM)
	if took2, code := p2.waitExit(stop, grace+2*time.Second); code != 0 || !strings.Contains(p2.log(), "stopped; lane DB closed cleanly") {
		t.Fatalf("idle lane after SIGTERM: exit %d after %v:\n%s", code, took2, p2.log())
	}
	relCheckBurst(t, db, burst, true)
	t.Logf("SIGTERM mid-burst: exit 0 after %v (grace %v); %d requests answered (%d of them after the signal), %d unanswered and without effect, then applied once by an ik retry after a restart; the display got %d events before link_status",
		took.Round(time.Millisecond), grace, answered, afterSignal, unanswered, events)
}

// relRetryBurst logs a tablet in again, retries its unanswered adds with
// their ik (each must be applied once: its reply shows its own line count),
// then retries a sample of all its adds again: each reply must be the first
// one, byte for byte.
func relRetryBurst(addr, name, key string, adds []*relBurstAdd) error {
	c, err := relLogin(addr, relPresellQuery, name, key)
	if err != nil {
		return err
	}
	defer c.ws.Close()
	var lost []*relBurstAdd
	var pkts []map[string]any
	for _, a := range adds {
		if a.data == nil {
			lost = append(lost, a)
			pkts = append(pkts, a.pkt)
		}
	}
	r, err := c.exchange(pkts, nil)
	if err != nil {
		return err
	}
	for i, p := range r {
		sale, err := relSaleOf(p)
		if err != nil {
			return fmt.Errorf("%s: retry of unanswered add %s: %w", name, lost[i].rq, err)
		}
		if ls, _ := sale["lines"].([]any); len(ls) != lost[i].n {
			return fmt.Errorf("%s: retry of unanswered add %s answered with %d lines, want %d", name, lost[i].rq, len(ls), lost[i].n)
		}
		lost[i].data = p.Data
	}
	var sample []*relBurstAdd
	pkts = pkts[:0]
	for j := 0; j < len(adds); j += 13 {
		sample = append(sample, adds[j])
		pkts = append(pkts, adds[j].pkt)
	}
	r, err = c.exchange(pkts, nil)
	if err != nil {
		return err
	}
	for i, p := range r {
		if p.Error != nil || !bytes.Equal(p.Data, sample[i].data) {
			return fmt.Errorf("%s: second retry of add %s:\n got %s\nwant data %s", name, sample[i].rq, p.raw, sample[i].data)
		}
	}
	return nil
}

// relWithRQ is a packet with rq set.
func relWithRQ(p map[string]any, rq string) map[string]any {
	q := make(map[string]any, len(p)+1)
	for k, v := range p {
		q[k] = v
	}
	q["rq"] = rq
	return q
}

// relSQLList is a parenthesised list of quoted strings for IN (…).
func relSQLList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	return "(" + strings.Join(q, ",") + ")"
}

// relCheckBurst checks the burst's sales in the DB: their lines are the
// answered adds (all adds when all), each once, and the idempotency table
// holds exactly the answered iks.
func relCheckBurst(t *testing.T, db string, burst map[string][]*relBurstAdd, all bool) {
	t.Helper()
	want := map[string][]*relBurstAdd{}
	var iks []string
	for _, adds := range burst {
		for _, a := range adds {
			if all || a.data != nil {
				want[a.physkey] = append(want[a.physkey], a)
			}
			iks = append(iks, a.ik)
		}
	}
	got := map[string][]map[string]any{}
	var pks []string
	for pk := range want {
		pks = append(pks, pk)
	}
	for _, ln := range sqliteRows(t, db, `SELECT sale_physkey, seqnce, pid FROM sale_lines WHERE sale_physkey IN %s ORDER BY sale_physkey, seqnce`, relSQLList(pks)) {
		pk := ln["sale_physkey"].(string)
		got[pk] = append(got[pk], ln)
	}
	for pk, adds := range want {
		if len(got[pk]) != len(adds) {
			t.Errorf("sale %s has %d lines in the DB; %d adds were answered", pk, len(got[pk]), len(adds))
			continue
		}
		for i, a := range adds {
			ln := got[pk][i]
			if ln["seqnce"] != float64(a.n) || ln["pid"] != float64(a.pid) {
				t.Errorf("sale %s line %d: %v, want seqnce %d pid %d", pk, i+1, ln, a.n, a.pid)
			}
		}
	}
	stored := map[string]bool{}
	for _, row := range sqliteRows(t, db, `SELECT ik FROM idempotency WHERE ik IN %s`, relSQLList(iks)) {
		stored[row["ik"].(string)] = true
	}
	for _, adds := range burst {
		for _, a := range adds {
			if stored[a.ik] != (all || a.data != nil) {
				t.Errorf("add %s (answered %v): its ik stored %v", a.rq, a.data != nil, stored[a.ik])
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}
