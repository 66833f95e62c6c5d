package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestClientPacket(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{in: "debug.ping", want: `{"a":"debug.ping","rq":"c1"}`},
		{in: `salesbuilder.sale_add_product {"v":{"qty":2,"plu":"FW"}}`, want: `{"a":"salesbuilder.sale_add_product","rq":"c1","v":{"qty":2,"plu":"FW"}}`},
		{in: `x {}`, want: `{"a":"x","rq":"c1"}`},
		{in: `{"a":"x","qo":{"z":true,"a":true}}`, want: `{"a":"x","rq":"c1","qo":{"z":true,"a":true}}`},
		{in: `{"v":{},"a":"x"}`, want: `{"rq":"c1","v":{},"a":"x"}`},
		{in: `{"a":"x","rq":7}`, want: `{"a":"x","rq":7}`},
		{in: `{"a":"x",`, err: "not a JSON packet"},
		{in: `x [1]`, err: "not a JSON packet: not an object"},
	}
	for _, tt := range tests {
		s := &clientSession{}
		got, err := s.packet(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("%s → %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestClientHistory(t *testing.T) {
	s := &clientSession{}
	if _, err := s.expandHistory("!!"); err == nil {
		t.Error("!! with no history expanded")
	}
	s.history = []string{"debug.ping", ":open t"}
	tests := map[string]string{"!!": ":open t", "!1": "debug.ping", "!2": ":open t", "plain": "plain"}
	for in, want := range tests {
		if got, err := s.expandHistory(in); err != nil || got != want {
			t.Errorf("%s → %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"!0", "!3", "!x"} {
		if _, err := s.expandHistory(bad); err == nil {
			t.Errorf("%s expanded", bad)
		}
	}
}

// TestClientShellWords: "exit", "quit" and "help" typed as a shell takes
// them are answered with the client's command, never sent to the lane.
func TestClientShellWords(t *testing.T) {
	s := &clientSession{}
	for _, word := range []string{"exit", "quit", "help"} {
		err := s.do(word)
		if err == nil || !strings.Contains(err.Error(), ":"+word) {
			t.Errorf("%s: %v, want a pointer to :%s", word, err, word)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	fs := newFlags("t", "t", io.Discard)
	url := fs.String("url", "", "")
	keys := keyFlag{}
	fs.Var(keys, "key-for", "")
	pos, err := parseInterspersed(fs, []string{"a.jsonl", "--url", "ws://x", "b.jsonl", "--key-for", "Tablet=k1", "--", "-odd"})
	if err != nil || *url != "ws://x" || strings.Join(pos, " ") != "a.jsonl b.jsonl -odd" || keys["tablet"] != "k1" {
		t.Fatalf("pos %v url %q keys %v err %v", pos, *url, keys, err)
	}
	if _, err := parseInterspersed(newFlags("t", "t", io.Discard), []string{"x", "--nope"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
	if err := (keyFlag{}).Set("novalue"); err == nil {
		t.Fatal("--key-for without = accepted")
	}
}

// fakeLane is a minimal FD1 server: login, a firehose event before each
// reply, and a reply whose price the test can change.
type fakeLane struct {
	mu    sync.Mutex
	price string
	keys  map[string]bool
}

func (f *fakeLane) serve(w http.ResponseWriter, r *http.Request) {
	ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	n := 0
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var p struct {
			A  string          `json:"a"`
			RQ json.RawMessage `json:"rq"`
			V  struct {
				APIKey string `json:"apikey"`
			} `json:"v"`
		}
		_ = json.Unmarshal(msg, &p)
		f.mu.Lock()
		price, ok := f.price, f.keys[p.V.APIKey]
		f.mu.Unlock()
		n++
		var out []string
		switch p.A {
		case "fd1.session.login":
			if !ok {
				out = append(out, fmt.Sprintf(`{"r":"fd1.session.login","rp":%s,"error":{"code":"login_failed","message":"no"},"data":{}}`, p.RQ))
			} else {
				out = append(out, fmt.Sprintf(`{"r":"fd1.session.login","rp":%s,"data":{"valid":1}}`, p.RQ))
			}
		case "sale":
			pk := fmt.Sprintf("01a2195%d-c721-7b57-8aaf-45a06f576d3b", n)
			out = append(out, fmt.Sprintf(`{"rp":"fh","sc":"custdisp.sale.add","v":{"salephyskey":%q},"seq":%d}`, pk, 100+n),
				fmt.Sprintf(`{"r":"sale","rp":%s,"k":%q,"data":{"physkey":%q,"price":%s,"startdt":"%s"}}`, p.RQ, pk, pk, price, time.Now().Format(time.DateTime)))
		default:
			out = append(out, fmt.Sprintf(`{"r":%q,"rp":%s,"data":{"echo":%s}}`, p.A, p.RQ, msg))
		}
		for _, o := range out {
			if ws.WriteMessage(websocket.TextMessage, []byte(o)) != nil {
				return
			}
		}
	}
}

func startFake(t *testing.T) (*fakeLane, string) {
	f := &fakeLane{price: "5.5", keys: map[string]bool{"k": true}}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, "ws://" + strings.TrimPrefix(srv.URL, "http://")
}

func TestClientOneShot(t *testing.T) {
	_, url := startFake(t)
	var out, errOut bytes.Buffer
	err := dispatch([]string{"client", "--url", url + "/fd1/open_websocket", "--key", "k", "debug.ping", `x {"v":{"b":1}}`}, &out, &errOut)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if err != nil || len(lines) != 3 {
		t.Fatalf("err %v, output:\n%s%s", err, out.String(), errOut.String())
	}
	if lines[0] != `{"r":"fd1.session.login","rp":"login","data":{"valid":1}}` ||
		lines[2] != `{"r":"x","rp":"c2","data":{"echo":{"a":"x","rq":"c2","v":{"b":1}}}}` {
		t.Fatalf("output:\n%s", out.String())
	}
	err = dispatch([]string{"client", "--url", url, "--key", "wrong", "debug.ping"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "login on socket main failed") {
		t.Fatalf("wrong key: %v", err)
	}
}

// TestClientRecordAndReplay records a scripted session with two sockets,
// replays it green, then against a lane whose price changed.
func TestClientRecordAndReplay(t *testing.T) {
	fake, url := startFake(t)
	dir := t.TempDir()
	rec := filepath.Join(dir, "s.jsonl")
	clientStdin = strings.NewReader(strings.Join([]string{
		"# a sale, seen by a display",
		":open display customerdisplay",
		"@display fd1.firehose.open_firehose",
		"sale",
		":use main",
		"sale",
		"!!",
		":nonsense",
	}, "\n"))
	defer func() { clientStdin = os.Stdin }()
	var out, errOut bytes.Buffer
	err := dispatch([]string{"client", "--url", url, "--key", "k", "--record", rec, "--linger", "1ms", "--keep-going"}, &out, &errOut)
	if err == nil || err.Error() != "1 of 7 lines failed" || !strings.Contains(errOut.String(), ":nonsense: unknown command") {
		t.Fatalf("scripted run: err %v\n%s", err, errOut.String())
	}
	b, _ := os.ReadFile(rec)
	text := string(b)
	for _, want := range []string{
		`{"#":"a sale, seen by a display"}`,
		`{"open":"display","login":{"purpose":"customerdisplay"}}`,
		`{"socket":"display","expect":{"rp":"fh","sc":"custdisp.sale.add","v":{"salephyskey":"$capture:salephyskey1"},"seq":"$number"}}`,
		`{"socket":"display","expect":{"r":"sale","rp":"c2","k":"$salephyskey1","data":{"physkey":"$salephyskey1","price":5.5,"startdt":"$datetime"}}}`,
		`{"socket":"main","send":{"a":"sale","rq":"c4"}}`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("recording lacks %s:\n%s", want, text)
		}
	}

	out.Reset()
	if err := dispatch([]string{"replay", rec, "--url", url, "--key", "k"}, &out, &errOut); err != nil || !strings.HasPrefix(out.String(), "ok   s.jsonl: ") {
		t.Fatalf("replay: %v\n%s", err, out.String())
	}
	fake.mu.Lock()
	fake.price = "6"
	fake.mu.Unlock()
	out.Reset()
	err = dispatch([]string{"replay", "--timeout", "2s", rec, "--url", url, "--key", "k"}, &out, &errOut)
	if !errors.Is(err, errReplayFailed) {
		t.Fatalf("replay against a changed price: err %v\n%s", err, out.String())
	}
	for _, want := range []string{"FAIL s.jsonl:", `the reply to rq "c2" on socket "display" does not match`, "data.price: expected 5.5, got 6"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestReplayUsage(t *testing.T) {
	var out bytes.Buffer
	var ue usageError
	if err := dispatch([]string{"replay"}, &out, &out); !errors.As(err, &ue) {
		t.Fatalf("replay with no file: %v", err)
	}
	if err := dispatch([]string{"replay", "x.jsonl", "--url", "ftp://x"}, &out, &out); !errors.As(err, &ue) {
		t.Fatalf("replay with a bad URL: %v", err)
	}
	if err := dispatch([]string{"replay", "--help"}, &out, &out); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "--key-for") {
		t.Fatalf("replay --help: %v\n%s", err, out.String())
	}
	out.Reset()
	err := dispatch([]string{"replay", filepath.Join(t.TempDir(), "missing.jsonl"), "--url", "ws://127.0.0.1:1", "--key", "k"}, &out, &out)
	if !errors.Is(err, errReplayFailed) || !strings.Contains(out.String(), "FAIL ") {
		t.Fatalf("missing file: %v\n%s", err, out.String())
	}
	// A line that cannot be parsed is reported as NAME:LINE:, like a line
	// that fails in the replay.
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	if err := os.WriteFile(bad, []byte("{\"#\":\"fine\"}\n{\"expcet\":{}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = dispatch([]string{"replay", bad, "--url", "ws://127.0.0.1:1", "--key", "k"}, &out, &out)
	if !errors.Is(err, errReplayFailed) || !strings.HasPrefix(out.String(), "FAIL bad.jsonl:2: not a transcript line: ") {
		t.Fatalf("a bad line: %v\n%s", err, out.String())
	}
}

// refusedURL is a socket URL where nothing listens: connecting is refused.
func refusedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "ws://" + addr
}

// TestClientRecordOnlyWhatRan: --record FILE is written only when the
// session ran to its end and sent a packet; an existing FILE is replaced
// only with --force, and otherwise is left byte for byte as it was, with no
// temporary file beside it.
func TestClientRecordOnlyWhatRan(t *testing.T) {
	_, url := startFake(t)
	const old = "{\"#\":\"the old transcript\"}\n"
	tests := []struct {
		name     string
		existing bool
		url      string // default: the fake lane
		args     []string
		stdin    string
		wantErr  string // "" for success
		want     string // FILE's contents contain this ("": FILE must not exist)
	}{
		{name: "a refused connection leaves FILE as it was", existing: true, url: refusedURL(t),
			args: []string{"--force", "sale"}, wantErr: "(nothing recorded: FILE is as it was)", want: old},
		{name: "a refused connection writes no new FILE", url: refusedURL(t),
			args: []string{"sale"}, wantErr: "(nothing recorded: FILE was not written)"},
		{name: "an existing FILE is refused without --force", existing: true,
			args: []string{"sale"}, wantErr: "FILE exists; give --force to replace it", want: old},
		{name: "--force replaces FILE", existing: true,
			args: []string{"--force", "sale"}, want: `{"socket":"main","send":{"a":"sale","rq":"c1"}}`},
		{name: "a new FILE", args: []string{"sale"}, want: `{"socket":"main","send":{"a":"sale","rq":"c1"}}`},
		{name: "a script stopped at a failed line is not kept", existing: true,
			args: []string{"--force"}, stdin: "sale\n:nonsense\nsale\n", wantErr: "the rest was not run", want: old},
		{name: "--keep-going runs it all: kept", existing: true,
			args: []string{"--force", "--keep-going"}, stdin: "sale\n:nonsense\nsale\n", wantErr: "1 of 3 lines failed", want: `"rq":"c2"`},
		{name: "a session that sent nothing is not kept", existing: true,
			args: []string{"--force"}, stdin: "# only a comment\n", wantErr: "no packet was sent, nothing to replay (FILE is as it was)", want: old},
		{name: "a folder is refused", args: []string{"sale"}, wantErr: "is a folder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			rec := filepath.Join(dir, "s.jsonl")
			if tt.existing {
				if err := os.WriteFile(rec, []byte(old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"client", "--url", url, "--key", "k", "--linger", "1ms"}
			if tt.url != "" {
				args[2] = tt.url
			}
			if strings.Contains(tt.name, "folder") {
				rec = dir
			}
			args = append(args, "--record", rec)
			clientStdin = strings.NewReader(tt.stdin)
			defer func() { clientStdin = os.Stdin }()
			var out, errOut bytes.Buffer
			err := dispatch(append(args, tt.args...), &out, &errOut)
			wantErr := strings.ReplaceAll(tt.wantErr, "FILE", rec)
			switch {
			case wantErr == "" && err != nil:
				t.Fatalf("err %v\n%s", err, errOut.String())
			case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
				t.Fatalf("err %v, want %q", err, wantErr)
			}
			if rec == dir {
				return
			}
			b, rerr := os.ReadFile(rec)
			switch {
			case tt.want == "" && !errors.Is(rerr, fs.ErrNotExist):
				t.Fatalf("FILE was written: %v %q", rerr, b)
			case tt.want != "" && !strings.Contains(string(b), tt.want):
				t.Fatalf("FILE holds %q, want %q", b, tt.want)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if e.Name() != "s.jsonl" {
					t.Errorf("left beside FILE: %s", e.Name())
				}
			}
			if st, err := os.Stat(rec); err == nil && tt.want != old && st.Mode().Perm() != 0o644 {
				t.Errorf("FILE mode %v, want 0644", st.Mode().Perm())
			}
		})
	}
}

// TestReplayKeys: a key a transcript asks for by name must be given, a
// --key-for name no transcript uses is refused as a typo, and a transcript
// that sends nothing fails.
func TestReplayKeys(t *testing.T) {
	_, url := startFake(t)
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	named := write("named.jsonl", `{"open":"tablet","login":{"key":"$KEY_tablet"}}
{"socket":"tablet","send":{"a":"x","rq":"c1"}}
{"socket":"tablet","expect":{"r":"x","rp":"c1"}}
`)
	plain := write("plain.jsonl", `{"open":"main","login":{"key":"$KEY"}}
{"send":{"a":"x","rq":"c1"}}
{"expect":{"r":"x","rp":"c1"}}
`)
	empty := write("empty.jsonl", "")
	comment := write("comment.jsonl", "{\"#\":\"all that is left\"}\n")
	tests := []struct {
		name  string
		args  []string
		want  []string // in the output, or the error of a usage error
		usage bool
		fail  bool
	}{
		{name: "a key asked for by name and given", args: []string{named, "--key", "admin", "--key-for", "tablet=k"},
			want: []string{"ok   named.jsonl: 3 lines, 1 packets sent, 1 matched"}},
		{name: "a key asked for by name, not given: the line fails, not the default key", args: []string{named, "--key", "k"},
			want: []string{"FAIL named.jsonl:1: no key for $KEY_tablet: give --key-for tablet=KEY"}, fail: true},
		{name: "a mistyped --key-for is refused", args: []string{named, "--key", "k", "--key-for", "tablt=k"},
			want: []string{"--key-for tablt=…: no transcript uses a key named tablt (they use: tablet)"}, usage: true},
		{name: "a --key-for with transcripts that use no named key", args: []string{plain, "--key", "k", "--key-for", "tablet=k"},
			want: []string{"--key-for tablet=…: no transcript uses a key by name"}, usage: true},
		{name: "a --key-for used by one transcript of several", args: []string{plain, named, "--key", "k", "--key-for", "TABLET=k"},
			want: []string{"ok   plain.jsonl:", "ok   named.jsonl:"}},
		{name: "an empty transcript fails", args: []string{empty, plain, "--key", "k"},
			want: []string{"FAIL empty.jsonl: nothing to replay: no line sends a packet", "ok   plain.jsonl:"}, fail: true},
		{name: "a comment-only transcript fails", args: []string{comment, "--key", "k"},
			want: []string{"FAIL comment.jsonl: nothing to replay"}, fail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := dispatch(append([]string{"replay", "--url", url, "--timeout", "2s"}, tt.args...), &out, &out)
			var ue usageError
			text := out.String()
			switch {
			case tt.usage:
				if !errors.As(err, &ue) {
					t.Fatalf("err %v, want a usage error\n%s", err, text)
				}
				text = err.Error()
			case tt.fail && !errors.Is(err, errReplayFailed), !tt.fail && err != nil:
				t.Fatalf("err %v (want failed: %v)\n%s", err, tt.fail, text)
			}
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("lacks %q:\n%s", w, text)
				}
			}
		})
	}
}

// TestClientRefusesBeforeDialling: a wait too short to get any reply and
// a packet argument that is not JSON are usage errors, found before the
// client connects (the URL names no lane: dialling would fail otherwise).
func TestClientRefusesBeforeDialling(t *testing.T) {
	url := "ws://127.0.0.1:1/fd1/open_websocket"
	tests := []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"negative wait", []string{"--wait", "-1s", "debug.ping"}, "", "--wait -1s"},
		{"zero wait", []string{"--wait", "0", "debug.ping"}, "", "at least 100ms"},
		{"wait from the environment", []string{"debug.ping"}, "-1s", "GREENLANE_WAIT"},
		{"malformed JSON", []string{"debug.ping", `{"a":"debug.ping"`}, "", "not a JSON packet"},
		{"malformed after an endpoint", []string{`x {"v":}`}, "", "not a JSON packet"},
		{"malformed after @socket", []string{`@main {]`}, "", "not a JSON packet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("GREENLANE_WAIT", tt.env)
			}
			var out, errOut bytes.Buffer
			err := dispatch(append([]string{"client", "--url", url, "--key", "k"}, tt.args...), &out, &errOut)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v (%T), want a usage error saying %q; stderr:\n%s", err, err, tt.want, errOut.String())
			}
		})
	}
}
