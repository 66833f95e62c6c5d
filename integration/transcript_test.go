package integration

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// replay runs `greenlane replay` on transcript files against a lane, with
// the lane's admin key for every socket.
func (l *lane) replay(files ...string) (string, error) {
	l.t.Helper()
	args := append([]string{"replay", "--url", "ws://" + l.addr, "--key", l.key, "--timeout", "10s"}, files...)
	cmd := exec.Command(binary, args...)
	cmd.Env = quietEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		// A transcript stops where it fails, and may leave open the sale
		// it was working on: its report names it (the k of the packets
		// sent and got), and the end of a -url run voids it as the run's.
		for _, m := range reportedSale.FindAllSubmatch(out, -1) {
			runSales.noteMade(string(m[1]))
		}
	}
	return string(out), err
}

// reportedSale is a sale key in a replay's report of a failure.
var reportedSale = regexp.MustCompile(`"k":"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"`)

// transcripts are the shipped transcripts, testdata/*.jsonl.
func transcripts(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts in testdata: %v", err)
	}
	return files
}

// TestTranscripts replays every shipped transcript against a fresh lane.
func TestTranscripts(t *testing.T) {
	alongside(t)
	for _, file := range transcripts(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			l := startLane(t)
			out, err := l.replay(file)
			if err != nil || !strings.HasPrefix(out, "ok   "+filepath.Base(file)) {
				t.Fatalf("replay %s: %v (the shipped transcripts expect the demo fixture's data)\n%s", file, err, out)
			}
		})
	}
}

