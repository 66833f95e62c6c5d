package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/greenlane-pos/greenlane/lanedb"
)

// idleResult is the memory figure.
type idleResult struct {
	sockets             int
	bytesPerSocket      float64
	goroutinesPerSocket float64
	inProcess           bool // the clients ran in this process: their memory is counted too
}

// idleRequest is what the parent sends the idle-clients child on stdin.
// The key travels there rather than on the command line, where any user of
// the machine could read it.
type idleRequest struct {
	URL     string `json:"url"`
	Key     string `json:"key"`
	Sockets int    `json:"sockets"`
}

// settle is how long the server gets, after the last login reply, for its
// goroutines to reach their idle state before memory is read.
const settle = 300 * time.Millisecond

// dialParallel bounds the sockets opened at once: a burst of a thousand
// handshakes is no part of what is measured.
const dialParallel = 32

// measureIdle is memory per idle presell socket: the server's heap and
// stacks in use (after a full GC) and its goroutines, before and after
// opening cfg.IdleSockets presell sockets that log in and then send nothing.
//
// What is counted: HeapInuse + StackInuse of this process, which holds the
// server. With cfg.IdleClients set the client ends live in a child process,
// so the difference is the server's alone: the socket, its buffers, its
// session and its two goroutines (read pump, write pump). Without it they
// are counted too, and the report says so.
func (b *benchmark) measureIdle(ctx context.Context, path string) (*idleResult, error) {
	db, err := openDemoDB(ctx, path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	keys, err := createPresellKeys(ctx, db, "bench-idle", 1)
	if err != nil {
		return nil, err
	}
	l, err := startLane(ctx, db, laneOptions{writer: lanedb.DefaultWriterOptions(), presellWorkers: b.cfg.PresellWorkers, log: b.log})
	if err != nil {
		return nil, err
	}
	res, err := b.idleDelta(ctx, idleRequest{URL: l.presellURL(), Key: keys[0], Sockets: b.cfg.IdleSockets})
	if stopErr := l.stop(); err == nil {
		err = stopErr
	}
	if err != nil {
		return nil, fmt.Errorf("idle sockets: %w", err)
	}
	return res, nil
}

// idleDelta opens the idle sockets and reads the memory difference.
func (b *benchmark) idleDelta(ctx context.Context, req idleRequest) (*idleResult, error) {
	before := readMemory()
	release, err := b.holdIdle(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := sleep(ctx, settle); err != nil {
		release()
		return nil, err
	}
	after := readMemory()
	if err := release(); err != nil {
		return nil, err
	}
	n := float64(req.Sockets)
	return &idleResult{
		sockets:             req.Sockets,
		bytesPerSocket:      float64(int64(after.bytes)-int64(before.bytes)) / n,
		goroutinesPerSocket: float64(after.goroutines-before.goroutines) / n,
		inProcess:           b.cfg.IdleClients == nil,
	}, nil
}

type memSample struct {
	bytes      uint64
	goroutines int
}

// readMemory reads heap and stacks in use after two GCs (the second
// frees what the first's finalizers released).
func readMemory() memSample {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memSample{bytes: m.HeapInuse + m.StackInuse, goroutines: runtime.NumGoroutine()}
}

// holdIdle opens the idle sockets, in the child process when one is
// configured, and returns once all have logged in. release closes them.
func (b *benchmark) holdIdle(ctx context.Context, req idleRequest) (release func() error, err error) {
	if b.cfg.IdleClients == nil {
		set, err := openIdleSockets(ctx, req)
		if err != nil {
			return nil, err
		}
		return func() error { set.close(); return nil }, nil
	}
	return startIdleChild(ctx, b.cfg.IdleClients(ctx), req)
}

// startIdleChild runs the idle-clients child: the request goes in on
// stdin, "ready N" comes back on stdout, and closing stdin ends it.
func startIdleChild(ctx context.Context, cmd *exec.Cmd, req idleRequest) (func() error, error) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("idle-clients stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("idle-clients stdout: %w", err)
	}
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start idle-clients %s: %w", cmd.Path, err)
	}
	wait := func() error {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("idle-clients: %w: %s", err, strings.TrimSpace(stderr.String()))
		}
		return nil
	}
	if err := json.NewEncoder(stdin).Encode(req); err != nil {
		return nil, errors.Join(fmt.Errorf("send to idle-clients: %w", err), wait())
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if want := fmt.Sprintf("ready %d\n", req.Sockets); line != want {
		return nil, errors.Join(fmt.Errorf("idle-clients answered %q (%v), want %q", line, err, want), wait())
	}
	return wait, nil
}

// IdleClients is the child side of the memory figure (`greenlane bench
// idle-clients`): it reads an idle request from in, opens and logs in the
// sockets, writes "ready N" to out, and holds them until in is closed.
func IdleClients(ctx context.Context, in io.Reader, out io.Writer) error {
	r := bufio.NewReader(in)
	var req idleRequest
	if err := json.NewDecoder(r).Decode(&req); err != nil {
		return fmt.Errorf("read the idle request: %w", err)
	}
	set, err := openIdleSockets(ctx, req)
	if err != nil {
		return err
	}
	defer set.close()
	if _, err := fmt.Fprintf(out, "ready %d\n", len(set.conns)); err != nil {
		return fmt.Errorf("report ready: %w", err)
	}
	_, _ = io.Copy(io.Discard, r) // until the parent closes our stdin
	return nil
}

// idleSet is a set of logged-in, idle presell sockets.
type idleSet struct {
	conns   []*websocket.Conn
	readers sync.WaitGroup
}

// openIdleSockets opens req.Sockets presell sockets and logs each in. Each
// gets a reader that discards what comes (and so answers the server's
// pings), as an idle tablet app would.
func openIdleSockets(ctx context.Context, req idleRequest) (*idleSet, error) {
	if req.Sockets <= 0 {
		return nil, fmt.Errorf("idle request for %d sockets", req.Sockets)
	}
	set := &idleSet{conns: make([]*websocket.Conn, req.Sockets)}
	errs := make([]error, req.Sockets)
	sem := make(chan struct{}, dialParallel)
	var wg sync.WaitGroup
	for i := range set.conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			t, err := dialTablet(ctx, req.URL, req.Key, uint64(i), nil)
			if err != nil {
				errs[i] = fmt.Errorf("idle socket %d: %w", i+1, err)
				return
			}
			set.conns[i] = t.ws
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		set.close()
		return nil, err
	}
	for _, ws := range set.conns {
		_ = ws.SetReadDeadline(time.Time{}) // idle for as long as the parent wants
		set.readers.Go(func() {
			for {
				if _, _, err := ws.NextReader(); err != nil {
					return
				}
			}
		})
	}
	return set, nil
}

// close closes every socket and waits for the readers.
func (s *idleSet) close() {
	for _, ws := range s.conns {
		if ws != nil {
			ws.Close()
		}
	}
	s.readers.Wait()
}

// limitedBuffer keeps the first 4 KB written to it (a child's stderr).
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := 4096 - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
