package transcript

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Conn is one FD1 socket as a replay uses it.
type Conn interface {
	Send(packet []byte) error
	Recv() ([]byte, error) // the next packet; an error once the socket is gone
	Close() error
}

// Dialer opens a socket; urlQuery is the open line's url_query ("" or "?…").
type Dialer func(ctx context.Context, urlQuery string) (Conn, error)

// Options configure a replay.
type Options struct {
	Name       string            // the transcript's name in messages (its file name)
	Dial       Dialer            // how to open sockets
	DefaultKey string            // the key of sockets with no key of their own
	Keys       map[string]string // keys by name: a socket's name, or NAME in "$KEY_NAME" (lower case)
	Timeout    time.Duration     // how long to wait for each expected packet (default 5s)
	Log        io.Writer         // when set, one line per step
}

// Result sums up a replay.
type Result struct {
	Steps, Sent, Matched int
	// Ignored are packets that arrived and that no expect line asked for
	// (late events, most often): they do not fail a replay.
	Ignored []Unexpected
}

// Unexpected is a packet nobody expected.
type Unexpected struct {
	Socket string
	Packet Value
}

// Failure is a replay that went wrong at one line: a packet that does not
// match, one that never came, a refused login. Its Error is the readable
// report.
type Failure struct {
	Name       string
	Step       Step
	Section    string     // the last comment before the line: what the transcript was doing
	What       string     // what was awaited, e.g. `the reply to rq "c3" on socket "tablet"`
	Problem    string     // "does not match", "did not come within 5s", …
	Mismatches []Mismatch // for "does not match"
	Got        *Value     // the packet compared
	Sent       *Value     // the packet whose reply this is; for an event, the last one sent
	SentLine   int
	SentSocket string
	Pending    []Value // for a timeout: what did arrive on that socket
}

// LoginRQ is the rq of the login a replay sends when it opens a socket.
const LoginRQ = "login"

type socket struct {
	name  string
	conn  Conn
	in    *inbox
	sends map[string]sentPacket // rq (compact JSON) → the packet, for diffs
}

type sentPacket struct {
	line   int
	socket string
	packet Value
}

// Replay runs a transcript against a server: it opens sockets, sends
// packets and checks every expected packet. It stops at the first
// failure, returned as a *Failure; other errors are a broken transcript
// or a socket that could not be opened.
func Replay(ctx context.Context, steps []Step, opt Options) (Result, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	if !sends(steps) {
		// An emptied or comment-only file checks nothing: passing it
		// would hide a recording that lost its contents.
		return Result{}, fmt.Errorf("%s: nothing to replay: no line sends a packet", opt.Name)
	}
	keys := make(map[string]string, len(opt.Keys))
	for name, key := range opt.Keys {
		keys[strings.ToLower(name)] = key
	}
	opt.Keys = keys
	r := &replayer{opt: opt, vars: Vars{}, socks: map[string]*socket{}}
	if opt.DefaultKey != "" {
		r.vars["KEY"] = Str(opt.DefaultKey)
	}
	for name, key := range opt.Keys {
		r.vars["KEY_"+strings.ToUpper(name)] = Str(key)
	}
	defer r.closeAll()
	for _, st := range steps {
		r.res.Steps++
		if err := r.step(ctx, st); err != nil {
			var f *Failure
			if errors.As(err, &f) {
				f.Section = r.section
			}
			return r.res, err
		}
	}
	r.collectIgnored()
	return r.res, nil
}

type replayer struct {
	opt     Options
	vars    Vars
	socks   map[string]*socket
	res     Result
	section string     // the last comment seen
	last    sentPacket // the last packet sent, on any socket
}

func (r *replayer) logf(format string, args ...any) {
	if r.opt.Log != nil {
		fmt.Fprintf(r.opt.Log, format+"\n", args...)
	}
}

func (r *replayer) step(ctx context.Context, st Step) error {
	switch {
	case st.Open != "":
		return r.open(ctx, st)
	case st.Close != "":
		s, err := r.socket(st, st.Close)
		if err != nil {
			return err
		}
		r.logf("%d: close %s", st.Line, st.Close)
		r.ignoreRest(s)
		delete(r.socks, st.Close)
		return s.conn.Close()
	case st.Send != nil:
		return r.send(st)
	case st.Expect != nil:
		return r.expect(ctx, st)
	}
	r.logf("%d: # %s", st.Line, st.Comment)
	r.section = st.Comment
	return nil
}

