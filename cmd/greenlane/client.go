package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/chzyer/readline"

	"github.com/greenlane-pos/greenlane/fd1client"
	"github.com/greenlane-pos/greenlane/transcript"
)

const clientSynopsis = `client [flags] [PACKET…]

Sends FD1 packets to a lane and prints every packet that comes back: replies,
and firehose events as they arrive. A PACKET is JSON, an endpoint name
(salesbuilder.sale_create), or an endpoint name and JSON for the rest
(salesbuilder.sale_add_product {"v":{"plu":"FW"}}); an "rq" is added when
missing. With PACKET arguments the client sends them and exits; without, it
reads packets from standard input, one per line — at a terminal with a prompt,
line editing and history (arrow keys; !! repeats the last line, !N line N,
:history lists them). It stops at the first error reply or failed line (at a
terminal it carries on), and exits with status 1 if there was any; --keep-going
runs everything first. It logs in with --key, else with the key in --key-file.
With --linger it reconnects when the lane restarts and reopens its firehoses
from the last event seen.
Commands (:help lists them) open more sockets, e.g. ":open tablet ?purpose=presell",
and "@tablet PACKET" sends on one. --record FILE writes the session as a
transcript for 'greenlane replay'; FILE is written only when the session ran
to its end and sent a packet (a failed connection, Ctrl-C or SIGTERM leaves
it as it was, with nothing beside it), and an existing FILE is replaced only
with --force.`

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

// clientTerminal is the line editor's setup when a person types at a
// terminal, nil otherwise (a variable so tests can be that person).
var clientTerminal = func(stdout io.Writer) *readline.Config {
	if isTTY(clientStdin) && isTTY(stdout) {
		return &readline.Config{}
	}
	return nil
}

// clientOptions are the client's flags and arguments.
type clientOptions struct {
	url, key, keyFile, purpose, socket, record string
	// ca is --ca: a PEM CA file trusted besides the system's roots.
	// Default "": the system's roots only.
	ca                                   string
	keyFor                               keyFlag
	wait, linger                         time.Duration
	literal, compact, interactive, force bool
	keepGoing, noLogin                   bool
	packets                              []string
}

func parseClientFlags(args []string, stderr io.Writer) (clientOptions, error) {
	o := clientOptions{keyFor: keyFlag{}}
	fs := newFlags("client", clientSynopsis, stderr)
	fs.StringVar(&o.url, "url", "ws://127.0.0.1:3490/fd1/open_websocket", "lane socket URL (add ?purpose=presell for a presell socket)")
	fs.StringVar(&o.ca, "ca", "", "PEM CA file to trust for a wss:// lane besides the system's, e.g. greenlane-lane.db.ca.pem (what tls init wrote next to the lane DB)")
	fs.StringVar(&o.key, "key", "", "API key to log in with (default: the contents of --key-file)")
	fs.StringVar(&o.keyFile, "key-file", defaultDB+".apikey", "file holding the API key, used when --key is not given")
	fs.Var(o.keyFor, "key-for", "NAME=KEY: the key of socket NAME (repeatable); other sockets use --key")
	fs.StringVar(&o.purpose, "purpose", "", "login purpose of the first socket: customerdisplay or debugscope")
	fs.StringVar(&o.socket, "socket", transcript.DefaultSocket, "name of the first socket (prompt, @NAME, transcripts); empty: open none (a script's :open lines do)")
	fs.DurationVar(&o.wait, "wait", 10*time.Second, "how long to wait for each reply")
	fs.StringVar(&o.record, "record", "", "write the session to FILE as a transcript (replay it with 'greenlane replay FILE')")
	fs.BoolVar(&o.force, "force", false, "replace --record FILE if it exists")
	fs.BoolVar(&o.literal, "record-literal", false, "record values as they are, without placeholders (for a server in deterministic mode)")
	fs.DurationVar(&o.linger, "linger", 0, "after the last packet, keep printing events this long (0: 500ms with --record)")
	fs.BoolVar(&o.compact, "compact", false, "print each packet on one line, even on a terminal")
	fs.BoolVar(&o.interactive, "interactive", false, "prompt for packets even when standard input is not a terminal")
	fs.BoolVar(&o.keepGoing, "keep-going", false, "after an error reply or a failed line, go on with the rest (the exit status is still 1)")
	fs.BoolVar(&o.noLogin, "no-login", false, "open sockets without logging in (to see what a lane tells a device that has not)")
	var err error
	o.packets, err = parseInterspersed(fs, args)
	if err == nil && o.wait < minClientWait {
		// A wait of 0 or less would time every reply out at once and
		// blame the lane ("no reply within -1s") after a good login.
		return o, usagef("--wait %s (or GREENLANE_WAIT): give at least %s", o.wait, minClientWait)
	}
	if err == nil {
		err = checkArgPackets(o.packets)
	}
	if o.record != "" && o.linger == 0 {
		o.linger = 500 * time.Millisecond // events a last request caused belong in the recording
	}
	return o, err
}

