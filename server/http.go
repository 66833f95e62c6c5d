package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// httpSession is the pseudo-socket of one HTTP-mode call: it is logged in by
// the API key header, lives for one request and cannot be cancelled.
type httpSession struct{ caller protocol.Caller }

func (h *httpSession) currentCaller() protocol.Caller { return h.caller }
func (h *httpSession) setCaller(c protocol.Caller)    { h.caller = c }
func (h *httpSession) cancelRequest(string) bool      { return false }

// httpMode serves /fd1/<area>/<function> (SPEC §1.2): the API key in
// x-api-key or x-apikey, packet fields in the GET query or the POST body.
func (s *Server) httpMode(w http.ResponseWriter, r *http.Request) {
	s.serveHTTPMode(w, r, "fd1."+r.PathValue("area")+"."+r.PathValue("function"), nil)
}

// httpOtherPath answers every other path under /fd1/ with the FD1 error
// envelope, as HTTP mode answers its own paths, never Go's plain-text 404:
// /fd1/data names the documented fd1.data (one segment, no dot), which
// goes through the gate like any endpoint; any other path (a trailing
// slash, area.function in one segment, more segments) names no endpoint.
func (s *Server) httpOtherPath(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/fd1/")
	if rest != "" && !strings.ContainsAny(rest, "/.") {
		s.serveHTTPMode(w, r, "fd1."+rest, nil)
		return
	}
	s.serveHTTPMode(w, r, "fd1."+strings.ReplaceAll(strings.Trim(rest, "/"), "/", "."), protocol.Errorf(protocol.CodeUnknownEndpoint,
		"no endpoint at %s: HTTP mode serves fd1.<area>.<function> at /fd1/<area>/<function>", clip(r.URL.Path)))
}

