package bench

// The fan-out phase: one device.event to many subscribers.
//
// What the latency is measured from. The issue asks for "server timestamp
// → client receipt", but a device.event's body is what the injector sent:
// the server adds no time of its own. So the events come in two ways,
// taking turns, under the same load:
//
//   - hub: the bench calls the in-process server's hub.PublishMemory, as
//     fd1.debug.inject_event's handler does, and stamps the event just
//     before the call. This is the server timestamp, and the
//     figure the target is checked on.
//   - socket: an injector socket sends fd1.debug.inject_event, stamped just
//     before the request is written. Its latency also holds the request's
//     trip into the server (the injector's write, the server's read pump,
//     the socket's request pool, the handler), so it is an upper bound; the
//     report prints the request's round trip beside it.
//
// The clock is this process's monotonic clock, as nanoseconds since the
// phase began: both ends live here, a wall-clock step cannot skew it, and
// the number stays far below 2^53, so it survives the server decoding a
// socket-injected body into float64 and encoding it again.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/greenlane-pos/greenlane/fd1client"
	"github.com/greenlane-pos/greenlane/firehose"
	"github.com/greenlane-pos/greenlane/protocol"
)

// benchSC is the sc of the bench's events, of the device.event family.
const (
	benchSC      = "device.event.bench"
	deviceFamily = "device.event"
)

// via is the way an event came into the server (see the top of the file).
type via int

const (
	viaHub via = iota
	viaSocket
	numVias
)

var viaNames = [numVias]string{"hub", "socket"}

type fanoutResult struct {
	subscribers       int // subscribers that connected
	subscribersWanted int
	rate              int
	window            time.Duration
	events            int64 // measured events the server accepted
	deliveries        int64 // measured events the subscribers received
	latency           [numVias]histogram
	injectTrip        histogram // inject request → its reply, on the injector
	cpu               cpuUse    // over the window
	errs              tally
}

// monoClock is nanoseconds since the phase began, on the monotonic clock.
type monoClock struct{ base time.Time }

func (c monoClock) now() int64 { return int64(time.Since(c.base)) }

// benchEventData is a bench event. N numbers the measured events from 1;
// warm-up events carry 0 and are not counted.
type benchEventData struct {
	N   int64
	NS  int64
	Via string
}

// body is the event's v: {"b": "via n ns"}. One string lets a subscriber
// read it without encoding/json, which with a thousand subscribers would
// cost the bench as much CPU as the read itself, and it survives the
// server's decoding and re-encoding of v.
func (d benchEventData) body() map[string]string {
	return map[string]string{"b": fmt.Sprintf("%s %d %d", d.Via, d.N, d.NS)}
}

// runFanout runs the fan-out phase on a fresh lane DB. One debug key
// serves every socket of the phase: the injector needs the scope, and a
// subscriber may use any key.
func runFanout(ctx context.Context, cfg FirehoseConfig, path string, log *slog.Logger) (*fanoutResult, error) {
	var res *fanoutResult
	err := withLane(ctx, path, laneOptions{groupWait: defaultWait, log: log}, 1, protocol.ScopeDebug, nil,
		func(l *lane, keys []string) (err error) {
			res, err = fanout(ctx, cfg, l, keys[0])
			return err
		})
	return res, err
}

// fanout opens the subscribers and the injector, injects through warm-up
// and window, waits for the deliveries and counts what is missing.
func fanout(ctx context.Context, cfg FirehoseConfig, l *lane, key string) (*fanoutResult, error) {
	res := &fanoutResult{subscribersWanted: cfg.Subscribers, rate: cfg.Rate}
	clock := monoClock{base: time.Now()}
	subs := openSubscribers(ctx, l.laneURL(), key, cfg.Subscribers, &res.errs)
	res.subscribers = len(subs.list)
	if res.subscribers == 0 {
		return nil, fmt.Errorf("no subscriber could connect: %s", res.errs.example())
	}
	subs.start(clock, &res.latency)
	defer subs.close(&res.errs)
	inj, err := openInjector(ctx, l.laneURL(), key, l.Hub, clock, res)
	if err != nil {
		return nil, err
	}
	defer inj.c.Close()

	if err := inj.inject(ctx, cfg.Rate, cfg.WarmUp, false); err != nil {
		return nil, err
	}
	stopProfile, err := startProfile(cfg.CPUProfile)
	if err != nil {
		return nil, err
	}
	mark := readCPUMark()
	err = inj.inject(ctx, cfg.Rate, cfg.Duration, true)
	res.window, res.cpu = time.Since(mark.at), mark.since()
	stopProfile()
	if err != nil {
		return nil, err
	}
	res.events = inj.awaitReplies(ctx, cfg.Drain)
	want := res.events * int64(res.subscribers)
	waitUntil(ctx, cfg.Drain, func() bool { return subs.delivered.Load() >= want })
	subs.close(&res.errs)
	res.deliveries = subs.delivered.Load()
	subs.countMissing(res.events, &res.errs)
	return res, ctx.Err()
}

