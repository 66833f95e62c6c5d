package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A run against a server given with -url leaves that lane as it found it.
// The suite's tests open sales and presells with the -key key and leave
// many of them open (a test checks a reply, not the sale's end); on a
// long-lived staging lane they would pile up run after run until the key
// reaches --max-open-presells and every later run fails with limit errors
// that look like product bugs. So TestMain notes what the key holds open
// before the run (startOfRun) and, after it, voids what the run added and
// releases the claims it left (endOfRun), through the lane's own FD1
// endpoints: the suite has only a URL and a key. What was open before the
// run, and every sale another key made, is left alone.

// remoteSession is one logged-in socket of the cleanup, outside any test.
type remoteSession struct {
	ws *websocket.Conn
	n  int // the last rq number used
}

// fd1Error is a lane's error reply.
type fd1Error struct{ Code, Message string }

func (e *fd1Error) Error() string { return e.Code + ": " + e.Message }

func dialRemoteSession(addr, key string) (*remoteSession, error) {
	url := "ws://" + addr + "/fd1/open_websocket"
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	s := &remoteSession{ws: ws}
	if _, err := s.call(map[string]any{"a": "fd1.session.login", "v": map[string]any{"apikey": key}}); err != nil {
		ws.Close()
		return nil, fmt.Errorf("log in with -key: %w", err)
	}
	return s, nil
}

func (s *remoteSession) close() { s.ws.Close() }

// call sends pkt with a fresh rq and returns its reply's data, skipping
// any event that arrives first.
func (s *remoteSession) call(pkt map[string]any) (json.RawMessage, error) {
	s.n++
	rq := fmt.Sprintf("cleanup-%d", s.n)
	pkt["rq"] = rq
	if err := s.ws.WriteJSON(pkt); err != nil {
		return nil, fmt.Errorf("%s: send: %w", pkt["a"], err)
	}
	for {
		_ = s.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		var p struct {
			R     string          `json:"r"`
			RP    string          `json:"rp"`
			Error *fd1Error       `json:"error"`
			Data  json.RawMessage `json:"data"`
		}
		if err := s.ws.ReadJSON(&p); err != nil {
			return nil, fmt.Errorf("%s: read the reply: %w", pkt["a"], err)
		}
		if p.R == "" || p.RP != rq {
			continue
		}
		if p.Error != nil {
			return nil, fmt.Errorf("%s: %w", pkt["a"], p.Error)
		}
		return p.Data, nil
	}
}

// rows calls and decodes data.rows into out.
func (s *remoteSession) rows(pkt map[string]any, out any) error {
	data, err := s.call(pkt)
	if err != nil {
		return err
	}
	var d struct{ Rows json.RawMessage }
	if err := json.Unmarshal(data, &d); err != nil {
		return fmt.Errorf("%s: data: %w", pkt["a"], err)
	}
	if err := json.Unmarshal(d.Rows, out); err != nil {
		return fmt.Errorf("%s: data.rows: %w", pkt["a"], err)
	}
	return nil
}

// remoteSale is what the cleanup reads of a sale (sale_fetch).
type remoteSale struct {
	Physkey  string
	Phase    int
	Presell  int
	Tablet   string // the key name that made a presell
	Holder   string
	Ticket   *int64
	Payments []struct{ Sequence int64 }
}

// keyName is the name of the -key key. FD1 says it nowhere but on a sale
// (holder), so it makes one and voids it: one voided sale in the lane's
// history, nothing open.
func (s *remoteSession) keyName() (string, error) {
	var made []remoteSale
	if err := s.rows(map[string]any{"a": "salesbuilder.sale_create"}, &made); err != nil {
		return "", fmt.Errorf("learn the -key key's name: %w", err)
	}
	if len(made) != 1 || made[0].Holder == "" {
		return "", fmt.Errorf("learn the -key key's name: sale_create answered %d rows and no holder", len(made))
	}
	if _, err := s.call(map[string]any{"a": "salesbuilder.sale_cancel", "k": made[0].Physkey,
		"v": map[string]any{"reason": "integration suite: learning its key's name"}}); err != nil {
		return "", fmt.Errorf("learn the -key key's name: %w", err)
	}
	return made[0].Holder, nil
}

