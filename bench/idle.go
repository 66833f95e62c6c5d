package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"sync"
	"time"

	"github.com/greenlane-pos/greenlane/fd1client"
	"github.com/greenlane-pos/greenlane/protocol"
)

// idleResult is the memory figure.
type idleResult struct {
	sockets             int
	bytesPerSocket      float64 // Go heap and stacks in use
	rssPerSocket        float64 // resident set (VmRSS); 0 where the system does not say
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

// measureIdle is memory per idle presell socket: this process's heap and
// stacks in use, its RSS and its goroutines, before and after opening
// cfg.IdleSockets presell sockets that log in and then send nothing. With
// cfg.IdleClients set the client ends live in a child process, so the
// difference is the server's alone; without, the report says so.
func measureIdle(ctx context.Context, path string, cfg Config, log *slog.Logger) (*idleResult, error) {
	res := &idleResult{sockets: cfg.IdleSockets, inProcess: cfg.IdleClients == nil}
	opts := laneOptions{groupWait: defaultWait, presellWorkers: cfg.PresellWorkers, log: log}
	err := withLane(ctx, path, opts, 1, protocol.ScopePresell, nil, func(l *lane, keys []string) error {
		var cmd *exec.Cmd
		if cfg.IdleClients != nil {
			cmd = cfg.IdleClients(ctx)
		}
		// Freed pages go back to the system first, so that RSS holds what is
		// live, not what earlier phases left for the scavenger.
		before := readFreedSample()
		c, err := startChild(ctx, "idle-clients", cmd, IdleClients)
		if err != nil {
			return err
		}
		req, _ := json.Marshal(idleRequest{URL: l.presellURL(), Key: keys[0], Sockets: cfg.IdleSockets})
		if err := c.send(string(req)); err != nil {
			return err
		}
		if line, err := c.readLine(); err != nil || line != fmt.Sprintf("ready %d", cfg.IdleSockets) {
			return errors.Join(err, c.fail(fmt.Errorf("idle-clients answered %q, want \"ready %d\"", line, cfg.IdleSockets)))
		}
		err = sleep(ctx, settle)
		after := readFreedSample()
		n := float64(cfg.IdleSockets)
		res.bytesPerSocket = float64(int64(after.heapInuse+after.stackInuse)-int64(before.heapInuse+before.stackInuse)) / n
		if before.rss > 0 {
			res.rssPerSocket = float64(int64(after.rss)-int64(before.rss)) / n
		}
		res.goroutinesPerSocket = float64(after.goroutines-before.goroutines) / n
		return errors.Join(err, c.stop())
	})
	if err != nil {
		return nil, fmt.Errorf("idle sockets: %w", err)
	}
	return res, nil
}

func (p *printer) idle(r *idleResult) {
	where := "clients in a child process: server side only"
	if r.inProcess {
		where = "clients in this process: both ends counted"
	}
	p.printf("memory per idle presell socket: %.1f KB heap and stacks, %.1f KB RSS (%d sockets, %+.1f goroutines each; %s)\n",
		r.bytesPerSocket/1024, r.rssPerSocket/1024, r.sockets, r.goroutinesPerSocket, where)
}

// IdleClients is the child side of the memory figure (`greenlane bench
// idle-clients`): it reads an idle request from in, opens and logs in the
// sockets, writes "ready N" to out, and holds them until in is closed.
// Each socket gets a reader that discards what comes (and so answers the
// server's pings), as an idle tablet app would.
func IdleClients(ctx context.Context, in io.Reader, out io.Writer) error {
	r := bufio.NewReader(in)
	var req idleRequest
	if err := json.NewDecoder(r).Decode(&req); err != nil {
		return fmt.Errorf("read the idle request: %w", err)
	}
	if req.Sockets <= 0 {
		return fmt.Errorf("idle request for %d sockets", req.Sockets)
	}
	conns := make([]*fd1client.Conn, req.Sockets)
	errs := make([]error, req.Sockets)
	parallel(req.Sockets, func(i int) {
		if conns[i], errs[i] = fd1client.Open(ctx, req.URL, req.Key, protocol.PurposeNone, fd1client.Options{}); errs[i] != nil {
			errs[i] = fmt.Errorf("idle socket %d: %w", i+1, errs[i])
		}
	})
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, c := range conns {
		c.Follow(nil) // idle for as long as the parent wants
	}
	if _, err := fmt.Fprintf(out, "ready %d\n", len(conns)); err != nil {
		return fmt.Errorf("report ready: %w", err)
	}
	_, _ = io.Copy(io.Discard, r) // until the parent closes our stdin
	return nil
}

// parallel runs fn(0…n-1), dialParallel at a time.
func parallel(n int, fn func(i int)) {
	sem := make(chan struct{}, dialParallel)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}