// TestTranscriptDiff: a transcript that no longer matches fails with a
// report that points at the field, with both values.
func TestTranscriptDiff(t *testing.T) {
	alongside(t)
	flow := filepath.Join("testdata", "presell_flow.jsonl")

	t.Run("an expectation changed in the transcript", func(t *testing.T) {
		l := startLane(t)
		// This checks the report of one change made to the transcript,
		// so the lane must answer the transcript as shipped (with -url
		// it may be a lane whose catalogue was changed).
		if out, err := l.replay(flow); err != nil {
			t.Fatalf("the lane's data differs from the data %s was recorded with (the demo fixture): it fails before this test changes it, and a report of that change cannot be checked here. What differs:\n%s", flow, out)
		}
		b, err := os.ReadFile(flow)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if !strings.Contains(text, `"unitprice":5.5`) {
			t.Fatal(`test bug: presell_flow.jsonl has no "unitprice":5.5 (a flat white)`)
		}
		wrong := filepath.Join(t.TempDir(), "wrong_price.jsonl")
		if err := os.WriteFile(wrong, []byte(strings.Replace(text, `"unitprice":5.5`, `"unitprice":5.75`, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := l.replay(wrong)
		wantFailure(t, out, err,
			`FAIL wrong_price.jsonl:14: the reply to rq "c3" on socket "tablet" does not match`,
			`data.rows[0].lines[0].unitprice: expected 5.75, got 5.5`,
			`sent (line 13, socket "tablet"): {"a":"salesbuilder.sale_add_product","rq":"c3","k":"`,
			`got: {"r":"salesbuilder.sale_add_product","rp":"c3"`)
	})

	t.Run("a product price changed in the lane DB", func(t *testing.T) {
		l := startLane(t)
		sqliteExec(t, l.db, `UPDATE products SET price_cents = 620 WHERE plu = 'FW'`)
		out, err := l.replay(flow)
		wantFailure(t, out, err,
			`FAIL presell_flow.jsonl:14: the reply to rq "c3" on socket "tablet" does not match`,
			`data.rows[0].saletotal: expected 11, got 12.4`,
			`data.rows[0].lines[0].unitprice: expected 5.5, got 6.2`,
			`only numbers differ: the lane's data (a price, a discount) is most likely not the data the transcript was recorded with`,
			`in: # Two flat whites, 250 g of ham (priced per kg), a 10% customer; each change reaches the display.`)
	})
}

// TestTranscriptDiffOnChangedLane: TestTranscriptDiff run with -url
// against a lane whose catalogue was changed fails saying that the lane's
// data differs, and what, rather than that the report lacks a line.
func TestTranscriptDiffOnChangedLane(t *testing.T) {
	alongside(t)
	l := startLane(t)
	sqliteExec(t, l.db, `UPDATE products SET price_cents = 620 WHERE plu = 'FW'`)
	cmd := exec.Command(os.Args[0], "-test.run", "^TestTranscriptDiff$/^an_expectation", "-test.count", "1",
		"-url", "ws://"+l.addr, "-key", l.key)
	cmd.Env = append(quietEnv(), builtBinaryEnv+"="+binary)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("TestTranscriptDiff on a lane with another price: %v, want it to fail\n%s", err, out)
	}
	for _, want := range []string{
		"the lane's data differs from the data testdata/presell_flow.jsonl was recorded with (the demo fixture)",
		"data.rows[0].lines[0].unitprice: expected 5.5, got 6.2",
		"only numbers differ: the lane's data",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("its failure lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "the report lacks") {
		t.Errorf("its failure blames the report:\n%s", out)
	}
}

func wantFailure(t *testing.T, out string, err error, want ...string) {
	t.Helper()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("replay of a wrong transcript: err = %v, want exit status 1\n%s", err, out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("the report lacks %q:\n%s", w, out)
		}
	}
}

// TestTranscriptRecordAndReplay records a presell with `greenlane client
// --record`, driven line by line on its standard input as a person would
// type (each line waits for its reply, and later lines use the sale key
// and ticket the lane gave), then replays the recording against a second,
// fresh lane, and once more after a price change there.
func TestTranscriptRecordAndReplay(t *testing.T) {
	alongside(t)
	recorded := filepath.Join(t.TempDir(), "recorded.jsonl")
	a := startLane(t)
	c := startClient(t, a, "--socket=", "--record", recorded)
	c.say(":open tablet ?purpose=presell", "login")
	pk, _ := c.say(`{"a":"salesbuilder.sale_create","rq":"t1"}`, "t1").saleField(t, "physkey").(string)
	c.say(":open display customerdisplay", "login")
	// Every call names the sale (k): a lane's "top active sale" of a key
	// depends on what else that key did, on a shared server above all.
	c.say(`{"a":"fd1.firehose.open_firehose","rq":"cd","k":"`+pk+`","v":{"event":"custdisp.sale"}}`, "cd")
	c.say(`@tablet {"a":"salesbuilder.sale_add_product","rq":"t2","k":"`+pk+`","v":{"plu":"FW","qty":2}}`, "t2")
	ticket := c.say(`@tablet {"a":"salesbuilder.sale_park","rq":"t3","k":"`+pk+`"}`, "t3").saleField(t, "ticket")
	c.say(":open counter", "login")
	c.say(fmt.Sprintf(`{"a":"fd1.presell.recall","rq":"k1","v":{"ticket":%v}}`, ticket), "k1")
	c.say(`{"a":"salesbuilder.sale_add_payment","rq":"k2","k":"`+pk+`","v":{"type":1,"amount":20}}`, "k2")
	if done := c.say(`{"a":"salesbuilder.salesbuilder_complete","rq":"k3","k":"`+pk+`"}`, "k3"); done.saleField(t, "phase") != 1.0 {
		t.Fatalf("complete: %s", done.raw)
	}
	c.finish()

	rec, err := os.ReadFile(recorded)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`{"open":"tablet","url_query":"?purpose=presell","login":{}}`, `"k":"$capture:physkey1"`,
		`"v":{"ticket":"$ticket1"}`, `"rq":"k3","k":"$physkey1"`, `{"socket":"display","expect":{"rp":"cd","sc":"custdisp.sale.lines.add"`} {
		if !strings.Contains(string(rec), want) {
			t.Errorf("the recording lacks %s:\n%s", want, rec)
		}
	}
	if strings.Contains(string(rec), pk) {
		t.Errorf("the recording holds the sale key %s itself, not a placeholder:\n%s", pk, rec)
	}

	b := startLane(t) // fresh (or, with -url, the same server once more)
	if out, err := b.replay(recorded); err != nil || !strings.HasPrefix(out, "ok   recorded.jsonl") {
		t.Fatalf("replay of the recording: %v\n%s", err, out)
	}
	t.Run("after a price change", func(t *testing.T) {
		sqliteExec(t, b.db, `UPDATE products SET price_cents = 620 WHERE plu = 'FW'`)
		out, err := b.replay(recorded)
		// The first line to differ is the tablet's reply or the display's
		// event, whichever the recording caught first (the event often
		// beats the reply); both show the new total after sending t2.
		wantFailure(t, out, err, `saletotal: expected 11, got 12.4`, `"rq":"t2"`)
	})
}

// TestTranscriptRecordStoppedBySignal: a recording client stopped by
// Ctrl-C or SIGTERM half way through a session leaves nothing beside FILE
// (no FILE.*.recording), FILE as it was, and dies of that signal.
func TestTranscriptRecordStoppedBySignal(t *testing.T) {
	alongside(t)
	l := startLane(t)
	for _, tt := range []struct {
		sig      syscall.Signal
		existing string // FILE before the session, replaced only with --force
	}{
		{syscall.SIGINT, ""},
		{syscall.SIGTERM, `{"#":"an older recording"}` + "\n"},
	} {
		t.Run(tt.sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "cut.jsonl")
			flags := []string{"--record", file}
			if tt.existing != "" {
				if err := os.WriteFile(file, []byte(tt.existing), 0o644); err != nil {
					t.Fatal(err)
				}
				flags = append(flags, "--force")
			}
			c := startClient(t, l, flags...)
			c.say(`{"a":"fd1.debug.ping","rq":"p1"}`, "p1")
			if aside, _ := filepath.Glob(file + ".*.recording"); len(aside) != 1 {
				t.Fatalf("test bug: no recording under way beside %s: %v", file, aside)
			}
			if err := c.cmd.Process.Signal(tt.sig); err != nil {
				t.Fatal(err)
			}
			err := c.cmd.Wait()
			ws, _ := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ws.Signaled() || ws.Signal() != tt.sig {
				t.Errorf("the client ended with %v, want killed by %v", err, tt.sig)
			}
			entries, _ := os.ReadDir(dir)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			want := []string(nil)
			if tt.existing != "" {
				want = []string{"cut.jsonl"}
			}
			if strings.Join(names, " ") != strings.Join(want, " ") {
				t.Errorf("left in the folder: %v, want %v", names, want)
			}
			if b, _ := os.ReadFile(file); string(b) != tt.existing {
				t.Errorf("%s holds %q, want it as it was (%q)", file, b, tt.existing)
			}
		})
	}
}

