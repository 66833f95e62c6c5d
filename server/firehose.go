package server

import (
	"context"
	"encoding/json"
	"runtime"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/greenlane-pos/greenlane/firehose"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// The firehose families the server publishes itself: memory events,
// never journaled, never replayed.
const (
	FamilyDevice = "device.event"     // a device's readings, from fd1.debug.inject_event
	FamilyTrace  = "debugscope.trace" // a trace of every request, for debugscope sockets
)

// MemoryFamilies describes the server's families to the hub (lane wires
// them with the domain's).
func MemoryFamilies() []firehose.Family {
	return []firehose.Family{
		{Name: FamilyDevice, Names: []string{FamilyDevice}},
		// tufe.trace carries no sc, to save bytes (SPEC §5.5).
		{Name: FamilyTrace, Names: []string{FamilyTrace}, NoSC: true},
	}
}

// A socket is a firehose sink: the hub writes to its send queue.
var _ firehose.Sink = (*socket)(nil)

// SocketID names the socket to the hub.
func (sk *socket) SocketID() uint64 { return sk.id }

// ReplayBudget: a replay may fill half the socket's byte allowance.
func (sk *socket) ReplayBudget() int { return sk.srv.cfg.SendQueueBytes / 2 }

// Crowded: the socket's send queue is over half full. A socket being torn
// down takes nothing more, whatever its queue still holds: the hub must
// not wait for it to drain while its firehoses are being closed.
func (sk *socket) Crowded() bool { return sk.ctx.Err() == nil && sk.out.crowded() }

// AttachHub gives the server its firehose hub and the writer whose figures
// fd1.diag.stats reports (either may be nil in tests), and registers the
// firehose, inject and diagnostics endpoints.
func (s *Server) AttachHub(h *firehose.Hub, w *lanedb.Writer) {
	s.hub, s.writer = h, w
	anyKey := protocol.Access{AnyKey: true, Display: true}
	// open_firehose refuses an option it does not know (StrictV), as
	// set_firehose_option does: ignored, "bogus":1 would open a firehose
	// that follows something other than what the client thinks.
	s.router.Handle(&protocol.Endpoint{Name: "fd1.firehose.open_firehose", Access: anyKey, NoReply: true, Handler: s.openFirehose, Filters: true, StrictV: true})
	s.router.Handle(&protocol.Endpoint{Name: "fd1.firehose.close_firehose", Access: anyKey, Handler: s.closeFirehose})
	s.router.Handle(&protocol.Endpoint{Name: "fd1.firehose.set_firehose_option", Access: anyKey, Handler: s.setFirehoseOption, Filters: true})
	s.router.Handle(&protocol.Endpoint{Name: "fd1.debug.inject_event",
		Access: protocol.Access{Scopes: []protocol.Scope{protocol.ScopeDebug}}, Handler: s.injectEvent})
	s.router.Handle(&protocol.Endpoint{Name: "fd1.diag.stats",
		Access: protocol.Access{Scopes: []protocol.Scope{protocol.ScopeDebug}, Purpose: protocol.PurposeDebugScope}, Handler: s.diagStats})
}

// firehoseOptions are the members of v set_firehose_option changes.
var firehoseOptions = []string{"tablet", "k"}

// firehoseArgs are open_firehose's and set_firehose_option's v.
type firehoseArgs struct {
	Event  string `json:"event" validate:"max=100"`
	Since  int64  `json:"since" validate:"gte=0"`
	Tablet string `json:"tablet" validate:"max=100"`
	Sale   string `json:"k" validate:"max=64"`
}

// socketOf is the socket a firehose request came on; firehoses need one.
func socketOf(call *protocol.Call) (*socket, error) {
	sk, ok := sessionOf(call).(*socket)
	if !ok {
		return nil, protocol.Errorf(protocol.CodeUnsupported, "firehoses need a WebSocket; HTTP mode cannot stream")
	}
	return sk, nil
}

// openFirehose starts a firehose named by the request's rq. Its reply
// (sc firehose.status) is sent by the hub, ahead of any replayed event.
func (s *Server) openFirehose(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	sk, err := socketOf(call)
	if err != nil {
		return nil, err
	}
	req, c := call.Req, call.Caller
	if req.RQString() == "" {
		// "" too: close_firehose could never name it (an empty k names nothing).
		return nil, protocol.Errorf(protocol.CodeBadArgument, "rq is required, and not empty: it names the firehose in every event (rp) and in close_firehose (k)")
	}
	args, err := protocol.ArgsOf[firehoseArgs](call)
	if err != nil {
		return nil, err
	}
	family, err := s.firehoseFamily(c, args.Event)
	if err != nil {
		return nil, err
	}
	conds, err := protocol.ParseEventFilter(req.Q)
	if err != nil {
		return nil, err
	}
	sub := &firehose.Subscription{Sink: sk, ID: req.RQString(), RP: req.RQ, Family: family, Conds: conds,
		Tablet: args.Tablet, Physkey: args.Sale, Key: c.KeyID, KeyName: c.KeyName}
	if k := req.Key(); k != "" {
		sub.Physkey = k
	}
	if !c.SeesLane() {
		own := *c
		sub.OwnOnly = &own
	}
	// An open still waiting for its replay's turn or the hub's when its
	// socket stops reading gives up: the socket, and its place among its
	// key's sockets, are not held for a replay nobody will read (a client
	// that died with dozens of opens pipelined kept its key's sockets
	// counted for seconds).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(sk.reading, cancel)()
	ack := func(st firehose.ReplayState) []byte {
		reply := protocol.ReplyTo(req)
		reply.SC = "firehose.status"
		data := map[string]any{"status": "open", "event": family, "seq": st.Head}
		if args.Since > 0 {
			data["replayed"] = st.Replayed
			data["replay_truncated"] = st.Truncated
		}
		if st.More {
			// Too much to replay at once: this reply carries a first part;
			// open again with since = resume for the next.
			data["status"], data["resume"] = "catching_up", st.Resume
		}
		reply.Data = data
		b, _ := reply.Marshal()
		return b
	}
	return nil, s.hub.Subscribe(ctx, sub, args.Since, ack)
}

// firehoseFamily decides which family a socket follows. A customer display
// follows the family marked Display whatever it names (DESIGN §4); other
// families may ask for a scope.
func (s *Server) firehoseFamily(c *protocol.Caller, event string) (string, error) {
	if c.Purpose == protocol.PurposeCustomerDisplay {
		for _, f := range s.hub.Families() {
			if f.Display {
				return f.Name, nil
			}
		}
	}
	family, err := s.hub.Lookup(event)
	if err != nil {
		return "", err
	}
	if family.Name == FamilyTrace && c.Purpose != protocol.PurposeDebugScope {
		return "", protocol.Errorf(protocol.CodeForbidden, "%s is for sockets logged in with purpose debugscope", FamilyTrace)
	}
	if len(family.Scopes) > 0 && !slices.ContainsFunc(family.Scopes, c.Has) {
		names := make([]string, len(family.Scopes))
		for i, sc := range family.Scopes {
			names[i] = string(sc)
		}
		return "", protocol.Errorf(protocol.CodeForbidden, "%s events need a key with scope %s", family.Name, strings.Join(names, " or "))
	}
	return family.Name, nil
}

func (s *Server) closeFirehose(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	sk, err := socketOf(call)
	if err != nil {
		return nil, err
	}
	id := call.Req.Key()
	if id == "" {
		return nil, protocol.Errorf(protocol.CodeBadArgument, "k: give the rq that opened the firehose")
	}
	n, err := s.hub.Unsubscribe(ctx, sk.id, id)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, protocol.Errorf(protocol.CodeNotFound, "no firehose opened by rq %q is open on this socket", id)
	}
	return &protocol.Result{SC: "firehose.status", K: call.Req.K, Data: map[string]any{"status": "closed"}}, nil
}

