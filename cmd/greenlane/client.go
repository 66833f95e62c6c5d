package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/greenlane-pos/greenlane/transcript"
)

const clientSynopsis = `client [flags] [PACKET…]

Sends FD1 packets to a lane and prints every packet that comes back: replies,
and firehose events as they arrive. A PACKET is JSON, an endpoint name
(salesbuilder.sale_create), or an endpoint name and JSON for the rest
(salesbuilder.sale_add_product {"v":{"plu":"FW"}}); an "rq" is added when
missing. With PACKET arguments the client sends them and exits; without, it
reads packets from standard input, one per line — at a terminal with a prompt
and history (!! repeats the last line, !N line N, :history lists them).
Commands (:help lists them) open more sockets, e.g. ":open tablet ?purpose=presell",
and "@tablet PACKET" sends on one. --record FILE writes the session as a
transcript for 'greenlane replay'.`

// clientHelp is the interactive :help text.
const clientHelp = `  PACKET                      send on the current socket: JSON, an endpoint, or "endpoint {json}"
  @NAME PACKET                send on socket NAME
  :open NAME [?QUERY] [PURPOSE]  open and log in a socket, e.g. :open tablet ?purpose=presell
                              or :open display customerdisplay (key: --key-for NAME=KEY, else --key)
  :use NAME                   make NAME the current socket
  :close [NAME]               close a socket (default: the current one)
  :sockets                    list open sockets
  :wait [DURATION]            wait for events (default 1s)
  :history, !!, !N            list, repeat the last, repeat line N
  # text                      a comment (kept in a --record transcript)
  :quit                       leave (or end of input)`

// clientStdin is where the client reads packets when it has no arguments
// (a variable so tests can type).
var clientStdin io.Reader = os.Stdin

// clientOptions are the client's flags and arguments.
type clientOptions struct {
	url, key, keyFile, purpose, socket, record string
	keyFor                                     keyFlag
	wait, linger                               time.Duration
	literal, compact, interactive              bool
	packets                                    []string
}

func parseClientFlags(args []string, stderr io.Writer) (clientOptions, error) {
	o := clientOptions{keyFor: keyFlag{}}
	fs := newFlags("client", clientSynopsis, stderr)
	fs.StringVar(&o.url, "url", "ws://127.0.0.1:3490/fd1/open_websocket", "lane socket URL (add ?purpose=presell for a presell socket)")
	fs.StringVar(&o.key, "key", "", "API key to log in with (default: the contents of --key-file)")
	fs.StringVar(&o.keyFile, "key-file", defaultDB+".apikey", "file holding the API key, used when --key is not given")
	fs.Var(o.keyFor, "key-for", "NAME=KEY: the key of socket NAME (repeatable); other sockets use --key")
	fs.StringVar(&o.purpose, "purpose", "", "login purpose of the first socket: customerdisplay or debugscope")
	fs.StringVar(&o.socket, "socket", transcript.DefaultSocket, "name of the first socket (prompt, @NAME, transcripts); empty: open none (a script's :open lines do)")
	fs.DurationVar(&o.wait, "wait", 10*time.Second, "how long to wait for each reply")
	fs.StringVar(&o.record, "record", "", "write the session to FILE as a transcript (replay it with 'greenlane replay FILE')")
	fs.BoolVar(&o.literal, "record-literal", false, "record values as they are, without placeholders (for a server in deterministic mode)")
	fs.DurationVar(&o.linger, "linger", 0, "after the last packet, keep printing events this long (0: 500ms with --record)")
	fs.BoolVar(&o.compact, "compact", false, "print each packet on one line, even on a terminal")
	fs.BoolVar(&o.interactive, "interactive", false, "prompt for packets even when standard input is not a terminal")
	var err error
	o.packets, err = parseInterspersed(fs, args)
	if o.record != "" && o.linger == 0 {
		o.linger = 500 * time.Millisecond // events a last request caused belong in the recording
	}
	return o, err
}

// runClient is `greenlane client`.
func runClient(args []string, stdout, stderr io.Writer) error {
	o, err := parseClientFlags(args, stderr)
	if err != nil {
		return err
	}
	base, query, err := splitSocketURL(o.url)
	if err != nil {
		return usagef("--url: %v", err)
	}
	s := &clientSession{base: base, key: readKey(o.key, o.keyFile), keys: o.keyFor, wait: o.wait,
		stderr: stderr, socks: map[string]*clientSocket{}}
	s.out = &printer{w: stdout, pretty: isTTY(stdout) && !o.compact}
	// Packets carry their socket's name once there can be more than one.
	s.out.label.Store(o.socket == "")
	if o.record != "" {
		f, err := os.Create(o.record)
		if err != nil {
			return fmt.Errorf("--record: %w", err)
		}
		defer f.Close()
		s.rec = transcript.NewRecorder(f, transcript.RecordOptions{Literal: o.literal})
	}
	defer s.closeAll()
	if err := s.run(o, query); err != nil {
		return err
	}
	if s.rec != nil {
		return s.rec.Err()
	}
	return nil
}

