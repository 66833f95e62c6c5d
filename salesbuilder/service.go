// Package salesbuilder is the sales core: it builds sales in the lane DB
// (create, lines, customer, pricing, payments, park/unpark, complete and
// cancel), each change run inside a transaction of the group-commit writer
// and journalled for customer displays. Its methods take plain Go values
// and return domain values; fd1.go is the one file that speaks FD1
// (decoding v, the two name generations, reply shapes). The presell
// workflow (package presell) plugs in through the Presells interface.
package salesbuilder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/greenlane-pos/greenlane/internal/setting"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// Service is the SalesBuilder.
type Service struct {
	db     *lanedb.DB
	writer *lanedb.Writer
	now    func() time.Time
	loc    *time.Location
	laneNo int64
	locID  int64

	lease       time.Duration
	maxAge      time.Duration
	notify      func()
	sessionOpen func(session string) bool
	sessionHere func(session string) bool
	journalKeep int
	journalMax  int64 // bytes of event details
	ikKeep      time.Duration
	maxLines    int
	maxPresells int
	maxSales    int
	maxChange   int64 // cents
	tops        *tops // each socket's top sale (tops.go)
	ids         *ids
	retrying    retriers // keys whose iks were found taken of late (once.go)
	presells    Presells

	stampMu   sync.Mutex
	lastStamp time.Time

	// held is why changes are refused for now (HoldChanges); nil: none.
	held atomic.Pointer[error]
}

// Options configure a Service. DefaultOptions holds every default.
type Options struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Rand is where new sale keys get their randomness; deterministic mode
	// seeds it. Default nil: crypto/rand.
	Rand io.Reader
	// Lease is how long a counter's claim on a presell lasts without a
	// change or heartbeat: 1s to 24h. Default 120s.
	Lease time.Duration
	// PresellMaxAge: an open presell untouched for this long is voided by
	// the sweeper: 1s to 8760h (a year). Default 12h.
	PresellMaxAge time.Duration
	// JournalKeep is how many journal entries (events a firehose can replay)
	// the sweeper keeps: 1000 to 100000000. Default 100000.
	JournalKeep int
	// JournalKeepBytes bounds the journal's event details as well: the
	// sweeper trims the oldest entries past this many bytes, so that sales
	// of hundreds of lines, each change journalled whole, cannot fill the
	// disk before JournalKeep is reached. 1 MiB to 1 TiB. Default 256 MiB.
	JournalKeepBytes int64
	// IdempotencyKeep is how long a request's ik is remembered (a retry
	// later than that is a new request): 1m to 8760h. Default 48h.
	IdempotencyKeep time.Duration
	// MaxSaleLines is the most lines one sale may hold; adding one more is
	// refused with limit_reached. It keeps a sale printable and its every
	// change cheap (each change rereads the lines). 1 to 100000. Default 500.
	MaxSaleLines int
	// MaxOpenPresells is the most open presells (being built or submitted,
	// not yet completed or voided) one key may have; creating one more is
	// refused with limit_reached, so one runaway tablet cannot take every
	// ticket. 1 to 9999 (the tickets there are). Default 200.
	MaxOpenPresells int
	// MaxOpenSales is the most open ordinary sales (active or parked, not
	// presells) one key may hold; creating one more is refused with
	// limit_reached, so that a runaway client cannot fill the lane DB with
	// sales nobody finishes. Admin keys, the operator's own, are not
	// counted. A counter holds one or two. 1 to 1000000. Default 200.
	MaxOpenSales int
	// MaxCashChange is the most change one cash tender may leave; a larger
	// tender is refused as a likely keying slip (1000 for 10.00) before it
	// reaches the drawer. 0.01 to 100000000 (the largest payment).
	// Default 500.
	MaxCashChange protocol.Money
	// Notify is called (without blocking) after each commit that journalled
	// an event, so the firehose hub can publish it. Default nil.
	Notify func()
	// SessionOpen reports whether a session (a socket) is still connected,
	// so that a key whose earlier connection is gone takes its claims back
	// at once instead of waiting out the lease. Default nil: never.
	SessionOpen func(session string) bool
	// SessionHere reports whether a session is one this lane process
	// opened, whose closing SessionOpen sees. In store mode another lane's
	// session is not: whether it is still connected is unknown here, so
	// its claim stands until its lease lapses. Default nil: every session
	// is (one lane per SQLite file).
	SessionHere func(session string) bool
}

