package integration

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitLog waits for the lane's log to hold want, or for it to exit.
func (l *lane) waitLog(want string) {
	l.t.Helper()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(l.log(), want) {
		select {
		case <-l.exited:
			l.t.Fatalf("greenlane exited before logging %q:\n%s", want, l.log())
		case <-deadline:
			l.t.Fatalf("greenlane did not log %q within 30s:\n%s", want, l.log())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestServeSignals: SIGHUP is logged and changes nothing; SIGTERM says the
// lane is stopping and for how long it may wait; while it waits on a
// stalled client, a second SIGTERM stops it at once, saying so.
func TestServeSignals(t *testing.T) {
	l := startLane(t, "--shutdown-grace", "1h", "--handshake-timeout", "10m")
	if err := l.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l.waitLog("SIGHUP ignored: the lane reloads nothing")
	if status, _ := l.httpCall("GET", "/healthz", nil, ""); status != 200 {
		t.Fatalf("after SIGHUP, healthz answers %d", status)
	}

	// A client that sends its headers and then withholds the body holds
	// an HTTP-mode call open: the graceful stop waits for it.
	c, err := net.Dial("tcp", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /fd1/debug/ping HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{", l.addr)
	// Only a connection the lane has accepted holds the stop up: one still
	// in the kernel's queue when the listener closes is just dropped. The
	// scrape's own connection is the other one counted.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, m := l.scrape(""); m["greenlane_connections_open"] >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lane never counted the stalled connection:\n%s", l.log())
		}
	}

	if err := l.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	l.waitLog("stopping: SIGTERM; finishing requests (up to 1h0m0s, --shutdown-grace)")
	if err := l.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("a second SIGTERM did not stop the lane:\n%s", l.log())
	}
	if code := l.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(l.log(), "stopping at once: a second SIGTERM") {
		t.Fatalf("exit status %d, want 1 and a line saying why:\n%s", code, l.log())
	}
}
