package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// TestArgsAreDecodedOnce: on a presell socket, whose requests run in
// parallel ordered by what they work on, an endpoint that routes by its v
// has v decoded once, where the request arrives, and its handler gets that
// very value; one that does not is decoded when its handler asks. A v that
// does not decode is answered by the handler in its turn, as bad_argument.
func TestArgsAreDecodedOnce(t *testing.T) {
	s, db := testServer(t, DefaultConfig())
	s.SetWorkers(protocol.PurposePresell, 4)
	key, err := db.CreateAPIKey(context.Background(), "tablet-1", []string{"presell"})
	if err != nil {
		t.Fatal(err)
	}
	type orderArgs struct {
		Sale string `json:"sale" validate:"max=8"`
	}
	var decodes atomic.Int64
	var mu sync.Mutex
	routed := map[string]string{} // rq -> route key seen
	handler := func(_ context.Context, call *protocol.Call) (*protocol.Result, error) {
		a, err := protocol.ArgsOf[orderArgs](call)
		if err != nil {
			return nil, err
		}
		return &protocol.Result{Data: map[string]any{"sale": a.Sale}}, nil
	}
	for _, ep := range []*protocol.Endpoint{
		{Name: "fd1.test.routed", Access: protocol.Access{AnyKey: true}, Handler: handler,
			Args: func() any { decodes.Add(1); return new(orderArgs) },
			RouteKey: func(req *protocol.Request, args any) string {
				k := args.(*orderArgs).Sale
				mu.Lock()
				routed[string(req.RQ)] = k
				mu.Unlock()
				return k
			}},
		{Name: "fd1.test.plain", Access: protocol.Access{AnyKey: true}, Handler: handler},
	} {
		s.Router().Handle(ep)
	}
	ws := dialSocket(t, s, "?purpose=presell")
	call := func(pkt map[string]any) (data map[string]any, code protocol.Code) {
		t.Helper()
		if err := ws.WriteJSON(pkt); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		var r struct {
			Error *protocol.Error
			Data  map[string]any
		}
		if err := ws.ReadJSON(&r); err != nil {
			t.Fatal(err)
		}
		if r.Error != nil {
			return nil, r.Error.Code
		}
		return r.Data, ""
	}
	if _, code := call(map[string]any{"a": "fd1.session.login", "rq": "login", "v": map[string]any{"apikey": key}}); code != "" {
		t.Fatalf("login: %s", code)
	}

	tests := []struct {
		a, rq     string
		v         any
		wantSale  string
		wantCode  protocol.Code
		wantRoute string
		decoded   int64 // by the Args of fd1.test.routed
	}{
		{"fd1.test.routed", "r1", map[string]any{"sale": "s-1"}, "s-1", "", "s-1", 1},
		{"fd1.test.plain", "p1", map[string]any{"sale": "s-2"}, "s-2", "", "", 0},
		{"fd1.test.routed", "r2", map[string]any{"sale": "far-too-long"}, "", protocol.CodeBadArgument, "far-too-long", 1},
		{"fd1.test.plain", "p2", map[string]any{"sale": 7}, "", protocol.CodeBadArgument, "", 0},
	}
	for _, tt := range tests {
		before := decodes.Load()
		data, code := call(map[string]any{"a": tt.a, "rq": tt.rq, "v": tt.v})
		if code != tt.wantCode || (code == "" && data["sale"] != tt.wantSale) {
			t.Errorf("%s %s: data %v, code %q; want sale %q, code %q", tt.a, tt.rq, data, code, tt.wantSale, tt.wantCode)
		}
		if got := decodes.Load() - before; got != tt.decoded {
			t.Errorf("%s %s: the endpoint's Args made %d values, want %d", tt.a, tt.rq, got, tt.decoded)
		}
		mu.Lock()
		route, seen := routed[`"`+tt.rq+`"`]
		mu.Unlock()
		if seen != (tt.wantRoute != "") || route != tt.wantRoute {
			t.Errorf("%s %s: routed by %q (seen %v), want %q", tt.a, tt.rq, route, seen, tt.wantRoute)
		}
	}
}

// TestArgsOfDecodesOnce: a handler that asks twice gets the same value,
// and the value the server decoded ahead is the one it gets.
func TestArgsOfDecodesOnce(t *testing.T) {
	type args struct {
		N int `json:"n" validate:"gte=1"`
	}
	ep := &protocol.Endpoint{Name: "fd1.test.n", Args: func() any { return new(args) }}
	req := &protocol.Request{A: ep.Name, V: json.RawMessage(`{"n":3}`)}
	ahead := ep.DecodeArgs(req)
	call := &protocol.Call{Req: req, Endpoint: ep, Args: ahead}
	first, err := protocol.ArgsOf[args](call)
	if err != nil || first.N != 3 {
		t.Fatalf("ArgsOf = %+v, %v", first, err)
	}
	req.V = json.RawMessage(`{"n":9}`) // no second decode may see this
	second, _ := protocol.ArgsOf[args](call)
	if second != first {
		t.Fatal("a second ArgsOf decoded v again")
	}
	lazy := &protocol.Call{Req: &protocol.Request{V: json.RawMessage(`{"n":0}`)}, Endpoint: &protocol.Endpoint{Name: "fd1.test.lazy"}}
	if _, err := protocol.ArgsOf[args](lazy); protocol.AsError(err).Code != protocol.CodeBadArgument {
		t.Fatalf("ArgsOf of a v that fails validation = %v, want bad_argument", err)
	}
}

// TestClientErrorLogsOnlyFaults: a handler error that is the client's
// going away (a cancellation, the request's or the handler's own) is
// answered cancelled and not logged as a fault; an unknown error is both
// logged and answered internal; a lane DB that cannot be read (a store
// database out of reach) fails every request alike, and is logged once,
// not per request, even with requests that need no DB going through
// between.
func TestClientErrorLogsOnlyFaults(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name  string
		ctx   context.Context
		err   error
		times int // requests that fail so
		code  protocol.Code
		lines int // lines logged for them
	}{
		{"the request cancelled", cancelled, context.Canceled, 1, protocol.CodeCancelled, 0},
		{"the handler gave up on its own", context.Background(), fmt.Errorf("open: %w", context.Canceled), 1, protocol.CodeCancelled, 0},
		{"a fault", context.Background(), errors.New("disk on fire"), 1, protocol.CodeInternal, 1},
		{"the lane DB unavailable", context.Background(), fmt.Errorf("read: %w", lanedb.ErrUnavailable), 20, protocol.CodeUnavailable, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			s, _ := testServer(t, DefaultConfig())
			s.log = slog.New(slog.NewTextHandler(&buf, nil))
			for range tt.times {
				got := protocol.AsError(s.clientError(tt.ctx, &protocol.Endpoint{Name: "fd1.test.x"}, tt.err))
				if got.Code != tt.code {
					t.Fatalf("code %s, want %s", got.Code, tt.code)
				}
				s.readsGoThrough() // a request that needs no DB (a ping) succeeds between
			}
			if lines := strings.Count(buf.String(), "request failed"); lines != tt.lines {
				t.Errorf("%d lines for %d requests, want %d: %s", lines, tt.times, tt.lines, buf.String())
			}
		})
	}
}
