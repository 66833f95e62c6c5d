package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// binary is the greenlane binary built once for the whole run.
var binary string

// The suite against any server: `go test ./integration -args -url
// ws://HOST:PORT -key KEY` runs every test against that server instead of
// a lane each test starts. startLane then returns the running server (no
// process, no DB file) and l.key is -key, which must be an admin key. A
// test that needs a lane of its own skips, saying why: one that restarts
// or kills the server or passes it serve flags (startLane with flags,
// needsOwnLane), reads or writes the DB file (sqliteRows, sqliteExec, cli
// with --db), or creates keys with chosen scopes or names (newKey,
// newKeys): most such tests check what a scope refuses or which key name
// a sale records, which the admin key cannot stand in for. A test that
// only needs keys that get in calls l.anyKeyWillDo() first, and newKey
// then returns the admin key. Tests may leave sales open: TestMain voids
// those the run made and left open when it ends (leftovers_test.go), so
// every reader of the suite's replies passes them to noteSales.
var (
	remoteURL = flag.String("url", "", "run the suite against this running server (ws://HOST:PORT) instead of starting one per test")
	remoteKey = flag.String("key", "", "with -url: an admin API key of that server")
	// remoteAddr is -url's host:port ("" when the suite starts its own lanes).
	remoteAddr string
)

// remote reports whether the suite runs against a server given with -url.
func remote() bool { return remoteAddr != "" }

// needsOwnLane skips the test when the suite runs against a server it did
// not start: call it first in a test that restarts or kills the lane.
func needsOwnLane(t testing.TB) {
	t.Helper()
	skipIfRemote(t, "needs a lane it starts itself (restart, kill, serve flags or the DB file)")
}

// alongside runs the test beside the others that call it (-parallel at
// once, GOMAXPROCS by default), once every test that does not has run. A
// test may call it, first, when all it uses is its own: lanes it starts,
// files in its own folders, sockets and processes of its own, and no
// setting of the test process. Most of such a test's time is a lane or a
// browser working or waiting, so two at once take about the time of one.
// Against a -url lane the tests share one lane and key: one at a time.
func alongside(t *testing.T) {
	if !remote() {
		t.Parallel()
	}
}

func skipIfRemote(t testing.TB, why string) {
	t.Helper()
	if remote() {
		t.Skipf("%s; -url %s was given", why, *remoteURL)
	}
}

// parseRemote checks -url and -key.
func parseRemote() error {
	if *remoteURL == "" {
		return nil
	}
	if *remoteKey == "" {
		return fmt.Errorf("-url needs -key: an admin API key of that server")
	}
	raw := *remoteURL
	if !strings.Contains(raw, "://") {
		raw = "ws://" + raw
	}
	u, err := url.Parse(raw)
	if err == nil && u.Scheme == "wss" {
		// The suite's own sockets and HTTP calls are plain: dialled as
		// ws://, a TLS lane would only fail every test with a bad handshake.
		return fmt.Errorf("-url %q: the suite speaks plain ws:// only, not wss:// (TLS); run it against a lane served without --tls", *remoteURL)
	}
	if err != nil || u.Scheme != "ws" || u.Host == "" {
		return fmt.Errorf("-url %q: want ws://HOST:PORT", *remoteURL)
	}
	remoteAddr = u.Host
	return nil
}

