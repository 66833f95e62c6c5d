package server

import (
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/greenlane-pos/greenlane/internal/setting"
)

// Config tunes the front door. DefaultConfig holds every default; each
// field's comment says what it is and the range Validate allows. A zero
// field is not a default here: Validate refuses it unless the comment says
// what 0 means (a lane that answers nobody is a mistake, not a setting).
type Config struct {
	// Addr is the TCP address to listen on, host:port. Default
	// 127.0.0.1:3490 (the port FD1 examples use); use port 0 to let the
	// system pick one.
	Addr string
	// ReadLimit is the largest frame (or HTTP body) a client may send, in
	// bytes; a larger frame closes that socket with 1009. 1 KiB to 64 MiB.
	// Default 65536.
	ReadLimit int64
	// SendQueue is how many packets may wait for one slow client; when it
	// fills, that client is disconnected rather than slowing anyone else.
	// 1 to 1048576. Default 256.
	SendQueue int
	// SendQueueBytes bounds the same queue in bytes: 64 KiB to 1 GiB.
	// Default 4 MiB.
	SendQueueBytes int
	// RequestQueue is how many requests one socket may have queued or
	// running before it stops reading (TCP back-pressure). 1 to 65536.
	// Default 64.
	RequestQueue int
	// WriteWait bounds one write to a client: 100ms to 10m. Default 10s.
	WriteWait time.Duration
	// PongWait is how long a client may stay silent (no frame, no pong)
	// before it is taken for dead. Pings go out at 9/10 of it. 1s to 24h.
	// Default 60s.
	PongWait time.Duration
	// HandshakeTimeout bounds the WebSocket upgrade, and reading one HTTP
	// request, headers and body: 100ms to 10m. Default 10s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a kept-alive HTTP-mode connection that sends no
	// next request: 1s to 24h. Default 30s.
	IdleTimeout time.Duration
	// RequestTimeout bounds the work of one request: 100ms to 1h.
	// Default 30s.
	RequestTimeout time.Duration
	// ShutdownGrace is how long in-flight requests may run after SIGTERM:
	// 0 (cut them off at once) to 1h. Default 10s.
	ShutdownGrace time.Duration
	// MaxSockets caps the sockets open at once; one more is refused with
	// HTTP 503 before the upgrade. 1 to 1048576. Default 2000.
	MaxSockets int
	// LoginDeadline is how long a socket may stay open without logging in;
	// then it is closed with 1008 "log in first". 100ms to 1h. Default 10s.
	LoginDeadline time.Duration
	// MaxUnauthSockets caps the sockets open at once that have not logged
	// in, lane-wide, so that strangers never take the room MaxSockets keeps
	// for devices (when full, one is closed to make room: the oldest of the
	// address holding the most, never one whose login is being checked).
	// 1 to 1048576. Default 256.
	MaxUnauthSockets int
	// MaxUnauthPerAddress caps the sockets one remote address may hold open
	// without logging in; one more is refused with HTTP 429. 1 to 1048576.
	// Default 16.
	MaxUnauthPerAddress int
	// MaxConns caps the TCP connections open at once, lane-wide: sockets,
	// HTTP requests and kept-alive connections alike, so that no flood
	// takes the process's file descriptors. One more is closed as it
	// arrives. It is never less than MaxSockets (every socket is a
	// connection): a lower value counts as MaxSockets. 1 to 1048576.
	// Default 4096.
	MaxConns int
	// MaxConnsPerAddress caps the TCP connections one remote address may
	// hold open at once, so that one machine cannot fill MaxConns for
	// everyone; one more is closed as it arrives. A device needs a few. 1
	// to 1048576. Default 512.
	MaxConnsPerAddress int
	// MaxSocketsPerKey caps the sockets logged in with one API key (one key
	// per device); a login past it is refused with limit_reached. 1 to
	// 1048576. Default 32.
	MaxSocketsPerKey int
	// RequestRate is how many requests per second one socket may send on
	// average; more get rate_limited errors. A tablet sends a few a second;
	// this stops a runaway client, not a busy one. 0.01 to 1e9.
	// Default 1000.
	RequestRate float64
	// RequestBurst is how many requests a socket may send at once above
	// RequestRate (a tablet catching up after a network drop). 1 to 1e9.
	// Default 5000.
	RequestBurst int
	// KeyRequestRate is how many requests per second one API key may send
	// on average over all its sockets and HTTP-mode calls together; more
	// get rate_limited errors. Admin keys are not limited. A device sends a
	// few a second; a key shared by a shop's devices, tens. 0.01 to 1e9.
	// Default 200.
	KeyRequestRate float64
	// KeyRequestBurst is how many requests one key may send at once above
	// KeyRequestRate (devices catching up after a network drop). 1 to 1e9.
	// Default 5000.
	KeyRequestBurst int
	// LoginFailures is how many failed logins per minute one address may
	// make; past that its failed logins are answered rate_limited with a
	// time to retry. A correct key always logs in. 1 to 1000000.
	// Default 10.
	LoginFailures int
	// RevokeCheck is how often the lane looks for revoked keys to close
	// their sockets: 10ms to 1h. Default 500ms.
	RevokeCheck time.Duration
	// Now is the clock replies show (fd1.debug.ping); deterministic mode
	// fixes it. Default time.Now.
	Now func() time.Time
	// AllowedOrigins lists the browser Origins (scheme://host[:port]) that may
	// open sockets besides the lane's own listen addresses and names (see
	// ownOrigins); "*" allows any. Clients that send no Origin (tablet apps,
	// scripts) are not affected. The lane's web pages may in turn connect to
	// them (store mode: the lanes of one store allow each other, and a
	// tablet moves between them). Default none.
	AllowedOrigins []string
	// TLS, when set, makes the lane serve https and wss on Addr (the
	// certificate, TLS 1.2 at least). Default nil: plain http and ws.
	TLS *tls.Config
	// HTTPRedirect is a second address, host:port, where plain http
	// requests are redirected to the https listener; only with TLS.
	// Default "": none.
	HTTPRedirect string
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Addr:             "127.0.0.1:3490",
		ReadLimit:        64 << 10,
		SendQueue:        256,
		SendQueueBytes:   4 << 20,
		RequestQueue:     64,
		WriteWait:        10 * time.Second,
		PongWait:         60 * time.Second,
		HandshakeTimeout: 10 * time.Second,
		IdleTimeout:      30 * time.Second,
		RequestTimeout:   30 * time.Second,
		ShutdownGrace:    10 * time.Second,
		MaxSockets:       2000,
		RequestRate:      1000,
		RequestBurst:     5000,
		KeyRequestRate:   200,
		KeyRequestBurst:  5000,
		LoginFailures:    10,
		RevokeCheck:      500 * time.Millisecond,

		LoginDeadline:       10 * time.Second,
		MaxUnauthSockets:    256,
		MaxUnauthPerAddress: 16,
		MaxSocketsPerKey:    32,
		MaxConns:            4096,
		MaxConnsPerAddress:  512,
	}
}

