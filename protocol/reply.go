package protocol

import (
	"bytes"
	"encoding/json"
)

// Reply is a response packet (SPEC §3, DESIGN §4). Data is always present:
// an error reply carries "data":{} so clients that only read data stay safe.
type Reply struct {
	R       string          `json:"r"`
	RP      json.RawMessage `json:"rp,omitempty"`
	RT      json.RawMessage `json:"rt,omitempty"`
	SC      string          `json:"sc,omitempty"`
	K       json.RawMessage `json:"k,omitempty"`
	Ch      int             `json:"ch,omitempty"`
	Last    bool            `json:"last,omitempty"`
	Error   *Error          `json:"error,omitempty"`
	Data    any             `json:"data"`
	DebugRD any             `json:"debug_rd,omitempty"`
}

// Event is one firehose packet: rp is the rq that opened the firehose.
type Event struct {
	RP  json.RawMessage `json:"rp"`
	SC  string          `json:"sc,omitempty"`
	V   any             `json:"v"`
	Seq int64           `json:"seq,omitempty"`
}

// Push is a server-initiated message (SPEC §4.5), e.g. fn1.link.link_status.
type Push struct {
	A string `json:"a"`
	V any    `json:"v"`
}

// Rows is the list payload shape: data.rows[] (More is set when a row cap cut
// the list short).
type Rows struct {
	Rows any  `json:"rows"`
	More bool `json:"more,omitempty"`
}

// ReplyTo starts a reply to req: r, rp and rt echoed exactly as sent.
func ReplyTo(req *Request) *Reply {
	return &Reply{R: req.A, RP: req.RQ, RT: req.RT}
}

// ErrorReply is the reply for a failed request.
func ErrorReply(r string, rq, rt json.RawMessage, err error) *Reply {
	return &Reply{R: r, RP: rq, RT: rt, Error: AsError(err), Data: struct{}{}}
}

// Marshal encodes a packet. A nil Data becomes {}. HTML characters are not
// escaped, so rt and strings come back as the client wrote them.
func (r *Reply) Marshal() ([]byte, error) {
	if r.Data == nil {
		r.Data = struct{}{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