type subscriberSet struct {
	list      []*subscriber
	delivered atomic.Int64 // measured events received, over all subscribers
	closeOnce sync.Once
}

// subscriber is one socket following device.event. Its fields are written
// by its reader only and read after the reader has stopped.
type subscriber struct {
	c        *fd1client.Conn
	received int64          // measured events
	lastN    [numVias]int64 // each way in keeps its order; the two ways may cross
	disorder int64          // events out of order or repeated
	bad      int64          // packets that were not a bench event
}

// openSubscribers opens n subscribers, dialParallel at a time (a burst of
// a thousand handshakes is no part of what is measured). One that cannot
// connect is counted as an error and left out.
func openSubscribers(ctx context.Context, url, key string, n int, errs *tally) *subscriberSet {
	all := make([]*subscriber, n)
	parallel(n, func(i int) {
		c, err := fd1client.Open(ctx, url, key, protocol.PurposeNone, fd1client.Options{})
		if err == nil {
			if err = c.OpenFirehose(deviceFamily); err != nil {
				c.Close()
			}
		}
		if err != nil {
			errs.add("connection", 1, fmt.Sprintf("subscriber %d: %v", i+1, err))
			return
		}
		all[i] = &subscriber{c: c}
	})
	set := &subscriberSet{}
	for _, s := range all {
		if s != nil {
			set.list = append(set.list, s)
		}
	}
	return set
}

// start has every subscriber time each measured event from the read of
// its frame.
func (set *subscriberSet) start(clock monoClock, latency *[numVias]histogram) {
	for _, s := range set.list {
		s.c.Follow(func(msg []byte, at time.Time) {
			d, v, ok := decodeBenchEvent(msg)
			switch {
			case !ok:
				s.bad++
			case d.N == 0: // warm-up
			default:
				latency[v].record(time.Duration(at.Sub(clock.base).Nanoseconds() - d.NS))
				s.received++
				set.delivered.Add(1)
				if d.N <= s.lastN[v] {
					s.disorder++
				}
				s.lastN[v] = d.N
			}
		})
	}
}

// decodeBenchEvent reads a bench event as the hub writes it.
func decodeBenchEvent(msg []byte) (benchEventData, via, bool) {
	var d benchEventData
	i := bytes.Index(msg, benchHead)
	if i < 0 {
		return d, 0, false
	}
	rest := msg[i+len(benchHead):]
	f := strings.Fields(string(rest[:max(bytes.IndexByte(rest, '"'), 0)]))
	if len(f) != 3 {
		return d, 0, false
	}
	var errN, errNS error
	d.Via = f[0]
	d.N, errN = strconv.ParseInt(f[1], 10, 64)
	d.NS, errNS = strconv.ParseInt(f[2], 10, 64)
	for v, name := range viaNames {
		if d.Via == name && errN == nil && errNS == nil {
			return d, via(v), true
		}
	}
	return d, 0, false
}

// benchHead is what precedes a bench event's body in the packet.
var benchHead = []byte(`"sc":"` + benchSC + `","v":{"b":"`)

// close closes every socket and waits for the readers; a subscriber whose
// socket had already failed is counted as a connection error. It may be
// called again (the deferred call after an early return).
func (set *subscriberSet) close(errs *tally) {
	set.closeOnce.Do(func() {
		for _, s := range set.list {
			go s.c.Close() // each waits for its reader: all at once
		}
		for i, s := range set.list {
			if s.c.Close(); s.c.FollowErr() != nil {
				errs.add("connection", 1, fmt.Sprintf("subscriber %d stopped reading: %v", i+1, s.c.FollowErr()))
			}
		}
	})
}

// countMissing checks that every subscriber got every accepted event, once
// and in order (the hub publishes from one goroutine and each socket's
// queue is first in, first out; only events that came in different ways
// may cross, as the socket's take a longer road). Call it after close.
func (set *subscriberSet) countMissing(events int64, errs *tally) {
	for i, s := range set.list {
		errs.add("missing", events-s.received,
			fmt.Sprintf("subscriber %d received %d of %d events", i+1, s.received, events))
		errs.add("disorder", s.disorder,
			fmt.Sprintf("subscriber %d received %d events out of order or twice", i+1, s.disorder))
		errs.add("bad_event", s.bad,
			fmt.Sprintf("subscriber %d received %d packets that were not %s events", i+1, s.bad, benchSC))
	}
}

