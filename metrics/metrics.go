// Package metrics exposes a lane's figures in the Prometheus text format at
// /metrics. It reads them from the parts on each scrape (the front door's
// sockets, the writer's and the hub's counters, a few cheap indexed queries
// and the DB's size) and counts requests and logins as the server
// reports them, so that no other package depends on Prometheus.
//
// No label holds a key, a sale id or anything else unbounded: the labels
// are socket purposes, endpoint families, FD1 error codes, login refusal
// reasons and firehose families.
package metrics

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/singleflight"

	"github.com/greenlane-pos/greenlane/firehose"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/server"
)

// Parts are what the metrics are read from.
type Parts struct {
	DB     *lanedb.DB
	Writer *lanedb.Writer
	Hub    *firehose.Hub
	Server *server.Server
	// Now is the lane's clock, for the age of the oldest open presell.
	// Default time.Now.
	Now func() time.Time
	// Version is greenlane's version, a label of greenlane_build_info.
	Version string
}

// purposes are the socket purposes always reported, so that a gauge reads
// 0 rather than being absent when no such socket is open.
var purposes = []string{"fd1", "presell", "customerdisplay", "debugscope"}

// Metrics is a lane's registry. It is the server's Observer.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	logins   *prometheus.CounterVec
}

// New builds the registry over the parts and installs itself as the
// server's observer.
func New(p Parts) *Metrics {
	if p.Now == nil {
		p.Now = time.Now
	}
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "greenlane_requests_total",
		Help: "FD1 requests answered, by endpoint family (the part after fd1.) and result code (ok or the FD1 error code).",
	}, []string{"family", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "greenlane_request_duration_seconds",
		Help:    "Time from receiving an FD1 request to its reply, by endpoint family.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"family"})
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "greenlane_logins_total",
		Help: "Logins (socket and HTTP mode), by outcome: ok, or the reason they were refused.",
	}, []string{"outcome"})
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "greenlane_build_info",
		Help:        "Always 1; the labels say which greenlane is running.",
		ConstLabels: prometheus.Labels{"version": p.Version, "goversion": runtime.Version()},
	})
	build.Set(1)
	m.reg.MustRegister(m.requests, m.duration, m.logins, build, &scraped{p: p})
	// A family that has not had a request yet still reads 0 for ok.
	m.logins.WithLabelValues("ok")
	if p.Server != nil {
		p.Server.SetObserver(m)
	}
	return m
}

// Registry is the lane's own registry (not Prometheus's global one).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Request counts one answered request (server.Observer).
func (m *Metrics) Request(family, code string, took time.Duration) {
	m.requests.WithLabelValues(family, code).Inc()
	m.duration.WithLabelValues(family).Observe(took.Seconds())
}

// Login counts one login or refusal (server.Observer).
func (m *Metrics) Login(outcome string) { m.logins.WithLabelValues(outcome).Inc() }

// Scrapes one address may make: a burst of scrapeBurst, then one every
// scrapeEvery. A scraper asks every few seconds; a scrape costs about half
// a millisecond of CPU, and without a token anyone may ask, so one address
// scraping in a loop from four connections took more than a whole CPU of
// the lane's two.
const (
	scrapeBurst = 20
	scrapeEvery = 200 * time.Millisecond
)