// Validate reports every field out of its range, each as a
// *setting.Error naming the field. (New still takes a zero field as its
// default, for one-off tools that pass Options{}.)
func (o Options) Validate() error {
	return errors.Join(
		setting.Range("Lease", o.Lease, time.Second, 24*time.Hour),
		setting.Range("PresellMaxAge", o.PresellMaxAge, time.Second, 8760*time.Hour),
		setting.Range("JournalKeep", o.JournalKeep, 1000, 100_000_000),
		setting.Range("JournalKeepBytes", o.JournalKeepBytes, 1<<20, 1<<40),
		setting.Range("IdempotencyKeep", o.IdempotencyKeep, time.Minute, 8760*time.Hour),
		setting.Range("MaxSaleLines", o.MaxSaleLines, 1, 100_000),
		setting.Range("MaxOpenPresells", o.MaxOpenPresells, 1, lanedb.MaxTicket),
		setting.Range("MaxOpenSales", o.MaxOpenSales, 1, 1_000_000),
		setting.Range("MaxCashChange", o.MaxCashChange, 1, 10_000_000_000),
	)
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{Now: time.Now, Lease: 120 * time.Second, PresellMaxAge: 12 * time.Hour, JournalKeep: 100000, JournalKeepBytes: 256 << 20,
		IdempotencyKeep: 48 * time.Hour, MaxSaleLines: 500, MaxOpenPresells: 200, MaxOpenSales: 200, MaxCashChange: 50000}
}

// New returns a SalesBuilder writing through w. It reads the lane's number
// and time zone once; a lane DB without a store (the empty fixture) runs as
// lane 1 in UTC.
func New(ctx context.Context, db *lanedb.DB, w *lanedb.Writer, opts Options) (*Service, error) {
	d := DefaultOptions()
	if opts.Now == nil {
		opts.Now = d.Now
	}
	if opts.Lease <= 0 {
		opts.Lease = d.Lease
	}
	if opts.PresellMaxAge <= 0 {
		opts.PresellMaxAge = d.PresellMaxAge
	}
	if opts.JournalKeep <= 0 {
		opts.JournalKeep = d.JournalKeep
	}
	if opts.JournalKeepBytes <= 0 {
		opts.JournalKeepBytes = d.JournalKeepBytes
	}
	if opts.IdempotencyKeep <= 0 {
		opts.IdempotencyKeep = d.IdempotencyKeep
	}
	if opts.MaxSaleLines <= 0 {
		opts.MaxSaleLines = d.MaxSaleLines
	}
	if opts.MaxOpenPresells <= 0 {
		opts.MaxOpenPresells = d.MaxOpenPresells
	}
	if opts.MaxOpenSales <= 0 {
		opts.MaxOpenSales = d.MaxOpenSales
	}
	if opts.MaxCashChange <= 0 {
		opts.MaxCashChange = d.MaxCashChange
	}
	s := &Service{db: db, writer: w, now: opts.Now, lease: opts.Lease, maxAge: opts.PresellMaxAge, notify: opts.Notify, sessionOpen: opts.SessionOpen, sessionHere: opts.SessionHere, journalKeep: opts.JournalKeep, journalMax: opts.JournalKeepBytes, ikKeep: opts.IdempotencyKeep, maxLines: opts.MaxSaleLines, maxPresells: opts.MaxOpenPresells, maxSales: opts.MaxOpenSales, maxChange: int64(opts.MaxCashChange), ids: newIDs(opts.Rand), presells: noPresells{}, tops: newTops(), loc: time.UTC, laneNo: 1}
	lane, err := db.LaneInfo(ctx)
	switch {
	case errors.Is(err, lanedb.ErrNoLane):
	case err != nil:
		return nil, err
	default:
		s.laneNo, s.locID = lane.LaneNo, lane.Location.LocID
		loc, err := time.LoadLocation(lane.Timezone)
		if err != nil {
			return nil, fmt.Errorf("lane time zone %q: %w", lane.Timezone, err)
		}
		s.loc = loc
	}
	return s, nil
}

// Attach plugs the presell workflow in. lane calls it once, before the
// lane serves.
func (s *Service) Attach(p Presells) { s.presells = p }

// Now is the lane's clock.
func (s *Service) Now() time.Time { return s.now() }

// Lease is how long a claim on a presell lasts without a change.
func (s *Service) Lease() time.Duration { return s.lease }

// PresellMaxAge is how long an untouched open presell lives.
func (s *Service) PresellMaxAge() time.Duration { return s.maxAge }

// LaneNo is the lane's number.
func (s *Service) LaneNo() int64 { return s.laneNo }

// DB is the lane DB the core reads.
func (s *Service) DB() *lanedb.DB { return s.db }

// SessionGone reports whether a session (a socket) is known to be closed:
// never one of another lane of the store (SessionElsewhere).
func (s *Service) SessionGone(session string) bool {
	return s.sessionOpen != nil && !s.SessionElsewhere(session) && !s.sessionOpen(session)
}

