package integration

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/greenlane-pos/greenlane/internal/syncbuf"
)

// A run against a server given with -url leaves that lane as it found it.
// The suite's tests open sales and presells with the -key key and leave
// many of them open (a test checks a reply, not the sale's end); on a
// long-lived staging lane they would pile up run after run until the key
// reaches --max-open-presells and every later run fails with limit errors
// that look like product bugs. So the suite notes every sale its own
// sockets and HTTP calls are handed in the run (noteSales: a create's new
// sale, a recall's claimed presell) and, after the run, voids those still
// open and gives back the claims still held (endOfRun), through the lane's
// own FD1 endpoints: the suite has only a URL and a key. It goes by what
// its own replies said, not by what the key holds: an operator's till or
// `greenlane client` on the same admin key may make sales while the run
// lasts, and those are theirs, payments and all.

// saleRecord is what the suite was handed since the run started: made
// is the sales its creates made, claimed the presells its recalls
// claimed. Tests call the lane from several goroutines, hence the lock.
type saleRecord struct {
	mu            sync.Mutex
	made, claimed map[string]bool
}

func newSaleRecord() *saleRecord {
	return &saleRecord{made: map[string]bool{}, claimed: map[string]bool{}}
}

// runSales is this run's record.
var runSales = newSaleRecord()

// noteSales records in the run's record the sale a reply hands the suite.
// Every reader of the suite's own replies calls it.
func noteSales(raw []byte) { runSales.note(raw) }

// note records the sale a reply hands the suite, when it is a create's or
// a recall's; any other reply (a list, an event, an error) names sales
// the suite did not make or claim.
func (r *saleRecord) note(raw []byte) {
	var p struct {
		R     string          `json:"r"`
		Error json.RawMessage `json:"error"`
		Data  json.RawMessage `json:"data"`
	}
	if json.Unmarshal(raw, &p) != nil || p.R == "" || (len(p.Error) > 0 && string(p.Error) != "null") {
		return
	}
	fn := p.R[strings.LastIndex(p.R, ".")+1:]
	made := fn == "sale_create" || fn == "salesbuilder_create" || fn == "create_activesale"
	if !made && !strings.HasSuffix(p.R, "presell.recall") {
		return
	}
	// The newer names answer data.rows[sale], the older ones the sale
	// itself in data.
	var d struct {
		Physkey string
		Rows    []struct{ Physkey string }
	}
	if json.Unmarshal(p.Data, &d) != nil {
		return
	}
	keys := []string{d.Physkey}
	for _, row := range d.Rows {
		keys = append(keys, row.Physkey)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		switch {
		case k == "":
		case made:
			r.made[k] = true
		default:
			r.claimed[k] = true
		}
	}
}

// noteMade records a sale the suite made that no reply of its own named:
// one a failed replay reported.
func (r *saleRecord) noteMade(physkey string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.made[physkey] = true
}

// forget starts the record afresh.
func (r *saleRecord) forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.made, r.claimed = map[string]bool{}, map[string]bool{}
}

