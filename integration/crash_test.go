package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Crash safety (issue 6, promise 1): the real binary is killed with
// SIGKILL at random moments while tablets build presells and a counter
// recalls, pays and completes them, and restarted on the same lane DB. After
// every kill the file is sound and holds exactly what the clients were told,
// and ik retries return the first reply byte for byte.
//
// The rel* helpers below (process, keys, goroutine-safe client) are shared
// by crash_test.go, shutdown_test.go, limits_test.go and hostile_test.go.

// relProc is one `greenlane serve` process on a lane DB that outlives it.
type relProc struct {
	t       *testing.T
	db      string
	addr    string
	cmd     *exec.Cmd
	mu      sync.Mutex
	logBuf  bytes.Buffer
	exited  chan struct{}
	started time.Time
}

// relStart starts `greenlane serve` on db (created with the demo fixture
// and an admin key on first start) and waits for it to listen. The process
// is killed at the end of the test if it is still running. With -url (a
// server the suite did not start) the test is skipped.
func relStart(t *testing.T, db string, extra ...string) *relProc {
	t.Helper()
	needsOwnLane(t) // it starts, kills and restarts its own process
	return relLaunch(t, db, append([]string{"--create"}, extra...)...)
}

// relLaunch starts `greenlane serve` on db with extra flags and waits for
// it to listen; the process is killed at the end of the test.
func relLaunch(t *testing.T, db string, extra ...string) *relProc {
	t.Helper()
	p := &relProc{t: t, db: db, exited: make(chan struct{}), started: time.Now()}
	p.cmd = exec.Command(binary, append([]string{"serve", "--addr", "127.0.0.1:0", "--db", db}, extra...)...)
	p.cmd.Env = quietEnv()
	pipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start greenlane: %v", err)
	}
	addrc := make(chan string, 1)
	go p.readLog(pipe, addrc)
	t.Cleanup(func() {
		p.kill9()
		p.checkLog()
	})
	select {
	case p.addr = <-addrc:
	case <-p.exited:
		t.Fatalf("greenlane exited before listening:\n%s", p.log())
	case <-time.After(60 * time.Second):
		t.Fatalf("greenlane did not start listening within 60s:\n%s", p.log())
	}
	return p
}

// runRound runs the tablets and the counter through one round at once;
// afterReady runs once every client has connected (the moment a round's
// kill may come), and the round ends when all of them have stopped.
func (m *relModel) runRound(t *testing.T, r *relRound, tablets []string, keys map[string]string, admin string, rng *rand.Rand, afterReady func()) {
	t.Helper()
	var wg, ready sync.WaitGroup
	errs := make([]error, len(tablets)+1)
	for i, name := range tablets {
		wg.Add(1)
		ready.Add(1)
		trng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		go func() {
			defer wg.Done()
			errs[i] = m.runTablet(r, name, keys[name], trng, ready.Done)
		}()
	}
	wg.Add(1)
	ready.Add(1)
	go func() {
		defer wg.Done()
		errs[len(tablets)] = m.runCounter(r, keys["counter-1"], admin, ready.Done)
	}()
	ready.Wait()
	afterReady()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func (p *relProc) readLog(r io.Reader, addrc chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		p.logBuf.WriteString(line + "\n")
		p.mu.Unlock()
		if m := relListening.FindStringSubmatch(line); m != nil && !sent {
			addrc <- m[1]
			sent = true
		}
	}
	_, _ = io.Copy(io.Discard, r)
	_ = p.cmd.Wait()
	close(p.exited)
}

func (p *relProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logBuf.String()
}

// kill9 sends SIGKILL (no chance to flush, close or say goodbye) and waits
// for the process to be gone.
func (p *relProc) kill9() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.t.Errorf("greenlane (pid %d) still running 30s after SIGKILL", p.cmd.Process.Pid)
	}
}

// waitExit waits up to limit for the process to end and returns how long
// that took from since, and its exit code (-1: still running).
func (p *relProc) waitExit(since time.Time, limit time.Duration) (time.Duration, int) {
	select {
	case <-p.exited:
		return time.Since(since), p.cmd.ProcessState.ExitCode()
	case <-time.After(limit):
		return time.Since(since), -1
	}
}

// checkLog fails the test on a race report or a panic in the log.
func (p *relProc) checkLog() {
	out := p.log()
	if strings.Contains(out, "WARNING: DATA RACE") || strings.Contains(out, "panic:") {
		p.t.Errorf("greenlane log shows a race or panic:\n%s", out)
	}
}

// relKeys creates API keys (name → scopes) with the CLI, several at once,
// and returns them by name.
func relKeys(t *testing.T, db string, scopesByName map[string]string) map[string]string {
	t.Helper()
	keys := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for name, scopes := range scopesByName {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(binary, "apikey", "create", "--db", db, "--name", name, "--scope", scopes)
			cmd.Env = quietEnv()
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			key := strings.TrimSpace(stdout.String())
			mu.Lock()
			defer mu.Unlock()
			if err != nil || key == "" || strings.Contains(key, "\n") {
				errs = append(errs, fmt.Errorf("apikey create %s: %v: %q %s", name, err, stdout.String(), stderr.String()))
				return
			}
			keys[name] = key
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Fatal(err)
	}
	return keys
}

