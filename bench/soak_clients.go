package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// The soak-clients child (`greenlane bench soak-clients`) runs the soak's
// tablets. It speaks in lines:
//
//	parent → child  {"url": …, "keys": [… one per tablet]}   (keys on stdin, not
//	                                                          the command line,
//	                                                          where any user sees them)
//	child → parent  connected N                              (all logins done)
//	parent → child  open / close                             (the measuring window)
//	parent → child  EOF                                      (stop: each tablet
//	                                                          finishes its sale and
//	                                                          closes its socket)
//	child → parent  {"tablets": N, "latency": …, …}          (soakClientsResult)

// soakRequest is what the parent sends the soak-clients child.
type soakRequest struct {
	URL  string   `json:"url"`
	Keys []string `json:"keys"`
}

// soakClientsResult is what the tablets measured, as the child sends it.
type soakClientsResult struct {
	Tablets  int                     `json:"tablets"` // tablets that connected
	Sales    int64                   `json:"sales"`
	Requests int64                   `json:"requests"`
	Parked   int64                   `json:"parked"`
	Latency  [numKinds]histogramJSON `json:"latency"`
	Errors   map[string]int64        `json:"errors"`
	Busy     int64                   `json:"busy"`
	Samples  []string                `json:"samples"`
}

// SoakClients is the child side of the soak (`greenlane bench
// soak-clients`): it reads a soak request from in, connects the tablets,
// runs them until in is closed, following the window orders on the way,
// and writes what they measured to out.
func SoakClients(ctx context.Context, in io.Reader, out io.Writer) error {
	r := bufio.NewReader(in)
	var req soakRequest
	line, err := r.ReadString('\n')
	if err == nil {
		err = json.Unmarshal([]byte(line), &req)
	}
	if err != nil {
		return fmt.Errorf("read the soak request: %w", err)
	}
	stats := newLoadStats()
	tablets := connectTablets(ctx, req.URL, req.Keys, stats)
	if _, err := fmt.Fprintf(out, "connected %d\n", len(tablets)); err != nil {
		return fmt.Errorf("report connected: %w", err)
	}
	loadCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for _, t := range tablets {
		wg.Go(func() {
			defer t.close()
			if err := t.run(loadCtx); err != nil {
				stats.broken(err)
			}
		})
	}
	orderErr := followWindow(r, stats)
	stop()
	wg.Wait()
	if orderErr != nil {
		return orderErr
	}
	if err := json.NewEncoder(out).Encode(newSoakClientsResult(stats, len(tablets))); err != nil {
		return fmt.Errorf("report the result: %w", err)
	}
	return nil
}

// followWindow opens and closes the measuring window as the parent says,
// until the parent closes our stdin.
func followWindow(r *bufio.Reader, stats *loadStats) error {
	for {
		line, err := r.ReadString('\n')
		switch strings.TrimSpace(line) {
		case "":
		case "open":
			stats.window.Store(windowOpen)
		case "close":
			stats.window.Store(windowClosed)
		default:
			return fmt.Errorf("unknown order %q", line)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read orders: %w", err)
		}
	}
}

func newSoakClientsResult(s *loadStats, tablets int) *soakClientsResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := &soakClientsResult{
		Tablets: tablets, Sales: s.sales.Load(), Requests: s.requests.Load(), Parked: s.parked.Load(),
		Errors: s.errors, Busy: s.busy, Samples: s.samples,
	}
	for k := range s.latency {
		res.Latency[k] = s.latency[k].export()
	}
	return res
}

// stats turns the result back into the loadStats the report reads.
func (r *soakClientsResult) stats() (*loadStats, error) {
	s := newLoadStats()
	s.sales.Store(r.Sales)
	s.requests.Store(r.Requests)
	s.parked.Store(r.Parked)
	for k := range s.latency {
		if err := s.latency[k].load(r.Latency[k]); err != nil {
			return nil, fmt.Errorf("%s latency: %w", kindNames[k], err)
		}
	}
	if r.Errors != nil {
		s.errors = r.Errors
	}
	s.busy, s.samples = r.Busy, r.Samples
	return s, nil
}

// soakClients is the parent's side of a running soak-clients child.
type soakClients struct {
	*child
	connected int
}

// startSoakClients starts the child (on a goroutine when cmd is nil) and
// returns once every tablet has logged in or failed to.
func startSoakClients(ctx context.Context, newCmd func(context.Context) *exec.Cmd, req soakRequest) (*soakClients, error) {
	var cmd *exec.Cmd
	if newCmd != nil {
		cmd = newCmd(ctx)
	}
	c, err := startChild(ctx, "soak-clients", cmd, SoakClients)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, c.fail(fmt.Errorf("encode the soak request: %w", err))
	}
	if err := c.send(string(b)); err != nil {
		return nil, err
	}
	line, err := c.readLine()
	if err != nil {
		return nil, err
	}
	n, ok := strings.CutPrefix(line, "connected ")
	connected, perr := strconv.Atoi(n)
	if !ok || perr != nil {
		return nil, c.fail(fmt.Errorf("soak-clients answered %q, want \"connected N\"", line))
	}
	return &soakClients{child: c, connected: connected}, nil
}

// order sends a window order ("open" or "close").
func (c *soakClients) order(o string) error { return c.send(o) }

// finish stops the tablets, waits until every socket is closed and the
// child has ended, and returns what they measured.
func (c *soakClients) finish() (*loadStats, error) {
	var res soakClientsResult
	if err := c.child.finish(&res); err != nil {
		return nil, err
	}
	return res.stats()
}

// histogramJSON is a histogram on the wire: its non-empty buckets only.
type histogramJSON struct {
	Buckets [][2]int64 `json:"buckets"` // [bucket index, count]
	Max     int64      `json:"max"`     // nanoseconds
}

// export copies the histogram for the wire.
func (h *histogram) export() histogramJSON {
	j := histogramJSON{Max: h.max.Load()}
	for i := range h.counts {
		if n := h.counts[i].Load(); n > 0 {
			j.Buckets = append(j.Buckets, [2]int64{int64(i), n})
		}
	}
	return j
}

// load fills an empty histogram from the wire.
func (h *histogram) load(j histogramJSON) error {
	for _, b := range j.Buckets {
		if b[0] < 0 || b[0] >= bucketCount || b[1] < 0 {
			return fmt.Errorf("bucket %d count %d out of range", b[0], b[1])
		}
		h.counts[b[0]].Add(b[1])
		h.total.Add(b[1])
	}
	h.max.Store(max(j.Max, 0))
	return nil
}
