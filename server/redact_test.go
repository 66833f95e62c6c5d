package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/greenlane-pos/greenlane/internal/syncbuf"
	"github.com/greenlane-pos/greenlane/lanedb"
)

// TestLoggedKeysAreRedacted: a key put in a URL path by mistake does not
// reach the log, whether the path routes to an endpoint or not; the query
// is never logged at all.
func TestLoggedKeysAreRedacted(t *testing.T) {
	ctx := context.Background()
	db, err := lanedb.Open(ctx, filepath.Join(t.TempDir(), "lane.db"), lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, err := db.CreateAPIKey(ctx, "tablet-1", []string{"presell"})
	if err != nil {
		t.Fatal(err)
	}
	secret := key[strings.LastIndex(key, ".")+1:]
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var logs syncbuf.Buffer
			h := slog.Handler(slog.NewTextHandler(&logs, nil))
			if format == "json" {
				h = slog.NewJSONHandler(&logs, nil)
			}
			cfg := DefaultConfig()
			cfg.Addr = "127.0.0.1:0"
			addr := serve(t, New(cfg, db, slog.New(h)))
			for _, path := range []string{"/fd1/products/" + key, "/" + key, "/fd1/products/list?key=" + key + "&_k=" + key, "/fd1/" + key + "/x"} {
				resp, err := http.Get("http://" + addr + path)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			out := logs.String()
			if strings.Count(out, `msg=http `)+strings.Count(out, `"msg":"http"`) != 4 {
				t.Fatalf("want 4 access lines:\n%s", out)
			}
			if strings.Contains(out, secret) {
				t.Fatalf("the log holds the key's secret:\n%s", out)
			}
			if !strings.Contains(out, "/fd1/products/"+key[:strings.LastIndex(key, ".")+1]+"[redacted]") {
				t.Errorf("the access line does not show the redacted key's path:\n%s", out)
			}
		})
	}
}

// TestRedactKeysHandler: attributes given to With, groups and errors are
// redacted as well as a record's own.
func TestRedactKeysHandler(t *testing.T) {
	const key = "glk.abc.SECRET"
	var b bytes.Buffer
	log := slog.New(redactKeys{slog.NewTextHandler(&b, nil)})
	log.With("w", key).WithGroup("g").Info("got "+key, "s", key, "err", errors.New("bad "+key),
		slog.Group("grp", "inner", key), "n", 3)
	if out := b.String(); strings.Contains(out, "SECRET") || strings.Count(out, "glk.abc.[redacted]") != 5 || !strings.Contains(out, "g.n=3") {
		t.Fatalf("log line %q", out)
	}
}
