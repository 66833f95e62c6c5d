package transcript

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// IdentityFields are reply fields whose values a server chooses and that
// differ from one server (or run) to the next, but must stay consistent
// within a run: a recording captures each new value on first sight
// ("$capture:ticket1") and writes later uses of it, in replies and in
// sent packets, as the variable ("$ticket1"). Strings are recognised by
// value anywhere; numbers only in a field of the same name (a ticket 1
// is not the quantity 1).
var IdentityFields = map[string]bool{
	"ticket": true, "ticket_word": true, "ticket_barcode": true, "sid": true,
	"physkey_random_no": true, "physkey_random_no_word": true,
	// API key names: they depend on the keys a server was given.
	"tablet": true, "holder": true, "actor": true, "created_by": true, "holder_name": true,
}

// NumberFields are reply fields recorded as "$number": counters that
// depend on everything the server did before (the journal's seq), and
// durations that depend on when the replay runs.
var NumberFields = map[string]bool{"seq": true, "age": true, "uptime": true}

// AnyFields are reply fields recorded as "$any": timings.
var AnyFields = map[string]bool{"debug_rd": true}

// RecordOptions tune a Recorder.
type RecordOptions struct {
	// Literal writes packets exactly as they were, without placeholders
	// (for a server in deterministic mode, replayed against the same).
	Literal bool
}

// Recorder writes a transcript of a live session: sent packets as send
// lines, received ones as expect lines. Unless Literal, volatile values
// become placeholders so the recording replays against a fresh server:
// UUIDs are captured on first sight and reused as variables, date-times
// become "$datetime", IdentityFields are captured, NumberFields become
// "$number", AnyFields "$any", text that quotes any of those (an error
// message naming a sale) "$string"; a UUID the client made up for "ik" is sent
// as "$new:ikN". Safe for concurrent use (one reader per socket).
type Recorder struct {
	mu      sync.Mutex
	w       io.Writer
	opt     RecordOptions
	byValue map[string]string            // a captured string → its variable
	byField map[string]map[string]string // field → captured number text → variable
	count   map[string]int               // variable base name → last number used
	sent    int                          // send lines written
	err     error
}

// NewRecorder writes a transcript to w.
func NewRecorder(w io.Writer, opt RecordOptions) *Recorder {
	return &Recorder{w: w, opt: opt, byValue: map[string]string{},
		byField: map[string]map[string]string{}, count: map[string]int{}}
}

// Sent is how many send lines were written: none, and a replay of the
// recording would have nothing to do.
func (r *Recorder) Sent() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent
}

// Err is the first write error.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *Recorder) write(st Step) error {
	if r.err == nil {
		if _, err := r.w.Write(MarshalLine(st)); err != nil {
			r.err = fmt.Errorf("write transcript: %w", err)
		}
	}
	return r.err
}

// Comment writes {"#": text}.
func (r *Recorder) Comment(text string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.write(Step{Comment: text})
}

// Open writes an open line. The key is never written: replay supplies it.
func (r *Recorder) Open(socket, urlQuery string, login *Login) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.write(Step{Open: socket, URLQuery: urlQuery, Login: login})
}

// Close writes a close line.
func (r *Recorder) Close(socket string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.write(Step{Close: socket})
}

// Send records a packet sent on socket.
func (r *Recorder) Send(socket string, packet []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, err := Parse(packet)
	if err != nil || v.Kind != Object {
		// Deliberately malformed packets cannot be replayed from a line.
		return r.write(Step{Comment: fmt.Sprintf("not recorded, not a JSON object: sent on %s: %.200s", socket, packet)})
	}
	if !r.opt.Literal {
		v = r.generalizeSent(v, "", true)
	}
	r.sent++
	return r.write(Step{Socket: socket, Send: &v})
}

// Receive records a packet that came on socket.
func (r *Recorder) Receive(socket string, packet []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, err := Parse(packet)
	if err != nil {
		return r.write(Step{Comment: fmt.Sprintf("not recorded, not JSON: received on %s: %.200s", socket, packet)})
	}
	if !r.opt.Literal {
		v = r.generalizeReceived(v, "", true)
	}
	return r.write(Step{Socket: socket, Expect: &v})
}