// held is every physkey the key has a part in: the active and parked
// sales it holds, the submitted presells it made (whoever holds them
// now) and those it has claimed.
func (s *remoteSession) held(name string) (map[string]bool, error) {
	keys := map[string]bool{}
	for _, pkt := range []map[string]any{
		{"a": "salesbuilder.get_sale", "qk": "all"},
		{"a": "fd1.presell.get_presells", "q": map[string]any{"tablet": name}},
		{"a": "fd1.presell.get_presells", "qk": "mine"},
	} {
		var rows []struct{ Physkey string }
		if err := s.rows(pkt, &rows); err != nil {
			return nil, err
		}
		for _, r := range rows {
			keys[r.Physkey] = true
		}
	}
	return keys, nil
}

// runStart is what the -key key held open when the run started.
type runStart struct {
	name   string
	before map[string]bool
}

// startOfRun notes what the -key key holds open on the -url lane.
func startOfRun(addr, key string) (*runStart, error) {
	s, err := dialRemoteSession(addr, key)
	if err != nil {
		return nil, err
	}
	defer s.close()
	name, err := s.keyName()
	if err != nil {
		return nil, err
	}
	before, err := s.held(name)
	if err != nil {
		return nil, err
	}
	return &runStart{name: name, before: before}, nil
}

// endOfRun voids every sale and presell the run opened with the key and
// left open, and releases the claims it left on presells other keys
// made; it returns what it did, one line each. A presell another key's
// live counter holds is left (and named in the error): taking it would
// pull it from under that counter.
func endOfRun(addr, key string, start *runStart) ([]string, error) {
	s, err := dialRemoteSession(addr, key)
	if err != nil {
		return nil, err
	}
	defer s.close()
	now, err := s.held(start.name)
	if err != nil {
		return nil, err
	}
	var left []string
	for physkey := range now {
		if !start.before[physkey] {
			left = append(left, physkey)
		}
	}
	sort.Strings(left)
	var done []string
	var errs []error
	for _, physkey := range left {
		what, err := s.leaveAsFound(start.name, physkey)
		if err != nil {
			errs = append(errs, fmt.Errorf("sale %s: %w", physkey, err))
			continue
		}
		done = append(done, what+" "+physkey)
	}
	return done, errors.Join(errs...)
}

// leaveAsFound voids one sale the run made (its payments reversed first:
// a sale holding one is never voided), or releases the run's claim on a
// presell another key made.
func (s *remoteSession) leaveAsFound(name, physkey string) (string, error) {
	var got []remoteSale
	if err := s.rows(map[string]any{"a": "salesbuilder.sale_fetch", "k": physkey}, &got); err != nil {
		return "", err
	}
	if len(got) != 1 {
		return "", fmt.Errorf("sale_fetch answered %d rows", len(got))
	}
	sale := got[0]
	if sale.Phase != 0 && sale.Phase != 5 {
		return "left (closed meanwhile)", nil
	}
	if sale.Presell == 1 && sale.Ticket != nil {
		// A claim of a test's closed socket: the same key takes it back
		// at once (no force: a live counter of another key keeps its own).
		if _, err := s.call(map[string]any{"a": "fd1.presell.recall", "k": physkey}); err != nil {
			return "", err
		}
	}
	if sale.Presell == 1 && sale.Tablet != name {
		if _, err := s.call(map[string]any{"a": "fd1.presell.release", "k": physkey}); err != nil {
			return "", err
		}
		return "released", nil
	}
	for _, p := range sale.Payments {
		if _, err := s.call(map[string]any{"a": "salesbuilder.sale_remove_payment", "k": physkey,
			"v": map[string]any{"seq": p.Sequence}}); err != nil {
			return "", err
		}
	}
	if _, err := s.call(map[string]any{"a": "salesbuilder.sale_cancel", "k": physkey,
		"v": map[string]any{"reason": "integration suite: left open by its run"}}); err != nil {
		return "", err
	}
	if sale.Presell == 1 {
		return "voided presell", nil
	}
	return "voided sale", nil
}

// describeCleanup is endOfRun's summary for the run's output; -v lists
// each sale.
func describeCleanup(done []string) string {
	if len(done) == 0 {
		return "integration: the run left nothing open on " + remoteAddr
	}
	what := "sales and presells"
	if len(done) == 1 {
		what = "sale or presell"
	}
	line := fmt.Sprintf("integration: %d %s the run left open on %s voided or released", len(done), what, remoteAddr)
	if testing.Verbose() {
		line += ":\n  " + strings.Join(done, "\n  ")
	}
	return line
}

