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
	"strings"
	"sync"
)

// childMain is the code of a helper program (`greenlane bench
// idle-clients`, `soak-clients`, `counter-proc`): it reads its orders from
// in and answers on out, one line at a time. Running the clients in
// another process keeps this one's memory figures the server's alone.
type childMain func(ctx context.Context, in io.Reader, out io.Writer) error

// child is a running helper: a child process, or (when no command is
// given) its code on a goroutine of this process behind pipes, so that the
// bench speaks to both alike.
type child struct {
	name     string
	in       io.WriteCloser
	out      *bufio.Reader
	waitOnce sync.Once
	waitErr  error
	wait     func() error
}

// maxChildDrain bounds what is read and dropped from a child that has
// more to say after its answer, while waiting for it to end.
const maxChildDrain = 1 << 20

// startChild starts cmd, or main on a goroutine when cmd is nil.
func startChild(ctx context.Context, name string, cmd *exec.Cmd, main childMain) (*child, error) {
	if cmd == nil {
		return startInProcess(ctx, name, main), nil
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("%s stdin: %w", name, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%s stdout: %w", name, err)
	}
	stderr := &limitedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s %s: %w", name, cmd.Path, err)
	}
	return &child{name: name, in: stdin, out: bufio.NewReader(stdout), wait: func() error {
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
		}
		return nil
	}}, nil
}

// startInProcess runs main on a goroutine behind two pipes.
func startInProcess(ctx context.Context, name string, main childMain) *child {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := main(ctx, inR, outW)
		inR.Close()  // a parent still writing orders is not left blocked
		outW.Close() // the parent reads EOF after the last answer
		errc <- err
	}()
	return &child{name: name, in: inW, out: bufio.NewReader(outR), wait: func() error {
		if err := <-errc; err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}}
}

// readLine reads the child's next line. At EOF the child has ended: the
// error then says why.
func (c *child) readLine() (string, error) {
	line, err := c.out.ReadString('\n')
	if err == nil {
		return strings.TrimSuffix(line, "\n"), nil
	}
	if errors.Is(err, io.EOF) {
		return "", c.fail(fmt.Errorf("%s ended early", c.name))
	}
	return "", c.fail(fmt.Errorf("read from %s: %w", c.name, err))
}

// send writes one line of orders.
func (c *child) send(line string) error {
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		return c.fail(fmt.Errorf("send %q to %s: %w", line, c.name, err))
	}
	return nil
}

// finish closes the child's stdin (its signal to stop), decodes its last
// line into result, and waits for it to end.
func (c *child) finish(result any) error {
	c.in.Close()
	line, err := c.out.ReadString('\n')
	if err != nil && line == "" {
		return c.fail(fmt.Errorf("%s ended without its result: %w", c.name, err))
	}
	if err := json.Unmarshal([]byte(line), result); err != nil {
		return c.fail(fmt.Errorf("%s result: %w: %.200s", c.name, err, line))
	}
	return c.end()
}

// stop closes the child's stdin (its signal to stop) and waits for it.
func (c *child) stop() error {
	c.in.Close()
	return c.end()
}

// fail stops the child after err and joins why it ended.
func (c *child) fail(err error) error {
	c.in.Close()
	return errors.Join(err, c.end())
}

// end waits for the child once; later calls return the same answer.
func (c *child) end() error {
	c.waitOnce.Do(func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(c.out, maxChildDrain)) // exec wants stdout read before Wait
		c.waitErr = c.wait()
	})
	return c.waitErr
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