// injector sends the events at a fixed rate, in turn through the hub and
// through fd1.debug.inject_event on its own socket, without waiting for
// replies (an open loop: a slow server must not slow the events down and
// so hide its own delay); a reader goroutine takes the socket's replies.
type injector struct {
	c     *fd1client.Conn
	hub   *firehose.Hub
	clock monoClock
	res   *fanoutResult

	mu     sync.Mutex
	sentAt map[int64]sentInfo // rq → when, for replies still due

	turns    int64        // events sent, warm-up included; the sender's own
	numbered int64        // measured events sent; the sender's own
	sent     atomic.Int64 // inject requests written
	replied  atomic.Int64 // inject replies read
	accepted atomic.Int64 // measured events the server accepted, both ways
}

type sentInfo struct {
	ns       int64
	measured bool
}

func openInjector(ctx context.Context, url, key string, hub *firehose.Hub, clock monoClock, res *fanoutResult) (*injector, error) {
	c, err := fd1client.Open(ctx, url, key, protocol.PurposeNone, fd1client.Options{})
	if err != nil {
		return nil, fmt.Errorf("injector: %w", err)
	}
	inj := &injector{c: c, hub: hub, clock: clock, res: res, sentAt: map[int64]sentInfo{}}
	c.Follow(inj.reply)
	return inj, nil
}

// inject sends rate events per second for d. The i-th event is due at
// start + i/rate; one sent late (this process was busy) goes at once and
// carries its real send time, so the lateness is not charged to the server.
func (inj *injector) inject(ctx context.Context, rate int, d time.Duration, measured bool) error {
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := int64(0); ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if due.Sub(start) >= d {
			return sleep(ctx, time.Until(start.Add(d))) // the window is d long, not d less the last gap
		}
		if err := sleep(ctx, time.Until(due)); err != nil {
			return err
		}
		if err := inj.send(measured); err != nil {
			return err
		}
	}
}

func (inj *injector) send(measured bool) error {
	data := benchEventData{Via: viaNames[inj.turns%2]}
	inj.turns++
	if measured {
		inj.numbered++
		data.N = inj.numbered
	}
	if data.Via == viaNames[viaHub] {
		inj.publish(data, measured)
		return nil
	}
	return inj.request(data, measured)
}

// publish hands an event to the hub as inject_event's handler does,
// stamped just before.
func (inj *injector) publish(data benchEventData, measured bool) {
	data.NS = inj.clock.now()
	if err := inj.hub.PublishMemory(deviceFamily, benchSC, data.body()); err != nil {
		inj.res.errs.add("publish", 1, fmt.Sprintf("hub.PublishMemory: %v", err))
		return
	}
	if measured {
		inj.accepted.Add(1)
	}
}

// request writes one inject request stamped with the time just before the
// write. The lock is held over the write, so that the reader finds the
// request's entry however soon the reply comes.
func (inj *injector) request(data benchEventData, measured bool) error {
	inj.mu.Lock()
	defer inj.mu.Unlock()
	data.NS = inj.clock.now()
	rq, err := inj.c.Request(&fd1client.Request{A: "fd1.debug.inject_event", V: map[string]any{
		"event": deviceFamily, "sc": benchSC, "data": data.body(),
	}})
	if err != nil {
		return fmt.Errorf("injector: %w", err)
	}
	inj.sentAt[rq] = sentInfo{ns: data.NS, measured: measured}
	inj.sent.Add(1)
	return nil
}

// reply matches a reply to its request: a success counts the event as
// accepted and times the round trip, an error is a failure (an event the
// subscribers will not get). A socket that closes early leaves the rest
// unanswered, for awaitReplies to count.
func (inj *injector) reply(msg []byte, at time.Time) {
	r, err := fd1client.Decode(msg, at)
	var rp int64
	if err != nil || r.A != "" || json.Unmarshal(r.RP, &rp) != nil {
		return // not a reply (e.g. fn1.link.link_status)
	}
	inj.mu.Lock()
	info, ok := inj.sentAt[rp]
	delete(inj.sentAt, rp)
	inj.mu.Unlock()
	if !ok {
		inj.res.errs.add("bad_reply", 1, fmt.Sprintf("injector: a reply to rq %d, which is not due", rp))
		return
	}
	inj.replied.Add(1)
	if r.Error != nil {
		inj.res.errs.add("inject_"+string(r.Error.Code), 1, fmt.Sprintf("inject_event: %s: %s", r.Error.Code, r.Error.Message))
	} else if info.measured {
		inj.accepted.Add(1)
		inj.res.injectTrip.record(time.Duration(at.Sub(inj.clock.base).Nanoseconds() - info.ns))
	}
}

// awaitReplies waits up to limit for the reply to every request sent,
// counts those that never came, and returns how many measured events the
// server accepted.
func (inj *injector) awaitReplies(ctx context.Context, limit time.Duration) int64 {
	sent := inj.sent.Load()
	waitUntil(ctx, limit, func() bool { return inj.replied.Load() >= sent })
	inj.res.errs.add("inject_no_reply", sent-inj.replied.Load(),
		fmt.Sprintf("injector: %d of %d inject requests unanswered after %s", sent-inj.replied.Load(), sent, limit))
	return inj.accepted.Load()
}
