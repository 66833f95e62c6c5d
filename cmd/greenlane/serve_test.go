package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/greenlane-pos/greenlane/internal/syncbuf"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// templateDir holds demoTemplate's DB once it is made.
var templateDir string

// demoTemplate builds one demo lane DB (as serve's first start does) with a
// presell key; each case gets a copy.
var demoTemplate = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "greenlane-serve-test-")
	if err != nil {
		return "", err
	}
	templateDir = dir
	path := filepath.Join(dir, "lane.db")
	ctx := context.Background()
	db, err := lanedb.Open(ctx, path, lanedb.DefaultOptions())
	if err != nil {
		return "", err
	}
	defer db.Close()
	if err := seedDemo(ctx, db, slog.New(slog.DiscardHandler)); err != nil {
		return "", err
	}
	key, err := db.CreateAPIKey(ctx, "tablet-1", []string{string(protocol.ScopePresell)})
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path+".presell", []byte(key), 0o600)
})

// TestMain removes the template lane DB's folder after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if templateDir != "" {
		os.RemoveAll(templateDir)
	}
	os.Exit(code)
}

// laneCopy copies the template lane DB into a new folder of t's.
func laneCopy(t *testing.T) (db, presellKey string) {
	t.Helper()
	tmpl, err := demoTemplate()
	if err != nil {
		t.Fatal(err)
	}
	db = filepath.Join(t.TempDir(), "lane.db")
	for _, suffix := range []string{"", ".apikey", ".presell"} {
		b, err := os.ReadFile(tmpl + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(db+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	key, _ := os.ReadFile(db + ".presell")
	return db, string(key)
}

// runServeUntilReady runs serve with args. It returns the bound address
// once the lane listens (and a stop function that shuts it down and
// returns serve's result), or serve's error when it ends before listening.
func runServeUntilReady(t *testing.T, args []string, log io.Writer) (addr string, stop func() error, err error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	ready := make(chan string, 1)
	go func() { errc <- serve(ctx, args, log, func(a net.Addr) { ready <- a.String() }, nil) }()
	select {
	case addr = <-ready:
		return addr, func() error { cancel(); return <-errc }, nil
	case err = <-errc:
		cancel()
		return "", nil, err
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("serve %v neither listened nor failed within 60s", args)
		return "", nil, nil
	}
}

// presellWorks logs a tablet in, creates a sale and rings one item up:
// proof that the lane answers a device, not just that it listens.
func presellWorks(addr, key string) error {
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/fd1/open_websocket?purpose=presell", nil)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for i, pkt := range []map[string]any{
		{"a": "fd1.session.login", "v": map[string]any{"apikey": key}},
		{"a": "salesbuilder.sale_create"},
		{"a": "salesbuilder.sale_add_product", "v": map[string]any{"plu": "FW", "qty": 1}},
	} {
		pkt["rq"] = i + 1
		if err := ws.WriteJSON(pkt); err != nil {
			return fmt.Errorf("send %s: %w", pkt["a"], err)
		}
		for {
			var reply struct {
				RP    json.RawMessage `json:"rp"`
				Error json.RawMessage `json:"error"`
			}
			if err := ws.ReadJSON(&reply); err != nil {
				return fmt.Errorf("reply to %s: %w", pkt["a"], err)
			}
			if string(reply.RP) != fmt.Sprint(i+1) {
				continue // an event
			}
			if len(reply.Error) > 0 {
				return fmt.Errorf("%s: %s", pkt["a"], reply.Error)
			}
			break
		}
	}
	return nil
}

// TestServeFlagValues feeds 0, -1 and an absurd value to every flag of
// serve (as declared, so flags added later are covered too): each is
// either refused with a usage error that names the flag, or the lane starts
// and a tablet can log in and ring up a sale on it.
func TestServeFlagValues(t *testing.T) {
	fs, _ := serveFlags(io.Discard)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	for _, name := range names {
		f := fs.Lookup(name)
		absurd := strings.Repeat("9", 300)
		if g, ok := f.Value.(flag.Getter); ok {
			switch g.Get().(type) {
			case time.Duration:
				absurd = "100000h"
			case int, int64:
				absurd = "1000000000000000000"
			case uint, uint64:
				absurd = "18446744073709551615"
			case float64:
				absurd = "1e18"
			case bool:
				absurd = "1e18"
			}
		}
		named := regexp.MustCompile(`(^|[^-\w])--?` + regexp.QuoteMeta(name) + `([^-\w]|$)`)
		for _, value := range []string{"0", "-1", absurd} {
			t.Run(name+"="+value[:min(len(value), 24)], func(t *testing.T) {
				db, key := laneCopy(t)
				if name == "db" {
					// A path: in a folder of the test's, not the package's.
					value = filepath.Join(t.TempDir(), value)
				}
				args := []string{"--db=" + db, "--addr=127.0.0.1:0", "--log-level=warn", "--" + name + "=" + value}
				var log syncbuf.Buffer
				addr, stop, err := runServeUntilReady(t, args, &log)
				if err != nil {
					var ue usageError
					if !errors.As(err, &ue) || !named.MatchString(err.Error()) {
						t.Fatalf("refused without a usage error naming --%s: %v\n%s", name, err, log.String())
					}
					return
				}
				werr := presellWorks(addr, key)
				if err := stop(); err != nil {
					t.Errorf("serve ended with %v", err)
				}
				if werr != nil {
					t.Fatalf("--%s=%s was accepted, but the lane does not serve a tablet: %v\n%s", name, value, werr, log.String())
				}
			})
		}
	}
}

// emptyFile makes a 0-byte file at path, as touch does.
func emptyFile(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestServeDBPath: a missing folder is refused; a new DB outside the
// default path needs --create, which says loudly that it made one.
func TestServeDBPath(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		db      string
		create  bool
		prep    func(t *testing.T, path string) // makes a file at the path first
		wantErr string                          // "" when the lane must start
		// notUsage: the refusal comes from opening the file (exit status
		// 1), not from the command line.
		notUsage bool
	}{
		{name: "missing folder", db: filepath.Join(dir, "nonexistent", "lane.db"), wantErr: "does not exist"},
		{name: "missing folder with --create", db: filepath.Join(dir, "nonexistent", "lane.db"), create: true, wantErr: "does not exist"},
		{name: "new file without --create", db: filepath.Join(dir, "typo.db"), wantErr: "--create"},
		{name: "a folder", db: dir, wantErr: "is a folder"},
		{name: "new file with --create", db: filepath.Join(dir, "new.db"), create: true},
		// A 0-byte file (touch) holds no lane: it is a missing one.
		{name: "empty file without --create", db: filepath.Join(dir, "empty.db"), prep: emptyFile, wantErr: "the file is empty (0 bytes), not a lane DB; add --create"},
		{name: "empty file with --create", db: filepath.Join(dir, "empty2.db"), prep: emptyFile, create: true},
		{name: "another program's SQLite file", db: filepath.Join(dir, "other.db"), create: true, prep: func(t *testing.T, path string) {
			other, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			if _, err := other.Exec(`CREATE TABLE foo (x INTEGER)`); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "is an SQLite database of another program, not a lane DB", notUsage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.prep != nil {
				tt.prep(t, tt.db)
			}
			args := []string{"--db", tt.db, "--addr", "127.0.0.1:0"}
			if tt.create {
				args = append(args, "--create")
			}
			var log syncbuf.Buffer
			_, stop, err := runServeUntilReady(t, args, &log)
			if tt.wantErr != "" {
				var ue usageError
				if !strings.Contains(err.Error(), tt.wantErr) || !tt.notUsage && (!errors.As(err, &ue) || !strings.Contains(err.Error(), "--db")) {
					t.Fatalf("err = %v, want a usage error about --db saying %q", err, tt.wantErr)
				}
				if _, err := os.Stat(filepath.Dir(tt.db)); tt.name == "missing folder" && err == nil {
					t.Fatal("the missing folder was created")
				}
				if _, err := os.Stat(tt.db + ".apikey"); err == nil {
					t.Fatal("an admin key was written")
				}
				return
			}
			if err != nil {
				t.Fatalf("serve: %v\n%s", err, log.String())
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(log.String(), "NEW LANE DB CREATED") || !strings.Contains(log.String(), "NEW ADMIN API KEY") {
				t.Fatalf("the log does not say loudly that a new lane DB and key were made:\n%s", log.String())
			}
			if _, err := os.Stat(tt.db + ".apikey"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLANURLs(t *testing.T) {
	if got := lanURLs(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3490}, "ws"); got != nil {
		t.Errorf("loopback listener: %v, want none", got)
	}
	for _, u := range lanURLs(&net.TCPAddr{IP: net.IPv6unspecified, Port: 3490}, "ws") {
		if !strings.HasPrefix(u, "ws://") || !strings.HasSuffix(u, ":3490/fd1/open_websocket") || strings.Contains(u, "127.0.0.1") {
			t.Errorf("every-interface listener: %q", u)
		}
	}
}

// TestLocalURLHost: the listening line's URLs name a host this machine
// can open, also when the lane is bound to every interface.
func TestLocalURLHost(t *testing.T) {
	for _, tt := range []struct {
		addr *net.TCPAddr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3490}, "127.0.0.1:3490"},
		{&net.TCPAddr{IP: net.IPv4(192, 168, 1, 20), Port: 3490}, "192.168.1.20:3490"},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 3661}, "127.0.0.1:3661"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 3661}, "127.0.0.1:3661"},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 3490}, "[::1]:3490"},
	} {
		if got := localURLHost(tt.addr); got != tt.want {
			t.Errorf("localURLHost(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
}

// TestUncoveredHosts: the hosts a certificate does not name, by the
// rules a client applies (an IP must be listed as an IP).
func TestUncoveredHosts(t *testing.T) {
	cert := &x509.Certificate{DNSNames: []string{"lane-1.local", "localhost"}, IPAddresses: []net.IP{net.ParseIP("192.168.1.20")}}
	for _, tt := range []struct {
		hosts, want []string
	}{
		{[]string{"192.168.1.20", "lane-1.local"}, nil},
		{[]string{"127.0.0.1", "192.168.1.20", "10.0.0.5"}, []string{"127.0.0.1", "10.0.0.5"}},
		{[]string{"lane-2.local"}, []string{"lane-2.local"}},
	} {
		if got := uncoveredHosts(cert, tt.hosts); !slices.Equal(got, tt.want) {
			t.Errorf("uncoveredHosts(%q) = %q, want %q", tt.hosts, got, tt.want)
		}
	}
}

// TestServeLogsAWALLeftBehind: when the lane stops and its WAL cannot be
// copied back (another program is reading the lane DB), the last line
// warns of it, naming the file, instead of saying it closed cleanly; with
// nobody else on the file, it did close cleanly.
func TestServeLogsAWALLeftBehind(t *testing.T) {
	for _, tt := range []struct {
		name      string
		otherRead bool
		want      string
	}{
		{"alone", false, "stopped; lane DB closed cleanly"},
		{"another program reading", true, "did not close cleanly"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path, _ := laneCopy(t)
			var log syncbuf.Buffer
			_, stop, err := runServeUntilReady(t, []string{"--db", path, "--addr", "127.0.0.1:0"}, &log)
			if err != nil {
				t.Fatalf("serve: %v\n%s", err, log.String())
			}
			if tt.otherRead {
				other, err := sql.Open("sqlite", path)
				if err != nil {
					t.Fatal(err)
				}
				defer other.Close()
				other.SetMaxOpenConns(1)
				// A change of its own puts frames in the WAL; its read then
				// holds the WAL open.
				if _, err := other.Exec(`INSERT INTO lane_meta (key, value) VALUES ('other', 'program')`); err != nil {
					t.Fatal(err)
				}
				tx, err := other.Begin()
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback()
				var n int
				if err := tx.QueryRow(`SELECT COUNT(*) FROM lane_meta`).Scan(&n); err != nil {
					t.Fatal(err)
				}
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(log.String()), "\n")
			last := lines[len(lines)-1]
			if !strings.Contains(last, tt.want) {
				t.Fatalf("last log line %q, want it to say %q", last, tt.want)
			}
			if tt.otherRead && !strings.Contains(last, path+"-wal") {
				t.Fatalf("last log line %q does not name the WAL left behind", last)
			}
		})
	}
}

// TestServeWarnsOfDeterministicMode: --clock and --seed (or their
// GREENLANE_ variables, left in a store's environment) are told at start,
// and a lane without them says nothing of it.
func TestServeWarnsOfDeterministicMode(t *testing.T) {
	for _, tt := range []struct {
		name  string
		flags []string
		want  []string
	}{
		{"neither", nil, nil},
		{"clock", []string{"--clock", "2026-01-01T09:00:00Z"}, []string{"level=WARN", "the lane's clock is set by --clock", "2026-01-01T09:00:00Z"}},
		{"seed", []string{"--seed", "7"}, []string{"level=WARN", "new sale keys come from --seed"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path, _ := laneCopy(t)
			var log syncbuf.Buffer
			_, stop, err := runServeUntilReady(t, append([]string{"--db", path, "--addr", "127.0.0.1:0"}, tt.flags...), &log)
			if err != nil {
				t.Fatalf("serve: %v\n%s", err, log.String())
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			got := log.String()
			for _, want := range tt.want {
				if !strings.Contains(got, want) {
					t.Errorf("log lacks %q:\n%s", want, got)
				}
			}
			if tt.want == nil && strings.Contains(got, "deterministic mode") {
				t.Errorf("a lane without --clock or --seed logs deterministic mode:\n%s", got)
			}
		})
	}
}

// TestJSONLogDurations: the JSON log writes durations as the text log
// does, with their unit, not as bare nanoseconds.
func TestJSONLogDurations(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		log, err := newLogger(&buf, "info", format)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("swept", "took", 542996*time.Nanosecond, "first_void_after", 12*time.Hour)
		out := buf.String()
		if !strings.Contains(out, "542.996µs") || !strings.Contains(out, "12h0m0s") || strings.Contains(out, "43200000000000") {
			t.Errorf("%s log: %s", format, out)
		}
	}
}

// TestServeAddressInUseCreatesNothing: serve on an address another
// program holds (its own, or the metrics one) stops before it makes a lane
// DB or an admin key, and says in plain words what is wrong and what to do.
func TestServeAddressInUseCreatesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, flag := range []string{"--addr", "--metrics-addr", "--http-redirect"} {
		t.Run(flag, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "new.db")
			args := []string{"--db", db, "--create", "--addr", "127.0.0.1:0", flag, taken.Addr().String()}
			if flag == "--http-redirect" { // it redirects to https: the lane needs its certificate
				if err := dispatch([]string{"tls", "init", "--db", db, "--names", "localhost"}, io.Discard, io.Discard); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--tls")
			}
			before, _ := os.ReadDir(dir)
			_, stop, err := runServeUntilReady(t, args, io.Discard)
			if err == nil {
				stop()
				t.Fatal("serve started on an address in use")
			}
			for _, want := range []string{flag + " " + taken.Addr().String(), "the address is in use", "another lane may be running there", "choose another " + flag} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err = %v, want it to say %q", err, want)
				}
			}
			if after, _ := os.ReadDir(dir); len(after) > len(before) {
				t.Errorf("serve refused for the address made files: %v, before %v", after, before)
			}
		})
	}
}

// TestServeSaysWhatItWaitsFor: a lane DB whose write lock another program
// holds keeps serve waiting up to the busy timeout; it says so meanwhile,
// not only when it gives up.
func TestServeSaysWhatItWaitsFor(t *testing.T) {
	path, _ := laneCopy(t)
	other, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.Begin() // BEGIN IMMEDIATE: the write lock, held
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	defer func(was time.Duration) { openSlowAfter = was }(openSlowAfter)
	openSlowAfter = 20 * time.Millisecond
	var buf syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	_, err = openLaneDB(context.Background(), path, false, lanedb.Options{BusyTimeout: 500 * time.Millisecond}, log)
	if err == nil || !strings.Contains(err.Error(), "another program held its write lock") {
		t.Fatalf("open under another program's lock: %v", err)
	}
	if !strings.Contains(buf.String(), "another program may hold its write lock; waiting for it") {
		t.Fatalf("nothing said while waiting; the log:\n%s", buf.String())
	}
}
