package transcript

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeLane is a tiny FD1 server in memory: enough of login, a firehose
// and a sale for the replayer's rules to be tested without a real lane.
type fakeLane struct {
	mu    sync.Mutex
	keys  map[string]bool // accepted API keys
	price string          // the price of the one product
	conns []*fakeConn
	sales int
	// swapEvents publishes a sale's two display events in the wrong order.
	swapEvents bool
	// silent drops the reply to this endpoint.
	silent string
}

type fakeConn struct {
	lane     *fakeLane
	query    string
	firehose string // rq of the open firehose, if any
	out      chan []byte
	done     chan struct{}
	once     sync.Once
}

func (l *fakeLane) dial(_ context.Context, query string) (Conn, error) {
	if query == "?purpose=wrong" {
		return nil, errors.New("400 Bad Request")
	}
	c := &fakeConn{lane: l, query: query, out: make(chan []byte, 100), done: make(chan struct{})}
	l.mu.Lock()
	l.conns = append(l.conns, c)
	l.mu.Unlock()
	return c, nil
}

func (c *fakeConn) Send(p []byte) error {
	v, err := Parse(p)
	if err != nil {
		return err
	}
	c.lane.handle(c, v)
	return nil
}

func (c *fakeConn) Recv() ([]byte, error) {
	select {
	case b := <-c.out:
		return b, nil
	case <-c.done:
		return nil, errors.New("closed")
	}
}

func (c *fakeConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

func (c *fakeConn) push(format string, args ...any) { c.out <- []byte(fmt.Sprintf(format, args...)) }

func (l *fakeLane) handle(c *fakeConn, p Value) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, _ := p.Get("a")
	rq, _ := p.Get("rq")
	if a.Str == l.silent {
		return
	}
	switch a.Str {
	case "fd1.session.login":
		v, _ := p.Get("v")
		key, _ := v.Get("apikey")
		if !l.keys[key.Str] {
			c.push(`{"r":"fd1.session.login","rp":%s,"error":{"code":"login_failed","message":"no"},"data":{}}`, rq)
			return
		}
		c.push(`{"r":"fd1.session.login","rp":%s,"data":{"valid":1,"scopes":["admin"]}}`, rq)
	case "fd1.firehose.open_firehose":
		c.firehose = rq.Str
		c.push(`{"r":"fd1.firehose.open_firehose","rp":%s,"sc":"firehose.status","data":{"status":"open","seq":%d}}`, rq, 40+l.sales)
	case "sale_create":
		l.sales++
		pk := fmt.Sprintf("0000000%d-0000-4000-8000-000000000000", l.sales)
		events := []string{`"custdisp.sale.add","v":{"salephyskey":"` + pk + `","saletotal":0}`,
			`"custdisp.sale.lines.add","v":{"salephyskey":"` + pk + `","saletotal":` + l.price + `}`}
		if l.swapEvents {
			events[0], events[1] = events[1], events[0]
		}
		for _, o := range l.conns {
			if o.firehose != "" {
				for _, e := range events {
					o.push(`{"rp":%q,"sc":%s}`, o.firehose, e)
				}
			}
		}
		c.push(`{"r":"sale_create","rp":%s,"k":%q,"data":{"physkey":%q,"lines":[{"pid":1001,"price":%s}],"startdt":"2026-11-27 08:32:58"}}`, rq, pk, pk, l.price)
	case "sale_fetch":
		k, _ := p.Get("k")
		c.push(`{"r":"sale_fetch","rp":%s,"k":%s,"data":{"physkey":%s}}`, rq, k, k)
	default:
		c.push(`{"r":%s,"rp":%s,"error":{"code":"unknown_endpoint","message":"no"},"data":{}}`, a, rq)
	}
}

// flow is a tablet and a display: the tablet makes a sale, the display
// sees it, the tablet fetches it by the captured key.
const flow = `{"#":"tablet and display"}
{"open":"display","login":{"purpose":"customerdisplay","key":"$KEY_DISPLAY"}}
{"socket":"display","send":{"a":"fd1.firehose.open_firehose","rq":"cd","v":{"event":"custdisp.sale"}}}
{"socket":"display","expect":{"r":"fd1.firehose.open_firehose","rp":"cd","data":{"status":"open","seq":"$number"}}}
{"open":"tablet","url_query":"?purpose=presell","login":{}}
{"socket":"tablet","send":{"a":"fd1.firehose.open_firehose","rq":"own","v":{"event":"custdisp.sale"}}}
{"socket":"tablet","send":{"a":"sale_create","rq":"c1"}}
{"socket":"tablet","expect":{"r":"sale_create","rp":"c1","k":"$capture:physkey1","data":{"physkey":"$physkey1","lines":[{"pid":1001,"price":5.5}],"startdt":"$datetime"}}}
{"socket":"tablet","expect":{"r":"fd1.firehose.open_firehose","rp":"own"}}
{"socket":"display","expect":{"rp":"cd","sc":"custdisp.sale.add","v":{"salephyskey":"$physkey1","saletotal":0}}}
{"socket":"display","expect":{"rp":"cd","sc":"custdisp.sale.lines.add","v":{"salephyskey":"$physkey1","saletotal":5.5}}}
{"socket":"tablet","send":{"a":"sale_fetch","rq":"c2","k":"$physkey1"}}
{"socket":"tablet","expect":{"r":"sale_fetch","rp":"c2","k":"$physkey1"}}
{"close":"tablet"}
`

