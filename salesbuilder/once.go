package salesbuilder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// A change made with an idempotency key (ik) happens exactly once: its
// answer is stored in the change's own transaction, and a retry of the
// same request by the same key gets that answer without running again.

// Once is what exactly-once needs to know of a request.
type Once struct {
	// IK is the request's idempotency key; "" runs the change every time.
	IK string
	// Caller is who asks.
	Caller *protocol.Caller
	// Op names the operation, stored with the ik (the endpoint's canonical
	// name): a retry must ask for the same.
	Op string
	// Hash identifies the request's arguments as decoded (stored with the
	// ik); WrittenHash as written, which a retry also matches (a record
	// stored before arguments were compared decoded).
	Hash, WrittenHash []byte
	// Claims says that success means "this device now holds the presell"
	// (a recall, an unpark).
	Claims bool
}

// Changed is what a change answers: the sale it changed and what to show
// of it (a view, or the very bytes stored for a retry).
type Changed struct {
	Physkey string
	View    any
}

// ChangeFunc is the body of one change, run inside the writer's
// transaction. A retry with a taken ik may run it before the ik is found
// taken, and then undo it: whatever it does beyond its writes (a terminal,
// a printer, a message) must wait for the commit (tx.OnCommit), or a
// retry would do it again.
type ChangeFunc func(ctx context.Context, tx *lanedb.Tx) (Changed, error)

// Key is the physkey of the sale a view shows.
func (v *SaleView) Key() string { return v.Physkey }

// ChangedOf makes a change's answer from a view of the changed sale: for
// wrapping a core method, ChangedOf(s.AddProduct(…)).
func ChangedOf[V interface{ Key() string }](v V, err error) (Changed, error) {
	if err != nil {
		return Changed{}, err
	}
	return Changed{Physkey: v.Key(), View: v}, nil
}

// Change runs fn as one write (inside the group-commit batch) and answers
// once it has committed. With an ik, the answer is stored in the same
// transaction, and a retry answers it without running fn again.
//
// A new ik is not looked up first: its record's INSERT finds a taken ik
// by the unique pair anyway, and a read before every change cost every
// change a statement for the sake of the rare retry. A retry is found
// there (or, when fn refuses it, by a look after the refusal: a retried
// park finds its sale parked); that run is undone (errIKTaken) and the
// change runs once more, looking the ik up first, as it always did.
//
// A key whose ik was found taken looks its iks up first for a while
// (retriers): a retry costs a look, not a change made and undone, so
// neither a device resending its queue nor one resending on purpose
// costs the other tablets more than it did.
func (s *Service) Change(ctx context.Context, o Once, fn ChangeFunc) (Changed, error) {
	var c Changed
	lookFirst := o.IK != "" && s.retrying.recently(o.Caller.KeyID)
	err := s.do(ctx, o.Caller, s.changeOnce(o, fn, lookFirst, &c))
	if errors.Is(err, errIKTaken) {
		s.retrying.note(o.Caller.KeyID)
		err = s.do(ctx, o.Caller, s.changeOnce(o, fn, true, &c))
	}
	return c, mapDBError(err)
}

// retriers holds when each key last had an ik found taken: for
// retryingFor after it, the key's changes look their iks up first. At most
// retriersMax keys are held; past it, all are forgotten at once.
type retriers struct {
	mu   sync.Mutex
	last map[string]time.Time
}

const (
	retryingFor = 10 * time.Second
	retriersMax = 1024
)

func (r *retriers) note(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil || len(r.last) >= retriersMax {
		r.last = map[string]time.Time{}
	}
	r.last[key] = time.Now()
}

func (r *retriers) recently(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.last[key]
	return ok && time.Since(at) < retryingFor
}

// errIKTaken undoes a change run without looking its ik up first, whose ik
// turned out to be taken: the run made (or refused) what the first run
// already answered.
var errIKTaken = errors.New("the ik has a stored answer")

// changeOnce is the mutation of one run of Change, answering in result;
// lookFirst looks the ik up before fn.
func (s *Service) changeOnce(o Once, fn ChangeFunc, lookFirst bool, result *Changed) lanedb.Mutation {
	return func(ctx context.Context, tx *lanedb.Tx) error {
		if o.IK != "" && lookFirst {
			stored, ok, err := s.replayed(ctx, tx, o)
			if err != nil || ok {
				*result = stored
				return err
			}
		}
		c, err := fn(ctx, tx)
		if err != nil {
			if o.IK != "" && !lookFirst {
				return s.refused(ctx, tx, o, err)
			}
			return err
		}
		s.touched(tx, o.Caller, c.Physkey)
		if o.IK != "" {
			stored, err := storeReply(ctx, tx, o, c, s.now())
			switch {
			case err != nil:
				return err
			case stored == nil && lookFirst:
				// Looked up in this very transaction, which nobody else
				// writes: it cannot be taken.
				return fmt.Errorf("ik %s was taken after it was looked up", o.IK)
			case stored == nil:
				return errIKTaken
			}
			c = *stored
		}
		*result = c
		return nil
	}
}

// refused is what a change whose fn failed with err answers: errIKTaken
// when o's ik has a record (the request is a retry, refused because its
// first run already happened), else err. A failed statement is answered
// as it is; on PostgreSQL it leaves nothing to look in, so a look that
// fails is a reason to run again looking first.
func (s *Service) refused(ctx context.Context, tx *lanedb.Tx, o Once, err error) error {
	if _, ok := lanedb.StorageFault(err); ok {
		return err // the transaction is gone with the disk's trouble
	}
	rec, lookErr := lanedb.GetIdempotent(ctx, tx, o.Caller.KeyID, o.IK)
	switch {
	case lookErr != nil:
		return fmt.Errorf("%w: %w (and the ik's record could not be read: %w)", errIKTaken, err, lookErr)
	case rec != nil:
		return errIKTaken
	}
	return err
}

