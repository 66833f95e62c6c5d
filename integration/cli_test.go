package integration

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/internal/syncbuf"
)

// startDeterministic starts serve on db in deterministic mode and returns
// its address and a stop that ends it with SIGTERM and waits.
func startDeterministic(t *testing.T, db string) (addr string, stop func()) {
	t.Helper()
	p := relStart(t, db, "--clock", "2026-01-01T09:00:00Z", "--seed", "7")
	return p.addr, func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if _, code := p.waitExit(time.Now(), 30*time.Second); code != 0 {
			t.Fatalf("serve exited with %d:\n%s", code, p.log())
		}
	}
}

// clientScript pipes script into `greenlane client` and returns what it
// printed (one packet per line).
func clientScript(t *testing.T, addr string, script string, flags ...string) (stdout, stderr string, err error) {
	t.Helper()
	args := append([]string{"client", "--url", "ws://" + addr + "/fd1/open_websocket"}, flags...)
	cmd := exec.Command(binary, args...)
	cmd.Env = quietEnv()
	cmd.Stdin = strings.NewReader(script)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// TestFixtureResetDeterministic: a deterministic lane, reset to its fixture
// (counters and journal included), answers a script byte for byte as it
// did the first time: the same ticket, keys, times and journal seq.
func TestFixtureResetDeterministic(t *testing.T) {
	alongside(t)
	needsOwnLane(t)
	for _, reset := range [][]string{{"fixture", "reset"}, {"fixture", "load", "demo", "--replace"}} {
		t.Run(strings.Join(reset, " "), func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "lane.db")
			if out, err := cli(t, "fixture", "load", "demo", "--db", db); err != nil {
				t.Fatalf("%s %v", out, err)
			}
			keys := relKeys(t, db, map[string]string{"tablet-1": "presell", "counter-1": "counter"})
			script := strings.Join([]string{
				":open tablet ?purpose=presell",
				"salesbuilder.sale_create",
				`salesbuilder.sale_add_product {"v":{"plu":"FW","qty":2}}`,
				"salesbuilder.sale_park",
				":open counter",
				`{"a":"fd1.presell.recall","v":{"ticket":1}}`,
				`salesbuilder.sale_add_payment {"v":{"type":1,"amount":20}}`,
				"salesbuilder.salesbuilder_complete",
				`{"a":"fd1.firehose.open_firehose","rq":"ps","v":{"event":"presell","since":0}}`,
				":wait 1s",
			}, "\n")
			flags := []string{"--socket=", "--key-for", "tablet=" + keys["tablet-1"], "--key-for", "counter=" + keys["counter-1"]}
			var runs []string
			for run := 0; run < 2; run++ {
				if run == 1 {
					if out, err := cli(t, append(reset, "--db", db)...); err != nil {
						t.Fatalf("%s %v", out, err)
					}
				}
				addr, stop := startDeterministic(t, db)
				out, errOut, err := clientScript(t, addr, script, flags...)
				stop()
				if err != nil {
					t.Fatalf("run %d: %v\n%s\n%s", run+1, err, out, errOut)
				}
				runs = append(runs, out)
			}
			if runs[0] != runs[1] {
				t.Fatalf("after %s the lane answers differently:\nfirst:\n%s\nafter the reset:\n%s", strings.Join(reset, " "), runs[0], runs[1])
			}
			if !strings.Contains(runs[0], `"ticket":1`) || !strings.Contains(runs[0], `"seq":1`) {
				t.Fatalf("the script did not run as meant:\n%s", runs[0])
			}
		})
	}
}

// TestServeRefusesBadStart: mistakes on serve's command line end it at
// once with status 2 and a message naming the flag; nothing is created.
func TestServeRefusesBadStart(t *testing.T) {
	alongside(t)
	needsOwnLane(t)
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing folder", []string{"--db", filepath.Join(dir, "nonexistent", "lane.db")}, "folder " + filepath.Join(dir, "nonexistent") + " does not exist"},
		{"new file without --create", []string{"--db", filepath.Join(dir, "typo.db")}, "add --create"},
		{"pong-wait 0", []string{"--db", filepath.Join(dir, "x.db"), "--create", "--pong-wait", "0"}, "--pong-wait: must be at least 1s, got 0s"},
		{"revoke-check 0", []string{"--db", filepath.Join(dir, "x.db"), "--create", "--revoke-check", "0"}, "--revoke-check: must be at least"},
		{"presell-sweep-every 0", []string{"--db", filepath.Join(dir, "x.db"), "--create", "--presell-sweep-every", "0"}, "--presell-sweep-every: must be at least"},
		{"max-sockets 0", []string{"--db", filepath.Join(dir, "x.db"), "--create", "--max-sockets", "0"}, "--max-sockets: must be at least 1, got 0"},
		{"missing tls-cert", []string{"--db", filepath.Join(dir, "x.db"), "--create", "--tls-cert", filepath.Join(dir, "none.pem"), "--tls-key", filepath.Join(dir, "none-key.pem")}, "--tls-cert " + filepath.Join(dir, "none.pem") + ": no such file"},
		{"wrong flag", []string{"--pong-wiat", "1s"}, "see 'greenlane serve --help'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A start that is not refused would serve forever: the
			// deadline turns that into a failure.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, append([]string{"serve", "--addr", "127.0.0.1:0"}, tt.args...)...)
			cmd.Env = quietEnv()
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), tt.want) {
				t.Fatalf("serve %v: %v, want exit status 2 saying %q:\n%s", tt.args, err, tt.want, out)
			}
			if n := strings.Count(string(out), "\n"); n > 3 {
				t.Errorf("%d lines of output for one mistake:\n%s", n, out)
			}
			// One mistake is one message, said once, as main says it.
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if !strings.HasPrefix(line, "greenlane: ") {
					t.Errorf("line without the greenlane: prefix: %q in\n%s", line, out)
				}
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Fatalf("a refused start left files behind: %v", entries)
	}
	out, err := exec.Command(binary, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "greenlane ") || !strings.Contains(string(out), "go1.") {
		t.Fatalf("--version: %v %q", err, out)
	}
}