// minClientWait is the shortest --wait the client takes: less is shorter
// than a lane on this machine takes to answer a login.
const minClientWait = 100 * time.Millisecond

// checkArgPackets refuses a PACKET argument that is not a packet, before
// the client dials: a typo is a usage error, not a reply after connecting.
// Commands (:open …) are left for the session to judge. It reads each
// argument as the session's do does.
func checkArgPackets(packets []string) error {
	var parser clientSession // packet() only numbers rq on it
	for _, p := range packets {
		line := p
		if strings.HasPrefix(line, ":") {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "@"); ok {
			_, line, _ = strings.Cut(rest, " ")
			line = strings.TrimSpace(line)
		}
		if _, err := parser.packet(line); err != nil {
			return usagef("packet %s: %v", clipArg(p), err)
		}
	}
	return nil
}

// caConfig is the TLS setup for --ca FILE: the system's roots and the
// lane's own CA, so that a lane with a certificate from tls init is
// trusted without installing its CA on this machine. "" gives nil, the
// system's roots alone.
func caConfig(path string) (*tls.Config, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("--ca: %v", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool() // no system roots here: the lane's CA alone
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, usagef("--ca %s: no PEM certificate in it (give the CA file tls init wrote, <db>.ca.pem)", path)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// clipArg shortens an argument quoted back in a message.
func clipArg(s string) string {
	if r := []rune(s); len(r) > 60 {
		return strconv.Quote(string(r[:60]) + "…")
	}
	return strconv.Quote(s)
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
	tlsConf, err := caConfig(o.ca)
	if err != nil {
		return err
	}
	key, err := clientKey(o, stderr)
	if err != nil {
		return err
	}
	s := &clientSession{base: base, key: key, keys: o.keyFor, wait: o.wait, tls: tlsConf, keepGoing: o.keepGoing, noLogin: o.noLogin,
		reconnect: o.linger > 0, stderr: stderr, socks: map[string]*clientSocket{}}
	s.out = &printer{w: stdout, pretty: isTTY(stdout) && !o.compact}
	if len(o.packets) == 0 {
		s.term = clientTerminal(stdout)
	}
	// Packets carry their socket's name once there can be more than one.
	s.out.label.Store(o.socket == "")
	var rec *recording
	if o.record != "" {
		// Before dialling: a refusal must come before a person types a
		// session that could not be kept.
		if rec, err = startRecording(o.record, o.force, o.literal); err != nil {
			return err
		}
		defer rec.discard()
		defer rec.discardOnSignal(stderr)()
		s.rec = rec.rec
	}
	defer s.closeAll()
	err = s.run(o, query)
	if rec == nil {
		return err
	}
	s.closeAll() // no packet is recorded after the file is closed
	var all ranAll
	if err != nil && !errors.As(err, &all) {
		return fmt.Errorf("%w (nothing recorded: %s)", err, rec.unchanged())
	}
	if ferr := rec.finish(); ferr != nil {
		return errors.Join(err, ferr)
	}
	return err
}

// ranAll is the error of a session that ran every packet or line although
// some failed (--keep-going): its recording is whole, error replies and all.
type ranAll struct{ error }

func (e ranAll) Unwrap() error { return e.error }

// recording is --record FILE. The transcript is written to a temporary
// file beside FILE, renamed onto FILE only when the session ran to its
// end: a session that could not connect, or stopped half way, must not
// leave an empty or cut-short FILE, which would replay as nothing or as a
// part (and an emptied transcript in a test suite would pass it).
type recording struct {
	path  string
	force bool
	rec   *transcript.Recorder
	// mu guards tmp: a signal's discard may come while finish puts the
	// file in place.
	mu  sync.Mutex
	tmp *os.File // nil once put in place or removed
}

func startRecording(path string, force, literal bool) (*recording, error) {
	st, err := os.Stat(path)
	switch {
	case err == nil && st.IsDir():
		return nil, fmt.Errorf("--record %s is a folder: name a file", path)
	case err == nil && !force:
		return nil, fmt.Errorf("--record %s exists; give --force to replace it", path)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("--record: %w", err)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// Not *.jsonl: a leftover (the client killed) is not taken for a
	// transcript by a replay of *.jsonl.
	tmp, err := os.CreateTemp(dir, base+".*.recording")
	if err != nil {
		return nil, fmt.Errorf("--record: %w", err)
	}
	return &recording{path: path, force: force, tmp: tmp,
		rec: transcript.NewRecorder(tmp, transcript.RecordOptions{Literal: literal})}, nil
}

// unchanged says what became of FILE when nothing was recorded.
func (r *recording) unchanged() string {
	if _, err := os.Stat(r.path); err == nil {
		return r.path + " is as it was"
	}
	return r.path + " was not written"
}

// finish puts the recording in place of FILE, unless it holds no packet
// sent (a replay would fail it: nothing to replay).
func (r *recording) finish() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tmp == nil {
		return fmt.Errorf("--record: stopped by a signal (%s)", r.unchanged())
	}
	if err := r.rec.Err(); err != nil {
		return fmt.Errorf("--record: %w (%s)", err, r.unchanged())
	}
	if r.rec.Sent() == 0 {
		return fmt.Errorf("--record: no packet was sent, nothing to replay (%s)", r.unchanged())
	}
	if err := r.tmp.Chmod(0o644); err != nil { // CreateTemp makes it 0600; a transcript holds no key
		return fmt.Errorf("--record: %w", err)
	}
	if err := r.tmp.Close(); err != nil {
		return fmt.Errorf("--record: write %s: %w (%s)", r.tmp.Name(), err, r.unchanged())
	}
	if _, err := os.Stat(r.path); err == nil && !r.force {
		// Made while the session ran: keep both, say where this one is.
		name := r.tmp.Name()
		r.tmp = nil
		return fmt.Errorf("--record: %s appeared during the session; the recording is in %s", r.path, name)
	}
	if err := os.Rename(r.tmp.Name(), r.path); err != nil {
		return fmt.Errorf("--record: %w", err)
	}
	r.tmp = nil
	return nil
}

// discard removes the temporary file of a recording not put in place,
// and reports whether there was one.
func (r *recording) discard() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tmp == nil {
		return false
	}
	_ = r.tmp.Close()
	_ = os.Remove(r.tmp.Name())
	r.tmp = nil
	return true
}

// discardOnSignal makes SIGINT and SIGTERM remove the file being
// recorded before the client dies of them: a session stopped half way
// is not recorded (a recording already put in place stays, whole). The
// client then dies of that same signal, so the exit status says what
// stopped it, as without --record. The returned func stops watching.
func (r *recording) discardOnSignal(stderr io.Writer) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			if r.discard() {
				fmt.Fprintf(stderr, "greenlane: %s: the session was cut short, nothing recorded (%s)\n", signalNames[sig], r.unchanged())
			}
			signal.Reset(sig)
			if p, err := os.FindProcess(os.Getpid()); err == nil && p.Signal(sig) == nil {
				time.Sleep(time.Minute) // the signal ends the process
			}
			os.Exit(1) // a system where a process cannot signal itself
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
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
// any number of positional arguments (`replay FILE --url …`), then fills
// unset flags from the environment (parseArgs). It returns the positional
// arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	if err := parseArgs(fs, args, -1); err != nil {
		return nil, err
	}
	return fs.Args(), nil
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
	tls     *tls.Config // --ca; nil: the system's roots
	stderr  io.Writer
	out     *printer
	rec     *transcript.Recorder
	socks   map[string]*clientSocket
	opened  int // sockets opened so far
	cur     string
	next    int // last automatic rq number
	history []string
	// keepGoing runs every packet or line even after one failed.
	keepGoing bool
	// noLogin opens sockets without logging in.
	noLogin bool
	// reconnect: a socket the lane closes is dialled again (--linger).
	reconnect bool
	// term, when set, reads lines with readline (a terminal); src is
	// where lines come from.
	term *readline.Config
	src  lineSource
}