// storedReply is what the idempotency table keeps of a reply: the sale and
// its view, unwrapped, so a retry under the other generation's name gets
// its own shape.
type storedReply struct {
	Physkey string          `json:"k"`
	View    json.RawMessage `json:"view"`
}

// storedReplyJSON is storedReply{physkey, view} as JSON, view put in as
// it is: json.Marshal would scan the view (a sale, about 1 KB) again to
// check and compact it, in the writer, for every change with an ik; it is
// json.Marshal's own output already.
func storedReplyJSON(physkey string, view []byte) []byte {
	k, _ := json.Marshal(physkey) // a string always encodes
	b := make([]byte, 0, len(`{"k":,"view":}`)+len(k)+len(view))
	b = append(append(append(b, `{"k":`...), k...), `,"view":`...)
	return append(append(b, view...), '}')
}

// replayed returns the stored answer for o's ik (ok false if the ik is
// new to the caller's key), or ik_reused if the key used it for another
// request. Another key's use of the same ik is none of this key's business.
// A retry from a new connection takes over the claim the first connection
// won with it.
func (s *Service) replayed(ctx context.Context, tx *lanedb.Tx, o Once) (Changed, bool, error) {
	rec, err := lanedb.GetIdempotent(ctx, tx, o.Caller.KeyID, o.IK)
	if err != nil || rec == nil {
		return Changed{}, false, err
	}
	same := bytes.Equal(rec.RequestHash, o.Hash) || o.WrittenHash != nil && bytes.Equal(rec.RequestHash, o.WrittenHash)
	if rec.Endpoint != o.Op || !same {
		return Changed{}, false, protocol.Errorf(protocol.CodeIKReused,
			"ik %s was already used for a different request; use a new ik for a new request", o.IK)
	}
	var sr storedReply
	if err := json.Unmarshal(rec.Reply, &sr); err != nil {
		return Changed{}, false, fmt.Errorf("stored reply for ik %s: %w", o.IK, err)
	}
	c := o.Caller
	if rec.Session != "" && (rec.Session != c.Session || o.Claims) && sr.Physkey != "" && CanClaim(c) {
		if err := s.presells.Resume(ctx, tx, rec, sr.Physkey, c, o.Claims); err != nil {
			return Changed{}, false, err
		}
	}
	return Changed{Physkey: sr.Physkey, View: sr.View}, true, nil
}

// storeReply keeps c for o's ik, or answers nil when the ik is taken. The
// view is answered as the very bytes stored, so the first answer and every
// retry are identical.
func storeReply(ctx context.Context, tx *lanedb.Tx, o Once, c Changed, now time.Time) (*Changed, error) {
	view, err := json.Marshal(c.View)
	if err != nil {
		return nil, fmt.Errorf("encode reply for ik: %w", err)
	}
	body := storedReplyJSON(c.Physkey, view)
	rec := &lanedb.Idempotent{IK: o.IK, KeyID: o.Caller.KeyID, Endpoint: o.Op, RequestHash: o.Hash, Reply: body, Session: o.Caller.Session}
	if stored, err := lanedb.PutIdempotent(ctx, tx, rec, now); err != nil || !stored {
		return nil, err
	}
	return &Changed{Physkey: c.Physkey, View: json.RawMessage(view)}, nil
}

// TrimJournal keeps the newest JournalKeep journal entries (what firehoses
// can replay), fewer if their details pass JournalKeepBytes, and the
// idempotency records of the last IdempotencyKeep, at most ikKeepPerKey of
// each key, deleting others a few thousand per transaction.
func (s *Service) TrimJournal(ctx context.Context) error {
	cutoff := s.now().Add(-s.ikKeep)
	// Sized on the read pool: the writer waits for none of it.
	through, err := lanedb.JournalByteCutoff(ctx, s.db.Read, s.journalMax)
	if err != nil {
		return err
	}
	for _, trim := range []func(ctx context.Context, tx *lanedb.Tx) (int64, error){
		func(ctx context.Context, tx *lanedb.Tx) (int64, error) {
			return lanedb.TrimJournal(ctx, tx, s.journalKeep, trimBatch)
		},
		func(ctx context.Context, tx *lanedb.Tx) (int64, error) {
			return lanedb.TrimJournalThrough(ctx, tx, through, trimBatch)
		},
		func(ctx context.Context, tx *lanedb.Tx) (int64, error) {
			return lanedb.TrimIdempotency(ctx, tx, cutoff, trimBatch)
		},
		func(ctx context.Context, tx *lanedb.Tx) (int64, error) {
			return lanedb.TrimIdempotencyPerKey(ctx, tx, ikKeepPerKey, trimBatch)
		},
	} {
		if err := s.trimAll(ctx, trim); err != nil {
			return err
		}
	}
	return nil
}

// trimBatch keeps each trimming transaction short.
const trimBatch = 2000

// ikKeepPerKey is how many of one API key's newest iks are remembered
// (within IdempotencyKeep): far more than the changes a device retries
// (its last few, or an offline queue's), shared by every device of a key.
const ikKeepPerKey = 2000

// trimAll runs trim in transactions until a batch comes back short.
func (s *Service) trimAll(ctx context.Context, trim func(ctx context.Context, tx *lanedb.Tx) (int64, error)) error {
	for {
		var n int64
		err := s.writer.Do(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
			var err error
			n, err = trim(ctx, tx)
			return err
		})
		if err != nil || n < trimBatch {
			return err
		}
	}
}
