package firehose

import (
	"encoding/json"
	"sync/atomic"

	"github.com/greenlane-pos/greenlane/protocol"
)

// filter is what a firehose keeps of its events: one sale (Physkey), one
// tablet, and its q conditions. Firehoses that ask for the same are given
// one filter (filters.intern), and each event remembers its verdict per
// filter, so a thousand displays with one filter cost one evaluation per
// event, not a thousand.
type filter struct {
	key     string // what intern compares: the three below, encoded
	physkey string
	tablet  string
	conds   []protocol.Cond
	refs    int // firehoses using it (filters.mu)
}

// filters interns the firehoses' filters, so that equal ones are one
// value, and forgets one when its last firehose lets go of it.
type filters struct {
	byKey map[string]*filter
}

// filterKey encodes what a filter keeps; "" (no filter) when it keeps
// everything.
func filterKey(physkey, tablet string, conds []protocol.Cond) string {
	if physkey == "" && tablet == "" && len(conds) == 0 {
		return ""
	}
	b, err := json.Marshal([]any{physkey, tablet, conds})
	if err != nil {
		// A value json cannot encode cannot come from a parsed q; such a
		// filter is simply not shared.
		return ""
	}
	return string(b)
}

// intern is the filter for these options, shared with the firehoses that
// already use an equal one; nil when they keep everything. The caller
// holds the hub's mu.
func (fs *filters) intern(physkey, tablet string, conds []protocol.Cond) *filter {
	key := filterKey(physkey, tablet, conds)
	if key == "" {
		if physkey == "" && tablet == "" && len(conds) == 0 {
			return nil
		}
		return &filter{physkey: physkey, tablet: tablet, conds: conds, refs: 1} // not shared
	}
	if f := fs.byKey[key]; f != nil {
		f.refs++
		return f
	}
	f := &filter{key: key, physkey: physkey, tablet: tablet, conds: conds, refs: 1}
	fs.byKey[key] = f
	return f
}

// release lets go of f (nil is fine). The caller holds the hub's mu.
func (fs *filters) release(f *filter) {
	if f == nil {
		return
	}
	if f.refs--; f.refs == 0 && f.key != "" {
		delete(fs.byKey, f.key)
	}
}

// keeps reports whether f keeps ev, asking each filter once per event:
// the verdict is kept on the event, which only the goroutine handling it
// reads (the hub's for live events, a replay's for the rows it read).
// runs counts the evaluations made.
func (f *filter) keeps(ev *event, runs *atomic.Int64) bool {
	if f == nil {
		return true
	}
	if v, ok := ev.verdicts[f]; ok {
		return v
	}
	runs.Add(1)
	v := f.eval(ev.decoded())
	if ev.verdicts == nil {
		ev.verdicts = map[*filter]bool{}
	}
	ev.verdicts[f] = v
	return v
}

// eval applies the filter to an event's decoded fields (with its _sc).
func (f *filter) eval(fields map[string]any) bool {
	if f.physkey != "" && fields["salephyskey"] != f.physkey && fields["physkey"] != f.physkey {
		return false
	}
	if f.tablet != "" {
		src, _ := fields["source"].(map[string]any)
		if src["tablet"] != f.tablet && fields["tablet"] != f.tablet {
			return false
		}
	}
	return protocol.Match(f.conds, fields)
}
