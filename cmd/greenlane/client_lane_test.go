package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chzyer/readline"

	"github.com/greenlane-pos/greenlane/internal/syncbuf"
)

// realLane starts serve in this process on a copy of the demo lane DB and
// returns its socket URL, its admin key and its DB path; it stops at the
// end of the test.
func realLane(t *testing.T, extra ...string) (url, adminKey, db string) {
	t.Helper()
	db, _ = laneCopy(t)
	addr, stop := startServe(t, db, "127.0.0.1:0", extra...)
	t.Cleanup(stop)
	key, err := os.ReadFile(db + ".apikey")
	if err != nil {
		t.Fatal(err)
	}
	return "ws://" + addr + "/fd1/open_websocket", strings.TrimSpace(string(key)), db
}

// startServe runs serve on db at addr until stop is called.
func startServe(t *testing.T, db, addr string, extra ...string) (string, func()) {
	t.Helper()
	var log syncbuf.Buffer
	args := append([]string{"--db", db, "--addr", addr, "--log-level", "warn"}, extra...)
	got, stop, err := runServeUntilReady(t, args, &log)
	if err != nil {
		t.Fatalf("serve: %v\n%s", err, log.String())
	}
	stopped := false
	return got, func() {
		if !stopped {
			stopped = true
			if err := stop(); err != nil {
				t.Errorf("serve: %v\n%s", err, log.String())
			}
		}
	}
}

// TestClientErrorReplies: an error reply makes the exit status 1; the
// client stops there unless --keep-going, in arguments and in a script.
func TestClientErrorReplies(t *testing.T) {
	url, key, _ := realLane(t)
	tests := []struct {
		name      string
		script    bool
		keepGoing bool
		wantErr   string
		replies   int // packets printed: the login reply and one per packet sent
	}{
		{name: "arguments", wantErr: "nope.nothing: the lane answered unknown_endpoint", replies: 3},
		{name: "arguments, keep going", keepGoing: true, wantErr: "1 of 3 packets failed", replies: 4},
		{name: "script", script: true, wantErr: "line 2: nope.nothing: the lane answered unknown_endpoint", replies: 3},
		{name: "script, keep going", script: true, keepGoing: true, wantErr: "1 of 3 lines failed", replies: 4},
	}
	packets := []string{"fd1.debug.ping", "nope.nothing", "fd1.debug.ping"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"client", "--url", url, "--key", key}
			if tt.keepGoing {
				args = append(args, "--keep-going")
			}
			if tt.script {
				clientStdin = strings.NewReader(strings.Join(packets, "\n"))
				defer func() { clientStdin = os.Stdin }()
			} else {
				args = append(args, packets...)
			}
			var out, errOut syncbuf.Buffer
			err := dispatch(args, &out, &errOut)
			var ue usageError
			if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want exit status 1 with %q", err, tt.wantErr)
			}
			if n := strings.Count(out.String(), "\n"); n != tt.replies {
				t.Fatalf("%d packets printed, want %d:\n%s", n, tt.replies, out.String())
			}
		})
	}
}