var errQuit = errors.New("quit")

// runArgs sends each argument in turn and stops at the first failure
// (an error reply counts), unless keepGoing.
func (s *clientSession) runArgs(packets []string) error {
	failed := 0
	for _, p := range packets {
		if err := s.do(p); err != nil {
			if !s.keepGoing {
				return err
			}
			failed++
			fmt.Fprintln(s.stderr, "greenlane client:", err)
		}
	}
	if failed > 0 {
		return ranAll{fmt.Errorf("%d of %d packets failed", failed, len(packets))}
	}
	return nil
}

// clientKey is the key sockets log in with: --key, else the contents of
// --key-file (and stderr says which file). With neither, and no --key-for
// or --no-login, the client stops before it sends anything a lane would
// only refuse, and says how to get a key.
func clientKey(o clientOptions, stderr io.Writer) (string, error) {
	if o.key != "" || o.noLogin {
		return o.key, nil
	}
	b, err := os.ReadFile(o.keyFile)
	if err == nil {
		if key := strings.TrimSpace(string(b)); key != "" {
			fmt.Fprintf(stderr, "greenlane client: logging in with the API key in %s\n", o.keyFile)
			return key, nil
		}
		err = errors.New("the file is empty")
	}
	reason := err.Error()
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		reason = pe.Err.Error()
	}
	if len(o.keyFor) > 0 {
		return "", nil // sockets named in --key-for have keys; openSocket refuses the others
	}
	return "", usagef("no API key to log in with (--key-file %s: %v).\n"+
		"Pass --key KEY, or --key-file FILE. A new lane writes its admin key next to its DB\n"+
		"(%s.apikey by default); 'greenlane apikey create --name NAME --scope SCOPE' makes one\n"+
		"per device. --no-login opens sockets without logging in.", o.keyFile, reason, defaultDB)
}