// serveHTTPMode serves one HTTP-mode call of endpoint a. pathErr, when
// set, is the answer instead of a's endpoint: the path names none.
func (s *Server) serveHTTPMode(w http.ResponseWriter, r *http.Request, a string, pathErr error) {
	received := time.Now()
	var req *protocol.Request
	var err error
	switch r.Method {
	case http.MethodGet:
		var query url.Values
		if query, err = parseQuery(r.URL.RawQuery); err == nil {
			req, err = requestFromQuery(a, query)
		}
	case http.MethodPost:
		req, err = s.requestFromBody(a, w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		writeHTTPReply(w, http.StatusMethodNotAllowed, protocol.ErrorReply(a, nil, nil,
			protocol.Errorf(protocol.CodeBadPacket, "HTTP mode takes GET or POST, not %s", r.Method)))
		return
	}
	if err != nil {
		var rq, rt json.RawMessage
		var de *protocol.DecodeError
		if errors.As(err, &de) {
			rq, rt, err = de.RQ, de.RT, de.Err
		}
		reply := protocol.ErrorReply(a, rq, rt, err)
		if errors.Is(err, errBodyTooBig) {
			// Still bad_packet to an FD1 client; 413 to HTTP's own tools.
			writeHTTPReply(w, http.StatusRequestEntityTooLarge, reply)
			return
		}
		writeError(w, reply)
		return
	}
	in := s.arrive(req, received)
	if pathErr != nil {
		in.ep, in.lookupErr = nil, pathErr
	}
	// One call is one session: it can hold no claim beyond its own reply.
	sess := &httpSession{caller: protocol.Caller{Transport: "http", Remote: r.RemoteAddr, Session: s.newSession()}}
	key, err := apiKeyHeader(r)
	if err != nil {
		writeError(w, protocol.ErrorReply(a, req.RQ, req.RT, err))
		return
	}
	if key != "" {
		if _, err := s.logIn(r.Context(), sess, sess.caller, key, protocol.PurposeNone); err != nil {
			switch {
			case lanedb.IsUnavailable(err):
				// The key could not be looked up: every call logs in, so
				// while the store database is out of reach each fails so.
				err = s.unreadable("fd1.session.login", err)
			case protocol.AsError(err).Code == protocol.CodeInternal:
				s.log.Error("http login", "err", err)
			}
			var re *retryError
			if errors.As(err, &re) {
				w.Header().Set("Retry-After", strconv.Itoa(retrySeconds(re.after)))
			}
			writeError(w, protocol.ErrorReply(a, req.RQ, req.RT, err))
			return
		}
		markKeyed(r)
	} else if in.ep == nil || !in.ep.Access.Public {
		// Said here rather than by the gate, whose message speaks of the
		// login packet a socket sends.
		s.loginRefused(sess.caller, "", errors.New("no API key header"))
		writeError(w, protocol.ErrorReply(a, req.RQ, req.RT, protocol.Errorf(protocol.CodeLoginRequired, msgNoHTTPKey)))
		return
	}
	reply := s.run(r.Context(), sess, sess.caller, in)
	if reply == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if reply.Error != nil {
		writeError(w, reply)
		return
	}
	writeHTTPReply(w, http.StatusOK, reply)
}

// apiKeyHeader is the request's API key. The docs disagree on the header
// name (SPEC §1.2): both are accepted, but a request that gives more than
// one key (both names, or one name twice) is refused rather than logged
// in as whichever happened to come first.
func apiKeyHeader(r *http.Request) (string, error) {
	keys := append(r.Header.Values("x-api-key"), r.Header.Values("x-apikey")...)
	switch {
	case len(keys) == 0:
		return "", nil
	case len(keys) > 1 && slices.ContainsFunc(keys, func(k string) bool { return k != keys[0] }):
		return "", protocol.Errorf(protocol.CodeBadPacket, "the request carries more than one API key (x-api-key, x-apikey); send one")
	}
	return keys[0], nil
}

// errBodyTooBig marks a POST body over ReadLimit (HTTP 413).
var errBodyTooBig = errors.New("body too big")

// requestFromBody reads a POST body holding one JSON packet (an empty body
// is an empty packet). The URL names the endpoint.
func (s *Server) requestFromBody(a string, w http.ResponseWriter, r *http.Request) (*protocol.Request, error) {
	// Every query name is a packet field or a q filter to a GET; beside a
	// body it would be ignored, and a request read two ways (v.amount=100
	// in the query, $1 in the body) is refused rather than guessed at.
	if r.URL.RawQuery != "" {
		return nil, protocol.Errorf(protocol.CodeBadPacket,
			"a POST carries its packet in the body, and this one also has a query (%s) that would be ignored: send everything in the body, or use GET", clip(r.URL.RawQuery))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.ReadLimit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, fmt.Errorf("%w: %w", errBodyTooBig,
			protocol.Errorf(protocol.CodeBadPacket, "the body is larger than the lane's limit of %d bytes", s.cfg.ReadLimit))
	}
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeBadPacket, "could not read the body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte(`{}`)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		var syntax *json.SyntaxError
		if !json.Valid(body) && errors.As(err, &syntax) {
			return nil, protocol.Errorf(protocol.CodeBadPacket,
				"the POST body is not JSON (%v at byte %d): send one FD1 packet as a JSON object, e.g. {\"v\":{}}", syntax, syntax.Offset)
		}
		return nil, protocol.Errorf(protocol.CodeBadPacket,
			"the POST body is %s, not a JSON object: send one FD1 packet as a JSON object, e.g. {\"v\":{}}", jsonKind(body))
	}
	// The URL names the endpoint. A body may repeat it (any alias of the
	// same endpoint), but one naming another is refused rather than
	// silently served by the URL's.
	if raw, ok := fields["a"]; ok {
		var named string
		if err := json.Unmarshal(raw, &named); err != nil {
			return nil, protocol.Errorf(protocol.CodeBadPacket, "the body's a must be a string naming the URL's endpoint %s, got %s", a, jsonKind(raw))
		}
		if !s.sameEndpoint(named, a) {
			return nil, protocol.Errorf(protocol.CodeBadPacket,
				"the body's a %q disagrees with the URL's endpoint %s: leave a out of the body, or POST to the endpoint it names", clip(named), a)
		}
	}
	fields["a"], _ = json.Marshal(a)
	if body, err = json.Marshal(fields); err != nil {
		return nil, protocol.Errorf(protocol.CodeBadPacket, "the POST body: %v", err)
	}
	req, derr := protocol.Decode(body)
	if derr != nil {
		return nil, derr
	}
	return req, nil
}

// sameEndpoint reports whether two endpoint names (aliases, "fd1." optional)
// are one endpoint.
func (s *Server) sameEndpoint(x, y string) bool {
	ex, errx := s.router.Lookup(x)
	ey, erry := s.router.Lookup(y)
	if errx != nil || erry != nil {
		return x == y
	}
	return ex == ey
}

