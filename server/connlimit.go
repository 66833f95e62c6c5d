package server

import (
	"log/slog"
	"net"
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
type connCount struct {
	total, perAddr int
	log            *slog.Logger

	mu     sync.Mutex
	open   int
	byAddr map[string]int

	refused atomic.Int64 // connections closed at accept, all time
	// lastLog (unix ns) and unlogged keep a flood from flooding the log:
	// one line a second at most, saying how many were refused since.
	lastLog  atomic.Int64
	unlogged atomic.Int64
}

func newConnCount(total, perAddr int, log *slog.Logger) *connCount {
	return &connCount{total: total, perAddr: perAddr, log: log, byAddr: make(map[string]int)}
}

// take counts one more connection from h, or says why it may not open.
func (c *connCount) take(h string) (why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.open >= c.total:
		return "the lane has its maximum of open connections (serve --max-conns)"
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

// openNow is how many connections are counted.
func (c *connCount) openNow() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open
}

func (c *connCount) refuse(h, why string) {
	c.refused.Add(1)
	n := c.unlogged.Add(1)
	now, last := time.Now().UnixNano(), c.lastLog.Load()
	if now-last < int64(time.Second) || !c.lastLog.CompareAndSwap(last, now) {
		return
	}
	c.unlogged.Add(-n)
	c.log.Warn("connection refused", "remote", h, "why", why, "refused_since_last_line", n)
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
		if why := l.count.take(h); why != "" {
			l.count.refuse(h, why) // counted before the client can see it closed
			nc.Close()
			continue
		}
		return &countedConn{Conn: nc, count: l.count, host: h}, nil
	}
}

// countedConn gives its place back when closed, once, however often
// Close is called (net/http and gorilla may both close a hijacked one).
type countedConn struct {
	net.Conn
	count *connCount
	host  string
	once  sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.count.give(c.host) })
	return err
}
