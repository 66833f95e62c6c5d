package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/greenlane-pos/greenlane/fd1client"
	"github.com/greenlane-pos/greenlane/protocol"
)

type idleResult struct {
	sockets             int
	bytesPerSocket      float64 // Go heap and stacks in use
	rssPerSocket        float64 // resident set (VmRSS); 0 where the system does not say
	goroutinesPerSocket float64
	inProcess           bool // the clients ran in this process: their memory is counted too
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
// cfg.Child set the client ends live in a child process, so the difference
// is the server's alone; without, the report says so.
func measureIdle(ctx context.Context, path string, cfg Config, log *slog.Logger) (*idleResult, error) {
	res := &idleResult{sockets: cfg.IdleSockets, inProcess: cfg.Child == nil}
	opts := laneOptions{groupWait: defaultWait, presellWorkers: cfg.PresellWorkers, log: log}
	err := withLane(ctx, path, opts, 1, protocol.ScopePresell, nil, func(l *lane, keys []string) error {
		// Freed pages go back to the system first, so that RSS holds what is
		// live, not what earlier phases left for the scavenger.
		before := readFreedSample()
		c, n, err := startChild(ctx, cfg.Child, "idle", childOrder{URL: l.presellURL(), Keys: keys, Sockets: cfg.IdleSockets})
		if err != nil {
			return err
		}
		if n != cfg.IdleSockets {
			return c.fail(fmt.Errorf("idle child opened %d sockets, want %d", n, cfg.IdleSockets))
		}
		err = sleep(ctx, settle)
		after := readFreedSample()
		per := func(a, b uint64) float64 { return float64(int64(a)-int64(b)) / float64(n) }
		res.bytesPerSocket = per(after.heapInuse+after.stackInuse, before.heapInuse+before.stackInuse)
		if before.rss > 0 {
			res.rssPerSocket = per(after.rss, before.rss)
		}
		res.goroutinesPerSocket = float64(after.goroutines-before.goroutines) / float64(n)
		return errors.Join(err, c.finish(nil))
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

// idleChild opens and logs in the sockets, says ready, and holds them
// until the orders end. Each socket gets a reader that discards what comes
// (and so answers the server's pings), as an idle tablet app would.
func idleChild(ctx context.Context, o childOrder, ready func(int) error, orders <-chan childOrder) (any, error) {
	if o.Sockets <= 0 || len(o.Keys) == 0 {
		return nil, fmt.Errorf("idle order for %d sockets with %d keys", o.Sockets, len(o.Keys))
	}
	conns := make([]*fd1client.Conn, o.Sockets)
	errs := make([]error, o.Sockets)
	parallel(o.Sockets, func(i int) {
		if conns[i], errs[i] = fd1client.Open(ctx, o.URL, o.Keys[0], protocol.PurposeNone, fd1client.Options{}); errs[i] != nil {
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
		return nil, err
	}
	for _, c := range conns {
		c.Follow(nil)
	}
	if err := ready(len(conns)); err != nil {
		return nil, err
	}
	for range orders {
	}
	return struct{}{}, nil
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