// run opens the first socket, sends the argument packets or the input's,
// and lingers for late events before closing every socket.
func (s *clientSession) run(o clientOptions, query string) error {
	if o.socket != "" {
		if err := s.openSocket(o.socket, query, o.purpose); err != nil {
			return err
		}
	}
	var err error
	if len(o.packets) > 0 {
		err = s.runArgs(o.packets)
	} else {
		err = s.runInput(clientStdin, o.interactive || isTTY(clientStdin))
	}
	time.Sleep(o.linger)
	s.closeAll() // before the recording's file closes: no packet is recorded after
	return err
}

// keyFlag is the repeatable --key-for NAME=KEY; names are case-insensitive.
type keyFlag map[string]string

func (k keyFlag) String() string {
	names := make([]string, 0, len(k))
	for n := range k {
		names = append(names, n+"=…")
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

func (k keyFlag) Set(s string) error {
	name, key, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(name) == "" || key == "" {
		return errors.New("want NAME=KEY")
	}
	k[strings.ToLower(strings.TrimSpace(name))] = strings.TrimSpace(key)
	return nil
}

// parseInterspersed parses flags that may come before, between or after
// the positional arguments (`replay FILE --url …`), then fills unset flags
// from the environment. It returns the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseOnly(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...) // after "--", everything is positional
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	return pos, parseFlags(fs, nil)
}

// readKey is key, or else the first line of keyFile ("" when unreadable:
// a lane may accept some requests without a login).
func readKey(key, keyFile string) string {
	if key != "" {
		return key
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// splitSocketURL splits a socket URL into the part :open reuses and the
// query of the first socket.
func splitSocketURL(url string) (base, query string, err error) {
	base, err = transcript.SocketURL(url)
	if err != nil {
		return "", "", err
	}
	if _, q, ok := strings.Cut(url, "?"); ok && q != "" {
		query = "?" + q
	}
	return base, query, nil
}

// isTTY reports whether f is a terminal (a character device).
func isTTY(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	st, err := file.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// clientSession is the client's sockets, keys and history.
type clientSession struct {
	base    string
	key     string            // default key
	keys    map[string]string // keys by socket name
	wait    time.Duration
	stderr  io.Writer
	out     *printer
	rec     *transcript.Recorder
	socks   map[string]*clientSocket
	opened  int // sockets opened so far
	cur     string
	next    int // last automatic rq number
	history []string
}

var errQuit = errors.New("quit")

// runArgs sends each argument in turn and stops at the first failure.
func (s *clientSession) runArgs(packets []string) error {
	for _, p := range packets {
		if err := s.do(p); err != nil {
			return err
		}
	}
	return nil
}

// runInput reads lines until the end of input or :quit. In a script a
// failed line is reported and the rest still runs; the exit status says
// how many failed.
func (s *clientSession) runInput(in io.Reader, interactive bool) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	failed, total := 0, 0
	for {
		if interactive {
			s.out.prompt(s.cur + "> ")
		}
		if !sc.Scan() {
			break
		}
		s.out.prompt("")
		ran, err := s.inputLine(strings.TrimSpace(sc.Text()))
		if errors.Is(err, errQuit) {
			break
		}
		if ran {
			total++
		}
		if err != nil {
			failed++
			fmt.Fprintln(s.stderr, "greenlane client:", err)
		}
	}
	if interactive {
		s.out.prompt("")
		fmt.Fprintln(s.out.w)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read standard input: %w", err)
	}
	if failed > 0 && !interactive {
		return fmt.Errorf("%d of %d lines failed", failed, total)
	}
	return nil
}

// inputLine runs one typed line; ran is false for blank lines and
// comments (a comment goes into the recording).
func (s *clientSession) inputLine(line string) (ran bool, err error) {
	if line == "" {
		return false, nil
	}
	if text, ok := strings.CutPrefix(line, "#"); ok {
		if s.rec != nil {
			_ = s.rec.Comment(strings.TrimSpace(text))
		}
		return false, nil
	}
	expanded, err := s.expandHistory(line)
	if err != nil {
		return true, err
	}
	if expanded != line {
		s.out.note(expanded) // show what !N stood for
	}
	s.history = append(s.history, expanded)
	return true, s.do(expanded)
}

// expandHistory turns "!!" and "!N" into the line they name.
func (s *clientSession) expandHistory(line string) (string, error) {
	if !strings.HasPrefix(line, "!") {
		return line, nil
	}
	if line == "!!" {
		if len(s.history) == 0 {
			return "", errors.New("!!: no history yet")
		}
		return s.history[len(s.history)-1], nil
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 1 || n > len(s.history) {
		return "", fmt.Errorf("%s: no such line in the history (:history lists %d)", line, len(s.history))
	}
	return s.history[n-1], nil
}

// do runs one line: a :command, an @NAME packet, or a packet.
func (s *clientSession) do(line string) error {
	if strings.HasPrefix(line, ":") {
		return s.command(strings.Fields(line))
	}
	sock := s.socks[s.cur]
	if rest, ok := strings.CutPrefix(line, "@"); ok {
		name, packet, _ := strings.Cut(rest, " ")
		if sock = s.socks[name]; sock == nil {
			return fmt.Errorf("@%s: no such socket (open it with :open %s)", name, name)
		}
		line = strings.TrimSpace(packet)
	}
	if sock == nil {
		return errors.New("no socket is open (:open NAME)")
	}
	return s.send(sock, line)
}

func (s *clientSession) command(f []string) error {
	arg := func(i int) string {
		if i < len(f) {
			return f[i]
		}
		return ""
	}
	switch f[0] {
	case ":help", ":h", ":?":
		s.out.note(clientHelp)
	case ":quit", ":q", ":exit":
		return errQuit
	case ":open":
		return s.commandOpen(f[1:])
	case ":use":
		if s.socks[arg(1)] == nil {
			return fmt.Errorf(":use %s: no such socket (%s)", arg(1), s.socketNames())
		}
		s.cur = arg(1)
	case ":close":
		return s.closeSocket(arg(1))
	case ":sockets":
		s.out.note(s.socketNames())
	case ":wait":
		d := time.Second
		if arg(1) != "" {
			var err error
			if d, err = time.ParseDuration(arg(1)); err != nil {
				return fmt.Errorf(":wait: %w", err)
			}
		}
		time.Sleep(d)
	case ":history":
		for i, h := range s.history {
			s.out.note(fmt.Sprintf("%4d  %s", i+1, h))
		}
	default:
		return fmt.Errorf("%s: unknown command (:help lists them)", f[0])
	}
	return nil
}

// commandOpen is ":open NAME [?QUERY] [PURPOSE]".
func (s *clientSession) commandOpen(args []string) error {
	if len(args) == 0 || len(args) > 3 {
		return errors.New("usage: :open NAME [?QUERY] [PURPOSE]")
	}
	query, purpose := "", ""
	for _, a := range args[1:] {
		if strings.HasPrefix(a, "?") {
			query = a
		} else {
			purpose = a
		}
	}
	return s.openSocket(args[0], query, purpose)
}

func (s *clientSession) socketNames() string {
	names := make([]string, 0, len(s.socks))
	for n := range s.socks {
		if n == s.cur {
			n += " (current)"
		}
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "no socket is open"
	}
	return "open sockets: " + strings.Join(names, ", ")
}

// openSocket dials a socket, logs it in when there is a key, and makes it
// the current one.
func (s *clientSession) openSocket(name, query, purpose string) error {
	if s.socks[name] != nil {
		return fmt.Errorf("socket %s is already open", name)
	}
	dialer := websocket.Dialer{HandshakeTimeout: s.wait}
	ws, resp, err := dialer.Dial(s.base+query, nil)
	if err != nil {
		return transcript.DialError(s.base+query, resp, err)
	}
	sock := &clientSocket{name: name, ws: ws, s: s, waiters: map[string]chan transcript.Value{}, done: make(chan struct{})}
	s.socks[name] = sock
	if s.opened++; s.opened > 1 {
		s.out.label.Store(true)
	}
	go sock.readLoop()
	var login *transcript.Login
	if key := s.keyFor(name); key != "" {
		if err := sock.login(key, purpose); err != nil {
			_ = s.closeSocket(name)
			return err
		}
		login = &transcript.Login{Purpose: purpose}
	}
	if s.rec != nil {
		_ = s.rec.Open(name, query, login)
	}
	s.cur = name
	return nil
}

func (s *clientSession) keyFor(name string) string {
	if k := s.keys[strings.ToLower(name)]; k != "" {
		return k
	}
	return s.key
}

func (s *clientSession) closeSocket(name string) error {
	if name == "" {
		name = s.cur
	}
	sock := s.socks[name]
	if sock == nil {
		return fmt.Errorf(":close %s: no such socket", name)
	}
	sock.close()
	delete(s.socks, name)
	if s.rec != nil {
		_ = s.rec.Close(name)
	}
	if s.cur == name {
		s.cur = ""
		for n := range s.socks {
			s.cur = n
			break
		}
	}
	return nil
}

// closeAll closes every socket without recording it: a replay closes
// whatever is left at the end anyway.
func (s *clientSession) closeAll() {
	for name, sock := range s.socks {
		sock.close()
		delete(s.socks, name)
	}
}

// send turns a line into a packet, sends it and waits for its reply.
func (s *clientSession) send(sock *clientSocket, text string) error {
	pkt, err := s.packet(text)
	if err != nil {
		return err
	}
	a, _ := pkt.Get("a")
	rq, _ := pkt.Get("rq")
	noReply := a.Str == "fd1.session.ignore" || a.Str == "session.ignore"
	return sock.roundTrip(pkt.String(), rq.String(), !noReply, a.Str)
}

// packet parses JSON, "endpoint" or "endpoint {json}", and adds an rq
// (after "a", so the packet still reads well) when there is none. Keys
// stay in the order typed: a qo template's order is the reply's order.
func (s *clientSession) packet(text string) (transcript.Value, error) {
	endpoint := ""
	if !strings.HasPrefix(text, "{") {
		endpoint, text, _ = strings.Cut(text, " ")
		if text = strings.TrimSpace(text); text == "" {
			text = "{}"
		}
	}
	pkt, err := transcript.Parse([]byte(text))
	if err != nil || pkt.Kind != transcript.Object {
		if err == nil {
			err = errors.New("not an object")
		}
		return pkt, fmt.Errorf("not a JSON packet: %v", err)
	}
	if endpoint != "" {
		with := transcript.Value{Kind: transcript.Object}
		with.Set("a", transcript.Str(endpoint))
		for i, k := range pkt.Keys {
			with.Set(k, pkt.Vals[i])
		}
		pkt = with
	}
	if _, ok := pkt.Get("rq"); ok {
		return pkt, nil
	}
	s.next++
	with := transcript.Value{Kind: transcript.Object}
	added := false
	add := func() {
		with.Set("rq", transcript.Str("c"+strconv.Itoa(s.next)))
		added = true
	}
	if len(pkt.Keys) == 0 || pkt.Keys[0] != "a" {
		add()
	}
	for i, k := range pkt.Keys {
		with.Set(k, pkt.Vals[i])
		if k == "a" && !added {
			add()
		}
	}
	return with, nil
}

// clientSocket is one open socket.
type clientSocket struct {
	name    string
	ws      *websocket.Conn
	s       *clientSession
	wmu     sync.Mutex // one writer at a time
	mu      sync.Mutex
	waiters map[string]chan transcript.Value // rp (compact JSON) → gets its reply
	// loginRP is the rp of the login reply the open is waiting for: that
	// reply is not recorded (the open line stands for it).
	loginRP string
	done    chan struct{}
	closing atomic.Bool
}

// readLoop prints and records every packet and wakes whoever waits for a
// reply.
func (c *clientSocket) readLoop() {
	defer close(c.done)
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			if !c.closing.Load() {
				c.s.out.note(fmt.Sprintf("socket %s closed: %v", c.name, err))
			}
			return
		}
		pkt, perr := transcript.Parse(msg)
		_, isReply := pkt.Get("r")
		rp, _ := pkt.Get("rp")
		c.s.out.packet(c.name, msg, pkt, perr == nil && !isReply)
		c.mu.Lock()
		key := rp.String()
		skip := isReply && key == c.loginRP
		if skip {
			c.loginRP = ""
		}
		ch := c.waiters[key]
		if isReply && ch != nil {
			delete(c.waiters, key)
		}
		c.mu.Unlock()
		if c.s.rec != nil && !skip {
			_ = c.s.rec.Receive(c.name, msg)
		}
		if isReply && ch != nil {
			ch <- pkt // buffered: never blocks
		}
	}
}

func (c *clientSocket) login(key, purpose string) error {
	v := transcript.Value{Kind: transcript.Object}
	v.Set("apikey", transcript.Str(key))
	if purpose != "" {
		v.Set("purpose", transcript.Str(purpose))
	}
	pkt := transcript.Value{Kind: transcript.Object}
	pkt.Set("a", transcript.Str("fd1.session.login"))
	pkt.Set("rq", transcript.Str(transcript.LoginRQ))
	pkt.Set("v", v)
	rq := transcript.Str(transcript.LoginRQ).String()
	c.mu.Lock()
	c.loginRP = rq
	c.mu.Unlock()
	reply, err := c.exchange(pkt.String(), rq, true)
	if err != nil {
		return err
	}
	if e, ok := reply.Get("error"); ok {
		return fmt.Errorf("login on socket %s failed: %s", c.name, e)
	}
	return nil
}

// roundTrip records and sends a packet and waits for its reply.
func (c *clientSocket) roundTrip(packet, rq string, wantReply bool, endpoint string) error {
	if c.s.rec != nil {
		_ = c.s.rec.Send(c.name, []byte(packet))
	}
	_, err := c.exchange(packet, rq, wantReply)
	if err != nil && endpoint != "" {
		return fmt.Errorf("%s: %w", endpoint, err)
	}
	return err
}

// exchange writes a packet and waits up to the session's wait for the
// reply whose rp is rq; it returns that reply.
func (c *clientSocket) exchange(packet, rq string, wantReply bool) (transcript.Value, error) {
	ch := make(chan transcript.Value, 1)
	var got transcript.Value
	if wantReply {
		c.mu.Lock()
		c.waiters[rq] = ch
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			delete(c.waiters, rq)
			c.mu.Unlock()
		}()
	}
	c.wmu.Lock()
	err := c.ws.WriteMessage(websocket.TextMessage, []byte(packet))
	c.wmu.Unlock()
	if err != nil {
		return got, fmt.Errorf("send on socket %s: %w", c.name, err)
	}
	if !wantReply {
		return got, nil
	}
	select {
	case got = <-ch:
		return got, nil
	case <-c.done:
		return got, fmt.Errorf("the lane closed socket %s", c.name)
	case <-time.After(c.s.wait):
		return got, fmt.Errorf("no reply to rq %s within %s", rq, c.s.wait)
	}
}

func (c *clientSocket) close() {
	c.closing.Store(true)
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = c.ws.Close()
	<-c.done // nothing is printed or recorded after a close
}

// printer writes packets for people (indented, with a heading) or for
// programs (one per line, as the lane sent it).
type printer struct {
	mu     sync.Mutex
	w      io.Writer
	pretty bool
	label  atomic.Bool // packets are labelled with their socket
	shown  string      // the prompt on screen, "" when none
}

func (p *printer) prompt(text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.shown = text
	if text != "" {
		fmt.Fprint(p.w, text)
	}
}

// note prints a line for people, keeping a shown prompt below it.
func (p *printer) note(text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.interrupt()
	fmt.Fprintln(p.w, text)
	p.restore()
}

func (p *printer) interrupt() {
	if p.shown != "" {
		fmt.Fprintln(p.w)
	}
}

func (p *printer) restore() {
	if p.shown != "" {
		fmt.Fprint(p.w, p.shown)
	}
}

func (p *printer) packet(sock string, raw []byte, pkt transcript.Value, event bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.interrupt()
	multi := p.label.Load()
	if !p.pretty {
		if multi {
			fmt.Fprintf(p.w, "@%s ", sock)
		}
		fmt.Fprintln(p.w, strings.TrimSpace(string(raw)))
		p.restore()
		return
	}
	fmt.Fprintln(p.w, heading(sock, pkt, event, multi))
	if pkt.Kind == transcript.Object {
		fmt.Fprintln(p.w, pkt.Indent("", "  "))
	} else {
		fmt.Fprintln(p.w, strings.TrimSpace(string(raw)))
	}
	p.restore()
}

// heading is the line above a pretty packet: what it is, at a glance.
func heading(sock string, pkt transcript.Value, event, multi bool) string {
	var b strings.Builder
	if multi {
		fmt.Fprintf(&b, "[%s] ", sock)
	}
	rp, _ := pkt.Get("rp")
	sc, _ := pkt.Get("sc")
	switch r, _ := pkt.Get("r"); {
	case event:
		fmt.Fprintf(&b, "── event %s on %s", sc.Str, rp)
	default:
		fmt.Fprintf(&b, "── reply %s to %s", r.Str, rp)
		if e, ok := pkt.Get("error"); ok {
			code, _ := e.Get("code")
			fmt.Fprintf(&b, ": ERROR %s", code.Str)
		}
	}
	return b.String()
}