// TestClientCatchesUpAndFollowsARestore: `greenlane client --linger` whose
// firehose opens far behind (more than one replay burst: the lane's send
// queue is small) opens it again from each ack's resume until it is live;
// and once the lane DB is restored from a backup, whose journal is behind
// what the client saw, its next reopen asks from the restored journal's
// head, so it misses nothing rung up there while it was away.
func TestClientCatchesUpAndFollowsARestore(t *testing.T) {
	alongside(t)
	db := filepath.Join(t.TempDir(), "lane.db")
	small := "--send-queue-bytes=65536" // a replay burst holds 32 KiB
	lane := relStart(t, db, small)
	addr := lane.addr
	keys := relKeys(t, db, map[string]string{"display-1": "display", "tablet-1": "presell"})
	// ring runs one sale with these lines on the lane at a, as a tablet.
	ring := func(a string, lines ...string) {
		t.Helper()
		out, errOut, err := clientScript(t, a, strings.Join(append([]string{"salesbuilder.sale_create"}, lines...), "\n"),
			"--url", "ws://"+a+"/fd1/open_websocket?purpose=presell", "--key", keys["tablet-1"])
		if err != nil {
			t.Fatalf("tablet: %v\n%s\n%s", err, out, errOut)
		}
	}
	// The backup's journal has a sale in it: one restored to empty (seq 0)
	// could not be replayed from its start, as since 0 asks for no replay.
	ring(addr)
	backup := filepath.Join(t.TempDir(), "backup.db")
	if _, err := cli(t, "backup", "--db", db, "--out", backup); err != nil {
		t.Fatal(err)
	}
	// 60 events of one growing sale: far over 32 KiB together.
	lines := make([]string, 60)
	for i := range lines {
		lines[i] = `salesbuilder.sale_add_product {"v":{"pid":1001}}`
	}
	ring(addr, append(lines, `salesbuilder.sale_add_product {"v":{"pid":1004}}`)...)

	out := &syncbuf.Buffer{}
	client := exec.Command(binary, "client", "--url", "ws://"+addr+"/fd1/open_websocket", "--key", keys["display-1"],
		"--purpose", "customerdisplay", "--linger", "1h", `{"a":"fd1.firehose.open_firehose","rq":"cd","v":{"since":1}}`)
	client.Env = quietEnv()
	client.Stdout, client.Stderr = out, out
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Process.Kill(); _ = client.Wait() })
	waitFor := func(what string, re *regexp.Regexp) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if re.MatchString(out.String()) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		o := out.String() // the events are long: the end says what went wrong
		t.Fatalf("no %s in the client's output; it ends:\n%s", what, o[max(0, len(o)-3000):])
	}
	// Live at last: an ack says open after the catching_up ones, the
	// replay reached the Long Black, and a new line comes as it is rung.
	waitFor("open ack after the replay", regexp.MustCompile(`(?s)"status":"catching_up".*"rp":"cd","sc":"firehose.status".*"status":"open"`))
	waitFor("the last replayed event", regexp.MustCompile(`"description":"Long Black"`))
	ring(addr, `salesbuilder.sale_add_product {"v":{"pid":1002}}`)
	waitFor("live event", regexp.MustCompile(`"description":"Latte"`))

	// Restore: the lane stops, the backup takes the DB's place, and the
	// lane starts again on its address.
	// Not while the lane serves it.
	if out, err := cli(t, "restore", "--db", db, "--from", backup); err == nil || !strings.Contains(out+err.Error(), "a lane is serving it") {
		t.Fatalf("restore under a running lane: %v\n%s", err, out)
	}
	lane.kill9()
	restoreBackup(t, db, backup)
	lane = relStart(t, db, small, "--addr", addr)
	waitFor("reopen on the restored lane", regexp.MustCompile(`(?s)reconnected.*"rp":"cd","sc":"firehose.status"[^\n]*"status":"open"`))
	// Away again while a Cappuccino is rung up on the restored lane, at
	// seqs below what the client saw before the restore: the next reopen
	// must bring it.
	lane.kill9()
	other := relStart(t, db, small)
	ring(other.addr, `salesbuilder.sale_add_product {"v":{"pid":1003}}`)
	other.kill9()
	relStart(t, db, small, "--addr", addr)
	waitFor("the sale rung up while the client was away", regexp.MustCompile(`"description":"Cappuccino"`))
}