// generalizeReceived rewrites a received value into a pattern. field is
// the name of the enclosing object field (array elements inherit it).
func (r *Recorder) generalizeReceived(v Value, field string, top bool) Value {
	if AnyFields[field] {
		return Str(Any)
	}
	switch v.Kind {
	case Object:
		out := Value{Kind: Object}
		for i, k := range v.Keys {
			val := v.Vals[i]
			if !(top && (k == "r" || k == "rp")) { // the client chose rp: keep it
				val = r.generalizeReceived(val, k, false)
			}
			out.Keys, out.Vals = append(out.Keys, k), append(out.Vals, val)
		}
		return out
	case Array:
		out := Value{Kind: Array, Elem: make([]Value, len(v.Elem))}
		for i, e := range v.Elem {
			out.Elem[i] = r.generalizeReceived(e, field, false)
		}
		return out
	case String:
		return r.receivedString(v.Str, field)
	case Number:
		return r.receivedNumber(v, field)
	}
	return v
}

func (r *Recorder) receivedString(s, field string) Value {
	if name, ok := r.byValue[s]; ok {
		return Str("$" + name)
	}
	switch {
	case IsUUID(s) || (IdentityFields[field] && s != ""):
		base := field
		if base == "k" && IsUUID(s) { // the sale key echo: name it for what it is
			base = "physkey"
		}
		name := r.newName(base)
		if len(s) >= 3 { // short strings are too likely to recur by chance
			r.byValue[s] = name
		}
		return Str(capturePrefix + name)
	case IsDateTime(s):
		return Str(DateTime)
	case r.embedsVolatile(s):
		return Str(StringP)
	case strings.HasPrefix(s, "$"):
		return Str("$" + s)
	}
	return Str(s)
}

var (
	embeddedUUID     = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)
	embeddedDateTime = regexp.MustCompile(`\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}`)
)

// embedsVolatile reports whether text (an error message, say) quotes a
// UUID, a date-time or a captured value: such text differs on every run,
// so it is recorded as "$string".
func (r *Recorder) embedsVolatile(s string) bool {
	if embeddedUUID.MatchString(s) || embeddedDateTime.MatchString(s) {
		return true
	}
	for v := range r.byValue {
		if strings.Contains(s, v) {
			return true
		}
	}
	return false
}

func (r *Recorder) receivedNumber(v Value, field string) Value {
	switch {
	case NumberFields[field]:
		return Str(NumberP)
	case !IdentityFields[field]:
		return v
	}
	if name, ok := r.byField[field][v.Num]; ok {
		return Str("$" + name)
	}
	name := r.newName(field)
	if r.byField[field] == nil {
		r.byField[field] = map[string]string{}
	}
	r.byField[field][v.Num] = name
	return Str(capturePrefix + name)
}

// generalizeSent rewrites a sent packet: values captured from earlier
// replies become their variables.
func (r *Recorder) generalizeSent(v Value, field string, top bool) Value {
	switch v.Kind {
	case Object:
		out := Value{Kind: Object}
		for i, k := range v.Keys {
			val := v.Vals[i]
			if !(top && k == "rq") {
				val = r.generalizeSent(val, k, false)
			}
			out.Keys, out.Vals = append(out.Keys, k), append(out.Vals, val)
		}
		return out
	case Array:
		out := Value{Kind: Array, Elem: make([]Value, len(v.Elem))}
		for i, e := range v.Elem {
			out.Elem[i] = r.generalizeSent(e, field, false)
		}
		return out
	case String:
		if name, ok := r.byValue[v.Str]; ok {
			return Str("$" + name)
		}
		if strings.HasPrefix(v.Str, "$") {
			return Str("$" + v.Str)
		}
		// An idempotency key is the client's own fresh UUID: a replay
		// must make a new one, or a second replay would be a retry.
		if field == "ik" && IsUUID(v.Str) {
			name := r.newName("ik")
			r.byValue[v.Str] = name
			return Str(newPrefix + name)
		}
	case Number:
		if name, ok := r.byField[field][v.Num]; ok {
			return Str("$" + name)
		}
	}
	return v
}

var notNameChar = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// newName is the next variable named after a field: physkey1, physkey2…
func (r *Recorder) newName(field string) string {
	base := notNameChar.ReplaceAllString(field, "_")
	if base == "" || base == "_" || (base[0] >= '0' && base[0] <= '9') {
		base = "v"
	}
	if c := base[len(base)-1]; c >= '0' && c <= '9' {
		base += "_"
	}
	r.count[base]++
	return base + strconv.Itoa(r.count[base])
}