// flowAdmin is flow with no key asked for by name: every socket can log in
// with the default key.
var flowAdmin = strings.Replace(flow, `,"key":"$KEY_DISPLAY"`, "", 1)

func TestReplay(t *testing.T) {
	tests := []struct {
		name       string
		transcript string
		lane       func(*fakeLane)
		keys       map[string]string
		defaultKey string
		wantErr    []string // all in the error text; none: the replay is green
		wantNot    string   // not in the error text
		wantRes    Result
	}{
		{name: "green: replies by rp among events, captures reused", transcript: flow, keys: map[string]string{"display": "disp"},
			wantRes: Result{Steps: 14, Sent: 4, Matched: 6, Ignored: make([]Unexpected, 2)}},
		{name: "a changed price shows as a path with both values and the packet sent", transcript: flow, keys: map[string]string{"display": "disp"},
			lane: func(l *fakeLane) { l.price = "6.2" },
			wantErr: []string{
				"FAIL flow.jsonl:8: the reply to rq \"c1\" on socket \"tablet\" does not match",
				"  data.lines[0].price: expected 5.5, got 6.2\n" + dataDiffers + "\n",
				`sent (line 7, socket "tablet"): {"a":"sale_create","rq":"c1"}`,
				`got: {"r":"sale_create","rp":"c1",`,
			}},
		{name: "events of a firehose are checked in order", transcript: flow, keys: map[string]string{"display": "disp"},
			lane: func(l *fakeLane) { l.swapEvents = true },
			wantErr: []string{
				"FAIL flow.jsonl:10: the next event of firehose \"cd\" on socket \"display\" does not match",
				`  sc: expected "custdisp.sale.add", got "custdisp.sale.lines.add"`,
				"  v.saletotal: expected 0, got 5.5",
				`sent (line 7, socket "tablet"): {"a":"sale_create","rq":"c1"}`,
			},
			wantNot: dataDiffers}, // the event's name differs too: not the data
		{name: "a reply that never comes times out and lists what came", transcript: flow, keys: map[string]string{"display": "disp"},
			lane: func(l *fakeLane) { l.silent = "sale_create" },
			wantErr: []string{
				"FAIL flow.jsonl:8: the reply to rq \"c1\" on socket \"tablet\" did not come within 50ms",
				"arrived on that socket and not expected (1):",
				`  {"r":"fd1.firehose.open_firehose","rp":"own"`,
			}},
		{name: "a refused key names the socket and the flag", transcript: flow, keys: map[string]string{"display": "wrong"},
			wantErr: []string{"FAIL flow.jsonl:2: the login reply on socket \"display\" refused the key", "--key-for display=KEY"}},
		{name: "one admin key serves every socket", transcript: flowAdmin, defaultKey: "admin",
			wantRes: Result{Steps: 14, Sent: 4, Matched: 6, Ignored: make([]Unexpected, 2)}},
		{name: "a key asked for by name is not replaced by the default key", transcript: flow, defaultKey: "admin",
			wantErr: []string{`flow.jsonl:2: no key for $KEY_DISPLAY: give --key-for display=KEY`}},
		{name: "key names are case-insensitive", transcript: strings.Replace(flow, "$KEY_DISPLAY", "$KEY_Display", 1), keys: map[string]string{"DISPLAY": "disp"},
			wantRes: Result{Steps: 14, Sent: 4, Matched: 6, Ignored: make([]Unexpected, 2)}},
		{name: "a key asked for by name in a send must be given", defaultKey: "admin",
			transcript: "{\"open\":\"main\"}\n{\"send\":{\"a\":\"fd1.session.login\",\"rq\":1,\"v\":{\"apikey\":\"$KEY_till\"}}}",
			wantErr:    []string{`flow.jsonl:2: send: no key for $KEY_till: give --key-for till=KEY`}},
		{name: "a key asked for by name in a send, given", keys: map[string]string{"till": "disp"},
			transcript: "{\"open\":\"main\"}\n{\"send\":{\"a\":\"fd1.session.login\",\"rq\":1,\"v\":{\"apikey\":\"$KEY_till\"}}}\n{\"expect\":{\"r\":\"fd1.session.login\",\"rp\":1,\"error\":\"$absent\"}}",
			wantRes:    Result{Steps: 3, Sent: 1, Matched: 1}},
		{name: "an empty transcript has nothing to replay", transcript: "",
			wantErr: []string{"flow.jsonl: nothing to replay: no line sends a packet"}},
		{name: "comments only: nothing to replay", transcript: `{"#":"all gone"}`,
			wantErr: []string{"flow.jsonl: nothing to replay"}},
		{name: "a socket opened, nothing sent: nothing to replay", transcript: `{"open":"main","login":{}}`, defaultKey: "admin",
			wantErr: []string{"flow.jsonl: nothing to replay"}},
		{name: "no key at all", transcript: flowAdmin,
			lane:    func(l *fakeLane) { l.keys = map[string]bool{} },
			wantErr: []string{`flow.jsonl:2: no API key for socket "display": give --key`}},
		{name: "a socket must be opened first", transcript: `{"socket":"till","send":{"a":"x"}}`,
			wantErr: []string{`flow.jsonl:1: socket "till" is not open (a line {"open":"till"} must come first)`}},
		{name: "a failed dial says so", transcript: "{\"open\":\"x\",\"url_query\":\"?purpose=wrong\"}\n{\"socket\":\"x\",\"send\":{\"a\":\"x\"}}",
			wantErr: []string{`flow.jsonl:1: open socket "x": 400 Bad Request`}},
		{name: "an unknown variable in a send is a transcript error", transcript: "{\"open\":\"main\"}\n{\"send\":{\"k\":\"$physkey7\"}}",
			wantErr: []string{`flow.jsonl:2: send: k: $physkey7 was never captured`}},
		{name: "keys are variables in sends", defaultKey: "admin",
			transcript: "{\"open\":\"main\"}\n{\"send\":{\"a\":\"fd1.session.login\",\"rq\":1,\"v\":{\"apikey\":\"$KEY\"}}}\n{\"expect\":{\"r\":\"fd1.session.login\",\"rp\":1,\"error\":\"$absent\"}}",
			wantRes:    Result{Steps: 3, Sent: 1, Matched: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lane := &fakeLane{keys: map[string]bool{"disp": true, "admin": true}, price: "5.5"}
			if tt.lane != nil {
				tt.lane(lane)
			}
			steps, err := Read(strings.NewReader(tt.transcript))
			if err != nil {
				t.Fatal(err)
			}
			keys := tt.keys
			if tt.defaultKey == "" && keys != nil {
				tt.defaultKey = "admin" // the tablet's key
			}
			res, err := Replay(context.Background(), steps, Options{Name: "flow.jsonl", Dial: lane.dial,
				DefaultKey: tt.defaultKey, Keys: keys, Timeout: 50 * time.Millisecond})
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("replay failed:\n%v", err)
				}
				if res.Steps != tt.wantRes.Steps || res.Sent != tt.wantRes.Sent || res.Matched != tt.wantRes.Matched || len(res.Ignored) != len(tt.wantRes.Ignored) {
					t.Fatalf("result %+v, want %+v", res, tt.wantRes)
				}
				return
			}
			if err == nil {
				t.Fatal("replay passed")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("report lacks %q:\n%v", want, err)
				}
			}
			if tt.wantNot != "" && strings.Contains(err.Error(), tt.wantNot) {
				t.Errorf("report holds %q:\n%v", tt.wantNot, err)
			}
		})
	}
}