// jsonKind names what a JSON value is, for messages.
func jsonKind(b []byte) string {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0:
		return "empty"
	case b[0] == '{':
		return "an object"
	case b[0] == '[':
		return "an array"
	case b[0] == '"':
		return "a string"
	case bytes.Equal(b, []byte("null")):
		return "null"
	case bytes.Equal(b, []byte("true")) || bytes.Equal(b, []byte("false")):
		return "a boolean"
	default:
		return "a number"
	}
}

// clip shortens client text quoted back in a message.
func clip(s string) string {
	const most = 80
	if utf8.RuneCountInString(s) <= most {
		return s
	}
	return string([]rune(s)[:most]) + "…"
}

// parseQuery splits a raw GET query into values like url.ParseQuery, but
// refuses what that would drop without a word: a pair holding ";" (no
// longer a separator) or a bad %-escape. Dropping a filter would widen
// the answer, e.g. return every row instead of a few.
func parseQuery(raw string) (url.Values, error) {
	values := url.Values{}
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		if strings.Contains(pair, ";") {
			return nil, protocol.Errorf(protocol.CodeBadPacket,
				"query pair %q holds a ';': separate pairs with & and write a ';' in a value as %%3B", clip(pair))
		}
		name, value, _ := strings.Cut(pair, "=")
		var err error
		if name, err = url.QueryUnescape(name); err == nil {
			value, err = url.QueryUnescape(value)
		}
		if err != nil {
			return nil, protocol.Errorf(protocol.CodeBadPacket, "query pair %q: %v; write %% as %%25", clip(pair), err)
		}
		values[name] = append(values[name], value)
	}
	return values, nil
}

// queryFields are the packet fields a GET query may set (SPEC §1.2), by
// their own names: "?qk=all&k=active" as the SPEC writes it. Each may also
// be written with a leading "_" ("_qk=all", as the SPEC's other examples
// do), and v's members as v.name or _v.name. Every other name is a q
// filter, e.g. price(>=)=5.
var queryFields = []string{"k", "qk", "mo", "rq", "rt", "ik", "pt", "qo", "rd", "v"}

// queryField is the packet field a query name sets ("v.pid" for a member
// of v), or "" when the name is a q filter.
func queryField(name string) string {
	base := strings.TrimPrefix(name, "_")
	if slices.Contains(queryFields, base) || (strings.HasPrefix(base, "v.") && len(base) > 2) {
		return base
	}
	return ""
}

// requestFromQuery builds a request from a GET query (SPEC §1.2): the
// packet fields of queryFields (k, qk, rq, rt, mo, ik, pt, qo (a comma
// list), rd and v (JSON objects), v.name=value), bare or with "_", and q
// filters under every other name. One field given under both spellings is
// refused: which one was meant?
func requestFromQuery(a string, query url.Values) (*protocol.Request, error) {
	req := &protocol.Request{A: a, FromQuery: true, Q: map[string]json.RawMessage{}}
	// v's members as v.name gave them, and v as a whole gave them: one
	// member given both ways is refused below.
	v, whole := map[string]json.RawMessage{}, map[string]json.RawMessage{}
	spelled := map[string]string{} // packet field -> the query name that set it
	for name, values := range query {
		if len(values) > 1 {
			// plu=FW&plu=LT would filter on one of them and answer no rows,
			// _qo=pid&_qo=plu would keep one: either way the client would
			// get an answer to a question it did not ask.
			return nil, protocol.Errorf(protocol.CodeBadArgument,
				"query field %q is given %d times; give it once (a list field takes a comma-separated list)", clip(name), len(values))
		}
		name, value := rejoinOperator(name, values[0])
		field := queryField(name)
		if field == "" {
			if strings.HasPrefix(name, "_") {
				return nil, protocol.Errorf(protocol.CodeBadArgument,
					"unknown query field %q (packet fields: %s, v.<name>, each also with a leading _; other names are q filters)", clip(name), strings.Join(queryFields, " "))
			}
			text, _ := json.Marshal(value)
			req.Q[name] = text
			continue
		}
		if other, dup := spelled[field]; dup {
			return nil, protocol.Errorf(protocol.CodeBadPacket,
				"query fields %q and %q are one packet field, %s: give it once", clip(other), clip(name), field)
		}
		spelled[field] = name
		if err := setQueryField(req, v, whole, field, value); err != nil {
			return nil, err
		}
	}
	for name, raw := range whole {
		if _, dup := v[name]; dup {
			return nil, protocol.Errorf(protocol.CodeBadPacket,
				"v.%s is given twice, in v and as %s: give it once", clip(name), spelled["v."+name])
		}
		v[name] = raw
	}
	if len(v) > 0 {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, protocol.Errorf(protocol.CodeBadArgument, "v: %v", err)
		}
		req.V = b
	}
	return req, nil
}

