// Package protocol is the FD1 wire format: request, reply and event packets,
// their decoding, error codes, q filters, qo shaping and the endpoint router.
// It knows nothing about sales or databases.
package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxRQLen is the longest request id a client may send (SPEC §2: "shorter
// than 200 characters").
const MaxRQLen = 199

// Echoed fields are bounded too, so that an error reply to a huge packet is
// small: an endpoint name is at most MaxALen bytes, rt at most MaxRTLen.
const (
	MaxALen  = 200
	MaxRTLen = 1024
)

// Request is one FD1 request packet (SPEC §2, plus ik from DESIGN §3).
// Fields whose JSON type varies are kept raw and read by accessors.
type Request struct {
	A  string                     `json:"a"`            // endpoint, "fd1." prefix optional
	Q  map[string]json.RawMessage `json:"q,omitempty"`  // filters (§5.3)
	QK Keywords                   `json:"qk,omitempty"` // endpoint switches
	K  json.RawMessage            `json:"k,omitempty"`  // record key: string or number
	V  json.RawMessage            `json:"v,omitempty"`  // arguments object
	RQ json.RawMessage            `json:"rq,omitempty"` // request id, echoed as rp
	RT json.RawMessage            `json:"rt,omitempty"` // tab/thread tag, echoed as rt
	PT string                     `json:"pt,omitempty"` // protocol type; empty = FD1
	MO Keywords                   `json:"mo,omitempty"` // mode options ("chunk")
	QO json.RawMessage            `json:"qo,omitempty"` // reply template (§3.5)
	RD json.RawMessage            `json:"rd,omitempty"` // request debug (§3.6)
	IK string                     `json:"ik,omitempty"` // idempotency key (see CheckIK)

	// FromQuery marks a request built from an HTTP GET query string, whose
	// q and v values all arrive as text (see Filter).
	FromQuery bool `json:"-"`
}

// MaxIKLen is the longest idempotency key (ik) a client may send.
const MaxIKLen = 128

// CheckIK checks an idempotency key: any opaque string of 1 to MaxIKLen
// printable ASCII characters (0x21–0x7E), compared exactly. A UUID is the
// recommended choice, but a client's own order number works as well. Space
// is refused: HTTP headers and query strings trim or rewrite it, so a key
// with a space would not be the same key over every transport.
func CheckIK(ik string) error {
	if ik == "" || len(ik) > MaxIKLen {
		return Errorf(CodeBadArgument, "ik must be 1 to %d characters, got %d; a fresh UUID per request is recommended", MaxIKLen, len(ik))
	}
	for i := 0; i < len(ik); i++ {
		if c := ik[i]; c < 0x21 || c > 0x7E {
			return Errorf(CodeBadArgument, "ik may hold only printable ASCII characters without spaces; byte %d is 0x%02x", i+1, c)
		}
	}
	return nil
}

// Filter parses q against an endpoint's filterable fields. Values of a
// request built from a query string are text and are converted by kind.
func (r *Request) Filter(fields Fields) ([]Cond, error) {
	if !r.FromQuery {
		return ParseFilter(r.Q, fields)
	}
	text := make(map[string]string, len(r.Q))
	for k, raw := range r.Q {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, Errorf(CodeBadFilter, "q[%q]: want text from the query string", k)
		}
		text[k] = s
	}
	return ParseQueryFilter(text, fields)
}

// Key is k as text: a string as is, a number in its JSON spelling, "" when absent.
func (r *Request) Key() string {
	if len(r.K) == 0 || string(r.K) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(r.K, &s) == nil {
		return s
	}
	return string(r.K)
}

// RQString is rq as text ("" when absent), for logs and cancel lookups.
func (r *Request) RQString() string {
	if len(r.RQ) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(r.RQ, &s) == nil {
		return s
	}
	return string(r.RQ)
}

// WantsTiming reports whether rd asks for {"time":true} (SPEC §3.6).
func (r *Request) WantsTiming() bool {
	var rd struct {
		Time bool `json:"time"`
	}
	return len(r.RD) > 0 && json.Unmarshal(r.RD, &rd) == nil && rd.Time
}