func (r *replayer) socket(st Step, name string) (*socket, error) {
	s := r.socks[name]
	if s == nil {
		return nil, fmt.Errorf("%s:%d: socket %q is not open (a line {\"open\":%q} must come first)", r.opt.Name, st.Line, name, name)
	}
	return s, nil
}

func (r *replayer) open(ctx context.Context, st Step) error {
	if r.socks[st.Open] != nil {
		return fmt.Errorf("%s:%d: socket %q is already open", r.opt.Name, st.Line, st.Open)
	}
	conn, err := r.opt.Dial(ctx, st.URLQuery)
	if err != nil {
		return fmt.Errorf("%s:%d: open socket %q: %w", r.opt.Name, st.Line, st.Open, err)
	}
	s := &socket{name: st.Open, conn: conn, in: newInbox(), sends: map[string]sentPacket{}}
	go s.in.fill(conn)
	r.socks[st.Open] = s
	r.logf("%d: open %s%s", st.Line, st.Open, st.URLQuery)
	if st.Login == nil {
		return nil
	}
	return r.login(ctx, st, s)
}

// login logs a new socket in and checks that the server accepted it. Its
// reply is not part of the transcript: it names the key's scopes, which
// depend on the key a replay was given.
func (r *replayer) login(ctx context.Context, st Step, s *socket) error {
	key, err := r.keyFor(st)
	if err != nil {
		return fmt.Errorf("%s:%d: %w", r.opt.Name, st.Line, err)
	}
	v := Value{Kind: Object}
	v.Set("apikey", Str(key))
	if st.Login.Purpose != "" {
		v.Set("purpose", Str(st.Login.Purpose))
	}
	pkt := Value{Kind: Object}
	pkt.Set("a", Str("fd1.session.login"))
	pkt.Set("rq", Str(LoginRQ))
	pkt.Set("v", v)
	if err := s.conn.Send([]byte(pkt.String())); err != nil {
		return fmt.Errorf("%s:%d: log in on socket %q: %w", r.opt.Name, st.Line, s.name, err)
	}
	what := fmt.Sprintf("the login reply on socket %q", s.name)
	got, err := s.in.take(ctx, r.opt.Timeout, replyTo(Str(LoginRQ)))
	if err != nil {
		return r.notCome(st, s, what, err)
	}
	if e, ok := got.Get("error"); ok {
		return &Failure{Name: r.opt.Name, Step: st, What: what, Got: &got,
			Problem: "refused the key: " + show(e) + " (give the socket a key with --key-for " + s.name + "=KEY, or an admin --key)"}
	}
	return nil
}

func (r *replayer) keyFor(st Step) (string, error) {
	ref := st.Login.Key
	if ref != "" && ref != "$KEY" {
		if _, named := keyName(ref); named {
			// A key asked for by name is that key: the default (an
			// admin key, most often) would pass a line meant to be
			// refused, or fail it far from here.
			return r.namedKey(ref)
		}
		return ref, nil
	}
	key := ""
	if ref == "" {
		key = r.opt.Keys[strings.ToLower(st.Open)]
	}
	if key == "" {
		key = r.opt.DefaultKey
	}
	if key == "" {
		return "", fmt.Errorf("no API key for socket %q: give --key (one admin key serves every socket) or --key-for %s=KEY", st.Open, st.Open)
	}
	return key, nil
}

// namedKey is the key "$KEY_NAME" names, given with --key-for NAME=KEY.
func (r *replayer) namedKey(ref string) (string, error) {
	name, _ := keyName(ref)
	if key := r.opt.Keys[name]; key != "" {
		return key, nil
	}
	return "", fmt.Errorf("no key for %s: give --key-for %s=KEY", ref, name)
}

// keyName is NAME, in lower case, of a "$KEY_NAME" reference.
func keyName(ref string) (string, bool) {
	name, ok := strings.CutPrefix(ref, "$KEY_")
	if !ok || name == "" {
		return "", false
	}
	return strings.ToLower(name), true
}