// runInput reads lines until the end of input or :quit. In a script the
// first failed line (an error reply counts) stops it unless keepGoing; at a
// terminal every line runs, and errors are only shown.
func (s *clientSession) runInput(in io.Reader, interactive bool) error {
	src, err := s.lineSource(in, interactive)
	if err != nil {
		return err
	}
	defer src.close()
	s.src = src
	failed, total := 0, 0
	for {
		line, ok, err := src.next(s.cur + "> ")
		if err != nil {
			return fmt.Errorf("read standard input: %w", err)
		}
		if !ok {
			break
		}
		ran, err := s.inputLine(strings.TrimSpace(line))
		if errors.Is(err, errQuit) {
			break
		}
		if ran {
			total++
		}
		if err != nil {
			failed++
			if !interactive && !s.keepGoing {
				return fmt.Errorf("line %d: %w (the rest was not run; --keep-going runs it)", total, err)
			}
			fmt.Fprintln(s.stderr, "greenlane client:", err)
		}
	}
	if interactive && s.term == nil {
		s.out.note("") // the shell's prompt starts on a line of its own
	}
	if failed > 0 && !interactive {
		return ranAll{fmt.Errorf("%d of %d lines failed", failed, total)}
	}
	return nil
}

// lineSource is where typed lines come from.
type lineSource interface {
	// next returns the next line (ok false at the end of input).
	next(prompt string) (line string, ok bool, err error)
	// remember adds a line that ran to the arrow-key history.
	remember(line string)
	close()
}

