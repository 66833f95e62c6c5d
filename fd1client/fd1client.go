// Package fd1client is the one FD1 client of this repository: the bench's
// tablets, counters and displays, `greenlane client` and transcript
// replays all open their sockets through it. It dials (ws or wss, with
// headers and a timeout), logs in, sends requests with rq (and ik when
// asked), matches each reply by its rp, hands every other packet
// (firehose events, pushes) to the caller, and closes with a normal close
// frame.
//
// A Conn is a closed loop: Call waits for its reply on the caller's
// goroutine, reading nothing in the background, so a socket costs no
// goroutine of its own. A caller that reads on another goroutine (an open
// loop, a firehose follower) uses Request and Recv instead.
package fd1client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/greenlane-pos/greenlane/protocol"
)

// Options say how to dial and how long to wait.
type Options struct {
	// Header goes with the WebSocket handshake (an Origin, say). Default
	// none.
	Header http.Header
	// TLS is the wss:// configuration (a lane's own CA). Default nil: the
	// system's roots.
	TLS *tls.Config
	// Timeout bounds the handshake and each wait for a reply. Default 35s:
	// past the server's own 30 s request timeout, so that a slow lane is
	// answered by the lane, and only a broken socket by this.
	Timeout time.Duration
	// OnPacket receives, during a Call, every packet that is not its reply:
	// firehose events and pushes. Default nil: a push (a packet with "a")
	// is dropped, and any other packet fails the Call, as a reply out of
	// turn means the lane and the client disagree.
	OnPacket func(*Packet)
}

const defaultTimeout = 35 * time.Second

// Request is an FD1 request packet. Call and Request set RQ.
type Request struct {
	A  string         `json:"a"`
	RQ int64          `json:"rq"`
	IK string         `json:"ik,omitempty"`
	K  string         `json:"k,omitempty"`
	Q  map[string]any `json:"q,omitempty"`
	QK string         `json:"qk,omitempty"`
	V  any            `json:"v"`
}

// Packet is what the lane sent: a reply, a firehose event or a push.
type Packet struct {
	A     string          `json:"a"` // set on a push (e.g. fn1.link.link_status)
	R     string          `json:"r"`
	RP    json.RawMessage `json:"rp"`
	SC    string          `json:"sc"`
	K     json.RawMessage `json:"k"`
	Error *protocol.Error `json:"error"`
	Data  json.RawMessage `json:"data"`
	V     json.RawMessage `json:"v"`
	Raw   []byte          `json:"-"` // the frame as read
	At    time.Time       `json:"-"` // when the frame was read, before decoding
}

// Answers tells whether p carries rp rq (a reply, or an event of the
// firehose that request opened).
func (p *Packet) Answers(rq int64) bool {
	return string(p.RP) == strconv.FormatInt(rq, 10) || string(p.RP) == strconv.Quote(strconv.FormatInt(rq, 10))
}

// Key is the reply's k as a string (a sale's physkey), "" when it is not one.
func (p *Packet) Key() string {
	var k string
	if json.Unmarshal(p.K, &k) != nil {
		return ""
	}
	return k
}

// Decode reads a frame.
func Decode(raw []byte, at time.Time) (*Packet, error) {
	p := &Packet{Raw: raw, At: at}
	if err := json.Unmarshal(raw, p); err != nil {
		return nil, fmt.Errorf("decode packet: %w: %.200s", err, raw)
	}
	return p, nil
}

// Conn is one socket to a lane.
type Conn struct {
	ws  *websocket.Conn
	o   Options
	wmu sync.Mutex // gorilla allows one writer at a time
	rq  atomic.Int64

	// scratch is where Recv reads a frame before copying it out at its
	// size: grown once to the largest frame, rather than each frame's
	// buffer growing by doubling from 512 bytes. One reader at a time
	// (gorilla allows no more), so one scratch.
	scratch []byte

	closing   atomic.Bool
	followed  chan struct{} // closed when Follow's reader has stopped; nil: none
	followErr error         // why it stopped, unless Close stopped it
}

// Dial opens a socket at url (ws:// or wss://, with its query).
func Dial(ctx context.Context, url string, o Options) (*Conn, error) {
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	d := websocket.Dialer{HandshakeTimeout: o.Timeout, TLSClientConfig: o.TLS}
	ws, resp, err := d.DialContext(ctx, url, o.Header)
	if err != nil {
		return nil, DialError(url, resp, err)
	}
	return &Conn{ws: ws, o: o}, nil
}

