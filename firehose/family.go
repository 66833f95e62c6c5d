package firehose

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// Family is one kind of event a firehose may follow. The hub knows none
// of its own: the packages that write events describe theirs and the
// wiring (lane) hands them to NewHub, so a new event family never means a
// change here.
type Family struct {
	// Name is the family as an open_firehose ack and the hub's figures
	// name it ("custdisp.sale").
	Name string
	// Journal is the journal family whose rows become this family's
	// events, each with sc Journal + "." + the row's event and the row's
	// seq. Empty for a memory family: its events come from PublishMemory,
	// carry no seq and are never replayed.
	Journal string
	// Names and Prefixes are what a client's v.event may say to ask for
	// this family: one of Names exactly, or anything starting with one of
	// Prefixes.
	Names    []string
	Prefixes []string
	// Body turns one of the family's journal rows into the event's v
	// (journal families only). Detail and DetailWithEnvelope are the two
	// shapes in use.
	Body func(lanedb.JournalEntry) (json.RawMessage, error)
	// NoSC leaves sc out of the family's packets, to save bytes on a
	// high-volume stream (tufe.trace, SPEC §5.5).
	NoSC bool
	// Current, when set, makes the family a state the writer re-sends
	// whole on every change (a custdisp body is always the full current
	// sale): a firehose opened without since first gets the newest row it
	// matches, as a replayed event, when Current says that row shows a
	// state still in progress, so a display switched on mid-sale shows the
	// sale. The hub keeps the newest row of each journal physkey it has
	// seen and asks Current only of the one an open would send. The writer
	// decides, not the hub: which states are over is the domain's rule.
	Current func(lanedb.JournalEntry) bool

	// The server reads these when a firehose opens; the hub does not.

	// Display marks the family a customer display follows whatever its
	// v.event names (DESIGN §4).
	Display bool
	// Scopes, when set, are the scopes of which a caller needs one to
	// follow the family.
	Scopes []protocol.Scope
}

// asks reports whether a client's v.event asks for f.
func (f *Family) asks(event string) bool {
	for _, n := range f.Names {
		if event == n {
			return true
		}
	}
	for _, p := range f.Prefixes {
		if strings.HasPrefix(event, p) {
			return true
		}
	}
	return false
}

// Detail is a Body that sends a journal row's detail as it was written:
// the writer journaled the whole event. A row another program wrote may
// hold anything: one whose detail is not JSON, or not UTF-8 (which
// json.Valid lets through, and a browser fails the whole socket on), is
// not sent.
func Detail(r lanedb.JournalEntry) (json.RawMessage, error) {
	if !json.Valid([]byte(r.Detail)) {
		return nil, fmt.Errorf("journal row %d: its detail is not JSON (%.40q)", r.Seq, r.Detail)
	}
	if !utf8.ValidString(r.Detail) {
		return nil, fmt.Errorf("journal row %d: its detail is not UTF-8 (%.40q)", r.Seq, r.Detail)
	}
	return json.RawMessage(r.Detail), nil
}

// DetailWithEnvelope is a Body for rows whose detail says only what is
// particular to the event: it adds the envelope from the row itself,
// which sale (physkey), who (actor) and when (at_utc).
func DetailWithEnvelope(r lanedb.JournalEntry) (json.RawMessage, error) {
	// A detail that is not an object (none is written) still gets its
	// envelope: the event stays useful to a counter following presells.
	var v map[string]any
	_ = json.Unmarshal([]byte(r.Detail), &v)
	if v == nil {
		v = map[string]any{}
	}
	v["physkey"], v["actor"], v["at_utc"] = r.Physkey, r.Actor, r.AtUTC
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("journal row %d: encode event: %w", r.Seq, err)
	}
	return b, nil
}