// SessionElsewhere reports whether a session is another lane process's
// (store mode), whose closing this lane cannot see.
func (s *Service) SessionElsewhere(session string) bool {
	return s.sessionHere != nil && !s.sessionHere(session)
}

// Do runs fn as one write through the group-commit writer, with lane DB
// errors a client can act on turned into FD1 errors. While changes are
// held (HoldChanges) it refuses with that error instead.
func (s *Service) Do(ctx context.Context, fn lanedb.Mutation) error {
	return mapDBError(s.do(ctx, nil, fn))
}

// do is Do for c's key (nil: none; see lanedb.Writer.DoAs), answering
// the writer's error as it is.
func (s *Service) do(ctx context.Context, c *protocol.Caller, fn lanedb.Mutation) error {
	if err := s.held.Load(); err != nil {
		return *err
	}
	var key string
	if c != nil {
		key = c.KeyID
	}
	return s.writer.DoAs(ctx, key, fn)
}

// HoldChanges makes Do refuse every change with err until it is called
// with nil: in store mode, while the lane's clock is off the store
// database's, whatever it stamped on shared rows would mislead the other
// lanes (err is then an FD1 unavailable saying so). Reads go on.
func (s *Service) HoldChanges(err error) {
	if err == nil {
		s.held.Store(nil)
		return
	}
	s.held.Store(&err)
}

// Held is why changes are refused for now (HoldChanges), nil when they
// are not.
func (s *Service) Held() error {
	if err := s.held.Load(); err != nil {
		return *err
	}
	return nil
}

// localNow is the store's local time as a date-time column holds it.
func (s *Service) localNow() string { return s.now().In(s.loc).Format(lanedb.DateTime) }

func (s *Service) utcNow() string { return s.now().UTC().Format(lanedb.DateTime) }

// Stamp is updated_utc for a change: UTC to the microsecond and strictly
// increasing, so "the sale changed last" is well defined even for changes
// within the same second (the top sale depends on it).
func (s *Service) Stamp() string {
	s.stampMu.Lock()
	defer s.stampMu.Unlock()
	t := s.now().UTC().Truncate(time.Microsecond)
	if !t.After(s.lastStamp) {
		t = s.lastStamp.Add(time.Microsecond)
	}
	s.lastStamp = t
	return t.Format(lanedb.StampLayout)
}

// mapDBError turns lane DB errors that a client can act on into FD1 errors.
// An unavailable whose cause is more than a busy lane names it
// (protocol.Error.Cause), so that a page can show the message.
func mapDBError(err error) error {
	var pe *protocol.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, lanedb.ErrStaleSale):
		return protocol.Errorf(protocol.CodeConflict, "the sale was changed by another device at the same moment; fetch it and retry")
	case errors.Is(err, lanedb.ErrWriterClosed):
		return protocol.Errorf(protocol.CodeUnavailable, "the lane is shutting down; retry on the next connection")
	}
	// A full or failing disk is no bug of the lane's: the client can say
	// why, and retry once someone has seen to it.
	if reason, ok := lanedb.StorageFault(err); ok {
		return protocol.Errorf(protocol.CodeUnavailable, "%s; this change was not made", reason).Because(protocol.CauseStorage)
	}
	switch {
	case errors.Is(err, lanedb.ErrOutcomeUnknown):
		// Checked first: it is unavailable too, but "not made" would be
		// false, and a fresh ik could take a tender twice.
		return protocol.Errorf(protocol.CodeUnavailable, "the connection to the store database was lost while this change was being saved, "+
			"so it may have been made: retry with the same ik (a change that was made is answered as made, not made twice); "+
			"a client that sent no ik should fetch the sale before making it again").Because(protocol.CauseOutcomeUnknown)
	case errors.Is(err, lanedb.ErrStoreLocked):
		return protocol.Errorf(protocol.CodeUnavailable, "another lane holds the store database's write lock (a lane that is stopped or hung "+
			"loses it within seconds); this change was not made: retry").Because(protocol.CauseDBLocked)
	case lanedb.IsBusy(err):
		return protocol.Errorf(protocol.CodeUnavailable, "the lane DB stayed locked by another program; this change was not made: retry").Because(protocol.CauseDBLocked)
	case errors.Is(err, lanedb.ErrRaceLost):
		return protocol.Errorf(protocol.CodeConflict, "another lane changed the same data at the same moment; fetch it and retry")
	case lanedb.IsUnavailable(err):
		return protocol.Errorf(protocol.CodeUnavailable, "the store database cannot be reached; this change was not made: retry").Because(protocol.CauseDBUnreachable)
	}
	return err
}