// Validate reports every field out of its range, each as a
// *setting.Error naming the field.
func (c Config) Validate() error {
	return errors.Join(
		validAddr("Addr", c.Addr),
		setting.Range("ReadLimit", c.ReadLimit, 1<<10, 64<<20),
		setting.Range("SendQueue", c.SendQueue, 1, 1<<20),
		setting.Range("SendQueueBytes", c.SendQueueBytes, 64<<10, 1<<30),
		setting.Range("RequestQueue", c.RequestQueue, 1, 1<<16),
		setting.Range("WriteWait", c.WriteWait, 100*time.Millisecond, 10*time.Minute),
		setting.Range("PongWait", c.PongWait, time.Second, 24*time.Hour),
		setting.Range("HandshakeTimeout", c.HandshakeTimeout, 100*time.Millisecond, 10*time.Minute),
		setting.Range("IdleTimeout", c.IdleTimeout, time.Second, 24*time.Hour),
		setting.Range("RequestTimeout", c.RequestTimeout, 100*time.Millisecond, time.Hour),
		setting.Range("ShutdownGrace", c.ShutdownGrace, 0, time.Hour),
		setting.Range("MaxSockets", c.MaxSockets, 1, 1<<20),
		setting.Range("LoginDeadline", c.LoginDeadline, 100*time.Millisecond, time.Hour),
		setting.Range("MaxUnauthSockets", c.MaxUnauthSockets, 1, 1<<20),
		setting.Range("MaxUnauthPerAddress", c.MaxUnauthPerAddress, 1, 1<<20),
		setting.Range("MaxSocketsPerKey", c.MaxSocketsPerKey, 1, 1<<20),
		setting.Range("MaxConns", c.MaxConns, 1, 1<<20),
		setting.Range("MaxConnsPerAddress", c.MaxConnsPerAddress, 1, 1<<20),
		setting.Range("RequestRate", c.RequestRate, 0.01, 1e9),
		setting.Range("RequestBurst", c.RequestBurst, 1, 1e9),
		setting.Range("KeyRequestRate", c.KeyRequestRate, 0.01, 1e9),
		setting.Range("KeyRequestBurst", c.KeyRequestBurst, 1, 1e9),
		setting.Range("LoginFailures", c.LoginFailures, 1, 1_000_000),
		setting.Range("RevokeCheck", c.RevokeCheck, 10*time.Millisecond, time.Hour),
		c.validRedirect(),
		c.validOrigins(),
	)
}

// validOrigins refuses an --allowed-origins entry that is not an origin
// ("lane2:3490" without its scheme, a path, a wildcard host): left in, it
// would match no browser, and store-mode failover would fail silently.
func (c Config) validOrigins() error {
	var errs []error
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			continue
		}
		if _, err := CanonicalOrigin(o); err != nil {
			errs = append(errs, setting.Errorf("AllowedOrigins", "%v", err))
		}
	}
	return errors.Join(errs...)
}

func (c Config) validRedirect() error {
	switch {
	case c.HTTPRedirect == "":
		return nil
	case c.TLS == nil:
		return setting.Errorf("HTTPRedirect", "redirects to https, so it needs TLS (--tls or --tls-cert and --tls-key)")
	}
	return validAddr("HTTPRedirect", c.HTTPRedirect)
}

// validAddr checks a listen address: host:port with a port from 0 to 65535
// (the host may be empty: every interface).
func validAddr(field, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return setting.Errorf(field, "want host:port (127.0.0.1:3490, 0.0.0.0:3490), got %q", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return setting.Errorf(field, "want a port from 0 to 65535, got %q", port)
	}
	return nil
}