// Handler serves the registry, to each address at most as often as
// scrapeEvery after a burst (others get 429 with Retry-After); with a
// token, only to a request bearing it ("Authorization: Bearer TOKEN"),
// others get 401.
func (m *Metrics) Handler(token string, log *slog.Logger) http.Handler {
	prom := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
	perAddr := server.NewAddrLimiter(scrapeEvery, scrapeBurst)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wait := perAddr.Take(r.RemoteAddr); wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
			http.Error(w, fmt.Sprintf("metrics: at most %d scrapes a second from one address", time.Second/scrapeEvery), http.StatusTooManyRequests)
			return
		}
		prom.ServeHTTP(w, r)
	})
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The scheme is case-insensitive (RFC 9110 §11.1); the token is not.
		scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || !constantTimeEqual(got, token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="greenlane metrics"`)
			http.Error(w, "metrics need the bearer token set by --metrics-token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// scraped reads the parts' figures on each scrape. Scrapes at once share
// one reading (flight): /metrics needs no key unless --metrics-token is
// set, and each reading asks the firehose hub and the lane DB, so a
// stranger scraping in a loop from many connections would otherwise put
// as many readings on them at once.
type scraped struct {
	p        Parts
	flight   singleflight.Group
	readings atomic.Int64 // readings taken
}

var (
	descSockets      = prometheus.NewDesc("greenlane_sockets_open", "Open WebSockets, by purpose (fd1: an ordinary client).", []string{"purpose"}, nil)
	descSlow         = prometheus.NewDesc("greenlane_slow_consumers_dropped_total", "Sockets closed because their client did not read its replies.", nil, nil)
	descConns        = prometheus.NewDesc("greenlane_connections_open", "TCP connections open now: sockets and HTTP.", nil, nil)
	descLinesLeftOut = prometheus.NewDesc("greenlane_log_lines_left_out_total", "Log lines left out because callers without a key caused more than their address's budget (a burst of 30, then one every 10 seconds; 5 a second lane-wide).", nil, nil)
	descConnsRefused = prometheus.NewDesc("greenlane_connections_refused_total", "TCP connections closed as they arrived, over --max-conns or --max-conns-per-address.", nil, nil)
	descSockRefused  = prometheus.NewDesc("greenlane_sockets_refused_total", "WebSockets refused at their upgrade, by reason: max_sockets (--max-sockets), unauth_sockets (--max-unauth-sockets, none could be closed for room), unauth_per_address (--max-unauth-per-address), shutting_down.", []string{"reason"}, nil)
	descBatches      = prometheus.NewDesc("greenlane_writer_batches_total", "Write transactions committed by the lane's writer.", nil, nil)
	descMutations    = prometheus.NewDesc("greenlane_writer_mutations_total", "Changes committed by the lane's writer (several per batch under load).", nil, nil)
	descCommit       = prometheus.NewDesc("greenlane_writer_commit_seconds_total", "Time the writer spent in COMMIT.", nil, nil)
	descCommitTimes  = prometheus.NewDesc("greenlane_writer_commit_duration_seconds", "How long the writer's COMMITs took: mostly the disk's fsync, which every change queued behind it waits out.", nil, nil)
	descBusy         = prometheus.NewDesc("greenlane_writer_busy_waits_total", "Batches whose BEGIN or COMMIT gave up on another process's lock.", nil, nil)
	descLockWait     = prometheus.NewDesc("greenlane_writer_lock_wait_seconds_total", "Time the writer waited for another program's lock on the SQLite lane DB (waits under 50ms are not counted; absent on PostgreSQL).", nil, nil)
	descRefused      = prometheus.NewDesc("greenlane_writer_refused_total", "Changes the writer refused (answered unavailable, not made) for no fault of their own, by cause: storage (the lane DB's disk), db_unreachable (the store database cannot be reached), db_locked (another program's or lane's write lock, past --db-busy-timeout).", []string{"cause"}, nil)
	descLockWaiting  = prometheus.NewDesc("greenlane_writer_lock_waiting_seconds", "How long the writer's BEGIN under way has waited for another program's lock on the SQLite lane DB: 0 when none waits (or for under 50ms); absent on PostgreSQL.", nil, nil)
	descYields       = prometheus.NewDesc("greenlane_writer_yields_total", "Pauses the busy writer left for other programs writing the lane DB.", nil, nil)
	descWALPages     = prometheus.NewDesc("greenlane_writer_wal_pages_total", "Pages the writer's commits wrote to the SQLite lane DB's WAL: what COMMIT costs grows with them (absent on PostgreSQL).", nil, nil)
	descJournal      = prometheus.NewDesc("greenlane_journal_seq", "Newest journal sequence number.", nil, nil)
	descSubscribers  = prometheus.NewDesc("greenlane_firehose_subscribers", "Open firehose subscriptions, by event family.", []string{"family"}, nil)
	descDelivered    = prometheus.NewDesc("greenlane_firehose_events_delivered_total", "Firehose events delivered to subscribers.", nil, nil)
	descHubDropped   = prometheus.NewDesc("greenlane_firehose_events_dropped_total", "Trace and display events dropped because the hub was busy.", nil, nil)
	descOpen         = prometheus.NewDesc("greenlane_presells_open", "Submitted presells not yet completed or voided.", nil, nil)
	descClaims       = prometheus.NewDesc("greenlane_presell_claims", "Open presells claimed by a counter whose lease has not lapsed.", nil, nil)
	descOldest       = prometheus.NewDesc("greenlane_presell_oldest_open_age_seconds", "Age of the oldest open presell (0 when there is none).", nil, nil)
	descDBUp         = prometheus.NewDesc("greenlane_db_up", "1 when the lane DB (or the store database) answered this scrape's reads, 0 when it did not: on PostgreSQL, a database the lane cannot reach.", nil, nil)
	descDBSize       = prometheus.NewDesc("greenlane_db_size_bytes", "Size of the lane DB: the SQLite file, or on PostgreSQL the store database (pg_database_size).", nil, nil)
	descWALSize      = prometheus.NewDesc("greenlane_db_wal_size_bytes", "Size of the SQLite lane DB's write-ahead log (absent on PostgreSQL, whose WAL is the cluster's).", nil, nil)
	descWALBlocked   = prometheus.NewDesc("greenlane_db_wal_restarts_blocked_total", "Times a read kept the SQLite lane DB's WAL from starting over; rising steadily, a read transaction held open (another program's) is letting the WAL grow with every change (absent on PostgreSQL).", nil, nil)
)

func (c *scraped) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSockets, descSlow, descConns, descConnsRefused, descSockRefused, descLinesLeftOut, descDBUp, descBatches, descMutations, descCommit, descCommitTimes, descBusy, descRefused, descLockWait, descLockWaiting, descYields,
		descWALPages, descJournal, descSubscribers, descDelivered, descHubDropped, descOpen, descClaims, descOldest, descDBSize, descWALSize, descWALBlocked} {
		ch <- d
	}
}

// commitHistogram is the writer's COMMIT-duration buckets as a Prometheus
// histogram (cumulative buckets; the last, unbounded one is +Inf's).
func commitHistogram(w lanedb.WriterSnapshot) prometheus.Metric {
	buckets := make(map[float64]uint64, lanedb.CommitBuckets-1)
	var count uint64
	for i, n := range w.CommitTimes {
		count += uint64(n)
		if i < lanedb.CommitBuckets-1 {
			buckets[lanedb.CommitBound(i).Seconds()] = count
		}
	}
	return prometheus.MustNewConstHistogram(descCommitTimes, count, w.Commit.Seconds(), buckets)
}

func (c *scraped) Collect(ch chan<- prometheus.Metric) {
	ms, _, _ := c.flight.Do("scrape", func() (any, error) {
		var out metricList
		c.read(&out)
		return out, nil
	})
	for _, m := range ms.(metricList) {
		ch <- m
	}
}

// metricList collects one reading's figures.
type metricList []prometheus.Metric

func (l *metricList) add(m prometheus.Metric) { *l = append(*l, m) }

// read takes the parts' figures as they are now.
func (c *scraped) read(out *metricList) {
	c.readings.Add(1)
	p := c.p
	if p.Server != nil {
		st := p.Server.Stats()
		for _, purpose := range purposes {
			out.add(prometheus.MustNewConstMetric(descSockets, prometheus.GaugeValue, float64(st.SocketsByPurpose[purpose]), purpose))
		}
		out.add(prometheus.MustNewConstMetric(descSlow, prometheus.CounterValue, float64(st.SlowDropped)))
		out.add(prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(st.Conns)))
		out.add(prometheus.MustNewConstMetric(descConnsRefused, prometheus.CounterValue, float64(st.ConnsRefused)))
		for reason, n := range st.SocketsRefused {
			out.add(prometheus.MustNewConstMetric(descSockRefused, prometheus.CounterValue, float64(n), reason))
		}
		out.add(prometheus.MustNewConstMetric(descLinesLeftOut, prometheus.CounterValue, float64(st.LogLinesLeftOut)))
	}
	if p.Writer != nil {
		w := p.Writer.Stats()
		out.add(prometheus.MustNewConstMetric(descBatches, prometheus.CounterValue, float64(w.Batches.Load())))
		out.add(prometheus.MustNewConstMetric(descMutations, prometheus.CounterValue, float64(w.Mutations.Load())))
		out.add(prometheus.MustNewConstMetric(descCommit, prometheus.CounterValue, time.Duration(w.CommitNS.Load()).Seconds()))
		out.add(commitHistogram(w.Snapshot()))
		out.add(prometheus.MustNewConstMetric(descBusy, prometheus.CounterValue, float64(w.BusyWaits.Load())))
		for cause, n := range w.Refused() {
			out.add(prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(n), cause))
		}
		out.add(prometheus.MustNewConstMetric(descYields, prometheus.CounterValue, float64(w.Yields.Load())))
		if p.DB == nil || !p.DB.Postgres() {
			out.add(prometheus.MustNewConstMetric(descWALPages, prometheus.CounterValue, float64(w.Pages.Load())))
			out.add(prometheus.MustNewConstMetric(descLockWait, prometheus.CounterValue, time.Duration(w.LockWaitNS.Load()).Seconds()))
			out.add(prometheus.MustNewConstMetric(descLockWaiting, prometheus.GaugeValue, w.LockWaiting(time.Now()).Seconds()))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if p.Hub != nil {
		if hs, err := p.Hub.Stats(ctx); err != nil {
			out.add(prometheus.NewInvalidMetric(descJournal, err))
		} else {
			out.add(prometheus.MustNewConstMetric(descJournal, prometheus.GaugeValue, float64(hs.Head)))
			for fam, n := range hs.Firehoses {
				out.add(prometheus.MustNewConstMetric(descSubscribers, prometheus.GaugeValue, float64(n), fam))
			}
			out.add(prometheus.MustNewConstMetric(descDelivered, prometheus.CounterValue, float64(hs.Published)))
			out.add(prometheus.MustNewConstMetric(descHubDropped, prometheus.CounterValue, float64(hs.Dropped)))
		}
	}
	if p.DB != nil {
		up := 1.0
		if err := c.presells(ctx, out); err != nil {
			up = 0
		}
		out.add(prometheus.MustNewConstMetric(descDBUp, prometheus.GaugeValue, up))
		if n, err := p.DB.DatabaseSize(ctx); err != nil {
			out.add(prometheus.NewInvalidMetric(descDBSize, p.DB.Unreachable(err)))
		} else {
			out.add(prometheus.MustNewConstMetric(descDBSize, prometheus.GaugeValue, float64(n)))
		}
		// A store database has no WAL of its own (PostgreSQL's is the
		// cluster's): the gauge is left out there rather than read as 0.
		if !p.DB.Postgres() {
			if n, err := p.DB.WALSize(); err != nil {
				out.add(prometheus.NewInvalidMetric(descWALSize, err))
			} else {
				out.add(prometheus.MustNewConstMetric(descWALSize, prometheus.GaugeValue, float64(n)))
			}
			out.add(prometheus.MustNewConstMetric(descWALBlocked, prometheus.CounterValue, float64(p.DB.WALRestartsBlocked())))
		}
	}
}

// presells reports the open presells (lanedb.OpenPresellStats reads them
// through their partial index, so a scrape stays cheap), or the error that
// kept it from reading them.
func (c *scraped) presells(ctx context.Context, out *metricList) error {
	now := c.p.Now()
	row, err := lanedb.OpenPresellStats(ctx, c.p.DB.Read, now.UnixMilli())
	if err != nil {
		err = c.p.DB.Unreachable(err)
		out.add(prometheus.NewInvalidMetric(descOpen, err))
		return err
	}
	out.add(prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(row.Open)))
	out.add(prometheus.MustNewConstMetric(descClaims, prometheus.GaugeValue, float64(row.Claims)))
	age := 0.0
	if row.Oldest != nil {
		for _, layout := range []string{lanedb.StampLayout, lanedb.DateTime} {
			if t, err := time.ParseInLocation(layout, *row.Oldest, time.UTC); err == nil {
				age = max(0, now.Sub(t).Seconds())
				break
			}
		}
	}
	out.add(prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, age))
	return nil
}

// constantTimeEqual compares a presented secret without leaking, through
// timing, how much of it matched.
func constantTimeEqual(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