// openSales is the lane's open sales (active and parked), physkey →
// "presell/phase/created_by/claimed", read from the DB file.
func openSales(t *testing.T, l *lane) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range sqliteRows(t, l.db, `SELECT physkey, presell, phase, created_by, claim_session IS NOT NULL AS claimed
		FROM sales WHERE phase IN (0, 5)`) {
		out[r["physkey"].(string)] = fmt.Sprintf("%v/%v/%v/%v", r["presell"], r["phase"], r["created_by"], r["claimed"])
	}
	return out
}

// parkedPresell makes a presell of one flat white on key's tablet socket
// and submits it; the socket stays open till the test ends.
func parkedPresell(t *testing.T, l *lane, key string) (physkey string, ticket float64) {
	t.Helper()
	c := l.login(presellQuery, key, "")
	physkey = sale(t, c, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, c, sbA+"sale_add_product", physkey, map[string]any{"plu": "FW", "qty": 1})
	return physkey, num(sale(t, c, sbA+"sale_park", physkey, nil)["ticket"])
}

// TestRemoteRunLeavesLaneAsFound: the suite run twice with -url against
// one lane whose admin key may hold 3 open presells. Each run of
// TestInputsOpaqueIK leaves 2 presells open; the key already holds one, so
// without the cleanup the second run is refused with limit_reached. After
// both runs the lane's open sales are exactly those it had before: the
// admin key's own presell and another key's are left alone.
func TestRemoteRunLeavesLaneAsFound(t *testing.T) {
	l := startLane(t, "--max-open-presells", "3")
	parkedPresell(t, l, l.key)
	parkedPresell(t, l, l.newKey("tablet-7", "presell"))
	before := openSales(t, l)
	for run := 1; run <= 2; run++ {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestInputsOpaqueIK$", "-test.count", "1", "-test.v",
			"-url", "ws://"+l.addr, "-key", l.key)
		cmd.Env = append(quietEnv(), builtBinaryEnv+"="+binary)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestInputsOpaqueIK") {
			t.Fatalf("run %d of the suite with -url: %v\n%s", run, err, out)
		}
		if !strings.Contains(string(out), "integration: 2 sales and presells the run left open on "+l.addr+" voided or released") {
			t.Errorf("run %d does not say what it voided:\n%s", run, out)
		}
	}
	if after := openSales(t, l); !reflect.DeepEqual(after, before) {
		t.Fatalf("after both runs the lane's open sales are\n%v\nwant as before them\n%v", after, before)
	}
}

// TestEndOfRunUndoesClaimsAndPayments: what a run leaves besides plain
// open presells: a presell of its own that a closed counter socket
// claimed and part paid, an active sale, and a claim on a presell
// another key made. The end of the run voids its own (the payment
// reversed first) and gives the other key's presell back unclaimed.
func TestEndOfRunUndoesClaimsAndPayments(t *testing.T) {
	l := startLane(t)
	theirs, theirTicket := parkedPresell(t, l, l.newKey("tablet-8", "presell"))
	before := openSales(t, l)
	start, err := startOfRun(l.addr, l.key)
	if err != nil {
		t.Fatal(err)
	}

	_, ticket := parkedPresell(t, l, l.key)
	counter := l.login("", l.key, "")
	k := sale(t, counter, "fd1.presell.recall", nil, map[string]any{"ticket": ticket})["physkey"]
	sale(t, counter, sbA+"sale_add_payment", k, map[string]any{"type": 1, "amount": 2})
	sale(t, counter, "fd1.presell.recall", nil, map[string]any{"ticket": theirTicket})
	sale(t, counter, sbA+"sale_create", nil, nil)
	counter.ws.Close() // its claims stay till the lease lapses or the key comes back

	done, err := endOfRun(l.addr, l.key, start)
	if err != nil {
		t.Fatalf("endOfRun: %v (did: %v)", err, done)
	}
	if got := strings.Join(done, "\n"); strings.Count(got, "voided ") != 2 || !strings.Contains(got, "released "+theirs) {
		t.Errorf("endOfRun did:\n%s\nwant the presell and the sale voided and %s released", got, theirs)
	}
	if after := openSales(t, l); !reflect.DeepEqual(after, before) {
		t.Fatalf("the lane's open sales are\n%v\nwant as before the run\n%v", after, before)
	}
}
