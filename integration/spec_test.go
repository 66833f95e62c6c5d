package integration

import (
	"net/url"
	"testing"
)

// The FD1 details a compatibility suite checks, against the real binary:
// the SPEC's own HTTP example, the lane's clock, trace records and
// firehose options.
func TestSpecCompatibility(t *testing.T) {
	alongside(t)
	// 09:00 UTC on 1 January is 22:00 in the demo lane's Pacific/Auckland.
	l := startLane(t, "--clock", "2026-01-01T09:00:00Z")
	keys := l.keysFor(keyRequest{"counter-1", "counter"}, keyRequest{"support-1", "debug"})
	till := l.login("", keys["counter-1"], "")

	t.Run("GET get_sale?qk=all&k=active lists every active sale (SPEC §7.3)", func(t *testing.T) {
		want := map[string]bool{}
		for range 2 {
			want[sale(t, till, sbA+"sale_create", nil, nil)["physkey"].(string)] = true
		}
		hdr := map[string]string{"x-api-key": keys["counter-1"]}
		status, p := l.httpCall("GET", "/fd1/salesbuilder/get_sale?qk=all&k=active", hdr, "")
		if status != 200 {
			t.Fatalf("status %d: %s", status, p.raw)
		}
		rows := p.rows(t)
		got := map[string]bool{}
		for _, r := range rows {
			got[r["physkey"].(string)] = true
		}
		for pk := range want {
			if !got[pk] {
				t.Fatalf("rows %v lack active sale %s", rows, pk)
			}
		}
		// A filter get_sale does not read is refused, not ignored.
		status, p = l.httpCall("GET", "/fd1/salesbuilder/get_sale?plucode=8145", hdr, "")
		if status != 400 {
			t.Fatalf("status %d: %s", status, p.raw)
		}
		p.wantError(t, "bad_filter")
		// qk the endpoint does not know: refused, naming what it takes.
		status, p = l.httpCall("GET", "/fd1/salesbuilder/get_sale?"+url.Values{"qk": {"ALL"}}.Encode(), hdr, "")
		if status != 400 {
			t.Fatalf("status %d: %s", status, p.raw)
		}
		p.wantError(t, "bad_argument")
	})

	t.Run("ping time is the store's clock (SPEC §9)", func(t *testing.T) {
		d := do(t, till, "fd1.debug.ping", nil, nil).data(t)
		if d["time"] != "2026-01-01 22:00:00" || d["timeutc"] != "2026-01-01 09:00:00" {
			t.Fatalf("ping time %v timeutc %v, want 2026-01-01 22:00:00 and 2026-01-01 09:00:00", d["time"], d["timeutc"])
		}
	})

	t.Run("rt null is reflected, and a bad rq still names a and rt (SPEC §2)", func(t *testing.T) {
		till.sendRaw([]byte(`{"a":"fd1.debug.ping","rq":"n","rt":null}`))
		p := till.next()
		if p.Error != nil || string(p.RT) != "null" {
			t.Fatalf("reply %s, want rt null", p.raw)
		}
		till.sendRaw([]byte(`{"a":"fd1.debug.ping","rq":true,"rt":"x"}`))
		p = till.next()
		p.wantError(t, "bad_packet")
		if p.R != "fd1.debug.ping" || string(p.RT) != `"x"` {
			t.Fatalf("reply %s, want r fd1.debug.ping and rt \"x\"", p.raw)
		}
	})

	t.Run("every trace record has utfx (SPEC §5.5)", func(t *testing.T) {
		ds := l.login("", keys["support-1"], "debugscope")
		openFH(t, ds, fhOpen("tr", map[string]any{"event": "debugscope.trace"}, nil))
		do(t, till, "fd1.debug.ping", nil, nil)
		v := nextTrace(t, ds, "counter-1").vmap(t)
		if n, ok := v["utfx"].(float64); !ok || n != 0 {
			t.Fatalf("trace %v, want utfx 0", v)
		}
	})

	t.Run("set_firehose_option refuses an option it does not take", func(t *testing.T) {
		openFH(t, till, fhOpen("fh", map[string]any{"event": "custdisp.sale"}, nil))
		r := callPast(t, till, map[string]any{"a": "fd1.firehose.set_firehose_option", "rq": "o", "k": "fh", "v": map[string]any{"foo": 1}})
		r.wantError(t, "bad_argument")
	})
}