// sales is every physkey recorded since forget, sorted, and which of
// them the suite made.
func (r *saleRecord) sales() (keys []string, made map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	made = map[string]bool{}
	for k := range r.made {
		made[k] = true
		keys = append(keys, k)
	}
	for k := range r.claimed {
		if !made[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, made
}

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
	data, err := s.call(map[string]any{"a": "fd1.session.login", "v": map[string]any{"apikey": key}})
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("log in with -key: %w", err)
	}
	// Tests create, recall and void across scopes, and the cleanup at the
	// end voids any sale the run made: with a narrower key every test
	// that needs admin would fail on its own with a scope error.
	var login struct {
		Scopes []string `json:"scopes"`
	}
	if err := json.Unmarshal(data, &login); err != nil {
		ws.Close()
		return nil, fmt.Errorf("log in with -key: read the reply: %w", err)
	}
	if !slices.Contains(login.Scopes, "admin") {
		ws.Close()
		return nil, fmt.Errorf("-key is not an admin key (its scopes: %s): run the suite with an admin key of that lane (greenlane apikey create --scope admin)", strings.Join(login.Scopes, ", "))
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
	Ticket   *int64
	Payments []struct{ Sequence int64 }
}

// startOfRun checks that the -key key logs in on the -url lane and that
// the lane holds the demo store the tests ring up, and starts the run's
// record of its sales afresh.
func startOfRun(addr, key string) error {
	s, err := dialRemoteSession(addr, key)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.holdsDemo(); err != nil {
		return err
	}
	runSales.forget()
	return nil
}

// demoProducts is how many products a lane holding the demo store has at
// least (its fixture has 40): the tests sell them by PLU and barcode.
const demoProducts = 35

// holdsDemo checks that the lane sells the demo store's products: on any
// other catalogue (the empty fixture, a store's own) most tests would
// fail, each on its own "unknown product", instead of one saying why.
func (s *remoteSession) holdsDemo() error {
	var products []struct{ PLU string }
	if err := s.rows(map[string]any{"a": "fd1.products.get_products_list"}, &products); err != nil {
		return fmt.Errorf("read the lane's products: %w", err)
	}
	if len(products) < demoProducts {
		return fmt.Errorf("the lane holds %d products, not the demo store's 40 the tests sell: point -url at a lane on a demo DB "+
			"(greenlane serve makes one on first start, or greenlane fixture load demo --db NEW.db)", len(products))
	}
	return nil
}

// endOfRun voids every sale and presell the run made and left open, and
// releases the claims it left on presells it did not make; it returns
// what it did, one line each. A presell a live counter of another key
// holds is left (and named in the error): taking it would pull it from
// under that counter.
func endOfRun(addr, key string) ([]string, error) {
	s, err := dialRemoteSession(addr, key)
	if err != nil {
		return nil, err
	}
	defer s.close()
	keys, made := runSales.sales()
	var done []string
	var errs []error
	for _, physkey := range keys {
		what, err := s.leaveAsFound(physkey, made[physkey])
		if err != nil {
			errs = append(errs, fmt.Errorf("sale %s: %w", physkey, err))
			continue
		}
		if what != "" {
			done = append(done, what+" "+physkey)
		}
	}
	return done, errors.Join(errs...)
}

// leaveAsFound voids one sale the run made (its payments reversed first:
// a sale holding one is never voided), or releases the run's claim on a
// presell it did not make; "" when there is nothing left to undo.
func (s *remoteSession) leaveAsFound(physkey string, made bool) (string, error) {
	var got []remoteSale
	if err := s.rows(map[string]any{"a": "salesbuilder.sale_fetch", "k": physkey}, &got); err != nil {
		return "", err
	}
	if len(got) != 1 {
		return "", fmt.Errorf("sale_fetch answered %d rows", len(got))
	}
	sale := got[0]
	if sale.Phase != 0 && sale.Phase != 5 {
		return "", nil // completed or voided, by its test or by someone
	}
	if !made && sale.Phase == 5 {
		return "", nil // back in the queue: the run's claim is gone already
	}
	if sale.Presell == 1 && sale.Ticket != nil {
		// A claim of a test's closed socket: the same key takes it back
		// at once (no force: a live counter of another key keeps its own),
		// once the lane has seen that socket close, which may be only now.
		if err := s.recallBack(physkey); err != nil {
			return "", err
		}
	}
	if !made {
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

// recallBack recalls a presell a test's socket of this key claimed,
// waiting up to 10 s while the lane still counts that socket as open.
func (s *remoteSession) recallBack(physkey string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.call(map[string]any{"a": "fd1.presell.recall", "k": physkey})
		var fe *fd1Error
		if err == nil || !errors.As(err, &fe) || fe.Code != "claimed" ||
			!strings.Contains(fe.Message, "another connection of this key") || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
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
	if err := startOfRun(l.addr, l.key); err != nil {
		t.Fatal(err)
	}

	_, ticket := parkedPresell(t, l, l.key)
	counter := l.login("", l.key, "")
	k := sale(t, counter, "fd1.presell.recall", nil, map[string]any{"ticket": ticket})["physkey"]
	sale(t, counter, sbA+"sale_add_payment", k, map[string]any{"type": 1, "amount": 2})
	sale(t, counter, "fd1.presell.recall", nil, map[string]any{"ticket": theirTicket})
	sale(t, counter, sbA+"sale_create", nil, nil)
	counter.ws.Close() // its claims stay till the lease lapses or the key comes back

	done, err := endOfRun(l.addr, l.key)
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

// pauseEnv makes TestRemoteRunPause hold its run (see there).
const pauseEnv = "GREENLANE_IT_PAUSE"

// TestRemoteRunPause holds a run between its tests, after startOfRun and
// before endOfRun, until a line arrives on its standard input: a run of
// the suite that TestRemoteRunLeavesOthersSalesAlone starts, so that
// another client acts while the run lasts, at a known point.
func TestRemoteRunPause(t *testing.T) {
	if os.Getenv(pauseEnv) == "" {
		t.Skip("only in a run of the suite that TestRemoteRunLeavesOthersSalesAlone starts")
	}
	fmt.Println("integration: paused")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatalf("waiting for the go-ahead on standard input: %v", err)
	}
}

// TestRemoteRunLeavesOthersSalesAlone: while a run with -url lasts, an
// operator uses the same admin key with `greenlane client` and rings up a
// sale with a cash payment. The run's end voids the two sales its own test
// left open and leaves the operator's sale open, its payment on it.
func TestRemoteRunLeavesOthersSalesAlone(t *testing.T) {
	l := startLane(t)
	before := openSales(t, l)
	cmd := exec.Command(os.Args[0], "-test.run", "^(TestInputsOpaqueIK|TestRemoteRunPause)$", "-test.count", "1", "-test.v",
		"-url", "ws://"+l.addr, "-key", l.key)
	cmd.Env = append(quietEnv(), builtBinaryEnv+"="+binary, pauseEnv+"=1")
	goAhead, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	out := &syncbuf.Buffer{}
	paused := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			_, _ = out.Write([]byte(sc.Text() + "\n"))
			if sc.Text() == "integration: paused" {
				close(paused)
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { err := cmd.Wait(); pw.Close(); exited <- err }()
	select {
	case <-paused:
	case err := <-exited:
		t.Fatalf("the run ended before its pause: %v\n%s", err, out)
	}

	theirs := newUUID()
	script := strings.Join([]string{
		`salesbuilder.sale_create {"v":{"physkey":"` + theirs + `"}}`,
		`salesbuilder.sale_add_product {"k":"` + theirs + `","v":{"plu":"FW","qty":1}}`,
		`salesbuilder.sale_add_payment {"k":"` + theirs + `","v":{"type":1,"amount":2}}`,
	}, "\n")
	said, errOut, err := clientScript(t, l.addr, script, "--key", l.key)
	if err != nil || strings.Contains(said, `"error":{`) {
		t.Fatalf("the operator's client: %v\n%s\n%s", err, said, errOut)
	}
	if _, err := io.WriteString(goAhead, "go on\n"); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil || !strings.Contains(out.String(), "--- PASS: TestInputsOpaqueIK") {
		t.Fatalf("the run with -url: %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "integration: 2 sales and presells the run left open on "+l.addr+" voided or released") {
		t.Errorf("the run does not say it voided its own two sales:\n%s", out)
	}

	s, err := dialRemoteSession(l.addr, l.key)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	var got []remoteSale
	if err := s.rows(map[string]any{"a": "salesbuilder.sale_fetch", "k": theirs}, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Phase != 0 || len(got[0].Payments) != 1 {
		t.Fatalf("the operator's sale after the run: %+v, want it open (phase 0) with its one payment", got)
	}
	after := openSales(t, l)
	delete(after, theirs)
	if !reflect.DeepEqual(after, before) {
		t.Fatalf("after the run the lane's open sales, less the operator's, are\n%v\nwant as before it\n%v", after, before)
	}
}

// TestNoteSales: only a create's or a recall's successful reply adds to
// the run's record; lists, events and errors name sales the suite did
// not make or claim.
func TestNoteSales(t *testing.T) {
	const a, b = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
	tests := []struct {
		name          string
		reply         string
		made, claimed []string
	}{
		{"create, rows", `{"r":"salesbuilder.sale_create","rp":"1","data":{"rows":[{"physkey":"` + a + `"}]}}`, []string{a}, nil},
		{"create, older name, the sale in data", `{"r":"fd1.salesbuilder.salesbuilder_create","rp":"1","data":{"physkey":"` + a + `"}}`, []string{a}, nil},
		{"create, fd1.sales alias", `{"r":"fd1.sales.create_activesale","rp":"1","data":{"physkey":"` + a + `"}}`, []string{a}, nil},
		{"recall", `{"r":"fd1.presell.recall","rp":"1","data":{"rows":[{"physkey":"` + b + `"}]}}`, nil, []string{b}},
		{"refused create", `{"r":"salesbuilder.sale_create","rp":"1","error":{"code":"limit_reached","message":"m"},"data":{}}`, nil, nil},
		{"refused recall", `{"r":"fd1.presell.recall","rp":"1","error":{"code":"conflict","message":"m"},"data":{"physkey":"` + b + `"}}`, nil, nil},
		{"the key's list", `{"r":"salesbuilder.get_sale","rp":"1","data":{"rows":[{"physkey":"` + a + `"},{"physkey":"` + b + `"}]}}`, nil, nil},
		{"presell list", `{"r":"fd1.presell.get_presells","rp":"1","data":{"rows":[{"physkey":"` + b + `"}]}}`, nil, nil},
		{"an event", `{"a":"salesbuilder.sale_create","sc":"custdisp.sale","data":{"physkey":"` + a + `"}}`, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newSaleRecord()
			r.note([]byte(tt.reply))
			keys, made := r.sales()
			var gotMade, gotClaimed []string
			for _, k := range keys {
				if made[k] {
					gotMade = append(gotMade, k)
				} else {
					gotClaimed = append(gotClaimed, k)
				}
			}
			if !reflect.DeepEqual(gotMade, tt.made) || !reflect.DeepEqual(gotClaimed, tt.claimed) {
				t.Errorf("made %v, claimed %v; want %v, %v", gotMade, gotClaimed, tt.made, tt.claimed)
			}
		})
	}
}

// TestRemoteRunVoidsWhatAFailedReplayLeft: TestTranscriptDiff replays a
// transcript made to fail, which stops with its presell open on the lane;
// no reply of the suite's own names that presell, only the replay's
// report. A run of it with -url voids it all the same.
func TestRemoteRunVoidsWhatAFailedReplayLeft(t *testing.T) {
	l := startLane(t)
	before := openSales(t, l)
	cmd := exec.Command(os.Args[0], "-test.run", "^TestTranscriptDiff$/^an_expectation", "-test.count", "1", "-test.v",
		"-url", "ws://"+l.addr, "-key", l.key)
	cmd.Env = append(quietEnv(), builtBinaryEnv+"="+binary)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestTranscriptDiff") {
		t.Fatalf("the run with -url: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "integration: 1 sale or presell the run left open on "+l.addr+" voided or released") {
		t.Errorf("the run does not say it voided the replay's presell:\n%s", out)
	}
	if after := openSales(t, l); !reflect.DeepEqual(after, before) {
		t.Fatalf("after the run the lane's open sales are\n%v\nwant as before it\n%v", after, before)
	}
}

// TestRemoteFlags: -url takes a plain ws:// lane (or HOST:PORT); any
// other scheme, wss:// among them, which the suite's sockets do not
// speak, is refused with a message saying so rather than dialled as ws://.
func TestRemoteFlags(t *testing.T) {
	defer func(u, k, a string) { *remoteURL, *remoteKey, remoteAddr = u, k, a }(*remoteURL, *remoteKey, remoteAddr)
	for _, tc := range []struct{ url, wantAddr, wantErr string }{
		{"ws://127.0.0.1:3490", "127.0.0.1:3490", ""},
		{"127.0.0.1:3490", "127.0.0.1:3490", ""},
		{"wss://lane-1.local:3490", "", "plain ws:// only"},
		{"http://127.0.0.1:3490", "", "want ws://HOST:PORT"},
	} {
		*remoteURL, *remoteKey, remoteAddr = tc.url, "k", ""
		err := parseRemote()
		if tc.wantErr == "" && (err != nil || remoteAddr != tc.wantAddr) {
			t.Errorf("-url %s: addr %q, err %v; want %q", tc.url, remoteAddr, err, tc.wantAddr)
		}
		if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("-url %s: err %v; want a refusal saying %q", tc.url, err, tc.wantErr)
		}
	}
}

// TestStartOfRunWantsAnAdminKey: a -key that logs in but is not an admin
// key stops the run before any test, with one message saying so, instead
// of failing every test that needs admin scope.
func TestStartOfRunWantsAnAdminKey(t *testing.T) {
	l := startLane(t)
	if err := startOfRun(l.addr, l.key); err != nil {
		t.Fatalf("the admin key: %v", err)
	}
	counter := l.newKey("it-counter", "counter")
	if err := startOfRun(l.addr, counter); err == nil || !strings.Contains(err.Error(), "not an admin key") {
		t.Fatalf("a counter key: %v; want a refusal saying it is not an admin key", err)
	}
}

// TestStartOfRunWantsTheDemoStore: a lane without the demo catalogue
// stops the run before any test, with one message saying so.
func TestStartOfRunWantsTheDemoStore(t *testing.T) {
	needsOwnLane(t)
	if os.Getenv("GREENLANE_IT_STORE") != "" {
		t.Skip("loads the empty fixture into a SQLite lane DB; a store lane's database is loaded the same way (fixtures package)")
	}
	l := startLane(t)
	l.stop()
	if out, err := cli(t, "fixture", "load", "empty", "--replace", "--db", l.db); err != nil {
		t.Fatalf("fixture load empty: %v %s", err, out)
	}
	key := l.key
	l = startLaneAt(t, l.db)
	err := startOfRun(l.addr, key)
	if err == nil || !strings.Contains(err.Error(), "holds 0 products, not the demo store's") {
		t.Fatalf("a lane on the empty fixture: %v; want a refusal saying it does not hold the demo store", err)
	}
}