// Keywords is qk or mo: a JSON array of strings or one comma-separated string.
type Keywords []string

// UnmarshalJSON accepts "a,b" and ["a","b"].
func (k *Keywords) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*k = splitKeywords(s)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("want a string or an array of strings")
	}
	out := Keywords{}
	for _, s := range list {
		out = append(out, splitKeywords(s)...)
	}
	*k = out
	return nil
}

// ParseKeywords reads a comma-separated qk or mo, as a packet's string
// form is read (HTTP mode's query string uses it too).
func ParseKeywords(s string) Keywords { return splitKeywords(s) }

func splitKeywords(s string) Keywords {
	out := Keywords{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// Has reports whether word is one of the keywords.
func (k Keywords) Has(word string) bool {
	for _, w := range k {
		if w == word {
			return true
		}
	}
	return false
}

// DecodeError is a packet that could not be decoded. It carries whatever of
// rq and rt could be read, so the error reply still reaches the right caller.
type DecodeError struct {
	Err *Error
	RQ  json.RawMessage
	RT  json.RawMessage
	A   string
}

func (e *DecodeError) Error() string { return e.Err.Error() }

// Unwrap lets AsError find the client-facing error inside.
func (e *DecodeError) Unwrap() error { return e.Err }

// Decode reads one FD1 request from a text frame. Every failure is a
// *DecodeError with code bad_packet, naming what was wrong, except an
// unusable ik: that is bad_argument, as it is when an endpoint checks the
// ik of an HTTP request (see CheckIK).
func Decode(frame []byte) (*Request, *DecodeError) {
	fail := func(format string, args ...any) *DecodeError {
		return &DecodeError{Err: Errorf(CodeBadPacket, format, args...)}
	}
	if !utf8.Valid(frame) {
		return nil, fail("the frame is not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(frame)
	if len(trimmed) == 0 {
		return nil, fail("the frame is empty; send one JSON object per frame")
	}
	if trimmed[0] != '{' {
		// "nope", "tru" and "-" start like JSON values but are not JSON at
		// all: say so, not "got null".
		var v any
		if err := json.Unmarshal(trimmed, &v); err != nil {
			return nil, fail("malformed JSON: %s; send one JSON object per frame", jsonErrorText(err))
		}
		return nil, fail("a packet must be a JSON object, got %s", jsonKind(trimmed))
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		return nil, fail("malformed JSON: %s", jsonErrorText(err))
	}
	de := &DecodeError{}
	req := &Request{}
	fail = func(format string, args ...any) *DecodeError {
		de.Err = Errorf(CodeBadPacket, format, args...)
		return de
	}

	// rt, a and rq first, so that any later error can still be routed and
	// name its endpoint; each is echoed only when it is itself acceptable.
	// rt is reflected unchanged whatever it is (SPEC §2), null included.
	rt, hasRT := fields["rt"]
	rt = bytes.TrimSpace(rt)
	hasRT = hasRT && len(rt) > 0
	if hasRT && len(rt) <= MaxRTLen {
		req.RT, de.RT = rt, rt
	}
	if raw, ok := present(fields, "a"); ok {
		var a string
		if json.Unmarshal(raw, &a) == nil && len(a) <= MaxALen {
			de.A = a
		}
	}
	if raw, ok := present(fields, "rq"); ok {
		if err := checkRQ(raw); err != nil {
			return nil, fail("%s", err)
		}
		req.RQ, de.RQ = raw, raw
	}
	if hasRT && len(rt) > MaxRTLen {
		return nil, fail("field \"rt\" is %d bytes; it may be at most %d", len(rt), MaxRTLen)
	}

	raw, ok := present(fields, "a")
	if !ok {
		return nil, fail("field \"a\" (the endpoint name) is missing")
	}
	if err := json.Unmarshal(raw, &req.A); err != nil {
		return nil, fail("field \"a\" must be a string, got %s", jsonKind(raw))
	}
	if req.A == "" {
		return nil, fail("field \"a\" (the endpoint name) is empty")
	}
	if len(req.A) > MaxALen {
		n := len(req.A)
		req.A = ""
		return nil, fail("field \"a\" is %d bytes; no endpoint name is longer than %d", n, MaxALen)
	}
	de.A = req.A

	if err := decodeOptional(fields, req); err != nil {
		var pe *Error
		if asErr(err, &pe) { // already a client error with its own code (ik)
			de.Err = pe
			return nil, de
		}
		return nil, fail("%s", err)
	}
	return req, nil
}

// decodeOptional reads every field after a, rq and rt, checking JSON types.
func decodeOptional(fields map[string]json.RawMessage, req *Request) error {
	if raw, ok := present(fields, "q"); ok {
		if raw[0] != '{' {
			return fmt.Errorf("field \"q\" must be an object, got %s", jsonKind(raw))
		}
		if err := json.Unmarshal(raw, &req.Q); err != nil {
			return fmt.Errorf("field \"q\": %s", jsonErrorText(err))
		}
	}
	for _, f := range []struct {
		name string
		dst  *Keywords
	}{{"qk", &req.QK}, {"mo", &req.MO}} {
		if raw, ok := present(fields, f.name); ok {
			if err := json.Unmarshal(raw, f.dst); err != nil {
				return fmt.Errorf("field %q must be a string or an array of strings, got %s", f.name, jsonKind(raw))
			}
		}
	}
	if raw, ok := present(fields, "k"); ok {
		if raw[0] != '"' && !isNumber(raw) {
			return fmt.Errorf("field \"k\" must be a string or a number, got %s", jsonKind(raw))
		}
		req.K = raw
	}
	for _, f := range []struct {
		name string
		dst  *json.RawMessage
	}{{"v", &req.V}, {"rd", &req.RD}} {
		if raw, ok := present(fields, f.name); ok {
			if raw[0] != '{' {
				return fmt.Errorf("field %q must be an object, got %s", f.name, jsonKind(raw))
			}
			*f.dst = raw
		}
	}
	if raw, ok := present(fields, "qo"); ok {
		if raw[0] != '{' && raw[0] != '"' {
			return fmt.Errorf("field \"qo\" must be an object or a comma-separated string, got %s", jsonKind(raw))
		}
		req.QO = raw
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"pt", &req.PT}, {"ik", &req.IK}} {
		if raw, ok := present(fields, f.name); ok {
			if err := json.Unmarshal(raw, f.dst); err != nil {
				return fmt.Errorf("field %q must be a string, got %s", f.name, jsonKind(raw))
			}
		}
	}
	if _, ok := present(fields, "ik"); ok {
		// An empty ik is refused here rather than read as "no ik": the
		// client meant to make the request exactly-once.
		if err := CheckIK(req.IK); err != nil {
			return err
		}
	}
	return nil
}

// present returns a field that is there and not null.
func present(fields map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	raw, ok := fields[name]
	if !ok {
		return nil, false
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false
	}
	return raw, true
}

func checkRQ(raw json.RawMessage) error {
	switch {
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("field \"rq\": %s", jsonErrorText(err))
		}
		if utf8.RuneCountInString(s) > MaxRQLen {
			return fmt.Errorf("field \"rq\" is %d characters; it must be shorter than 200", utf8.RuneCountInString(s))
		}
	case isNumber(raw):
		if len(raw) > MaxRQLen {
			return fmt.Errorf("field \"rq\" is %d characters; it must be shorter than 200", len(raw))
		}
	default:
		return fmt.Errorf("field \"rq\" must be a string or a number, got %s", jsonKind(raw))
	}
	return nil
}

func isNumber(raw json.RawMessage) bool {
	if len(raw) == 0 || !(raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) {
		return false
	}
	var n json.Number
	return json.Unmarshal(raw, &n) == nil
}

// jsonKind names the JSON type of raw for error messages.
func jsonKind(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch c := raw[0]; {
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	}
	return "something that is not JSON"
}

// jsonErrorText turns an encoding/json error into a short message.
func jsonErrorText(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case asErr(err, &syn):
		return fmt.Sprintf("%s (at byte %d)", syn.Error(), syn.Offset)
	case asErr(err, &typ):
		return fmt.Sprintf("want %s, got %s", goKindName(typ.Type.Kind().String()), typ.Value)
	}
	return err.Error()
}
