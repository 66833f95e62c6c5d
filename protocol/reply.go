package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
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
	Rows any  `json:"rows"` // a slice
	More bool `json:"more,omitempty"`
	// Chunk, when above 0, sends the rows in packets of at most Chunk rows
	// (the request asked for mo:"chunk", SPEC §3.4); see Reply.Chunks. It
	// is not part of the payload: HTTP mode answers the whole list at once.
	Chunk int `json:"-"`
}

// ChunkMode is the mo keyword asking for a chunked reply (SPEC §3.4).
const ChunkMode = "chunk"

// WantsChunks reports whether the request asked for a chunked reply.
func (r *Request) WantsChunks() bool { return r.MO.Has(ChunkMode) }

// Chunks is the packets of a reply (SPEC §3.4). A list reply whose Rows has
// Chunk set becomes one packet per Chunk rows, in order, each with the
// reply's r, rp, rt, sc and k, ch counting up from 1 and "last":true on the
// final one, which alone carries "more" when a cap cut the list. A list
// that fits in one packet is one packet with ch 1 and last. Any other
// reply is returned as it is. The packets share the rows' backing array.
func (r *Reply) Chunks() []*Reply {
	rows, ok := r.Data.(Rows)
	if !ok || rows.Chunk <= 0 {
		return []*Reply{r}
	}
	list := reflect.ValueOf(rows.Rows)
	n := 0
	if list.Kind() == reflect.Slice {
		n = list.Len()
	}
	count := max(1, (n+rows.Chunk-1)/rows.Chunk)
	out := make([]*Reply, count)
	for i := range out {
		part := Rows{Rows: rows.Rows}
		if n > 0 {
			part.Rows = list.Slice(i*rows.Chunk, min(n, (i+1)*rows.Chunk)).Interface()
		}
		c := *r
		c.Ch, c.Last = i+1, i == count-1
		part.More = c.Last && rows.More
		c.Data = part
		out[i] = &c
	}
	return out
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