// TestClientKey: the client says which key file it used, and with no key
// at all stops before it connects, saying how to get one.
func TestClientKey(t *testing.T) {
	url, key, db := realLane(t)
	var out, errOut syncbuf.Buffer
	if err := dispatch([]string{"client", "--url", url, "--key-file", db + ".apikey", "fd1.debug.ping"}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	if !strings.Contains(errOut.String(), "logging in with the API key in "+db+".apikey") {
		t.Fatalf("stderr does not name the key file:\n%s", errOut.String())
	}
	out, errOut = syncbuf.Buffer{}, syncbuf.Buffer{}
	err := dispatch([]string{"client", "--url", url, "--key-file", filepath.Join(t.TempDir(), "none.apikey"), "fd1.debug.ping"}, &out, &errOut)
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "no API key") || !strings.Contains(err.Error(), "--key") ||
		!strings.Contains(err.Error(), "apikey create") {
		t.Fatalf("no key: err = %v, want a usage error with a hint", err)
	}
	if out.String() != "" {
		t.Fatalf("with no key the client still sent packets:\n%s", out.String())
	}
	// A socket without a key of its own, when only --key-for is given.
	err = dispatch([]string{"client", "--url", url, "--key-file", "", "--key-for", "tablet=" + key, "fd1.debug.ping"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "socket main has no API key") {
		t.Fatalf("socket without a key: %v", err)
	}
	// --no-login is the way to see what a lane answers a device that has
	// not logged in.
	out = syncbuf.Buffer{}
	err = dispatch([]string{"client", "--url", url, "--key-file", "", "--no-login", "fd1.debug.ping"}, &out, &errOut)
	if err == nil || !strings.Contains(out.String(), "login_required") {
		t.Fatalf("--no-login: %v\n%s", err, out.String())
	}
}

// TestClientReconnect: a lingering client whose lane restarts dials again,
// logs in, and reopens its firehose from the last event it saw.
func TestClientReconnect(t *testing.T) {
	db, tabletKey := laneCopy(t)
	addr, stop := startServe(t, db, "127.0.0.1:0")
	adminKey, _ := os.ReadFile(db + ".apikey")
	var out, errOut syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- dispatch([]string{"client", "--url", "ws://" + addr + "/fd1/open_websocket", "--key", strings.TrimSpace(string(adminKey)),
			"--linger", "20s", `{"a":"fd1.firehose.open_firehose","rq":"ps","v":{"event":"presell"}}`}, &out, &errOut)
	}()
	waitFor := func(what string, re *regexp.Regexp) []string {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if m := re.FindStringSubmatch(out.String()); m != nil {
				return m
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no %s in the client's output:\n%s\n%s", what, out.String(), errOut.String())
		return nil
	}
	waitFor("firehose ack", regexp.MustCompile(`"rp":"ps".*"status":"open"`))
	if err := presellWorks(addr, tabletKey); err != nil {
		t.Fatal(err)
	}
	waitFor("event", regexp.MustCompile(`"rp":"ps","sc":"presell`))
	stop()
	time.Sleep(300 * time.Millisecond) // the client notices and starts dialling
	seqs := regexp.MustCompile(`"seq":(\d+)`).FindAllStringSubmatch(out.String(), -1)
	last := seqs[len(seqs)-1][1]
	_, stop = startServe(t, db, addr)
	defer stop()
	waitFor("reconnect", regexp.MustCompile(`socket main reconnected`))
	waitFor("reopened firehose", regexp.MustCompile(`reopening .*"since":`+last+`\b`))
	if err := presellWorks(addr, tabletKey); err != nil {
		t.Fatal(err)
	}
	after := len(seqs)
	waitFor("event after the restart", regexp.MustCompile(`(?s)reconnected.*"rp":"ps","sc":"presell`))
	all := regexp.MustCompile(`"seq":(\d+)`).FindAllStringSubmatch(out.String(), -1)
	seen := map[string]bool{}
	for _, m := range all {
		if seen[m[1]] {
			t.Fatalf("event seq %s delivered twice:\n%s", m[1], out.String())
		}
		seen[m[1]] = true
	}
	if len(all) <= after {
		t.Fatalf("no new events after the restart:\n%s", out.String())
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("client: %v\n%s", err, errOut.String())
	}
}

// TestClientReadline: at a terminal, lines are edited with readline: the
// up arrow brings the last line back, and !! and :history still work.
func TestClientReadline(t *testing.T) {
	url, key, _ := realLane(t)
	pr, pw := io.Pipe()
	clientStdin = pr
	defer func() { clientStdin = os.Stdin }()
	clientTerminal = func(io.Writer) *readline.Config {
		return &readline.Config{
			FuncIsTerminal: func() bool { return true },
			FuncMakeRaw:    func() error { return nil },
			FuncExitRaw:    func() error { return nil },
			FuncGetWidth:   func() int { return 120 },
		}
	}
	defer func() { clientTerminal = func(io.Writer) *readline.Config { return nil } }()
	go func() {
		// Type: a ping, up arrow + enter (the ping again), !!, :history, end.
		for _, keys := range []string{"fd1.debug.ping\r", "\x1b[A\r", "!!\r", ":history\r"} {
			_, _ = io.WriteString(pw, keys)
			time.Sleep(300 * time.Millisecond)
		}
		pw.Close()
	}()
	var out, errOut syncbuf.Buffer
	if err := dispatch([]string{"client", "--url", url, "--key", key, "--compact"}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	for _, rq := range []string{"c1", "c2", "c3"} {
		if !strings.Contains(out.String(), `"r":"fd1.debug.ping","rp":"`+rq+`"`) {
			t.Errorf("no ping reply to %s:\n%s", rq, out.String())
		}
	}
	if !regexp.MustCompile(`3  fd1.debug.ping`).MatchString(out.String()) {
		t.Errorf(":history does not list three pings:\n%s", out.String())
	}
}

// TestClientRevokedKeyStops: a lingering client whose key is revoked does
// not keep dialling (each try would be a failed login from its address).
func TestClientRevokedKeyStops(t *testing.T) {
	url, _, db := realLane(t)
	var keyOut, errOut syncbuf.Buffer
	if err := dispatch([]string{"apikey", "create", "--db", db, "--name", "tablet-9", "--scope", "presell"}, &keyOut, &errOut); err != nil {
		t.Fatal(err)
	}
	var out syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- dispatch([]string{"client", "--url", url, "--key", strings.TrimSpace(keyOut.String()), "--linger", "4s", "fd1.debug.ping"}, &out, &errOut)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), `"rp":"c1"`) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := dispatch([]string{"apikey", "revoke", "tablet-9", "--db", db}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("client: %v", err)
	}
	if !strings.Contains(out.String(), "refused the key, not reconnecting") || strings.Count(out.String(), "reconnect attempt") > 0 {
		t.Fatalf("the client went on dialling with a revoked key:\n%s", out.String())
	}
}