func TestMain(m *testing.M) {
	flag.Parse()
	if err := parseRemote(); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "greenlane-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "greenlane")
	if built := os.Getenv(builtBinaryEnv); built != "" {
		binary = built // a run this suite started itself (leftovers_test.go)
	} else if err := buildBinary(binary); err != nil {
		fmt.Fprintln(os.Stderr, "integration: build greenlane:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	if remote() {
		// Before any test: a key that cannot log in fails the run here.
		if err = startOfRun(remoteAddr, *remoteKey); err != nil {
			fmt.Fprintln(os.Stderr, "integration: -url:", err)
			os.RemoveAll(dir)
			os.Exit(2)
		}
	}
	code := m.Run()
	if remote() {
		done, err := endOfRun(remoteAddr, *remoteKey)
		fmt.Fprintln(os.Stderr, describeCleanup(done))
		if err != nil {
			// What is left open counts towards the key's limits on the
			// next run: a run that cannot clean up fails.
			fmt.Fprintln(os.Stderr, "integration: -url: could not leave the lane as found:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// builtBinaryEnv names a greenlane binary the suite already built: a run
// of the suite that a test starts takes it instead of building its own.
const builtBinaryEnv = "GREENLANE_IT_BINARY"

func buildBinary(out string) error {
	args := []string{"build", "-o", out}
	if raceBuild {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "../cmd/greenlane")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// lane is one running greenlane server on its own lane DB.
type lane struct {
	t      *testing.T
	addr   string // host:port
	db     string // lane DB path
	key    string // the admin key serve wrote on first start
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
	exited chan struct{}
	// anyKey: the test only needs keys that get in, so with -url newKey
	// and newKeys hand out the admin key instead of skipping.
	anyKey bool
}

// anyKeyWillDo says the test checks no scope refusal and no key name: with
// -url, newKey and newKeys then return the -key admin key.
func (l *lane) anyKeyWillDo() { l.anyKey = true }

var listening = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startLane starts `greenlane serve` on a fresh DB in a temp folder: the
// demo fixture and an admin key are created on first start. With -url it
// returns that server instead (and skips a test that passes serve flags).
func startLane(t *testing.T, extra ...string) *lane {
	t.Helper()
	if remote() {
		if len(extra) > 0 {
			skipIfRemote(t, "needs serve flags "+strings.Join(extra, " "))
		}
		return &lane{t: t, addr: remoteAddr, key: *remoteKey, exited: make(chan struct{})}
	}
	if os.Getenv("GREENLANE_IT_STORE") != "" {
		// The suite on a PostgreSQL store database (store_test.go).
		needsOwnLane(t)
		if slices.Contains(extra, "--clock") {
			t.Skip("--clock sets the lane's clock apart from the store database's, which a store lane refuses (--max-clock-skew)")
		}
		db, key := demoStore(t)
		return startStoreLane(t, db, key, extra...)
	}
	return startLaneAt(t, filepath.Join(t.TempDir(), "lane.db"), extra...)
}

// launch runs the binary with args (env nil: this process's environment)
// and waits for it to listen; it is stopped when the test ends.
func (l *lane) launch(env, args []string) {
	t := l.t
	t.Helper()
	l.cmd = exec.Command(binary, args...)
	l.cmd.Env = env
	pipe, err := l.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.cmd.Start(); err != nil {
		t.Fatalf("start greenlane: %v", err)
	}
	addrc := make(chan string, 1)
	go l.readLog(pipe, addrc)
	t.Cleanup(l.stop)
	select {
	case l.addr = <-addrc:
	case <-l.exited:
		t.Fatalf("greenlane exited before listening:\n%s", l.log())
	case <-time.After(60 * time.Second):
		t.Fatalf("greenlane did not start listening within 60s:\n%s", l.log())
	}
}

// startLaneAt is startLane on a DB path the test chose, so that files made
// next to it beforehand (tls init) are there when serve starts.
func startLaneAt(t *testing.T, db string, extra ...string) *lane {
	t.Helper()
	needsOwnLane(t)
	l := &lane{t: t, db: db, exited: make(chan struct{})}
	l.launch(nil, append([]string{"serve", "--addr", "127.0.0.1:0", "--db", l.db, "--create"}, extra...))
	key, err := os.ReadFile(l.db + ".apikey")
	if err != nil {
		t.Fatalf("admin key file: %v", err)
	}
	l.key = strings.TrimSpace(string(key))
	return l
}

// listeningAddr is the address in the lane's "listening" log line, in
// either --log-format; "" for any other line.
func listeningAddr(line string) string {
	if m := listening.FindStringSubmatch(line); m != nil {
		return m[1]
	}
	var rec struct{ Msg, Addr string }
	if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
		return rec.Addr
	}
	return ""
}

// troubles is the lane's log lines at WARN or ERROR, less the two that
// announce the lane DB startLane had it create (--create): "" when none.
func (l *lane) troubles() string {
	var bad []string
	for _, line := range strings.Split(l.log(), "\n") {
		if !strings.Contains(line, "level=ERROR") && !strings.Contains(line, "level=WARN") {
			continue
		}
		if strings.Contains(line, "NEW LANE DB CREATED") || strings.Contains(line, "NEW ADMIN API KEY") {
			continue
		}
		bad = append(bad, line)
	}
	return strings.Join(bad, "\n")
}

func (l *lane) readLog(r io.Reader, addrc chan<- string) {
	sc := bufio.NewScanner(r)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		l.mu.Lock()
		l.stderr.WriteString(line + "\n")
		l.mu.Unlock()
		if addr := listeningAddr(line); addr != "" && !sent {
			addrc <- addr
			sent = true
		}
	}
	_ = l.cmd.Wait()
	close(l.exited)
}

func (l *lane) log() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stderr.String()
}

// stop sends SIGTERM and waits; a race report or panic in the log fails
// the test that owned the lane.
func (l *lane) stop() {
	if l.cmd == nil {
		l.t.Skip("stops the server: needs a lane it starts itself; -url was given")
	}
	if l.cmd.Process != nil {
		_ = l.cmd.Process.Signal(os.Interrupt)
	}
	select {
	case <-l.exited:
	case <-time.After(30 * time.Second):
		_ = l.cmd.Process.Kill()
		<-l.exited
		l.t.Errorf("greenlane did not stop within 30s of SIGINT")
	}
	out := l.log()
	if strings.Contains(out, "WARNING: DATA RACE") || strings.Contains(out, "panic:") {
		l.t.Errorf("greenlane log shows a race or panic:\n%s", out)
	}
}

// cli runs a greenlane subcommand and returns its stdout.
func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	for i, a := range args {
		if a == "--db" && i+1 < len(args) && args[i+1] == "" {
			skipIfRemote(t, "runs greenlane "+args[0]+" on the lane DB file")
		}
	}
	cmd := exec.Command(binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("greenlane %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// newKey creates an API key with the CLI while the server runs (a second
// process writing the same lane DB).
func (l *lane) newKey(name, scopes string) string {
	l.t.Helper()
	if remote() && l.anyKey {
		return l.key
	}
	skipIfRemote(l.t, "creates API keys with chosen scopes through the CLI on the lane DB")
	out, err := cli(l.t, "apikey", "create", "--db", l.db, "--name", name, "--scope", scopes)
	if err != nil {
		l.t.Fatal(err)
	}
	key := strings.TrimSpace(out)
	if strings.Contains(key, "\n") || key == "" {
		l.t.Fatalf("apikey create printed %q, want the key alone", out)
	}
	return key
}

// conn is a test client socket.
type conn struct {
	t  *testing.T
	ws *websocket.Conn
	// patience is how long next waits for a reply; 0: 10s. Replies to
	// frames of megabytes take seconds in a race build on a busy machine.
	patience time.Duration
}

func (l *lane) dial(query string) *conn {
	l.t.Helper()
	url := "ws://" + l.addr + "/fd1/open_websocket" + query
	ws, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		l.t.Fatalf("dial %s: %v %s", url, err, status)
	}
	c := &conn{t: l.t, ws: ws}
	l.t.Cleanup(func() { ws.Close() })
	return c
}

// login dials and logs in with key (and an optional login purpose).
func (l *lane) login(query, key, purpose string) *conn {
	l.t.Helper()
	c := l.dial(query)
	v := map[string]any{"apikey": key}
	if purpose != "" {
		v["purpose"] = purpose
	}
	r := c.call(map[string]any{"a": "fd1.session.login", "rq": "login", "v": v})
	if r.Error != nil {
		l.t.Fatalf("login: %+v", r.Error)
	}
	return c
}

// packet is a decoded reply or event.
type packet struct {
	R     string          `json:"r"`
	RP    json.RawMessage `json:"rp"`
	RT    json.RawMessage `json:"rt"`
	SC    string          `json:"sc"`
	A     string          `json:"a"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Data    json.RawMessage `json:"data"`
	V       json.RawMessage `json:"v"`
	DebugRD json.RawMessage `json:"debug_rd"`
	raw     []byte
}

func (c *conn) sendRaw(b []byte) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *conn) send(pkt any) {
	c.t.Helper()
	b, err := json.Marshal(pkt)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
}

// next reads the next packet within 10s.
func (c *conn) next() *packet {
	c.t.Helper()
	wait := c.patience
	if wait == 0 {
		wait = 10 * time.Second
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(wait))
	_, msg, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	p := &packet{raw: msg}
	if err := json.Unmarshal(msg, p); err != nil {
		c.t.Fatalf("reply is not JSON: %v: %s", err, msg)
	}
	noteSales(msg)
	return p
}

// call sends a packet and reads one reply.
func (c *conn) call(pkt any) *packet {
	c.t.Helper()
	c.send(pkt)
	return c.next()
}

// rows decodes data.rows.
func (p *packet) rows(t *testing.T) []map[string]any {
	t.Helper()
	if p.Error != nil {
		t.Fatalf("%s: error %s: %s", p.R, p.Error.Code, p.Error.Message)
	}
	var d struct {
		Rows []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal(p.Data, &d); err != nil {
		t.Fatalf("data.rows: %v: %s", err, p.Data)
	}
	return d.Rows
}

// data decodes data into an object.
func (p *packet) data(t *testing.T) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(p.Data, &d); err != nil {
		t.Fatalf("data: %v: %s", err, p.Data)
	}
	return d
}

func (p *packet) wantError(t *testing.T, code string) {
	t.Helper()
	if p.Error == nil {
		t.Fatalf("want error %s, got a success: %s", code, p.raw)
	}
	if p.Error.Code != code {
		t.Fatalf("error code %s (%s), want %s", p.Error.Code, p.Error.Message, code)
	}
	if p.Error.Message == "" {
		t.Fatalf("error %s has no message", code)
	}
	if string(p.Data) != "{}" {
		t.Fatalf("error reply data = %s, want {}", p.Data)
	}
}

// ping checks the socket still answers.
func (c *conn) ping() {
	c.t.Helper()
	r := c.call(map[string]any{"a": "fd1.debug.ping", "rq": "alive?"})
	if r.Error != nil || string(r.RP) != `"alive?"` {
		c.t.Fatalf("socket no longer answers: %s", r.raw)
	}
}

// httpCall makes an HTTP-mode request.
func (l *lane) httpCall(method, path string, header map[string]string, body string) (int, *packet) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+l.addr+path, strings.NewReader(body))
	if err != nil {
		l.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	p := &packet{raw: b}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, p); err != nil {
			l.t.Fatalf("HTTP %s %s: body is not JSON: %s", method, path, b)
		}
		noteSales(b)
	}
	return resp.StatusCode, p
}

// --- helpers for the SalesBuilder, presell and concurrency suites ---

// quietEnv is the environment for short-lived greenlane runs: a race-built
// binary otherwise sleeps a second at exit (GORACE atexit_sleep_ms).
func quietEnv() []string {
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	return append(os.Environ(), "GORACE="+gorace)
}

// newKeys creates n API keys named prefix-1…prefix-n with the CLI, several
// at once, and returns them in order.
func (l *lane) newKeys(prefix, scopes string, n int) []string {
	l.t.Helper()
	if remote() && l.anyKey {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = l.key
		}
		return keys
	}
	skipIfRemote(l.t, "creates API keys with chosen scopes through the CLI on the lane DB")
	keys := make([]string, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			name := fmt.Sprintf("%s-%d", prefix, i+1)
			cmd := exec.Command(binary, "apikey", "create", "--db", l.db, "--name", name, "--scope", scopes)
			cmd.Env = quietEnv()
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				errs[i] = fmt.Errorf("apikey create %s: %w: %s", name, err, stderr.String())
				return
			}
			keys[i] = strings.TrimSpace(stdout.String())
			if keys[i] == "" || strings.Contains(keys[i], "\n") {
				errs[i] = fmt.Errorf("apikey create %s printed %q, want the key alone", name, stdout.String())
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			l.t.Fatal(err)
		}
	}
	return keys
}

// k is the reply's k (the sale key echo) as text, "" when absent.
func (p *packet) k() string {
	var f struct {
		K json.RawMessage `json:"k"`
	}
	_ = json.Unmarshal(p.raw, &f)
	var s string
	if json.Unmarshal(f.K, &s) == nil {
		return s
	}
	return string(f.K)
}

// rpKey is a reply's rp as a map key (its JSON spelling).
func (p *packet) rpKey() string { return string(p.RP) }

// callAll sends every packet before reading any reply (pipelining), then
// reads one reply per packet and returns them keyed by rp (each packet must
// carry a distinct rq).
func (c *conn) callAll(pkts ...map[string]any) map[string]*packet {
	c.t.Helper()
	want := map[string]bool{}
	for _, p := range pkts {
		rq, err := json.Marshal(p["rq"])
		if err != nil || p["rq"] == nil || want[string(rq)] {
			c.t.Fatalf("callAll: every packet needs its own rq: %v", p)
		}
		want[string(rq)] = true
		c.send(p)
	}
	got := make(map[string]*packet, len(pkts))
	for range pkts {
		r := c.next()
		if !want[r.rpKey()] || got[r.rpKey()] != nil {
			c.t.Fatalf("callAll: unexpected or repeated reply rp %s: %s", r.RP, r.raw)
		}
		got[r.rpKey()] = r
	}
	return got
}

// sqliteRows runs a read-only query on a lane DB with the sqlite3 CLI (a
// second OS process, as a counter program or report tool would be) and
// returns the rows.
func sqliteRows(t *testing.T, db, query string, args ...any) []map[string]any {
	t.Helper()
	if db == "" {
		skipIfRemote(t, "reads the lane DB file with sqlite3")
	}
	query = fmt.Sprintf(query, args...)
	if isStoreURL(db) {
		return storeRows(t, db, query) // a PostgreSQL store database (store_test.go)
	}
	cmd := exec.Command("sqlite3", "-readonly", "-json", "-bail", "-cmd", ".timeout 10000", db, query)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sqlite3 %q: %v: %s", query, err, stderr.String())
	}
	if strings.TrimSpace(stdout.String()) == "" {
		return nil
	}
	var rows []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
		t.Fatalf("sqlite3 %q printed no JSON: %v: %s", query, err, stdout.String())
	}
	return rows
}

// dbSnapshot is sqliteRows for each query, all seeing one moment of the
// DB. (On an SQLite file whose lane is stopped or killed, nothing writes
// between the reads.)
func dbSnapshot(t *testing.T, db string, queries ...string) [][]map[string]any {
	t.Helper()
	if isStoreURL(db) {
		return storeSnapshot(t, db, queries...)
	}
	out := make([][]map[string]any, len(queries))
	for i, q := range queries {
		out[i] = sqliteRows(t, db, "%s", q)
	}
	return out
}

// sqlQuote quotes a string for an SQL literal.
func sqlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// sqlList is a parenthesised list of quoted strings for IN (…).
func sqlList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = sqlQuote(s)
	}
	return "(" + strings.Join(q, ",") + ")"
}

// newUUID is a random (version 4) UUID, as a client picks for ik or physkey.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// --- helpers for the counter-recall suite ---

// sqliteExec runs statements on a lane DB with the sqlite3 CLI (a second OS
// process writing the file while the lane serves it, as a back-office tool
// would), waiting up to 10 s for the write lock.
func sqliteExec(t *testing.T, db, stmts string, args ...any) {
	t.Helper()
	if db == "" {
		skipIfRemote(t, "writes the lane DB file with sqlite3")
	}
	stmts = fmt.Sprintf(stmts, args...)
	if isStoreURL(db) {
		storeExec(t, db, stmts)
		return
	}
	cmd := exec.Command("sqlite3", "-bail", "-cmd", ".timeout 10000", db, stmts)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sqlite3 %q: %v: %s", stmts, err, stderr.String())
	}
}

// restoreBackup puts the lane DB file backup in db's place with `greenlane
// restore`, as an operator does with the lane stopped (or crashed: the WAL
// it left must not survive beside the restored file).
func restoreBackup(t *testing.T, db, backup string) {
	t.Helper()
	out, err := cli(t, "restore", "--db", db, "--from", backup)
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if !strings.Contains(out, "restored "+db) {
		t.Fatalf("restore said:\n%s", out)
	}
}
