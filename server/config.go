package server

import "time"

// Config tunes the front door. DefaultConfig holds every default; each
// field's comment says what it is.
type Config struct {
	// Addr is the TCP address to listen on. Default 127.0.0.1:3490 (the port
	// FD1 examples use); use port 0 to let the system pick one.
	Addr string
	// ReadLimit is the largest frame (or HTTP body) a client may send, in
	// bytes; a larger frame closes that socket with 1009. Default 65536.
	ReadLimit int64
	// SendQueue is how many packets may wait for one slow client; when it
	// fills, that client is disconnected rather than slowing anyone else.
	// Default 256.
	SendQueue int
	// SendQueueBytes bounds the same queue in bytes. Default 4 MiB.
	SendQueueBytes int
	// RequestQueue is how many requests one socket may have queued or
	// running before it stops reading (TCP back-pressure). Default 64.
	RequestQueue int
	// PresellWorkers is how many requests one presell socket may have running
	// at once (requests for the same sale still run in order). Default 4.
	PresellWorkers int
	// WriteWait bounds one write to a client. Default 10s.
	WriteWait time.Duration
	// PongWait is how long a client may stay silent (no frame, no pong)
	// before it is taken for dead. Pings go out at 9/10 of it. Default 60s.
	PongWait time.Duration
	// HandshakeTimeout bounds the WebSocket upgrade, and reading one HTTP
	// request's headers. Default 10s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a kept-alive HTTP-mode connection that sends no
	// next request. Default 30s.
	IdleTimeout time.Duration
	// RequestTimeout bounds the work of one request. Default 30s.
	RequestTimeout time.Duration
	// ShutdownGrace is how long in-flight requests may run after SIGTERM.
	// Default 10s.
	ShutdownGrace time.Duration
	// MaxSockets caps the sockets open at once; one more is refused with
	// HTTP 503 before the upgrade. Default 2000.
	MaxSockets int
	// LoginDeadline is how long a socket may stay open without logging in;
	// then it is closed with 1008 "log in first". Default 10s.
	LoginDeadline time.Duration
	// MaxUnauthSockets caps the sockets open at once that have not logged
	// in, lane-wide, so that strangers never take the room MaxSockets keeps
	// for devices; one more is refused with HTTP 503. Default 256.
	MaxUnauthSockets int
	// MaxUnauthPerAddress caps the sockets one remote address may hold open
	// without logging in; one more is refused with HTTP 429. Default 16.
	MaxUnauthPerAddress int
	// MaxSocketsPerKey caps the sockets logged in with one API key (one key
	// per device); a login past it is refused with limit_reached. Default 32.
	MaxSocketsPerKey int
	// RequestRate is how many requests per second one socket may send on
	// average; more get rate_limited errors. A tablet sends a few a second;
	// this stops a runaway client, not a busy one. Default 1000.
	RequestRate float64
	// RequestBurst is how many requests a socket may send at once above
	// RequestRate (a tablet catching up after a network drop). Default 5000.
	RequestBurst int
	// LoginFailures is how many failed logins per minute one address may
	// make; past that its failed logins are answered rate_limited with a
	// time to retry. A correct key always logs in. Default 10.
	LoginFailures int
	// RevokeCheck is how often the lane looks for revoked keys to close
	// their sockets. Default 500ms.
	RevokeCheck time.Duration
	// Now is the clock replies show (fd1.debug.ping); deterministic mode
	// fixes it. Default time.Now.
	Now func() time.Time
	// AllowedOrigins lists the browser Origins (scheme://host[:port]) that may
	// open sockets besides the lane's own listen addresses and names (see
	// ownOrigins); "*" allows any. Clients that send no Origin (tablet apps,
	// scripts) are not affected. Default none.
	AllowedOrigins []string
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Addr:             "127.0.0.1:3490",
		ReadLimit:        64 << 10,
		SendQueue:        256,
		SendQueueBytes:   4 << 20,
		RequestQueue:     64,
		PresellWorkers:   4,
		WriteWait:        10 * time.Second,
		PongWait:         60 * time.Second,
		HandshakeTimeout: 10 * time.Second,
		IdleTimeout:      30 * time.Second,
		RequestTimeout:   30 * time.Second,
		ShutdownGrace:    10 * time.Second,
		MaxSockets:       2000,
		RequestRate:      1000,
		RequestBurst:     5000,
		LoginFailures:    10,
		RevokeCheck:      500 * time.Millisecond,

		LoginDeadline:       10 * time.Second,
		MaxUnauthSockets:    256,
		MaxUnauthPerAddress: 16,
		MaxSocketsPerKey:    32,
	}
}
