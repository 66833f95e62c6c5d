package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

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
	received := time.Now()
	a := "fd1." + r.PathValue("area") + "." + r.PathValue("function")
	var req *protocol.Request
	var err error
	switch r.Method {
	case http.MethodGet:
		req, err = requestFromQuery(a, r.URL.Query())
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
		writeError(w, protocol.ErrorReply(a, rq, rt, err))
		return
	}
	// One call is one session: it can hold no claim beyond its own reply.
	sess := &httpSession{caller: protocol.Caller{Transport: "http", Remote: r.RemoteAddr, Session: uuid.NewString()}}
	if key := apiKeyHeader(r); key != "" {
		if s.logins.blocked(r.RemoteAddr) {
			writeError(w, protocol.ErrorReply(a, req.RQ, req.RT, rateLimitedLogin()))
			return
		}
		k, err := s.db.Authenticate(r.Context(), key)
		switch {
		case errors.Is(err, lanedb.ErrBadKey) || errors.Is(err, lanedb.ErrRevokedKey):
			s.logins.failed(r.RemoteAddr)
			writeError(w, protocol.ErrorReply(a, req.RQ, req.RT,
				protocol.Errorf(protocol.CodeLoginFailed, "API key not accepted: it is unknown or has been revoked")))
			return
		case err != nil:
			s.log.Error("http login", "err", err)
			writeError(w, protocol.ErrorReply(a, req.RQ, req.RT, err))
			return
		}
		if sess.caller, err = withKey(sess.caller, k, protocol.PurposeNone); err != nil {
			writeError(w, protocol.ErrorReply(a, req.RQ, req.RT, err))
			return
		}
	}
	reply := s.run(r.Context(), sess, sess.caller, req, received)
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

func apiKeyHeader(r *http.Request) string {
	// The docs disagree on the header name (SPEC §1.2): accept both.
	if k := r.Header.Get("x-api-key"); k != "" {
		return k
	}
	return r.Header.Get("x-apikey")
}

// requestFromBody reads a POST body holding one JSON packet. The URL names
// the endpoint; an "a" in the body is ignored.
func (s *Server) requestFromBody(a string, w http.ResponseWriter, r *http.Request) (*protocol.Request, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.ReadLimit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, protocol.Errorf(protocol.CodeBadPacket, "the body is larger than the lane's limit of %d bytes", s.cfg.ReadLimit)
	}
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeBadPacket, "could not read the body: %v", err)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte(`{}`)
	}
	// Put the URL's endpoint in before decoding, so a body without "a" is
	// fine and a body with another "a" cannot reach a different endpoint.
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) == nil && fields != nil {
		fields["a"], _ = json.Marshal(a)
		body, _ = json.Marshal(fields)
	}
	req, derr := protocol.Decode(body)
	if derr != nil {
		return nil, derr
	}
	return req, nil
}

// requestFromQuery builds a request from a GET query (SPEC §1.2): _k, _qk,
// _rq, _rt, _mo, _ik, _qo (comma list), _v (a JSON object) and _v.name=value
// fill packet fields; every other name is a q filter, e.g. price(>=)=5.
func requestFromQuery(a string, query url.Values) (*protocol.Request, error) {
	req := &protocol.Request{A: a, FromQuery: true, Q: map[string]json.RawMessage{}}
	v := map[string]json.RawMessage{}
	for name, values := range query {
		name, value := rejoinOperator(name, values[len(values)-1])
		text, _ := json.Marshal(value)
		switch {
		case name == "_k":
			req.K = text
		case name == "_rq":
			if utf8.RuneCountInString(value) > protocol.MaxRQLen {
				return nil, protocol.Errorf(protocol.CodeBadPacket, "_rq is %d characters; it must be shorter than 200", utf8.RuneCountInString(value))
			}
			req.RQ = text
		case name == "_rt":
			req.RT = text
		case name == "_qk":
			req.QK = protocol.Keywords(strings.Split(value, ","))
		case name == "_mo":
			req.MO = protocol.Keywords(strings.Split(value, ","))
		case name == "_ik":
			req.IK = value
		case name == "_qo":
			req.QO = text
		case name == "_v":
			if err := json.Unmarshal([]byte(value), &v); err != nil {
				return nil, protocol.Errorf(protocol.CodeBadArgument, "_v must be a JSON object: %v", err)
			}
		case strings.HasPrefix(name, "_v."):
			v[strings.TrimPrefix(name, "_v.")] = queryValue(value)
		case strings.HasPrefix(name, "_"):
			return nil, protocol.Errorf(protocol.CodeBadArgument,
				"unknown query field %q (packet fields: _k _qk _rq _rt _mo _ik _qo _v _v.<name>; other names are q filters)", name)
		default:
			req.Q[name] = text
		}
	}
	if len(v) > 0 {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, protocol.Errorf(protocol.CodeBadArgument, "_v: %v", err)
		}
		req.V = b
	}
	return req, nil
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

// queryValue reads one _v.name value: valid JSON (a number, true, a quoted
// string, an object) as that JSON, anything else as a string. "0012" is not
// a JSON number, so it stays the text it looks like.
func queryValue(s string) json.RawMessage {
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	b, _ := json.Marshal(s)
	return b
}

func writeError(w http.ResponseWriter, reply *protocol.Reply) {
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
