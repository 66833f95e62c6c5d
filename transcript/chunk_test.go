package transcript_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/greenlane-pos/greenlane/fd1client"

	"github.com/greenlane-pos/greenlane/fixtures"
	"github.com/greenlane-pos/greenlane/lane"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/transcript"
)

func TestFinalReply(t *testing.T) {
	for packet, want := range map[string]bool{
		`{"r":"x","rp":"c1","data":{}}`:                      true,
		`{"r":"x","rp":"c1","ch":1,"last":true,"data":{}}`:   true,
		`{"r":"x","rp":"c1","ch":1,"data":{}}`:               false,
		`{"r":"x","rp":"c1","ch":3,"last":false,"data":{}}`:  false,
		`{"r":"x","rp":"c1","ch":2,"last":"true","data":{}}`: false,
	} {
		v, err := transcript.Parse([]byte(packet))
		if err != nil {
			t.Fatal(err)
		}
		if got := transcript.FinalReply(v); got != want {
			t.Errorf("FinalReply(%s) = %v, want %v", packet, got, want)
		}
	}
}

// chunkLane runs a real lane in this process on a demo lane DB whose list
// replies hold at most maxRows rows a packet. It returns the socket URL,
// an admin key and the number of products.
func chunkLane(t *testing.T, maxRows int) (base, key string, products int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	db, err := lanedb.Open(ctx, filepath.Join(t.TempDir(), "lane.db"), lanedb.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	demo, err := fixtures.Find("demo")
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.Load(ctx, db, false); err != nil {
		t.Fatal(err)
	}
	if key, err = db.CreateAPIKey(ctx, "chunk-admin", []string{"admin"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Read.GetContext(ctx, &products, `SELECT COUNT(*) FROM products`); err != nil {
		t.Fatal(err)
	}
	cfg := lane.DefaultConfig()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Catalog.MaxRows = maxRows
	l, err := lane.New(ctx, db, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	served := make(chan error, 1)
	go func() { served <- l.Serve(ctx, func(a net.Addr) { addr <- a.String() }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		_ = l.Close()
		_ = db.Close()
	})
	select {
	case a := <-addr:
		return "ws://" + a + "/fd1/open_websocket", key, products
	case err := <-served:
		t.Fatalf("lane did not start: %v", err)
	}
	return "", "", 0
}

// TestRecordReplayChunkedReply: a chunked reply is recorded as one expect
// line per packet, replays against the lane, and each line matches the
// next packet with that rp, in order.
func TestRecordReplayChunkedReply(t *testing.T) {
	const maxRows = 7
	base, key, products := chunkLane(t, maxRows)

	// Record a session the way greenlane client --record does.
	var buf bytes.Buffer
	rec := transcript.NewRecorder(&buf, transcript.RecordOptions{})
	ws, _, err := websocket.DefaultDialer.Dial(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = rec.Open("main", "", &transcript.Login{})
	exchange := func(packet string, record bool) []transcript.Value {
		t.Helper()
		if record {
			_ = rec.Send("main", []byte(packet))
		}
		if err := ws.WriteMessage(websocket.TextMessage, []byte(packet)); err != nil {
			t.Fatal(err)
		}
		var got []transcript.Value
		for {
			_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, msg, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			v, err := transcript.Parse(msg)
			if err != nil {
				t.Fatal(err)
			}
			if record {
				_ = rec.Receive("main", msg)
			}
			got = append(got, v)
			if transcript.FinalReply(v) {
				return got
			}
		}
	}
	exchange(`{"a":"fd1.session.login","rq":"login","v":{"apikey":"`+key+`"}}`, false)
	chunks := exchange(`{"a":"fd1.products.get_products_list","rq":"c1","mo":"chunk","qo":{"pid":true}}`, true)

	want := (products + maxRows - 1) / maxRows
	if products <= maxRows || len(chunks) != want {
		t.Fatalf("%d products at %d a packet came in %d packets, want %d", products, maxRows, len(chunks), want)
	}
	if err := rec.Err(); err != nil {
		t.Fatal(err)
	}
	steps, err := transcript.Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("the recording does not read back: %v\n%s", err, buf.Bytes())
	}
	var expects []int // indexes of the expect lines in steps
	for i, st := range steps {
		if st.Expect != nil {
			expects = append(expects, i)
		}
	}
	if len(expects) != want {
		t.Fatalf("recording has %d expect lines, want one per packet (%d):\n%s", len(expects), want, buf.Bytes())
	}
	for i, at := range expects {
		ch, _ := steps[at].Expect.Get("ch")
		last, hasLast := steps[at].Expect.Get("last")
		if ch.Num != strconv.Itoa(i+1) || hasLast != (i == want-1) || (hasLast && !last.Bool) {
			t.Errorf("expect line %d: ch %s last %v, want ch %d", i+1, ch, last, i+1)
		}
	}

	opt := transcript.Options{Name: "chunks.jsonl", Dial: transcript.WebSocketDialer(base, fd1client.Options{}), DefaultKey: key, Timeout: 10 * time.Second}
	res, err := transcript.Replay(context.Background(), steps, opt)
	if err != nil {
		t.Fatalf("replay of the recording: %v", err)
	}
	if res.Matched != want || len(res.Ignored) != 0 {
		t.Fatalf("replay matched %d packets and ignored %d, want %d and 0", res.Matched, len(res.Ignored), want)
	}

	// Chunks are matched in the order they come: with the first two expect
	// lines swapped, the first line now wants chunk 2 and gets chunk 1.
	swapped := append([]transcript.Step(nil), steps...)
	swapped[expects[0]], swapped[expects[1]] = swapped[expects[1]], swapped[expects[0]]
	_, err = transcript.Replay(context.Background(), swapped, opt)
	var f *transcript.Failure
	if !errors.As(err, &f) || f.Problem != "does not match" || !strings.Contains(f.What, `chunk 2 of the reply to rq "c1"`) {
		t.Fatalf("replay with chunks out of order: %v, want a mismatch on chunk 2", err)
	}
}
