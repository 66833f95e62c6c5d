package lane

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/internal/syncbuf"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// TestDiskFull: when the lane DB cannot grow (a full disk, made here by
// capping its pages), a change is answered unavailable saying the disk is
// full, /readyz is 503 with that reason, and one ERROR line is logged for
// all the refusals; once it can grow again, the next change goes through
// and /readyz is ready, without a restart.
func TestDiskFull(t *testing.T) {
	ctx := context.Background()
	db, err := lanedb.Open(ctx, filepath.Join(t.TempDir(), "lane.db"), lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// A counter key: HTTP mode has no presell socket, where a tablet builds.
	key, err := db.CreateAPIKey(ctx, "counter", []string{"counter"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Server.ShutdownGrace = 50 * time.Millisecond
	var logBuf syncbuf.Buffer
	l, err := New(ctx, db, cfg, slog.New(slog.NewTextHandler(&logBuf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	get := func(base, path string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		req.Header.Set("x-api-key", key)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	err = l.Serve(sctx, func(addr net.Addr) {
		defer stop()
		base := "http://" + addr.String()
		if _, err := db.SetWriterMaxPages(ctx, 1); err != nil {
			t.Error(err)
			return
		}
		// Each sale takes room; one soon finds no free page left.
		var reply protocol.Reply
		refused := 0
		for i := 0; i < 2000 && refused < 3; i++ {
			code, body := get(base, "/fd1/salesbuilder/sale_create")
			if code == http.StatusOK {
				continue
			}
			if err := json.Unmarshal([]byte(body), &reply); err != nil || reply.Error == nil {
				t.Errorf("create on a full disk: %d %s", code, body)
				return
			}
			if reply.Error.Code != protocol.CodeUnavailable || !strings.Contains(reply.Error.Message, "disk is full") {
				t.Errorf("create on a full disk: %d %s, want unavailable saying the disk is full", code, body)
				return
			}
			refused++
		}
		if refused == 0 {
			t.Error("2000 sales and none refused: the cap did not hold")
			return
		}
		if code, body := get(base, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "disk is full") {
			t.Errorf("/readyz on a full disk: %d %s, want 503 saying the disk is full", code, body)
		}
		if n := strings.Count(logBuf.String(), "level=ERROR"); n != 1 {
			t.Errorf("%d ERROR lines for %d refused changes, want 1:\n%s", n, refused, logBuf.String())
		}

		if _, err := db.SetWriterMaxPages(ctx, 1<<30); err != nil {
			t.Error(err)
			return
		}
		if code, body := get(base, "/fd1/salesbuilder/sale_create"); code != http.StatusOK {
			t.Errorf("create once the disk has room: %d %s", code, body)
		}
		if code, body := get(base, "/readyz"); code != http.StatusOK {
			t.Errorf("/readyz once a change went through: %d %s", code, body)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}
