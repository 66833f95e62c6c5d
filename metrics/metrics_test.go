package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"

	"github.com/greenlane-pos/greenlane/fixtures"
	"github.com/greenlane-pos/greenlane/internal/pgtest"
	"github.com/greenlane-pos/greenlane/lane"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/metrics"
)

// newLane is a real lane over a demo DB in a temporary folder.
func newLane(t *testing.T) *lane.Lane {
	t.Helper()
	return newLaneOn(t, filepath.Join(t.TempDir(), "lane.db"))
}

// newLaneOn is a real lane over the demo loaded into the lane DB at path
// (an SQLite file or a postgres:// URL).
func newLaneOn(t *testing.T, path string) *lane.Lane {
	t.Helper()
	ctx := context.Background()
	db, err := lanedb.Open(ctx, path, lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	demo, _ := fixtures.Find("demo")
	if err := demo.Load(ctx, db, false); err != nil {
		t.Fatal(err)
	}
	l, err := lane.New(ctx, db, lane.DefaultConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); db.Close() })
	return l
}

// gather reads every sample as name{label=value,...} → value.
func gather(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.Metric {
			var labels []string
			for _, lp := range mt.Label {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			name := f.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[name] = mt.Counter.GetValue()
			case dto.MetricType_GAUGE:
				out[name] = mt.Gauge.GetValue()
			case dto.MetricType_HISTOGRAM:
				out[name+"count"] = float64(mt.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

func TestRegistryReadsTheParts(t *testing.T) {
	l := newLane(t)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	m := metrics.New(metrics.Parts{DB: l.DB, Writer: l.Writer, Hub: l.Hub, Server: l.Server, Version: "v9.9.9",
		Now: func() time.Time { return now }})
	// Two open presells, the older one submitted 90 s ago and claimed; a
	// completed one and a lapsed claim count for nothing.
	for _, s := range []struct {
		key, submitted string
		phase          int
		claimUntil     int64
	}{
		{"a", "2026-01-01 11:58:30.000000", 5, now.Add(time.Minute).UnixMilli()},
		{"b", "2026-01-01 11:59:30.000000", 5, now.Add(-time.Minute).UnixMilli()},
		{"c", "2026-01-01 11:00:00.000000", 1, 0},
	} {
		_, err := l.DB.Exec(context.Background(), `INSERT INTO sales (physkey, random_key, phase, startdt, updated_utc, presell, submitted_utc,
			claim_session, claim_expires_ms) VALUES (?, ?, ?, '2026-01-01 11:00:00', '2026-01-01 11:00:00', 1, ?, 'sess', ?)`,
			s.key, s.key, s.phase, s.submitted, s.claimUntil)
		if err != nil {
			t.Fatal(err)
		}
	}
	m.Request("presell", "ok", 3*time.Millisecond)
	m.Request("presell", "ok", 5*time.Millisecond)
	m.Request("salesbuilder", "not_found", time.Millisecond)
	m.Login("ok")
	m.Login("bad_key")

	// One change through the writer, whose WAL pages the registry counts.
	err := l.Writer.Do(context.Background(), func(ctx context.Context, tx *lanedb.Tx) error {
		return lanedb.Journal(ctx, tx, now, "presell", "created", "a", "test", nil)
	})
	if err != nil {
		t.Fatal(err)
	}

	got := gather(t, m)
	for name, want := range map[string]float64{
		`greenlane_requests_total{code=ok,family=presell}`:                      2,
		`greenlane_requests_total{code=not_found,family=salesbuilder}`:          1,
		`greenlane_request_duration_seconds{family=presell}count`:               2,
		`greenlane_logins_total{outcome=ok}`:                                    1,
		`greenlane_logins_total{outcome=bad_key}`:                               1,
		`greenlane_build_info{goversion=` + goVersion(got) + `,version=v9.9.9}`: 1,
		`greenlane_sockets_open{purpose=presell}`:                               0,
		`greenlane_sockets_open{purpose=fd1}`:                                   0,
		`greenlane_presells_open{}`:                                             2,
		`greenlane_presell_claims{}`:                                            1,
		`greenlane_presell_oldest_open_age_seconds{}`:                           90,
		`greenlane_writer_batches_total{}`:                                      float64(l.Writer.Stats().Batches.Load()),
		`greenlane_writer_wal_pages_total{}`:                                    float64(l.Writer.Stats().Pages.Load()),
		`greenlane_writer_commit_duration_seconds{}count`:                       float64(l.Writer.Stats().Batches.Load()),
		`greenlane_firehose_events_dropped_total{}`:                             0,
		`greenlane_slow_consumers_dropped_total{}`:                              0,
		`greenlane_connections_open{}`:                                          0,
		`greenlane_connections_refused_total{}`:                                 0,
		`greenlane_sockets_refused_total{reason=max_sockets}`:                   0,
		`greenlane_sockets_refused_total{reason=unauth_per_address}`:            0,
		`greenlane_db_up{}`:                                                     1,
		`greenlane_writer_lock_wait_seconds_total{}`:                            0,
		`greenlane_writer_lock_waiting_seconds{}`:                               0,
		`greenlane_writer_refused_total{cause=storage}`:                         0,
		`greenlane_writer_refused_total{cause=db_unreachable}`:                  0,
		`greenlane_writer_refused_total{cause=db_locked}`:                       0,
		`greenlane_db_wal_restarts_blocked_total{}`:                             0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if got[`greenlane_writer_wal_pages_total{}`] <= 0 {
		t.Errorf("greenlane_writer_wal_pages_total = %v after the writer committed, want the pages it wrote", got[`greenlane_writer_wal_pages_total{}`])
	}
	if got[`greenlane_db_size_bytes{}`] <= 0 {
		t.Errorf("greenlane_db_size_bytes = %v, want the DB file's size", got[`greenlane_db_size_bytes{}`])
	}
	if _, ok := got[`greenlane_journal_seq{}`]; !ok {
		t.Error("greenlane_journal_seq missing")
	}
}

// TestDBUpSaysWhetherTheLaneDBAnswers: a scrape still answers when the
// lane DB does not (a store database the lane cannot reach), and
// greenlane_db_up says so instead of leaving the presell gauges out without
// a word.
func TestDBUpSaysWhetherTheLaneDBAnswers(t *testing.T) {
	db, err := lanedb.Open(context.Background(), filepath.Join(t.TempDir(), "lane.db"), lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Parts{DB: db})
	up := func() float64 {
		fams, _ := m.Registry().Gather() // what could not be read is an error beside the rest
		for _, f := range fams {
			if f.GetName() == "greenlane_db_up" {
				return f.Metric[0].GetGauge().GetValue()
			}
		}
		t.Fatal("greenlane_db_up is missing")
		return -1
	}
	if got := up(); got != 1 {
		t.Fatalf("greenlane_db_up = %v with the lane DB open, want 1", got)
	}
	db.Close()
	if got := up(); got != 0 {
		t.Fatalf("greenlane_db_up = %v with the lane DB gone, want 0", got)
	}
}

// goVersion finds the goversion label build_info carries.
func goVersion(got map[string]float64) string {
	for name := range got {
		if rest, ok := strings.CutPrefix(name, "greenlane_build_info{goversion="); ok {
			v, _, _ := strings.Cut(rest, ",")
			return v
		}
	}
	return "(missing)"
}

func TestHandlerAsksForTheToken(t *testing.T) {
	l := newLane(t)
	m := metrics.New(metrics.Parts{DB: l.DB, Server: l.Server})
	for _, tt := range []struct {
		token, auth string
		want        int
	}{
		{"", "", http.StatusOK},
		{"s3cret", "", http.StatusUnauthorized},
		{"s3cret", "Bearer wrong", http.StatusUnauthorized},
		{"s3cret", "s3cret", http.StatusUnauthorized},
		{"s3cret", "Bearer s3cret", http.StatusOK},
		{"s3cret", "bearer s3cret", http.StatusOK}, // the scheme is case-insensitive
		{"s3cret", "Bearer S3CRET", http.StatusUnauthorized},
		{"s3cret", "Basic s3cret", http.StatusUnauthorized},
		{"s3cret", "Bearer s3cret ", http.StatusUnauthorized},
	} {
		h := m.Handler(tt.token, slog.New(slog.NewTextHandler(io.Discard, nil)))
		r := httptest.NewRequest("GET", "/metrics", nil)
		if tt.auth != "" {
			r.Header.Set("Authorization", tt.auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("token %q, Authorization %q: status %d, want %d", tt.token, tt.auth, w.Code, tt.want)
		}
		if w.Code == http.StatusOK && !strings.Contains(w.Body.String(), "greenlane_presells_open 0") {
			t.Errorf("body lacks greenlane_presells_open 0:\n%s", w.Body.String())
		}
	}
}

// TestStoreDatabaseSize: on a PostgreSQL store database the size gauge is
// the database's (what pg_database_size reads just before and after the
// scrape), not a file named like the URL, and the WAL gauge, which has no
// per-database meaning there, is left out.
func TestStoreDatabaseSize(t *testing.T) {
	url := pgtest.FreshDB(t)
	l := newLaneOn(t, url)
	m := metrics.New(metrics.Parts{DB: l.DB, Writer: l.Writer, Hub: l.Hub, Server: l.Server})
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	size := func() float64 {
		var n int64
		if err := c.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return float64(n)
	}
	before := size()
	got := gather(t, m)
	after := size()
	if v, ok := got[`greenlane_db_size_bytes{}`]; !ok || v < before || v > after || v == 0 {
		t.Errorf("greenlane_db_size_bytes = %v (present %v), want the store database's size, %v to %v", v, ok, before, after)
	}
	for _, name := range []string{`greenlane_db_wal_size_bytes{}`, `greenlane_db_wal_restarts_blocked_total{}`, `greenlane_writer_wal_pages_total{}`, `greenlane_writer_lock_wait_seconds_total{}`, `greenlane_writer_lock_waiting_seconds{}`} {
		if v, ok := got[name]; ok {
			t.Errorf("%s = %v on a store database, want it left out", name, v)
		}
	}
	if _, ok := got[`greenlane_presells_open{}`]; !ok {
		t.Error("greenlane_presells_open missing on a store database")
	}
}

// TestScrapesPerAddressAreBounded: without a token anyone may scrape, and
// a scrape costs the lane real CPU: an address scraping in a loop gets its
// burst, then 429 with Retry-After; another address is not held back.
func TestScrapesPerAddressAreBounded(t *testing.T) {
	l := newLane(t)
	h := metrics.New(metrics.Parts{DB: l.DB, Server: l.Server}).Handler("", slog.New(slog.NewTextHandler(io.Discard, nil)))
	scrape := func(remote string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	ok, refused := 0, 0
	for range 60 {
		switch w := scrape("10.0.0.7:4000"); w.Code {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			refused++
			if w.Header().Get("Retry-After") == "" {
				t.Fatal("a refused scrape does not say when to come back")
			}
		default:
			t.Fatalf("scrape: %d %s", w.Code, w.Body)
		}
	}
	if ok < 20 || refused == 0 {
		t.Fatalf("60 scrapes in a loop from one address: %d answered, %d refused; want the burst of 20 answered, then refusals", ok, refused)
	}
	if w := scrape("10.0.0.8:4000"); w.Code != http.StatusOK {
		t.Fatalf("another address's scrape: %d", w.Code)
	}
}