// setFirehoseOption changes what an open firehose follows: v.tablet, v.k
// (one sale), and q (replaced when given).
func (s *Server) setFirehoseOption(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	sk, err := socketOf(call)
	if err != nil {
		return nil, err
	}
	id := call.Req.Key()
	if id == "" {
		return nil, protocol.Errorf(protocol.CodeBadArgument, "k: give the rq that opened the firehose")
	}
	args, err := protocol.ArgsOf[firehoseArgs](call)
	if err != nil {
		return nil, err
	}
	// Only the options given change ("" clears one): giving a new q must
	// not silently widen a display narrowed to one tablet.
	var given map[string]json.RawMessage
	if len(call.Req.V) > 0 {
		_ = json.Unmarshal(call.Req.V, &given)
	}
	for name := range given {
		if !slices.Contains(firehoseOptions, name) {
			// An option the lane ignored would leave the firehose as it
			// was while the reply said "open", as if it had changed.
			return nil, protocol.Errorf(protocol.CodeBadArgument,
				"v.%s: set_firehose_option takes v.tablet and v.k (and q); to change event or since, close the firehose and open it again", clip(name))
		}
	}
	var conds []protocol.Cond
	if call.Req.Q != nil {
		if conds, err = protocol.ParseEventFilter(call.Req.Q); err != nil {
			return nil, err
		}
	}
	err = s.hub.Update(ctx, sk.id, id, func(sub *firehose.Subscription) error {
		if _, ok := given["tablet"]; ok {
			sub.Tablet = args.Tablet
		}
		if _, ok := given["k"]; ok {
			sub.Physkey = args.Sale
		}
		if call.Req.Q != nil {
			sub.Conds = conds
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &protocol.Result{SC: "firehose.status", K: call.Req.K, Data: map[string]any{"status": "open"}}, nil
}

// injectArgs is fd1.debug.inject_event's v.
type injectArgs struct {
	Event string          `json:"event" validate:"required,max=100"`
	SC    string          `json:"sc" validate:"required,max=100"`
	Data  json.RawMessage `json:"data"`
}

// injectEvent publishes a memory event, e.g. a device.event sensor reading.
func (s *Server) injectEvent(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	args, err := protocol.ArgsOf[injectArgs](call)
	if err != nil {
		return nil, err
	}
	family, err := s.hub.Lookup(args.Event)
	if err != nil {
		return nil, err
	}
	if family.Name != FamilyDevice {
		return nil, protocol.Errorf(protocol.CodeBadArgument, "v.event: only %s events can be injected; sale and presell events come from the lane DB", FamilyDevice)
	}
	var data map[string]any
	if len(args.Data) > 0 {
		if err := json.Unmarshal(args.Data, &data); err != nil {
			return nil, protocol.Errorf(protocol.CodeBadArgument, "v.data must be an object")
		}
	}
	if data == nil {
		data = map[string]any{}
	}
	if err := s.hub.PublishMemory(family.Name, args.SC, data); err != nil {
		return nil, err
	}
	return &protocol.Result{Data: map[string]any{"injected": 1}}, nil
}

// trace publishes a tufe.trace record of a finished request to debugscope
// sockets, when any is listening. A trace names the endpoint by its
// registered name, never by the text the client sent: a trace must not
// carry customer data (names, addresses) that a client put into "a".
func (s *Server) trace(ep *protocol.Endpoint, reply *protocol.Reply, took time.Duration, c protocol.Caller) {
	if s.hub == nil || s.hub.Following(FamilyTrace) == 0 {
		return
	}
	code := "ok"
	if reply != nil && reply.Error != nil {
		code = string(reply.Error.Code)
	}
	msg := "(no endpoint)"
	if ep != nil {
		msg = ep.Name
	}
	// utfx counts the bytes that were not UTF-8 and went out as U+FFFD
	// (SPEC §5.5); every record carries it, 0 when nothing was replaced.
	msg, bad1 := validUTF8(msg)
	fp, bad2 := validUTF8(c.KeyName)
	_ = s.hub.PublishMemory(FamilyTrace, "tufe.trace", map[string]any{
		"msg": msg, "msg2": code, "ms": float64(took.Microseconds()) / 1000, "utfx": bad1 + bad2,
		"thr": c.SocketID, "fp": fp, "rve": time.Now().UTC().Format(time.RFC3339Nano),
	})
}

// diagStats reports what a support engineer needs to see at a glance.
func (s *Server) diagStats(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	data := map[string]any{"sockets": s.socketStats(), "goroutines": runtime.NumGoroutine()}
	if s.writer != nil {
		st := s.writer.Stats()
		batches, mutations := st.Batches.Load(), st.Mutations.Load()
		w := map[string]any{"batches": batches, "mutations": mutations, "yields": st.Yields.Load()}
		if batches > 0 {
			w["mutations_per_batch"] = float64(mutations) / float64(batches)
			w["commit_ms_avg"] = float64(st.CommitNS.Load()) / float64(batches) / 1e6
		}
		data["writer"] = w
	}
	if s.hub != nil {
		hs, err := s.hub.Stats(ctx)
		if err != nil {
			return nil, err
		}
		data["firehose"] = hs
	}
	return &protocol.Result{SC: "diag.stats", Data: data}, nil
}

// socketStats counts sockets by purpose, with their queues and pools.
func (s *Server) socketStats() map[string]any {
	s.mu.Lock()
	socks := make([]*socket, 0, len(s.sockets))
	for _, sk := range s.sockets {
		socks = append(socks, sk)
	}
	s.mu.Unlock()
	byPurpose := map[string]int{}
	queued, maxQueued, pending, running := 0, 0, 0, 0
	for _, sk := range socks {
		c := sk.currentCaller()
		name := string(c.Purpose)
		if name == "" {
			name = "fd1"
		}
		byPurpose[name]++
		q := sk.out.depth()
		queued += q
		maxQueued = max(maxQueued, q)
		p, r := sk.pool.depth()
		pending += p
		running += r
	}
	return map[string]any{"by_purpose": byPurpose, "total": len(socks), "send_queued": queued,
		"send_queued_max": maxQueued, "requests_waiting": pending, "requests_running": running}
}

// validUTF8 is s with each byte that is not part of valid UTF-8 replaced by
// U+FFFD, and how many were replaced.
func validUTF8(s string) (string, int) {
	if utf8.ValidString(s) {
		return s, 0
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			n++
		}
		b.WriteRune(r)
		i += size
	}
	return b.String(), n
}