// lineSource reads with readline when the session has a terminal, else
// line by line (with a plain prompt when interactive).
func (s *clientSession) lineSource(in io.Reader, interactive bool) (lineSource, error) {
	if s.term == nil {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		return &scanSource{sc: sc, out: s.out, interactive: interactive}, nil
	}
	cfg := s.term
	if cfg.Stdin == nil {
		cfg.Stdin = io.NopCloser(in)
	}
	if cfg.Stdout == nil {
		cfg.Stdout = s.out.w
	}
	// History holds lines as they ran (!! expanded), not as typed.
	cfg.DisableAutoSaveHistory = true
	cfg.InterruptPrompt = "^C"
	rl, err := readline.NewEx(cfg)
	if err != nil {
		return nil, fmt.Errorf("line editing: %w", err)
	}
	// Packets and events print through readline, which redraws the line
	// being typed below them.
	s.out.mu.Lock()
	s.out.w = rl.Stdout()
	s.out.mu.Unlock()
	return &readlineSource{rl: rl}, nil
}

type scanSource struct {
	sc          *bufio.Scanner
	out         *printer
	interactive bool
}

func (r *scanSource) next(prompt string) (string, bool, error) {
	if r.interactive {
		r.out.prompt(prompt)
	}
	ok := r.sc.Scan()
	r.out.prompt("")
	if !ok {
		return "", false, r.sc.Err()
	}
	return r.sc.Text(), true, nil
}

func (r *scanSource) remember(string) {}
func (r *scanSource) close()          {}

type readlineSource struct{ rl *readline.Instance }

func (r *readlineSource) next(prompt string) (string, bool, error) {
	r.rl.SetPrompt(prompt)
	for {
		line, err := r.rl.Readline()
		switch {
		case errors.Is(err, readline.ErrInterrupt):
			continue // ^C drops the line being typed, as in a shell
		case errors.Is(err, io.EOF):
			return "", false, nil
		case err != nil:
			return "", false, err
		}
		return line, true, nil
	}
}

