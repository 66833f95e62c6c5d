package fd1client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/fd1client"
	"github.com/greenlane-pos/greenlane/fixtures"
	"github.com/greenlane-pos/greenlane/lane"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// startLane serves a demo lane on a free port and returns its socket URL
// and a key for each scope asked for.
func startLane(t *testing.T, scopes ...protocol.Scope) (string, []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	db, err := lanedb.Open(ctx, filepath.Join(t.TempDir(), "lane.db"), lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	demo, _ := fixtures.Find("demo")
	if err := demo.Load(ctx, db, false); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, len(scopes))
	for i, s := range scopes {
		if keys[i], err = db.CreateAPIKey(ctx, "key-"+string(s), []string{string(s)}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := lane.DefaultConfig()
	cfg.Server.Addr = "127.0.0.1:0"
	l, err := lane.New(ctx, db, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ready, served := make(chan string, 1), make(chan error, 1)
	go func() { served <- l.Serve(ctx, func(a net.Addr) { ready <- a.String() }) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-served:
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-served; l.Close(); db.Close() })
	return "ws://" + addr + "/fd1/open_websocket", keys
}

func TestCallMatchesRepliesAndDeliversEvents(t *testing.T) {
	url, keys := startLane(t, protocol.ScopeDebug)
	ctx := context.Background()
	var mu sync.Mutex
	var events []*fd1client.Packet
	follower, err := fd1client.Open(ctx, url, keys[0], protocol.PurposeNone, fd1client.Options{OnPacket: func(p *fd1client.Packet) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, p)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer follower.Close()
	if err := follower.OpenFirehose("device.event"); err != nil {
		t.Fatal(err)
	}
	injector, err := fd1client.Open(ctx, url, keys[0], protocol.PurposeNone, fd1client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer injector.Close()
	p, err := injector.Call(&fd1client.Request{A: "fd1.debug.inject_event",
		V: map[string]any{"event": "device.event", "sc": "device.event.test", "data": map[string]int{"n": 1}}})
	if err != nil || p.Error != nil {
		t.Fatalf("inject_event: %v %v", err, p.Error)
	}
	// The event goes out through the hub; each ping on the follower reads
	// whatever came before its reply, so the event shows up by one of them.
	for range 200 {
		p, err := follower.Call(&fd1client.Request{A: "fd1.debug.ping"})
		if err != nil || p.Error != nil || p.R != "fd1.debug.ping" {
			t.Fatalf("ping: %v %+v", err, p)
		}
		mu.Lock()
		n := len(events)
		mu.Unlock()
		if n > 0 {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 1 || events[0].SC != "device.event.test" || !strings.Contains(string(events[0].V), `"n":1`) {
		t.Fatalf("events = %d, want the injected one: %+v", len(events), events)
	}
}

func TestFollowHandsOnEveryFrame(t *testing.T) {
	url, keys := startLane(t, protocol.ScopeDebug)
	ctx := context.Background()
	follower, err := fd1client.Open(ctx, url, keys[0], protocol.PurposeNone, fd1client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := follower.OpenFirehose("device.event"); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	follower.Follow(func(raw []byte, _ time.Time) { got <- string(raw) }) // copied: raw is reused
	injector, err := fd1client.Open(ctx, url, keys[0], protocol.PurposeNone, fd1client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer injector.Close()
	for n := 1; n <= 2; n++ {
		if p, err := injector.Call(&fd1client.Request{A: "fd1.debug.inject_event",
			V: map[string]any{"event": "device.event", "sc": "device.event.test", "data": map[string]int{"n": n}}}); err != nil || p.Error != nil {
			t.Fatalf("inject_event: %v %+v", err, p)
		}
	}
	for n := 1; n <= 2; n++ {
		if ev := <-got; !strings.Contains(ev, fmt.Sprintf(`"n":%d`, n)) {
			t.Errorf("event %d = %s", n, ev)
		}
	}
	if err := follower.Close(); err != nil || follower.FollowErr() != nil {
		t.Errorf("Close: %v, FollowErr: %v; want the reader stopped by Close", err, follower.FollowErr())
	}
}

func TestIdempotencyKeyRepeatsTheReply(t *testing.T) {
	url, keys := startLane(t, protocol.ScopePresell)
	c, err := fd1client.Open(context.Background(), url+"?purpose=presell", keys[0], protocol.PurposeNone, fd1client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var physkeys []string
	for range 2 {
		p, err := c.Call(&fd1client.Request{A: "fd1.salesbuilder.sale_create", IK: "tablet-1-sale-1", V: struct{}{}})
		if err != nil || p.Error != nil {
			t.Fatalf("sale_create: %v %v", err, p.Error)
		}
		physkeys = append(physkeys, p.Key())
	}
	if physkeys[0] == "" || physkeys[0] != physkeys[1] {
		t.Errorf("the same ik made %q: want one sale, answered twice", physkeys)
	}
}

func TestOpenFailures(t *testing.T) {
	url, keys := startLane(t, protocol.ScopeDebug)
	for _, tc := range []struct {
		name, url, key string
		want           string
		refusal        bool
	}{
		{"wrong key", url, "nope", "login refused", true},
		{"wrong path", strings.Replace(url, "/fd1/open_websocket", "/nowhere", 1), keys[0], "404", false},
		{"no server", "ws://127.0.0.1:1/fd1/open_websocket", keys[0], "is 'greenlane serve' running?", false},
	} {
		c, err := fd1client.Open(context.Background(), tc.url, tc.key, protocol.PurposeNone, fd1client.Options{})
		if err == nil {
			c.Close()
			t.Errorf("%s: opened", tc.name)
			continue
		}
		var pe *protocol.Error
		if !strings.Contains(err.Error(), tc.want) || errors.As(err, &pe) != tc.refusal {
			t.Errorf("%s: %v; want %q (an FD1 error: %v)", tc.name, err, tc.want, tc.refusal)
		}
	}
}

func TestPacketAnswers(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		rq   int64
		want bool
	}{
		{`{"rp":7,"data":{}}`, 7, true},
		{`{"rp":"7","sc":"firehose.status"}`, 7, true},
		{`{"rp":70}`, 7, false},
		{`{"a":"fn1.link.link_status"}`, 7, false},
	} {
		p, err := fd1client.Decode([]byte(tc.raw), time.Now())
		if err != nil || p.Answers(tc.rq) != tc.want {
			t.Errorf("%s answers %d: %v (%v), want %v", tc.raw, tc.rq, p.Answers(tc.rq), err, tc.want)
		}
	}
	if _, err := fd1client.Decode([]byte("not json"), time.Now()); err == nil {
		t.Errorf("Decode took a frame that is not JSON")
	}
}