// client is `greenlane client` driven through its standard input.
type client struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	log   []string // every line it printed
}

func startClient(t *testing.T, l *lane, flags ...string) *client {
	t.Helper()
	args := append([]string{"client", "--url", "ws://" + l.addr, "--key", l.key}, flags...)
	c := &client{t: t, cmd: exec.Command(binary, args...), lines: make(chan string, 1000)}
	c.cmd.Env = quietEnv()
	c.cmd.Stderr = os.Stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Process.Kill()
			_ = c.cmd.Wait()
		}
	})
	return c
}

// say types a line and returns the reply whose rp is rq. The client's
// output is one packet per line (it is not a terminal), labelled "@name "
// while several sockets are open.
func (c *client) say(line, rq string) *packet {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		c.t.Fatalf("type %q: %v", line, err)
	}
	timeout := time.After(20 * time.Second)
	for {
		select {
		case out, ok := <-c.lines:
			if !ok {
				c.t.Fatalf("the client ended while waiting for rp %q after %q:\n%s", rq, line, strings.Join(c.log, "\n"))
			}
			c.log = append(c.log, out)
			if strings.HasPrefix(out, "@") {
				_, out, _ = strings.Cut(out, " ")
			}
			p := &packet{raw: []byte(out)}
			if err := json.Unmarshal(p.raw, p); err != nil {
				c.t.Fatalf("client printed a line that is not a packet: %q", out)
			}
			noteSales(p.raw)
			if p.R != "" && string(p.RP) == `"`+rq+`"` {
				if p.Error != nil {
					c.t.Fatalf("%s: %s", line, p.raw)
				}
				return p
			}
		case <-timeout:
			c.t.Fatalf("no reply %q to %q within 20s:\n%s", rq, line, strings.Join(c.log, "\n"))
		}
	}
}