func TestKeyNames(t *testing.T) {
	tests := []struct {
		transcript string
		want       string // sorted, comma-separated
	}{
		{flow, "display,tablet"},
		{flowAdmin, "display,tablet"},
		{`{"open":"anon"}`, ""},
		{`{"open":"Till","login":{"key":"$KEY"}}`, ""},
		{`{"open":"Till","login":{}}`, "till"},
		{`{"open":"t","login":{"key":"$KEY_Counter"}}`, "counter"},
		{`{"open":"t","login":{"key":"literal-key"}}`, ""},
		{`{"send":{"a":"x","v":{"keys":["$KEY_A",{"k":"$KEY_b"}],"lit":"$$KEY_c"}}}`, "a,b"},
		{`{"expect":{"r":"x","data":"$KEY_D"}}`, "d"},
	}
	for _, tt := range tests {
		steps, err := Read(strings.NewReader(tt.transcript))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for n := range KeyNames(steps) {
			names = append(names, n)
		}
		sort.Strings(names)
		if got := strings.Join(names, ","); got != tt.want {
			t.Errorf("%.60s: KeyNames = %q, want %q", tt.transcript, got, tt.want)
		}
	}
}

func TestSocketURL(t *testing.T) {
	tests := map[string]string{
		"ws://127.0.0.1:3490": "ws://127.0.0.1:3490/fd1/open_websocket",
		"127.0.0.1:3490":      "ws://127.0.0.1:3490/fd1/open_websocket",
		"http://lane:80/":     "ws://lane:80/fd1/open_websocket",
		"ws://h:1/fd1/open_websocket?purpose=presell": "ws://h:1/fd1/open_websocket",
		"wss://h/ws/open_websocket":                   "wss://h/ws/open_websocket",
	}
	for in, want := range tests {
		if got, err := SocketURL(in); err != nil || got != want {
			t.Errorf("SocketURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"ftp://h", "ws://", "ws://h:x:y/%zz"} {
		if _, err := SocketURL(bad); err == nil {
			t.Errorf("SocketURL(%q) succeeded", bad)
		}
	}
}