// relAdminKey reads the admin key serve wrote on first start.
func relAdminKey(t *testing.T, db string) string {
	t.Helper()
	b, err := os.ReadFile(db + ".apikey")
	if err != nil {
		t.Fatalf("admin key file: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// relClient is a socket that reports failures as errors, for goroutines.
type relClient struct {
	ws          *websocket.Conn
	tag         string
	seq         int
	outstanding atomic.Int64 // requests written and not yet answered
}

func relDial(addr, query, tag string) (*relClient, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, _, err := d.Dial("ws://"+addr+"/fd1/open_websocket"+query, nil)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	return &relClient{ws: ws, tag: tag}, nil
}

// relLogin dials and logs in with each key in turn (logins add up).
func relLogin(addr, query, tag string, keys ...string) (*relClient, error) {
	c, err := relDial(addr, query, tag)
	if err != nil {
		return nil, err
	}
	for _, key := range keys {
		r, err := c.exchange([]map[string]any{{"a": "fd1.session.login", "v": map[string]any{"apikey": key}}}, nil)
		if err != nil {
			c.ws.Close()
			return nil, fmt.Errorf("login: %w", err)
		}
		if r[0].Error != nil {
			c.ws.Close()
			return nil, fmt.Errorf("login: %s", r[0].raw)
		}
	}
	return c, nil
}

// relErrTransport marks a failure of the connection itself (as opposed to an
// FD1 error reply).
var relErrTransport = errors.New("transport")

// exchange gives each packet a fresh rq, writes them all back to back
// (calling sent(i) just before packet i goes out), then reads one reply per
// packet. Replies come back by index; on a transport error the ones read so
// far are returned with the error.
func (c *relClient) exchange(pkts []map[string]any, sent func(i int)) ([]*packet, error) {
	index := map[string]int{}
	out := make([]*packet, len(pkts))
	_ = c.ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
	for i, p := range pkts {
		c.seq++
		rq := fmt.Sprintf("%s/%d", c.tag, c.seq)
		q := maps.Clone(p)
		q["rq"] = rq
		b, _ := json.Marshal(rq)
		index[string(b)] = i
		msg, err := json.Marshal(q)
		if err != nil {
			return out, err
		}
		if sent != nil {
			sent(i)
		}
		c.outstanding.Add(1)
		if err := c.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
			return out, fmt.Errorf("%w: send %v: %v", relErrTransport, p["a"], err)
		}
	}
	for range pkts {
		_ = c.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			return out, fmt.Errorf("%w: read: %v", relErrTransport, err)
		}
		p := &packet{raw: msg}
		if err := json.Unmarshal(msg, p); err != nil {
			return out, fmt.Errorf("reply is not JSON: %s", msg)
		}
		noteSales(msg)
		i, ok := index[p.rpKey()]
		if !ok || out[i] != nil {
			return out, fmt.Errorf("unexpected or repeated reply: %s", msg)
		}
		out[i] = p
		c.outstanding.Add(-1)
	}
	return out, nil
}

// relSaleOf is the sale in a successful SalesBuilder reply: data itself or
// data.rows[0], depending on the endpoint name's generation.
func relSaleOf(p *packet) (map[string]any, error) {
	if p.Error != nil {
		return nil, fmt.Errorf("%s: error %s: %s", p.R, p.Error.Code, p.Error.Message)
	}
	var d map[string]any
	if err := json.Unmarshal(p.Data, &d); err != nil {
		return nil, fmt.Errorf("%s: data is not an object: %s", p.R, p.Data)
	}
	if rows, ok := d["rows"].([]any); ok {
		if len(rows) != 1 {
			return nil, fmt.Errorf("%s: want one sale in data.rows: %s", p.R, p.Data)
		}
		s, _ := rows[0].(map[string]any)
		return s, nil
	}
	return d, nil
}

// relSB prefixes the SalesBuilder endpoint names; relPresellQuery opens a
// presell socket.
const (
	relSB           = "fd1.salesbuilder."
	relPresellQuery = "?purpose=presell"
)

var relListening = regexp.MustCompile(`msg=listening addr=(\S+)`)

func relNum(v any) float64 {
	f, _ := v.(float64)
	return f
}

// relCents reads a JSON money value as integer cents.
func relCents(v any) int64 { return int64(math.Round(relNum(v) * 100)) }

// relMoney is a cents amount as an FD1 decimal number.
func relMoney(c int64) json.RawMessage {
	return json.RawMessage(fmt.Sprintf("%d.%02d", c/100, c%100))
}

// --- the crash model: what every client sent and was told ---

// relStep is one mutating request with its ik, and what became of it.
type relStep struct {
	kind      string // create, add, park, recall, pay, complete
	pkt       map[string]any
	ik        string
	n         int // add: the line number this add makes
	pid, qty  int
	sent      bool   // written to a socket at least once (may have reached the lane)
	acked     bool   // a success reply was received
	abandoned bool   // a fresh attempt was refused: it never had an effect and is not sent again
	data      []byte // data of the first success reply
}

// relSale is one presell: the tablet's chain (create, adds, park) and the
// counter's (recalls, pay, complete).
type relSale struct {
	tablet  string
	physkey string
	chain   []*relStep
	adds    int
	wanted  bool // the counter should take it once submitted

	// Set by the tablet when the park is acknowledged.
	ticket     float64
	totalCents int64

	counter    []*relStep // recall(s), pay, complete; only the counter touches it
	needRecall bool
	sid        float64
	done       bool
}

func (s *relSale) step(kind string) *relStep {
	for _, st := range s.counter {
		if st.kind == kind {
			return st
		}
	}
	return nil
}

type relModel struct {
	mu       sync.Mutex
	sales    []*relSale
	byKey    map[string]*relSale
	parked   []*relSale // submitted and wanted, not yet taken by the counter
	wake     chan struct{}
	acked    atomic.Int64 // requests acknowledged (first success reply)
	replays  atomic.Int64 // ik retries of acknowledged requests that came back identical
	resolved atomic.Int64 // requests whose reply was lost, retried with their ik and acknowledged
	recalls  atomic.Int64 // new recalls of a presell whose claim a killed process's session still held
}

func newRelModel() *relModel {
	return &relModel{byKey: map[string]*relSale{}, wake: make(chan struct{}, 1)}
}

// relRound is one life of the lane process.
type relRound struct {
	addr     string
	killed   atomic.Bool
	killedCh chan struct{}
	settle   bool // the last, clean round: finish everything, start nothing new
	clients  sync.Map
}

func (r *relRound) outstanding() int64 {
	var n int64
	r.clients.Range(func(_, v any) bool {
		n += v.(*relClient).outstanding.Load()
		return true
	})
	return n
}

// transportEnd turns a transport failure after the kill into a normal end.
func (r *relRound) transportEnd(who string, err error) error {
	if errors.Is(err, relErrTransport) && r.killed.Load() {
		return nil
	}
	return fmt.Errorf("%s: %w", who, err)
}

var relPIDs = []int{1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015, 1016, 1017, 1018, 1019, 1020}

// planSale adds a new presell for tablet to the model.
func (m *relModel) planSale(tablet string, rng *rand.Rand) *relSale {
	s := &relSale{tablet: tablet, physkey: newUUID(), adds: 1 + rng.IntN(4), wanted: rng.IntN(10) < 7}
	s.chain = append(s.chain, &relStep{kind: "create", ik: newUUID(),
		pkt: map[string]any{"a": relSB + "sale_create", "v": map[string]any{"physkey": s.physkey}}})
	for n := 1; n <= s.adds; n++ {
		pid, qty := relPIDs[rng.IntN(len(relPIDs))], 1+rng.IntN(3)
		s.chain = append(s.chain, &relStep{kind: "add", ik: newUUID(), n: n, pid: pid, qty: qty,
			pkt: map[string]any{"a": relSB + "sale_add_product", "k": s.physkey, "v": map[string]any{"pid": pid, "qty": qty}}})
	}
	s.chain = append(s.chain, &relStep{kind: "park", ik: newUUID(),
		pkt: map[string]any{"a": relSB + "sale_park", "k": s.physkey}})
	m.mu.Lock()
	m.sales = append(m.sales, s)
	m.byKey[s.physkey] = s
	m.mu.Unlock()
	return s
}

func (m *relModel) salesOf(tablet string) []*relSale {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*relSale
	for _, s := range m.sales {
		if s.tablet == tablet {
			out = append(out, s)
		}
	}
	return out
}

func relChainDone(s *relSale) bool { return s.chain[len(s.chain)-1].acked }

// withIK is a step's packet with its ik.
func (st *relStep) withIK() map[string]any {
	p := maps.Clone(st.pkt)
	p["ik"] = st.ik
	return p
}

// checkTabletReply checks a success reply to a tablet step against what it
// asked for and records what it implies.
func (m *relModel) checkTabletReply(s *relSale, st *relStep, p *packet) error {
	sale, err := relSaleOf(p)
	if err != nil {
		return err
	}
	lines, _ := sale["lines"].([]any)
	if sale["physkey"] != s.physkey || sale["presell"] != 1.0 || sale["tablet"] != s.tablet {
		return fmt.Errorf("%s of %s answered another sale: %s", st.kind, s.physkey, p.raw)
	}
	switch st.kind {
	case "create":
		if sale["phase"] != 0.0 || len(lines) != 0 {
			return fmt.Errorf("create answered %s", p.raw)
		}
	case "add":
		if len(lines) != st.n {
			return fmt.Errorf("add of line %d to %s answered with %d lines: %s", st.n, s.physkey, len(lines), p.raw)
		}
		ln, _ := lines[st.n-1].(map[string]any)
		if ln["seqnce"] != float64(st.n) || ln["pid"] != float64(st.pid) || ln["qty"] != float64(st.qty) {
			return fmt.Errorf("add of line %d to %s: line %v, want pid %d qty %d", st.n, s.physkey, ln, st.pid, st.qty)
		}
	case "park":
		var sum int64
		for _, x := range lines {
			ln, _ := x.(map[string]any)
			sum += relCents(ln["totalprice"])
		}
		if sale["phase"] != 5.0 || relNum(sale["ticket"]) < 1 || len(lines) != s.adds || relCents(sale["saletotal"]) != sum {
			return fmt.Errorf("park answered %s", p.raw)
		}
		m.mu.Lock()
		s.ticket, s.totalCents = relNum(sale["ticket"]), relCents(sale["saletotal"])
		if s.wanted {
			m.parked = append(m.parked, s)
		}
		m.mu.Unlock()
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// runTablet is one tablet in one round: it logs in again, retries a sample
// of acknowledged requests with their ik (the replies must be the first
// ones, byte for byte), then finishes its unfinished presells (requests
// whose reply was lost go again with their ik) and starts new ones, until
// the lane dies under it. In the settle round it only finishes.
func (m *relModel) runTablet(r *relRound, name, key string, rng *rand.Rand, ready func()) error {
	c, err := relLogin(r.addr, relPresellQuery, name, key)
	ready()
	if err != nil {
		return r.transportEnd(name, fmt.Errorf("%w: %v", relErrTransport, err))
	}
	defer c.ws.Close()
	r.clients.Store(name, c)

	// A sample of acknowledged requests, retried with their ik.
	var acked []*relStep
	for _, s := range m.salesOf(name) {
		for _, st := range s.chain {
			if st.acked {
				acked = append(acked, st)
			}
		}
	}
	rng.Shuffle(len(acked), func(i, j int) { acked[i], acked[j] = acked[j], acked[i] })
	acked = acked[:min(len(acked), 4)]
	pkts := make([]map[string]any, len(acked))
	for i, st := range acked {
		pkts[i] = st.withIK()
	}
	replies, err := c.exchange(pkts, nil)
	for i, p := range replies {
		if p == nil {
			continue
		}
		if p.Error != nil || !bytes.Equal(p.Data, acked[i].data) {
			return fmt.Errorf("%s: retry of acknowledged %s (ik %s) after a restart:\n got %s\nwant data %s", name, acked[i].kind, acked[i].ik, p.raw, acked[i].data)
		}
		m.replays.Add(1)
	}
	if err != nil {
		return r.transportEnd(name, err)
	}

	for {
		var open []*relSale
		for _, s := range m.salesOf(name) {
			if !relChainDone(s) {
				open = append(open, s)
			}
		}
		if r.settle && len(open) == 0 {
			return nil
		}
		for !r.settle && len(open) < 3 {
			open = append(open, m.planSale(name, rng))
		}
		var steps []*relStep
		var owners []*relSale
		for _, s := range open {
			for _, st := range s.chain {
				if !st.acked {
					steps = append(steps, st)
					owners = append(owners, s)
				}
			}
		}
		pkts := make([]map[string]any, len(steps))
		wasSent := make([]bool, len(steps))
		for i, st := range steps {
			pkts[i] = st.withIK()
			wasSent[i] = st.sent
		}
		replies, err := c.exchange(pkts, func(i int) { steps[i].sent = true })
		for i, p := range replies {
			if p == nil {
				continue
			}
			st, s := steps[i], owners[i]
			if p.Error != nil {
				return fmt.Errorf("%s: %s of %s (ik %s): %s", name, st.kind, s.physkey, st.ik, p.raw)
			}
			if err := m.checkTabletReply(s, st, p); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			st.acked, st.data = true, slices.Clone(p.Data)
			m.acked.Add(1)
			if wasSent[i] {
				m.resolved.Add(1)
			}
		}
		if err != nil {
			return r.transportEnd(name, err)
		}
	}
}

// takeParked hands the counter the next submitted presell it wants.
func (m *relModel) takeParked() *relSale {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.parked) == 0 {
		return nil
	}
	s := m.parked[0]
	m.parked = m.parked[1:]
	return s
}

// relClaimRefusal: the codes a fresh counter request may get when this
// device does not hold the presell's claim (the dead process's session
// still holds it, or it lapsed). Such a request had no effect.
var relClaimRefusal = map[string]bool{"claimed": true, "claim_lost": true, "conflict": true}

// counterBatch sends a counter chain: every step not abandoned, in order,
// with its ik. Acknowledged steps must come back identical (a recall may
// instead say its claim has moved on); the others are applied or refused.
func (m *relModel) counterBatch(c *relClient, s *relSale, force bool) error {
	if s.needRecall {
		at := len(s.counter)
		for i, st := range s.counter {
			if st.kind != "recall" && !st.acked {
				at = i
				break
			}
		}
		v := map[string]any{}
		if force {
			v["force"] = true
		}
		rec := &relStep{kind: "recall", ik: newUUID(), pkt: map[string]any{"a": "fd1.presell.recall", "k": s.physkey, "v": v}}
		s.counter = slices.Insert(s.counter, at, rec)
		s.needRecall = false
		m.recalls.Add(1)
	}
	var steps []*relStep
	for _, st := range s.counter {
		if !st.abandoned {
			steps = append(steps, st)
		}
	}
	pkts := make([]map[string]any, len(steps))
	wasSent := make([]bool, len(steps))
	for i, st := range steps {
		pkts[i] = st.withIK()
		wasSent[i] = st.sent
	}
	replies, err := c.exchange(pkts, func(i int) { steps[i].sent = true })
	payRefused := false
	for i, p := range replies {
		if p == nil {
			continue
		}
		st := steps[i]
		if st.acked {
			if p.Error == nil && bytes.Equal(p.Data, st.data) {
				m.replays.Add(1)
				continue
			}
			if st.kind == "recall" && p.Error != nil && p.Error.Code == "claim_lost" {
				continue // the claim has moved on since; its effect stays
			}
			return fmt.Errorf("counter: retry of acknowledged %s of %s (ik %s):\n got %s\nwant data %s", st.kind, s.physkey, st.ik, p.raw, st.data)
		}
		if p.Error != nil {
			code := p.Error.Code
			switch {
			case relClaimRefusal[code], st.kind == "complete" && code == "underpaid" && payRefused:
				if st.kind == "recall" {
					st.abandoned = true
				} else {
					s.needRecall = true
					payRefused = payRefused || st.kind == "pay"
				}
				continue
			}
			return fmt.Errorf("counter: %s of %s (ik %s): %s", st.kind, s.physkey, st.ik, p.raw)
		}
		sale, serr := relSaleOf(p)
		if serr != nil || sale["physkey"] != s.physkey {
			return fmt.Errorf("counter: %s of %s answered %s", st.kind, s.physkey, p.raw)
		}
		switch st.kind {
		case "recall":
			if sale["phase"] != 0.0 {
				return fmt.Errorf("counter: recall of %s answered %s", s.physkey, p.raw)
			}
		case "pay":
			if pays, _ := sale["payments"].([]any); len(pays) != 1 || relCents(sale["paid"]) != s.totalCents {
				return fmt.Errorf("counter: payment of %s answered %s", s.physkey, p.raw)
			}
		case "complete":
			if sale["phase"] != 1.0 || relNum(sale["sid"]) < 1 {
				return fmt.Errorf("counter: complete of %s answered %s", s.physkey, p.raw)
			}
			s.sid, s.done = relNum(sale["sid"]), true
		}
		st.acked, st.data = true, slices.Clone(p.Data)
		m.acked.Add(1)
		if wasSent[i] {
			m.resolved.Add(1)
		}
	}
	return err
}

// runCounter is the checkout in one round: it logs in again, resumes the
// presells it was working on (every step again with its ik), then recalls,
// pays and completes newly submitted ones until the lane dies under it. In
// the settle round it logs in with the admin key too, so that it can take
// over a claim still held by a dead process's session.
func (m *relModel) runCounter(r *relRound, key, admin string, ready func()) error {
	keys := []string{key}
	if r.settle {
		keys = append(keys, admin)
	}
	c, err := relLogin(r.addr, "", "counter", keys...)
	ready()
	if err != nil {
		return r.transportEnd("counter", fmt.Errorf("%w: %v", relErrTransport, err))
	}
	defer c.ws.Close()
	r.clients.Store("counter", c)

	passes := 1
	if r.settle {
		passes = 4
	}
	for range passes {
		m.mu.Lock()
		var working []*relSale
		for _, s := range m.sales {
			if len(s.counter) > 0 && !s.done {
				working = append(working, s)
			}
		}
		m.mu.Unlock()
		for _, s := range working {
			if err := m.counterBatch(c, s, r.settle); err != nil {
				return r.transportEnd("counter", err)
			}
		}
	}
	if r.settle {
		return nil
	}
	for {
		s := m.takeParked()
		if s == nil {
			select {
			case <-m.wake:
				continue
			case <-r.killedCh:
				return nil
			}
		}
		s.counter = []*relStep{
			{kind: "recall", ik: newUUID(), pkt: map[string]any{"a": "fd1.presell.recall", "k": s.physkey}},
			{kind: "pay", ik: newUUID(), pkt: map[string]any{"a": relSB + "sale_add_payment", "k": s.physkey,
				"v": map[string]any{"type": 3, "amount": relMoney(s.totalCents)}}},
			{kind: "complete", ik: newUUID(), pkt: map[string]any{"a": relSB + "salesbuilder_complete", "k": s.physkey}},
		}
		if err := m.counterBatch(c, s, false); err != nil {
			return r.transportEnd("counter", err)
		}
	}
}

// relCheckDB reads the lane DB file (the process is gone) and checks it
// against everything the clients were told. final: nothing may be pending.
func relCheckDB(t *testing.T, db string, m *relModel, final bool) {
	t.Helper()
	// SQLite's own checks of the file; PostgreSQL enforces foreign keys on
	// every write and has no file of the lane's to check.
	if !isStoreURL(db) {
		if ok := sqliteRows(t, db, `PRAGMA integrity_check`); len(ok) != 1 || ok[0]["integrity_check"] != "ok" {
			t.Fatalf("integrity_check after the kill: %v", ok)
		}
		if fk := sqliteRows(t, db, `PRAGMA foreign_key_check`); len(fk) != 0 {
			t.Fatalf("foreign_key_check: %v", fk)
		}
	}
	type dbSale struct {
		row   map[string]any
		lines []map[string]any
		pays  []map[string]any
	}
	// One moment of the DB: on a store, a killed instance's last commit
	// may land while it is read.
	read := dbSnapshot(t, db,
		`SELECT physkey, phase, presell, created_by, ticket, sid, saletotal_cents,
		submitted_utc IS NOT NULL AS submitted FROM sales`,
		`SELECT sale_physkey, seqnce, pid, qty, totalprice_cents FROM sale_lines ORDER BY sale_physkey, seqnce`,
		`SELECT sale_physkey, sequence, amount_cents FROM payments`,
		`SELECT ik FROM idempotency`)
	sales := map[string]*dbSale{}
	for _, row := range read[0] {
		sales[row["physkey"].(string)] = &dbSale{row: row}
	}
	for _, ln := range read[1] {
		s := sales[ln["sale_physkey"].(string)]
		if s == nil {
			t.Fatalf("a line without its sale: %v", ln)
		}
		s.lines = append(s.lines, ln)
	}
	for _, py := range read[2] {
		s := sales[py["sale_physkey"].(string)]
		if s == nil {
			t.Fatalf("a payment without its sale: %v", py)
		}
		s.pays = append(s.pays, py)
	}
	stored := map[string]bool{}
	for _, row := range read[3] {
		stored[row["ik"].(string)] = true
	}

	// No sale is half-written: its total is its lines' sum.
	for pk, s := range sales {
		var sum int64
		for _, ln := range s.lines {
			sum += int64(relNum(ln["totalprice_cents"]))
		}
		if int64(relNum(s.row["saletotal_cents"])) != sum {
			t.Errorf("sale %s: saletotal_cents %v, its lines sum to %d", pk, s.row["saletotal_cents"], sum)
		}
		if m.byKey[pk] == nil {
			t.Errorf("sale %s is in the DB but no client ever asked for it: %v", pk, s.row)
		}
	}

	for _, ms := range m.sales {
		pk := ms.physkey
		d := sales[pk]
		create, park := ms.chain[0], ms.chain[len(ms.chain)-1]
		exists := d != nil
		if create.acked && !exists {
			t.Errorf("%s's sale %s: its create was acknowledged, it is not in the DB", ms.tablet, pk)
			continue
		}
		if exists && !create.sent {
			t.Errorf("sale %s is in the DB, its create was never sent", pk)
		}
		if stored[create.ik] != exists {
			t.Errorf("sale %s: in the DB %v, its create's ik stored %v: not one transaction", pk, exists, stored[create.ik])
		}
		if !exists {
			for _, st := range append(ms.chain[1:], ms.counter...) {
				if st.acked || stored[st.ik] {
					t.Errorf("sale %s is not in the DB, yet its %s was acknowledged %v / stored %v", pk, st.kind, st.acked, stored[st.ik])
				}
			}
			continue
		}
		row := d.row
		if row["presell"] != 1.0 || row["created_by"] != ms.tablet {
			t.Errorf("sale %s: presell %v created_by %v, want 1, %s", pk, row["presell"], row["created_by"], ms.tablet)
		}
		// Lines: a prefix of the adds sent, at least every acknowledged one.
		lastAcked, sentAdds := 0, 0
		for _, st := range ms.chain {
			if st.kind != "add" {
				continue
			}
			if st.acked {
				lastAcked = st.n
			}
			if st.sent {
				sentAdds = st.n
			}
		}
		n := len(d.lines)
		if n < lastAcked || n > sentAdds {
			t.Errorf("sale %s has %d lines; %d adds were acknowledged and %d sent", pk, n, lastAcked, sentAdds)
		}
		for i, ln := range d.lines {
			if i >= len(ms.chain)-2 {
				break
			}
			want := ms.chain[1+i]
			if ln["seqnce"] != float64(i+1) || ln["pid"] != float64(want.pid) || ln["qty"] != float64(want.qty) {
				t.Errorf("sale %s line %d in the DB: %v, want seqnce %d pid %d qty %d once", pk, i+1, ln, i+1, want.pid, want.qty)
			}
		}
		for _, st := range ms.chain[1 : len(ms.chain)-1] {
			if stored[st.ik] != (n >= st.n) {
				t.Errorf("sale %s: line %d in the DB %v, its add's ik stored %v: not one transaction", pk, st.n, n >= st.n, stored[st.ik])
			}
		}
		submitted := row["submitted"] == 1.0
		if park.acked && !submitted || !park.sent && submitted {
			t.Errorf("sale %s: submitted %v, park sent %v acknowledged %v", pk, submitted, park.sent, park.acked)
		}
		if stored[park.ik] != submitted {
			t.Errorf("sale %s: submitted %v, its park's ik stored %v: not one transaction", pk, submitted, stored[park.ik])
		}
		if submitted && n != ms.adds {
			t.Errorf("sale %s was submitted with %d lines, the tablet sent it %d", pk, n, ms.adds)
		}
		if park.acked && (relNum(row["ticket"]) != ms.ticket || int64(relNum(row["saletotal_cents"])) != ms.totalCents) {
			t.Errorf("sale %s: ticket %v total %v in the DB, the park reply said %v and %d", pk, row["ticket"], row["saletotal_cents"], ms.ticket, ms.totalCents)
		}
		// Counter: one payment at most, and only if it was asked for.
		pay, complete := ms.step("pay"), ms.step("complete")
		np := len(d.pays)
		switch {
		case np > 1:
			t.Errorf("sale %s has %d payments, the counter paid it once: %v", pk, np, d.pays)
		case np == 1 && (pay == nil || !pay.sent):
			t.Errorf("sale %s has a payment nobody sent: %v", pk, d.pays)
		case np == 0 && pay != nil && pay.acked:
			t.Errorf("sale %s: its payment was acknowledged, it is not in the DB", pk)
		case np == 1 && int64(relNum(d.pays[0]["amount_cents"])) != ms.totalCents:
			t.Errorf("sale %s: payment %v, want %d cents", pk, d.pays[0], ms.totalCents)
		}
		if pay != nil && stored[pay.ik] != (np == 1) {
			t.Errorf("sale %s: %d payments, the payment's ik stored %v: not one transaction", pk, np, stored[pay.ik])
		}
		completed := row["phase"] == 1.0
		switch {
		case completed && (complete == nil || !complete.sent):
			t.Errorf("sale %s is completed, nobody sent a complete", pk)
		case !completed && complete != nil && complete.acked:
			t.Errorf("sale %s: its complete was acknowledged, the DB says phase %v", pk, row["phase"])
		case complete != nil && complete.acked && relNum(row["sid"]) != ms.sid:
			t.Errorf("sale %s: sid %v in the DB, the complete reply said %v", pk, row["sid"], ms.sid)
		}
		if complete != nil && stored[complete.ik] != completed {
			t.Errorf("sale %s: completed %v, the complete's ik stored %v: not one transaction", pk, completed, stored[complete.ik])
		}
		for _, st := range append(slices.Clone(ms.chain), ms.counter...) {
			if st.acked && !stored[st.ik] {
				t.Errorf("sale %s: the %s acknowledged with ik %s left no idempotency record", pk, st.kind, st.ik)
			}
			if stored[st.ik] && !st.sent {
				t.Errorf("sale %s: ik %s of a %s never sent is stored", pk, st.ik, st.kind)
			}
		}
		if final {
			if !park.acked || ms.wanted && len(ms.counter) > 0 && !ms.done {
				t.Errorf("after the settle round, sale %s is unfinished: park acknowledged %v, counter done %v", pk, park.acked, ms.done)
			}
			if n != ms.adds || (ms.done && (np != 1 || !completed)) {
				t.Errorf("after the settle round, sale %s: %d lines (want %d), %d payments, completed %v", pk, n, ms.adds, np, completed)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// TestKillNineUnderLoad: kill -9 the lane at random moments under presell
// load, at least 20 times, restarting it each time on the same lane DB.
func TestKillNineUnderLoad(t *testing.T) {
	alongside(t)
	if testing.Short() {
		t.Skip("kill -9 loop: run without -short, as .ci/run does")
	}
	const rounds = 30
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	t.Logf("seed %d", seed)

	db := filepath.Join(t.TempDir(), "lane.db")
	// A short lease: a claim held by a killed process's session lapses
	// within a round or two, and the counter recalls the presell again.
	// Presells the counter does not want stay open for good, piling up
	// past the default per-key cap over the rounds: lift it.
	flags := []string{"--presell-lease", "3s", "--max-open-presells", "9999"}
	p := relStart(t, db, flags...)
	admin := relAdminKey(t, db)
	tablets := []string{"tablet-1", "tablet-2", "tablet-3"}
	keys := relKeys(t, db, map[string]string{"tablet-1": "presell", "tablet-2": "presell", "tablet-3": "presell", "counter-1": "counter"})
	m := newRelModel()

	runRound := func(r *relRound, afterReady func()) {
		t.Helper()
		m.runRound(t, r, tablets, keys, admin, rng, afterReady)
	}

	began := time.Now()
	var kills, midRequest int
	var inflight int64
	for round := 1; round <= rounds; round++ {
		if round > 1 {
			p = relStart(t, db, flags...)
		}
		r := &relRound{addr: p.addr, killedCh: make(chan struct{})}
		runRound(r, func() {
			// The kill lands at a random moment of the busy period.
			time.Sleep(time.Duration(20+rng.IntN(1000)) * time.Millisecond)
			n := r.outstanding()
			r.killed.Store(true)
			close(r.killedCh)
			p.kill9()
			inflight += n
			if n > 0 {
				midRequest++
			}
		})
		kills++
		p.checkLog()
		if t.Failed() {
			t.Fatalf("round %d (seed %d); lane log:\n%s", round, seed, p.log())
		}
		relCheckDB(t, db, m, false)
	}
	if midRequest < rounds/2 {
		t.Errorf("only %d of %d kills landed with requests in flight; the load is too light to prove anything", midRequest, rounds)
	}

	// Settle: a last life with no kill finishes every presell (lost replies
	// retried with their ik), then stops cleanly.
	p = relStart(t, db, flags...)
	r := &relRound{addr: p.addr, killedCh: make(chan struct{}), settle: true}
	runRound(r, func() {})
	sent := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if took, code := p.waitExit(sent, 30*time.Second); code != 0 {
		t.Fatalf("the settled lane exited with %d after %v:\n%s", code, took, p.log())
	}
	relCheckDB(t, db, m, true)
	var lines, done int
	for _, s := range m.sales {
		lines += s.adds
		if s.done {
			done++
		}
	}
	t.Logf("survived %d kill -9s (%d mid-request, %d requests in flight at the kills) in %v; %d requests acknowledged, %d lost replies retried with their ik and applied once, %d ik retries of acknowledged requests byte-identical; %d presells with %d lines, %d recalled, paid and completed (%d recalled again after a killed session's claim lapsed)",
		kills, midRequest, inflight, time.Since(began).Round(time.Millisecond), m.acked.Load(), m.resolved.Load(), m.replays.Load(), len(m.sales), lines, done, m.recalls.Load())
}

// TestClaimResumesAfterRepeatedRestarts: a counter that recalled a presell
// with an ik, and lost the lane twice in a row (kill -9, restart), must be
// able to resume its claim by retrying that ik each time: the design says a
// retry from a new connection takes over the claim the first connection won
// with it.
func TestClaimResumesAfterRepeatedRestarts(t *testing.T) {
	alongside(t)
	db := filepath.Join(t.TempDir(), "lane.db")
	p := relStart(t, db)
	keys := relKeys(t, db, map[string]string{"tablet-1": "presell", "counter-1": "counter"})
	tab, err := relLogin(p.addr, relPresellQuery, "tablet", keys["tablet-1"])
	if err != nil {
		t.Fatal(err)
	}
	pk := newUUID()
	r, err := tab.exchange([]map[string]any{
		{"a": relSB + "sale_create", "v": map[string]any{"physkey": pk}},
		{"a": relSB + "sale_add_product", "k": pk, "v": map[string]any{"pid": 1001}},
		{"a": relSB + "sale_park", "k": pk},
	}, nil)
	if err != nil || r[2].Error != nil {
		t.Fatalf("build a presell: %v %v", err, r)
	}
	recall := map[string]any{"a": "fd1.presell.recall", "k": pk, "ik": newUUID()}
	var first []byte
	for life := 1; life <= 3; life++ {
		if life > 1 {
			p.kill9()
			p = relStart(t, db)
		}
		c, err := relLogin(p.addr, "", "counter", keys["counter-1"])
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.exchange([]map[string]any{recall}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = r[0].Data
		}
		if r[0].Error != nil || !bytes.Equal(r[0].Data, first) {
			t.Fatalf("life %d: retry of the recall with its ik: %s", life, r[0].raw)
		}
	}
	// The device holds the claim now: it can take the payment.
	c, err := relLogin(p.addr, "", "counter", keys["counter-1"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.ws.Close()
	r, err = c.exchange([]map[string]any{recall, {"a": relSB + "sale_add_payment", "k": pk, "ik": newUUID(), "v": map[string]any{"type": 3, "amount": 5.5}}}, nil)
	if err != nil || r[0].Error != nil || r[1].Error != nil {
		t.Fatalf("after the third reconnect: recall %s, payment %s", r[0].raw, r[1].raw)
	}
}