// setQueryField sets one packet field from its query text: v.name into v,
// v as a whole into whole.
func setQueryField(req *protocol.Request, v, whole map[string]json.RawMessage, field, value string) error {
	text, _ := json.Marshal(value)
	switch field {
	case "k":
		req.K = text
	case "rq":
		if utf8.RuneCountInString(value) > protocol.MaxRQLen {
			return protocol.Errorf(protocol.CodeBadPacket, "rq is %d characters; it must be shorter than 200", utf8.RuneCountInString(value))
		}
		req.RQ = text
	case "rt":
		req.RT = text
	case "qk":
		req.QK = protocol.ParseKeywords(value)
	case "mo":
		req.MO = protocol.ParseKeywords(value)
	case "ik":
		// An empty ik (a template whose variable was empty) must not
		// quietly turn exactly-once off: it is refused as "ik":"" is.
		if err := protocol.CheckIK(value); err != nil {
			return err
		}
		req.IK = value
	case "pt":
		req.PT = value
	case "qo":
		req.QO = text
	case "rd":
		if !json.Valid([]byte(value)) || !strings.HasPrefix(strings.TrimSpace(value), "{") {
			return protocol.Errorf(protocol.CodeBadArgument, `rd must be a JSON object, e.g. {"time":true}`)
		}
		req.RD = json.RawMessage(value)
	case "v":
		// Members given as v.name are added to these.
		var members map[string]json.RawMessage
		if err := json.Unmarshal([]byte(value), &members); err != nil || members == nil {
			return protocol.Errorf(protocol.CodeBadArgument,
				`v must be a JSON object of v's fields, e.g. v={"qty":2}; got %s`, queryKind(value))
		}
		for name, raw := range members {
			whole[name] = raw
		}
	default: // v.name
		name := strings.TrimPrefix(field, "v.")
		raw, err := queryValue(name, value)
		if err != nil {
			return err
		}
		v[name] = raw
	}
	return nil
}

// queryKind names what a query's v value is, for messages: JSON by its
// kind, anything else as text.
func queryKind(value string) string {
	if json.Valid([]byte(value)) {
		return jsonKind([]byte(value))
	}
	return "text that is not JSON"
}

// rejoinOperator mends a filter whose operator held "=": the query
// "price(>=)=5" parses as name "price(>" and value "=)=5". Clients that
// percent-encode the operator are not affected.
func rejoinOperator(name, value string) (string, string) {
	if !strings.Contains(name, "(") || strings.Contains(name, ")") {
		return name, value
	}
	if j := strings.Index(value, ")="); j >= 0 {
		return name + "=" + value[:j+1], value[j+2:]
	}
	return name, value
}

// queryValue reads one _v.name value. A number is a string holding that
// number: integer and money fields read such a string as the number
// (DESIGN §4) and a string field (a barcode, a plu) as the text it is, so
// ?v.barcode=9415321000140 is not refused for being a number. Other valid
// JSON (true, a quoted string, an object) is that JSON; null is refused,
// as a query cannot say it (leave the field out); anything else is a
// string ("0012" stays the text it looks like).
func queryValue(name, s string) (json.RawMessage, error) {
	raw := []byte(strings.TrimSpace(s))
	if !json.Valid(raw) {
		b, _ := json.Marshal(s)
		return b, nil
	}
	switch {
	case string(raw) == "null":
		return nil, protocol.Errorf(protocol.CodeBadArgument,
			"v.%s=null: a query cannot give null; leave v.%s out, or send v as JSON in a POST body", clip(name), clip(name))
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		b, _ := json.Marshal(string(raw))
		return b, nil
	}
	return json.RawMessage(s), nil
}

func writeError(w http.ResponseWriter, reply *protocol.Reply) {
	if reply.Error.Code == protocol.CodeRateLimited && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1") // a request rate: the next second has room
	}
	writeHTTPReply(w, reply.Error.Code.HTTPStatus(), reply)
}

func writeHTTPReply(w http.ResponseWriter, status int, reply *protocol.Reply) {
	b, err := reply.Marshal()
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = protocol.ErrorReply(reply.R, reply.RP, reply.RT, err).Marshal()
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	_, _ = w.Write([]byte("\n"))
}