func (r *readlineSource) remember(line string) { _ = r.rl.SaveHistory(line) }
func (r *readlineSource) close()               { _ = r.rl.Close() }

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
	if s.src != nil {
		s.src.remember(expanded)
	}
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
	switch line {
	case "exit", "quit", "help":
		// What a shell takes: say the client's word rather than send it
		// to the lane as an endpoint.
		return fmt.Errorf("%s: the client's commands start with a colon (:%s)", line, line)
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
	key := s.keyFor(name)
	if key == "" && !s.noLogin {
		return fmt.Errorf("socket %s has no API key: give it one with --key-for %s=KEY (or --key for every socket)", name, name)
	}
	ws, err := s.dial(query)
	if err != nil {
		return err
	}
	sock := &clientSocket{name: name, ws: ws, s: s, query: query, purpose: purpose, key: key,
		waiters: map[string]chan transcript.Value{}, done: make(chan struct{}), stop: make(chan struct{}), lastSeq: map[string]transcript.Value{}}
	s.socks[name] = sock
	if s.opened++; s.opened > 1 {
		s.out.label.Store(true)
	}
	go sock.readLoop()
	var login *transcript.Login
	if !s.noLogin {
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

// dial opens a socket with the session's URL and query.
func (s *clientSession) dial(query string) (*fd1client.Conn, error) {
	return fd1client.Dial(context.Background(), s.base+query, fd1client.Options{Timeout: s.wait, TLS: s.tls})
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
	switch strings.TrimPrefix(a.Str, "fd1.") {
	case "firehose.open_firehose":
		sock.openedFirehose(rq.String(), pkt)
	case "firehose.close_firehose":
		k, _ := pkt.Get("k")
		sock.closedFirehose(k.String())
	}
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
	ws      *fd1client.Conn
	s       *clientSession
	wmu     sync.Mutex // one writer at a time
	mu      sync.Mutex
	waiters map[string]chan transcript.Value // rp (compact JSON) → gets its reply
	// loginRP is the rp of the login reply the open is waiting for: that
	// reply is not recorded (the open line stands for it).
	loginRP string
	done    chan struct{}
	stop    chan struct{} // closed by close: a reconnect in progress gives up
	closing atomic.Bool

	// What a reconnect needs: how the socket was opened, the firehoses
	// open on it (in order, by the rq that opened them) and the last seq
	// each delivered. Guarded by mu.
	query, purpose, key string
	firehoses           []firehoseOpen
	lastSeq             map[string]transcript.Value
}

// firehoseOpen is an open_firehose packet sent on a socket.
type firehoseOpen struct {
	rq    string // compact JSON, as rp comes back
	pkt   transcript.Value
	since int64 // v.since of the open last sent for it (0: none)
}

func (c *clientSocket) openedFirehose(rq string, pkt transcript.Value) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closedFirehoseLocked(rq)
	c.firehoses = append(c.firehoses, firehoseOpen{rq: rq, pkt: pkt, since: sinceOf(pkt)})
}

// sinceOf is an open_firehose packet's v.since (0: none).
func sinceOf(pkt transcript.Value) int64 {
	v, _ := pkt.Get("v")
	since, _ := v.Get("since")
	n, _ := seqNum(since)
	return n
}

// firehoseAckLocked reads the reply to a firehose's open (rq) and returns
// the open to send next, if the firehose is not live yet.
func (c *clientSocket) firehoseAckLocked(rq string, reply transcript.Value) (transcript.Value, bool) {
	if sc, _ := reply.Get("sc"); sc.Str != "firehose.status" {
		return transcript.Value{}, false
	}
	var f *firehoseOpen
	for i := range c.firehoses {
		if c.firehoses[i].rq == rq {
			f = &c.firehoses[i]
		}
	}
	if f == nil {
		return transcript.Value{}, false
	}
	data, _ := reply.Get("data")
	head, _ := data.Get("seq")
	if n, ok := seqNum(head); ok && n < f.since {
		// The journal is behind the since we sent: the lane DB was
		// restored (or reset), and its seqs start again below ours. The
		// next reopen must ask from its head, or it would miss what
		// happens up to our old seq.
		c.lastSeq[rq] = head
	}
	status, _ := data.Get("status")
	resume, _ := data.Get("resume")
	n, ok := seqNum(resume)
	if status.Str != "catching_up" || !ok {
		return transcript.Value{}, false
	}
	// What was missed did not fit one burst: the lane sent a first part
	// (after this reply) and the firehose is not live until it is opened
	// again from resume, as often as it takes.
	f.since = n
	return withSince(f.pkt, resume), true
}

// seqNum is a seq sent as a JSON number.
func seqNum(v transcript.Value) (int64, bool) {
	if v.Kind != transcript.Number {
		return 0, false
	}
	n, err := strconv.ParseInt(v.Num, 10, 64)
	return n, err == nil
}

func (c *clientSocket) closedFirehose(rq string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closedFirehoseLocked(rq)
}

func (c *clientSocket) closedFirehoseLocked(rq string) {
	for i, f := range c.firehoses {
		if f.rq == rq {
			c.firehoses = append(c.firehoses[:i], c.firehoses[i+1:]...)
			return
		}
	}
	delete(c.lastSeq, rq)
}

// conn is the socket's current connection (a reconnect replaces it).
func (c *clientSocket) conn() *fd1client.Conn {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws
}

// readLoop prints and records every packet and wakes whoever waits for a
// reply. When the lane closes the socket of a lingering session, it dials
// again and carries on.
func (c *clientSocket) readLoop() {
	defer close(c.done)
	for {
		err := c.readUntilClosed()
		if c.closing.Load() {
			return
		}
		if !c.s.reconnect {
			c.s.out.note(fmt.Sprintf("socket %s closed: %v", c.name, err))
			return
		}
		c.s.out.note(fmt.Sprintf("socket %s closed: %v; reconnecting", c.name, err))
		if !c.reconnect() {
			return
		}
	}
}

func (c *clientSocket) readUntilClosed() error {
	ws := c.conn()
	for {
		msg, err := ws.Recv()
		if err != nil {
			return err
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
		// A chunked reply is several packets with one rp: each is printed,
		// and the request is answered only by the last.
		final := isReply && transcript.FinalReply(pkt)
		ch := c.waiters[key]
		if final && ch != nil {
			delete(c.waiters, key)
		}
		if seq, ok := pkt.Get("seq"); ok && !isReply {
			c.lastSeq[key] = seq // where a reopened firehose resumes
		}
		var reopen transcript.Value
		again := false
		if isReply {
			reopen, again = c.firehoseAckLocked(key, pkt)
		}
		c.mu.Unlock()
		if c.s.rec != nil && !skip {
			_ = c.s.rec.Receive(c.name, msg)
		}
		if final && ch != nil {
			ch <- pkt // buffered: never blocks
		}
		if again {
			c.s.out.note(fmt.Sprintf("socket %s: catching up, reopening %s", c.name, reopen))
			c.wmu.Lock()
			err := ws.Send([]byte(reopen.String()))
			c.wmu.Unlock()
			if err != nil {
				return err
			}
		}
	}
}

// reconnect dials until the lane answers again (waiting 100ms, then twice
// as long each time up to 5s), logs in as before and reopens the socket's
// firehoses from the last event each delivered. It reports false when the
// socket was closed first.
func (c *clientSocket) reconnect() bool {
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		select {
		case <-c.stop:
			return false
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
		ws, err := c.s.dial(c.query)
		if err == nil {
			if err = c.relogin(ws); err != nil {
				ws.Close()
			}
		}
		var refused *loginRefused
		if errors.As(err, &refused) {
			// The lane is up and says no (a revoked key): asking again
			// would only count as failed logins from this address.
			c.s.out.note(fmt.Sprintf("socket %s: the lane refused the key, not reconnecting: %v", c.name, err))
			return false
		}
		if err != nil {
			if attempt == 1 || attempt%10 == 0 {
				c.s.out.note(fmt.Sprintf("socket %s: reconnect attempt %d: %v", c.name, attempt, err))
			}
			continue
		}
		c.wmu.Lock()
		c.ws = ws
		c.wmu.Unlock()
		if c.closing.Load() { // closed while dialling: close() may have missed ws
			ws.Close()
			return false
		}
		c.s.out.note(fmt.Sprintf("socket %s reconnected after %d attempt(s)", c.name, attempt))
		c.reopenFirehoses()
		return true
	}
}

// relogin logs a new connection in with the socket's key, reading the
// reply itself (the read loop is not running yet).
func (c *clientSocket) relogin(ws *fd1client.Conn) error {
	if c.s.noLogin {
		return nil
	}
	if err := ws.Send([]byte(loginPacket(c.key, c.purpose).String())); err != nil {
		return err
	}
	_ = ws.Wait(time.Now().Add(c.s.wait))
	defer ws.Wait(time.Time{})
	want := transcript.Str(transcript.LoginRQ).String()
	for {
		msg, err := ws.Recv()
		if err != nil {
			return err
		}
		pkt, _ := transcript.Parse(msg)
		if rp, _ := pkt.Get("rp"); rp.String() != want {
			continue
		}
		if e, ok := pkt.Get("error"); ok {
			if code, _ := e.Get("code"); code.Str == "rate_limited" || code.Str == "unavailable" {
				return fmt.Errorf("login: %s", e) // the lane is busy: try again later
			}
			return &loginRefused{reply: e.String()}
		}
		return nil
	}
}

// loginRefused is a login the lane answered with an error.
type loginRefused struct{ reply string }

func (e *loginRefused) Error() string { return "login failed: " + e.reply }

// reopenFirehoses sends each firehose's open packet again, with since set
// to the last seq it delivered, so nothing from the outage is missed. The
// acks come back to the read loop with the original rp.
func (c *clientSocket) reopenFirehoses() {
	c.mu.Lock()
	var pkts []transcript.Value
	for i, f := range c.firehoses {
		pkt := f.pkt
		if seq, ok := c.lastSeq[f.rq]; ok {
			pkt = withSince(pkt, seq)
		}
		c.firehoses[i].since = sinceOf(pkt)
		pkts = append(pkts, pkt)
	}
	c.mu.Unlock()
	for _, pkt := range pkts {
		c.s.out.note(fmt.Sprintf("socket %s: reopening %s", c.name, pkt))
		c.wmu.Lock()
		err := c.ws.Send([]byte(pkt.String()))
		c.wmu.Unlock()
		if err != nil {
			return // the read loop sees the socket closed and tries again
		}
	}
}

// withSince is an open_firehose packet with v.since set, the packet
// itself unchanged.
func withSince(pkt transcript.Value, seq transcript.Value) transcript.Value {
	out := transcript.Value{Kind: transcript.Object}
	for i, k := range pkt.Keys {
		out.Set(k, pkt.Vals[i])
	}
	v := transcript.Value{Kind: transcript.Object}
	if old, ok := pkt.Get("v"); ok && old.Kind == transcript.Object {
		for i, k := range old.Keys {
			v.Set(k, old.Vals[i])
		}
	}
	v.Set("since", seq)
	out.Set("v", v)
	return out
}

// loginPacket is the login a socket sends.
func loginPacket(key, purpose string) transcript.Value {
	v := transcript.Value{Kind: transcript.Object}
	v.Set("apikey", transcript.Str(key))
	if purpose != "" {
		v.Set("purpose", transcript.Str(purpose))
	}
	pkt := transcript.Value{Kind: transcript.Object}
	pkt.Set("a", transcript.Str("fd1.session.login"))
	pkt.Set("rq", transcript.Str(transcript.LoginRQ))
	pkt.Set("v", v)
	return pkt
}

func (c *clientSocket) login(key, purpose string) error {
	pkt := loginPacket(key, purpose)
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
	reply, err := c.exchange(packet, rq, wantReply)
	if e, ok := reply.Get("error"); ok && err == nil {
		code, _ := e.Get("code")
		msg, _ := e.Get("message")
		err = fmt.Errorf("the lane answered %s: %s", code.Str, msg.Str)
	}
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
	err := c.ws.Send([]byte(packet))
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
	close(c.stop)
	ws := c.conn()
	_ = ws.Close() // with a normal close frame
	<-c.done       // nothing is printed or recorded after a close
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
		if ch, ok := pkt.Get("ch"); ok {
			fmt.Fprintf(&b, " (chunk %s)", ch)
		}
		if e, ok := pkt.Get("error"); ok {
			code, _ := e.Get("code")
			fmt.Fprintf(&b, ": ERROR %s", code.Str)
		}
	}
	return b.String()
}