// KeyNames are the names, in lower case, a transcript can take a key for
// (replay --key-for NAME=KEY): the sockets that log in with their own
// name's key, and NAME of every "$KEY_NAME" in a login, a sent packet or a
// pattern. A --key-for name not among them is a typo.
func KeyNames(steps []Step) map[string]bool {
	names := map[string]bool{}
	var walk func(v Value)
	walk = func(v Value) {
		switch v.Kind {
		case String:
			if name, ok := keyName(v.Str); ok {
				names[name] = true
			}
		case Object:
			for _, e := range v.Vals {
				walk(e)
			}
		case Array:
			for _, e := range v.Elem {
				walk(e)
			}
		}
	}
	for _, st := range steps {
		switch {
		case st.Login != nil && st.Login.Key == "":
			names[strings.ToLower(st.Open)] = true
		case st.Login != nil:
			walk(Str(st.Login.Key))
		case st.Send != nil:
			walk(*st.Send)
		case st.Expect != nil:
			walk(*st.Expect)
		}
	}
	return names
}

// sends reports whether a transcript sends any packet.
func sends(steps []Step) bool {
	for _, st := range steps {
		if st.Send != nil {
			return true
		}
	}
	return false
}

// withKeys puts the named keys ("$KEY_NAME", any case) into a packet to
// send; a name with no key stops the replay at its line.
func (r *replayer) withKeys(v Value) (Value, error) {
	switch v.Kind {
	case String:
		if _, ok := keyName(v.Str); ok {
			key, err := r.namedKey(v.Str)
			return Str(key), err
		}
	case Object:
		out := Value{Kind: Object, Keys: v.Keys, Vals: make([]Value, len(v.Vals))}
		for i, e := range v.Vals {
			var err error
			if out.Vals[i], err = r.withKeys(e); err != nil {
				return v, err
			}
		}
		return out, nil
	case Array:
		out := Value{Kind: Array, Elem: make([]Value, len(v.Elem))}
		for i, e := range v.Elem {
			var err error
			if out.Elem[i], err = r.withKeys(e); err != nil {
				return v, err
			}
		}
		return out, nil
	}
	return v, nil
}

func (r *replayer) send(st Step) error {
	s, err := r.socket(st, st.Socket)
	if err != nil {
		return err
	}
	pkt, err := r.withKeys(*st.Send)
	if err == nil {
		pkt, err = Substitute(pkt, r.vars)
	}
	if err != nil {
		return fmt.Errorf("%s:%d: send: %w", r.opt.Name, st.Line, err)
	}
	r.last = sentPacket{line: st.Line, socket: s.name, packet: pkt}
	if rq, ok := pkt.Get("rq"); ok {
		s.sends[rq.String()] = r.last
	}
	r.logf("%d: send on %s: %s", st.Line, s.name, show(pkt))
	if err := s.conn.Send([]byte(pkt.String())); err != nil {
		return &Failure{Name: r.opt.Name, Step: st, What: fmt.Sprintf("sending on socket %q", s.name), Problem: "failed: " + err.Error()}
	}
	r.res.Sent++
	return nil
}

func (r *replayer) expect(ctx context.Context, st Step) error {
	s, err := r.socket(st, st.Socket)
	if err != nil {
		return err
	}
	sel, what := r.selector(*st.Expect, s.name)
	got, err := s.in.take(ctx, r.opt.Timeout, sel)
	if err != nil {
		return r.notCome(st, s, what, err)
	}
	if ms := Match(*st.Expect, got, r.vars); len(ms) > 0 {
		f := &Failure{Name: r.opt.Name, Step: st, What: what, Problem: "does not match", Mismatches: ms, Got: &got}
		// What led to this packet: the request it answers, or for an
		// event the last thing sent (most often what caused it).
		sent := r.last
		if _, reply := got.Get("r"); reply {
			rp, _ := got.Get("rp")
			sent = s.sends[rp.String()]
		}
		if sent.line > 0 {
			f.Sent, f.SentLine, f.SentSocket = &sent.packet, sent.line, sent.socket
		}
		return f
	}
	r.res.Matched++
	r.logf("%d: ok, %s", st.Line, what)
	return nil
}

// selector chooses which received packet an expect line is about. A reply
// (a pattern with "r") is the first reply with the pattern's rp, wherever
// it falls among events; an event is the next event of the same firehose
// (rp) on that socket, so events are checked in order.
func (r *replayer) selector(p Value, sock string) (func(Value) bool, string) {
	rp, hasRP := p.Get("rp")
	if hasRP {
		rp, hasRP = r.literal(rp)
	}
	_, isReply := p.Get("r")
	switch {
	case p.Kind != Object:
		return func(Value) bool { return true }, fmt.Sprintf("the next packet on socket %q", sock)
	case isReply && hasRP:
		// Several replies may share an rp (a chunked reply): each expect
		// line takes the next one, in the order they came.
		what := fmt.Sprintf("the reply to rq %s on socket %q", rp, sock)
		if ch, ok := p.Get("ch"); ok && ch.Kind == Number {
			what = fmt.Sprintf("chunk %s of the reply to rq %s on socket %q", ch, rp, sock)
		}
		return replyTo(rp), what
	case isReply:
		return func(v Value) bool { _, ok := v.Get("r"); return ok }, fmt.Sprintf("the next reply on socket %q", sock)
	case hasRP:
		return func(v Value) bool {
			got, ok := v.Get("rp")
			_, reply := v.Get("r")
			return !reply && ok && Equal(got, rp)
		}, fmt.Sprintf("the next event of firehose %s on socket %q", rp, sock)
	}
	return func(v Value) bool { _, reply := v.Get("r"); return !reply }, fmt.Sprintf("the next event on socket %q", sock)
}

