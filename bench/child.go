package bench

// The bench's helpers run as `greenlane bench child KIND`, so that this
// process's memory and goroutine figures are the server's alone: idle
// (bench presell's idle sockets), tablets and counter (bench soak's).
// Without a command they run on a goroutine of this process behind pipes,
// spoken to alike.
//
// One protocol, JSON lines: the parent sends a childOrder, the child
// answers childReady, the parent may send window orders; closing the
// child's stdin tells it to stop, and its last line is its result. The
// order travels on stdin, not argv, where any user could read the keys.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
)

// ChildCommand makes the command of a child of kind; nil runs the
// children in this process.
type ChildCommand func(ctx context.Context, kind string) *exec.Cmd

type childOrder struct {
	URL     string   `json:"url,omitempty"`
	Keys    []string `json:"keys,omitempty"`
	Sockets int      `json:"sockets,omitempty"`
	DB      string   `json:"db,omitempty"`
	Window  string   `json:"window,omitempty"` // later orders: "open" or "close"
}

type childReady struct {
	Ready int `json:"ready"`
}

// childRun is a child's code: it acts on the first order, calls ready,
// follows the later orders until they end, and returns its result.
type childRun func(ctx context.Context, o childOrder, ready func(n int) error, orders <-chan childOrder) (any, error)

var childKinds = map[string]childRun{"idle": idleChild, "tablets": tabletsChild, "counter": counterChild}

// Child is a child's side (`greenlane bench child KIND`): orders on in,
// answers on out.
func Child(ctx context.Context, kind string, in io.Reader, out io.Writer) error {
	run, ok := childKinds[kind]
	if !ok {
		return fmt.Errorf("unknown bench child %q (idle, tablets, counter)", kind)
	}
	dec, enc := json.NewDecoder(in), json.NewEncoder(out)
	var first childOrder
	if err := dec.Decode(&first); err != nil {
		return fmt.Errorf("read the %s order: %w", kind, err)
	}
	orders, done := make(chan childOrder), make(chan struct{})
	defer close(done)
	go func() {
		defer close(orders)
		for {
			var o childOrder
			if dec.Decode(&o) != nil {
				return
			}
			select {
			case orders <- o:
			case <-done:
				return
			}
		}
	}()
	res, err := run(ctx, first, func(n int) error { return enc.Encode(childReady{n}) }, orders)
	if err == nil {
		err = enc.Encode(res)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	return nil
}

// child is the parent's side of a child.
type child struct {
	kind     string
	in       io.WriteCloser
	out      *bufio.Reader
	waitOnce sync.Once
	waitErr  error
	wait     func() error
}

// startChild starts a child of kind (by cmd, else in process), sends it o
// and returns once it is ready, with the count it answered.
func startChild(ctx context.Context, cmd ChildCommand, kind string, o childOrder) (*child, int, error) {
	c, err := spawn(ctx, cmd, kind)
	if err != nil {
		return nil, 0, err
	}
	var r childReady
	if err := c.send(o); err != nil {
		return nil, 0, err
	}
	if err := c.recv(&r); err != nil {
		return nil, 0, c.fail(err)
	}
	return c, r.Ready, nil
}

func spawn(ctx context.Context, cmd ChildCommand, kind string) (*child, error) {
	if cmd == nil {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		errc := make(chan error, 1)
		go func() {
			err := Child(ctx, kind, inR, outW)
			inR.Close()  // a parent still writing orders is not left blocked
			outW.Close() // the parent reads EOF after the last answer
			errc <- err
		}()
		return &child{kind: kind, in: inW, out: bufio.NewReader(outR), wait: func() error { return <-errc }}, nil
	}
	x := cmd(ctx, kind)
	stdin, err := x.StdinPipe()
	var stdout io.Reader
	if err == nil {
		stdout, err = x.StdoutPipe()
	}
	stderr := &limitedBuffer{}
	if x.Stderr = stderr; err == nil {
		err = x.Start()
	}
	if err != nil {
		return nil, fmt.Errorf("start %s child %s: %w", kind, x.Path, err)
	}
	return &child{kind: kind, in: stdin, out: bufio.NewReader(stdout), wait: func() error {
		if err := x.Wait(); err != nil {
			return fmt.Errorf("%s child: %w: %s", kind, err, strings.TrimSpace(stderr.String()))
		}
		return nil
	}}, nil
}

func (c *child) send(o childOrder) error {
	b, _ := json.Marshal(o)
	if _, err := c.in.Write(append(b, '\n')); err != nil {
		return c.fail(fmt.Errorf("send to the %s child: %w", c.kind, err))
	}
	return nil
}

// recv decodes the child's next line into v; at EOF the error says why
// the child ended.
func (c *child) recv(v any) error {
	line, err := c.out.ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return fmt.Errorf("the %s child ended early: %w", c.kind, err)
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("%s child answered %.200q: %w", c.kind, line, err)
	}
	return nil
}

// finish closes the child's stdin (its signal to stop), decodes its
// result into v (nil: dropped) and waits for it.
func (c *child) finish(v any) error {
	c.in.Close()
	if v == nil {
		v = &json.RawMessage{}
	}
	if err := c.recv(v); err != nil {
		return c.fail(err)
	}
	return c.end()
}

// fail stops the child after err and joins why it ended.
func (c *child) fail(err error) error {
	c.in.Close()
	return errors.Join(err, c.end())
}

func (c *child) end() error {
	c.waitOnce.Do(func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(c.out, 1<<20)) // exec wants stdout read before Wait
		c.waitErr = c.wait()
	})
	return c.waitErr
}

// limitedBuffer keeps the first 4 KB of a child's stderr, read once the
// child has ended.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.Buffer.Write(p[:min(len(p), max(4096-b.Len(), 0))])
	return len(p), nil
}
