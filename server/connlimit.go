package server

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// connCount bounds the TCP connections open at once, lane-wide
// (MaxConns) and per remote address (MaxConnsPerAddress), for every
// listener of the lane. The socket caps count WebSockets once they ask to
// upgrade; this counts every connection from its accept, so that plain
// HTTP (a page, an HTTP-mode call, a connection that never sends a byte)
// cannot take the process's file descriptors either, and one address
// cannot take the room the others need.
//
// At the lane-wide cap a new connection makes room by closing the oldest
// one that is doing nothing: one that has not finished sending a request
// (or sits idle between requests), accepted more than a second ago.
// Without it, clients without a key on a few addresses (a slowloris per
// place, each cut off only by the header timeout) held every place and
// locked every device out. A connection serving a request, or taken over
// by a WebSocket, is never closed for room.
type connCount struct {
	total, perAddr int
	log            *slog.Logger

	mu     sync.Mutex
	open   int
	byAddr map[string]int
	conns  map[*countedConn]struct{} // every open one, for eviction
	// evictAfter is how long a new connection may take to send its first
	// request before it may be closed to make room: a device on the
	// store's network sends one in milliseconds. Default evictAfter.
	evictAfter time.Duration

	refused atomic.Int64 // connections closed at accept, all time
	evicted atomic.Int64 // idle connections closed to make room, all time
	// lastLog (unix ns) and unlogged keep a flood from flooding the log:
	// one line a second at most, saying how many were refused since.
	lastLog  atomic.Int64
	unlogged atomic.Int64
}

func newConnCount(total, perAddr int, log *slog.Logger) *connCount {
	return &connCount{total: total, perAddr: perAddr, log: log, byAddr: make(map[string]int),
		conns: make(map[*countedConn]struct{}), evictAfter: time.Second}
}

// idlest is the open connection that has done nothing longest, if one may
// be closed to make room.
func (c *connCount) idlest(now time.Time) *countedConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	var pick *countedConn
	for cc := range c.conns {
		if cc.busy.Load() || now.Sub(cc.at) < c.evictAfter {
			continue
		}
		if pick == nil || cc.at.Before(pick.at) {
			pick = cc
		}
	}
	return pick
}

// whyTotal is take's answer at the lane-wide cap.
const whyTotal = "the lane has its maximum of open connections (serve --max-conns)"

// take counts one more connection from h, or says why it may not open.
func (c *connCount) take(h string) (why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.open >= c.total:
		return whyTotal
	case c.byAddr[h] >= c.perAddr:
		return "this address has its maximum of open connections (serve --max-conns-per-address)"
	}
	c.open++
	c.byAddr[h]++
	return ""
}

func (c *connCount) give(h string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open--
	if c.byAddr[h]--; c.byAddr[h] <= 0 {
		delete(c.byAddr, h)
	}
}

// closed gives back the place of an admitted connection.
func (c *connCount) closed(cc *countedConn) {
	c.mu.Lock()
	delete(c.conns, cc)
	c.mu.Unlock()
	c.give(cc.host)
}

// admit counts nc from h in, making room at the lane-wide cap by closing
// the idlest connection (a few tries: others may take the room first), or
// says why it may not open.
func (c *connCount) admit(nc net.Conn, h string) (*countedConn, string) {
	for try := 0; ; try++ {
		why := c.take(h)
		if why == "" {
			cc := &countedConn{Conn: nc, count: c, host: h, at: time.Now()}
			c.mu.Lock()
			c.conns[cc] = struct{}{}
			c.mu.Unlock()
			return cc, ""
		}
		if why != whyTotal || try == 3 {
			return nil, why
		}
		victim := c.idlest(time.Now())
		if victim == nil {
			return nil, why
		}
		c.evicted.Add(1)
		victim.Close()
		c.note(victim.host, "closed an idle connection to make room (serve --max-conns reached)", false)
	}
}

// openNow is how many connections are counted.
func (c *connCount) openNow() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open
}

func (c *connCount) refuse(h, why string) { c.note(h, why, true) }

// note logs what was done to a connection from h, a line a second at most;
// refused counts it as refused.
func (c *connCount) note(h, why string, refused bool) {
	if refused {
		c.refused.Add(1)
	}
	n := c.unlogged.Add(1)
	now, last := time.Now().UnixNano(), c.lastLog.Load()
	if now-last < int64(time.Second) || !c.lastLog.CompareAndSwap(last, now) {
		return
	}
	c.unlogged.Add(-n)
	msg := "connection refused"
	if !refused {
		msg = "connection closed"
	}
	c.log.Warn(msg, "remote", h, "why", why, "since_last_line", n)
}

// listen wraps ln so that its connections are counted.
func (c *connCount) listen(ln net.Listener) net.Listener { return &countedListener{ln, c} }

type countedListener struct {
	net.Listener
	count *connCount
}

// Accept hands out the next connection within the limits. One past them
// is closed at once, before a byte is read: an HTTP answer would need its
// request read first (or TLS set up), which is the very cost refused.
func (l *countedListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		h := host(nc.RemoteAddr().String())
		cc, why := l.count.admit(nc, h)
		if why != "" {
			l.count.refuse(h, why) // counted before the client can see it closed
			nc.Close()
			continue
		}
		return cc, nil
	}
}

// countedConn gives its place back when closed, once, however often
// Close is called (net/http and gorilla may both close a hijacked one).
type countedConn struct {
	net.Conn
	count *connCount
	host  string
	once  sync.Once
	at    time.Time // accepted
	// busy: serving a request, or taken over by a WebSocket (see
	// markBusy): never closed to make room.
	busy atomic.Bool
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.count.closed(c) })
	return err
}

// connKey finds a request's connection in its context (ConnContext).
type connKey struct{}

// markBusy marks the connection serving r busy until done is called; one
// that was taken over (a WebSocket) stays busy for good.
func markBusy(r *http.Request) (done func(hijacked bool)) {
	nc, _ := r.Context().Value(connKey{}).(net.Conn)
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	cc, ok := nc.(*countedConn)
	if !ok {
		return func(bool) {}
	}
	cc.busy.Store(true)
	return func(hijacked bool) {
		if !hijacked {
			cc.busy.Store(false)
		}
	}
}