// literal is a pattern value with a variable resolved; false for any
// other placeholder.
func (r *replayer) literal(p Value) (Value, bool) {
	if p.Kind != String || !strings.HasPrefix(p.Str, "$") {
		return p, true
	}
	if strings.HasPrefix(p.Str, "$$") {
		return Str(p.Str[1:]), true
	}
	v, ok := r.vars[p.Str[1:]]
	return v, ok
}

// FinalReply reports whether a reply packet ends its request: a chunked
// reply (SPEC §3.4) is several packets with one rp, "ch" counting up from
// 1, and only the one with "last":true ends it. A reply without "ch" is
// the whole answer.
func FinalReply(v Value) bool {
	if _, chunked := v.Get("ch"); !chunked {
		return true
	}
	last, ok := v.Get("last")
	return ok && last.Kind == Bool && last.Bool
}

func replyTo(rp Value) func(Value) bool {
	return func(v Value) bool {
		got, ok := v.Get("rp")
		_, reply := v.Get("r")
		return reply && ok && Equal(got, rp)
	}
}

func (r *replayer) notCome(st Step, s *socket, what string, err error) error {
	f := &Failure{Name: r.opt.Name, Step: st, What: what, Pending: s.in.snapshot()}
	switch {
	case errors.Is(err, errTimeout):
		f.Problem = fmt.Sprintf("did not come within %s", r.opt.Timeout)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		f.Problem = "was still awaited when the replay was stopped"
	default:
		f.Problem = "never came: the socket ended (" + err.Error() + ")"
	}
	return f
}

func (r *replayer) ignoreRest(s *socket) {
	for _, p := range s.in.snapshot() {
		r.res.Ignored = append(r.res.Ignored, Unexpected{Socket: s.name, Packet: p})
	}
}

func (r *replayer) collectIgnored() {
	for _, s := range r.socks {
		r.ignoreRest(s)
	}
}

func (r *replayer) closeAll() {
	for _, s := range r.socks {
		_ = s.conn.Close()
	}
}

// inbox holds what a socket received and nobody took yet. It grows without
// bound, so a socket whose packets a transcript ignores is still read
// promptly (a server cuts off a client that stops reading).
type inbox struct {
	mu     sync.Mutex
	pkts   []Value
	err    error // why the socket ended
	notify chan struct{}
}

var errTimeout = errors.New("timed out")

func newInbox() *inbox { return &inbox{notify: make(chan struct{}, 1)} }

func (b *inbox) fill(c Conn) {
	for {
		raw, err := c.Recv()
		var v Value
		if err == nil {
			v, err = Parse(raw)
			if err != nil {
				err = fmt.Errorf("the server sent something that is not JSON: %w: %.200s", err, raw)
			}
		}
		b.mu.Lock()
		if err != nil {
			b.err = err
		} else {
			b.pkts = append(b.pkts, v)
		}
		b.mu.Unlock()
		select {
		case b.notify <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// take removes and returns the first packet sel accepts, waiting up to
// timeout for it.
func (b *inbox) take(ctx context.Context, timeout time.Duration, sel func(Value) bool) (Value, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		b.mu.Lock()
		for i, p := range b.pkts {
			if sel(p) {
				b.pkts = append(b.pkts[:i], b.pkts[i+1:]...)
				b.mu.Unlock()
				return p, nil
			}
		}
		err := b.err
		b.mu.Unlock()
		if err != nil {
			return Value{}, err
		}
		select {
		case <-b.notify:
		case <-timer.C:
			return Value{}, errTimeout
		case <-ctx.Done():
			return Value{}, ctx.Err()
		}
	}
}

func (b *inbox) snapshot() []Value {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Value(nil), b.pkts...)
}