// DialError says why a socket could not be opened, with the server's
// answer when it gave one (a refused purpose, a wrong path).
func DialError(url string, resp *http.Response, err error) error {
	if resp != nil {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("connect %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return fmt.Errorf("connect %s: %w (%s)", url, err, dialHint(err))
}

// dialHint is what to check when a dial got no answer. A certificate
// refusal means the lane did answer: asking whether it runs would send the
// reader the wrong way.
func dialHint(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var host x509.HostnameError
	switch {
	case errors.As(err, &unknownCA):
		return "the lane answered with a certificate this client does not trust: pass --ca <db>.ca.pem, the CA 'greenlane tls init' wrote next to the lane DB"
	case errors.As(err, &host):
		return "the lane answered with a certificate that does not name this host: connect by a name it holds, or reissue it for this one with 'greenlane tls renew --names …'"
	}
	return "is 'greenlane serve' running?"
}

// Open dials url and logs in with key, in purpose when one is given
// (customerdisplay and debugscope travel in the login packet).
func Open(ctx context.Context, url, key string, purpose protocol.Purpose, o Options) (*Conn, error) {
	c, err := Dial(ctx, url, o)
	if err != nil {
		return nil, err
	}
	if err := c.Login(key, purpose); err != nil {
		c.ws.Close()
		return nil, err
	}
	return c, nil
}

// Login is fd1.session.login; a refusal is an error holding the
// *protocol.Error.
func (c *Conn) Login(key string, purpose protocol.Purpose) error {
	v := map[string]string{"apikey": key}
	if purpose != protocol.PurposeNone {
		v["purpose"] = string(purpose)
	}
	p, err := c.Call(&Request{A: "fd1.session.login", V: v})
	if err == nil && p.Error != nil {
		err = fmt.Errorf("login refused: %w", p.Error)
	}
	return err
}

// OpenFirehose asks for a firehose of event and waits for its ack; after
// it the socket carries events with the ack's rp. The read deadline is
// lifted: a follower may wait long between events (the server's pings
// keep the link checked).
func (c *Conn) OpenFirehose(event string) error {
	p, err := c.Call(&Request{A: "fd1.firehose.open_firehose", V: map[string]string{"event": event}})
	if err == nil && p.Error != nil {
		err = fmt.Errorf("open_firehose %s refused: %w", event, p.Error)
	}
	if err != nil {
		return err
	}
	return c.ws.SetReadDeadline(time.Time{})
}

// Request sends req with the next rq, without waiting, and returns the rq.
func (c *Conn) Request(req *Request) (int64, error) {
	req.RQ = c.rq.Add(1)
	b, err := json.Marshal(req)
	if err != nil {
		return 0, fmt.Errorf("encode %s: %w", req.A, err)
	}
	if err := c.send(b); err != nil {
		return 0, fmt.Errorf("send %s: %w", req.A, err)
	}
	return req.RQ, nil
}

// Call sends req and reads until its reply, which it returns; an FD1
// error is in the reply, and err is set only when the socket failed.
func (c *Conn) Call(req *Request) (*Packet, error) {
	rq, err := c.Request(req)
	if err != nil {
		return nil, err
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(c.o.Timeout))
	for {
		raw, err := c.Recv()
		if err != nil {
			return nil, fmt.Errorf("wait for the reply to %s: %w", req.A, err)
		}
		p, err := Decode(raw, time.Now())
		if err != nil {
			return nil, fmt.Errorf("reply to %s: %w", req.A, err)
		}
		switch {
		case p.A == "" && p.Answers(rq):
			return p, nil
		case c.o.OnPacket != nil:
			c.o.OnPacket(p)
		case p.A == "":
			return nil, fmt.Errorf("reply to %s: rp %s, want %d", req.A, p.RP, rq)
		}
	}
}

// Send writes one raw frame (a packet as a person or a transcript wrote
// it).
func (c *Conn) Send(b []byte) error { return c.send(b) }

func (c *Conn) send(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.o.Timeout))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// maxScratch is the most scratch a Conn keeps between frames: a rare huge
// frame (a long list) is not held for the Conn's life.
const maxScratch = 1 << 20

// Recv reads the next frame into a slice of its own.
func (c *Conn) Recv() ([]byte, error) {
	b, err := c.RecvInto(c.scratch)
	if err != nil {
		return nil, err
	}
	if cap(b) <= maxScratch {
		c.scratch = b
	}
	return bytes.Clone(b), nil
}

// RecvInto reads the next frame into buf, which it grows as needed and
// returns: a follower that hands the same buf back allocates nothing per
// frame once it has grown.
func (c *Conn) RecvInto(buf []byte) ([]byte, error) {
	_, r, err := c.ws.NextReader()
	if err != nil {
		return nil, err
	}
	w := bytes.NewBuffer(buf[:0])
	if _, err := w.ReadFrom(r); err != nil {
		return nil, err
	}
	return w.Bytes(), nil
}

// Follow reads every frame on a goroutine of its own and hands it to fn
// (nil: dropped) with the time it was read, before decoding, until the
// socket closes: a firehose follower, or an idle client that must keep
// answering the server's pings. The read deadline is lifted. fn may keep
// raw only until it returns: the buffer is reused, so a follower of many
// events allocates nothing per frame. Close stops the reader and waits for
// it; FollowErr then says why reading stopped.
func (c *Conn) Follow(fn func(raw []byte, at time.Time)) {
	_ = c.ws.SetReadDeadline(time.Time{})
	c.followed = make(chan struct{})
	go func() {
		defer close(c.followed)
		var buf []byte
		for {
			msg, err := c.RecvInto(buf)
			if err != nil {
				if !c.closing.Load() {
					c.followErr = err
				}
				return
			}
			buf = msg
			if fn != nil {
				fn(msg, time.Now())
			}
		}
	}()
}

// FollowErr is why Follow's reader stopped, nil when Close stopped it.
// Call it after Close.
func (c *Conn) FollowErr() error { return c.followErr }

// Wait lifts the read deadline (until t; zero: none), for a socket that
// stays open idle or follows events.
func (c *Conn) Wait(t time.Time) error { return c.ws.SetReadDeadline(t) }

// Close says goodbye with a normal close frame, then drops the
// connection, and waits for Follow's reader. Another reader then sees an
// error. It may be called again.
func (c *Conn) Close() error {
	c.closing.Store(true)
	_ = c.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	err := c.ws.Close()
	if c.followed != nil {
		<-c.followed
	}
	return err
}