// finish ends the input and waits for the client to exit cleanly.
func (c *client) finish() {
	c.t.Helper()
	_ = c.stdin.Close()
	for out := range c.lines {
		c.log = append(c.log, out)
	}
	if err := c.cmd.Wait(); err != nil {
		c.t.Fatalf("client: %v\n%s", err, strings.Join(c.log, "\n"))
	}
}

// saleField is a field of the sale in a reply (data.rows[0], or data).
func (p *packet) saleField(t *testing.T, name string) any {
	t.Helper()
	d := p.data(t)
	if rows, ok := d["rows"].([]any); ok && len(rows) > 0 {
		d, _ = rows[0].(map[string]any)
	}
	v, ok := d[name]
	if !ok {
		t.Fatalf("no %s in %s", name, p.raw)
	}
	return v
}

// TestTranscriptNeverPassesEmpty: a recording whose lane could not be
// reached leaves the transcript it was to replace as it was, and a
// transcript with nothing to send fails its replay.
func TestTranscriptNeverPassesEmpty(t *testing.T) {
	alongside(t)
	shipped, err := os.ReadFile(filepath.Join("testdata", "presell_flow.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keep := filepath.Join(dir, "keep.jsonl")
	if err := os.WriteFile(keep, shipped, 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "ws://" + ln.Addr().String()
	ln.Close()

	for _, force := range []bool{false, true} {
		args := []string{"client", "--url", refused, "--key", "k", "--record", keep, "debug.ping"}
		if force {
			args = append(args, "--force")
		}
		cmd := exec.Command(binary, args...)
		cmd.Env = quietEnv()
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("client --force=%v against a closed port: exit 0\n%s", force, out)
		}
		if b, _ := os.ReadFile(keep); string(b) != string(shipped) {
			t.Fatalf("client --force=%v changed the transcript to %d bytes:\n%s", force, len(b), out)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("left beside the transcript: %v", entries)
	}

	for name, text := range map[string]string{"empty.jsonl": "", "comment.jsonl": `{"#":"nothing else"}` + "\n"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(binary, "replay", "--url", refused, "--key", "k", p)
		cmd.Env = quietEnv()
		out, err := cmd.CombinedOutput()
		wantFailure(t, string(out), err, "FAIL "+name+": nothing to replay")
	}
}

// TestTranscriptKeyByName: a transcript that checks what a presell key may
// not do names that key ("$KEY_tablet"); replayed without it, it fails at
// the login line naming the flag, instead of logging in with the admin key.
// A mistyped --key-for is refused.
func TestTranscriptKeyByName(t *testing.T) {
	alongside(t)
	l := startLane(t)
	presell := l.newKey("tablet-1", "presell")
	file := filepath.Join(t.TempDir(), "refused.jsonl")
	text := `{"#":"a presell key may not recall a presell"}
{"open":"tablet","url_query":"?purpose=presell","login":{"key":"$KEY_tablet"}}
{"socket":"tablet","send":{"a":"fd1.presell.recall","rq":"k1","v":{"ticket":1}}}
{"socket":"tablet","expect":{"r":"fd1.presell.recall","rp":"k1","error":{"code":"forbidden"}}}
`
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := l.replay(file, "--key-for", "tablet="+presell); err != nil || !strings.HasPrefix(out, "ok   refused.jsonl") {
		t.Fatalf("replay with the presell key: %v\n%s", err, out)
	}
	out, err := l.replay(file)
	wantFailure(t, out, err, "FAIL refused.jsonl:2: no key for $KEY_tablet: give --key-for tablet=KEY")

	out, err = l.replay(file, "--key-for", "tablt="+presell)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(out, "no transcript uses a key named tablt (they use: tablet)") {
		t.Fatalf("a mistyped --key-for: %v, want exit status 2 naming tablt\n%s", err, out)
	}
}
