package integration

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// readmeParagraph is the README paragraph that starts with start (up to
// its blank line), or "" if there is none.
func readmeParagraph(t *testing.T, start string) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, start)
	if i < 0 {
		return ""
	}
	s = s[i:]
	if j := strings.Index(s, "\n\n"); j >= 0 {
		s = s[:j]
	}
	return s
}

// TestHTTPModeRefusesWhatNeedsASocket: every endpoint HTTP mode refuses
// for want of a socket answers 501 unsupported and says what to use, and
// README's HTTP mode paragraph names it as the exception to "answers
// every endpoint".
func TestHTTPModeRefusesWhatNeedsASocket(t *testing.T) {
	alongside(t)
	l := startLane(t)
	tab := dialMux(t, l, "tablet-1", presellQuery, l.newKey("tablet-1", "presell"), "")
	ck := l.newKey("counter-1", "counter")
	queued := presellOn(t, tab, 0, soldLine{1001, 1})
	para := readmeParagraph(t, "HTTP mode answers every endpoint")

	cases := []struct {
		a, body, says string
	}{
		{"fd1.presell.recall", fmt.Sprintf(`{"rq":"h","v":{"ticket":%v}}`, queued["ticket"]), "recall presells over a WebSocket"},
		{"fd1.salesbuilder.sale_unpark", fmt.Sprintf(`{"rq":"h","k":%q}`, queued["physkey"]), "recall presells over a WebSocket"},
		{"fd1.firehose.open_firehose", `{"rq":"h","v":{"event":"presell"}}`, "cannot stream"},
		{"fd1.firehose.close_firehose", `{"rq":"h","k":"h"}`, "cannot stream"},
		{"fd1.firehose.set_firehose_option", `{"rq":"h","k":"h","v":{"tablet":"tablet-1"}}`, "cannot stream"},
	}
	for _, tc := range cases {
		t.Run(tc.a, func(t *testing.T) {
			path := "/fd1/" + strings.ReplaceAll(strings.TrimPrefix(tc.a, "fd1."), ".", "/")
			status, p := l.httpCall("POST", path, map[string]string{"x-api-key": ck}, tc.body)
			if status != 501 {
				t.Errorf("POST %s: status %d, want 501: %s", path, status, p.raw)
			}
			p.wantError(t, "unsupported")
			if !strings.Contains(p.Error.Message, tc.says) {
				t.Errorf("POST %s: message %q does not say %q", path, p.Error.Message, tc.says)
			}
			if !strings.Contains(para, "`"+tc.a+"`") || !strings.Contains(para, "501") {
				t.Errorf("README's HTTP mode paragraph does not name %s as answering 501 unsupported:\n%s", tc.a, para)
			}
		})
	}
}

// TestClaimOfAClosedConnectionSaysSo: a request from a second socket of
// the counter key whose claiming socket has closed hears that it closed
// and that recalling here takes the presell back, not to wait for the
// close.
func TestClaimOfAClosedConnectionSaysSo(t *testing.T) {
	alongside(t)
	l := startLane(t)
	tab := dialMux(t, l, "tablet-1", presellQuery, l.newKey("tablet-1", "presell"), "")
	ck := l.newKey("counter-1", "counter")
	pk := presellOn(t, tab, 0, soldLine{1001, 1})["physkey"].(string)
	first := dialMux(t, l, "counter-1 first", "", ck, "")
	first.sale(t, presellA+"recall", pk, nil)
	second := dialMux(t, l, "counter-1 second", "", ck, "")
	pay := map[string]any{"type": 1, "amount": 5.5}
	second.fails(t, sbA+"sale_add_payment", pk, pay, "claimed", "another connection of this key", "once that connection has closed")
	first.ws.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := second.do(t, sbA+"sale_add_payment", pk, pay)
		r.wantError(t, "claimed")
		if !strings.Contains(r.Error.Message, "once that connection has closed") {
			for _, want := range []string{`"counter-1"`, "has closed", "recall it here", "take it back"} {
				if !strings.Contains(r.Error.Message, want) {
					t.Errorf("message %q does not say %q", r.Error.Message, want)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after the claiming socket closed, a payment from the key's other socket still hears: %s", r.Error.Message)
		}
		time.Sleep(20 * time.Millisecond) // the lane sees the close a moment later
	}
	second.sale(t, presellA+"recall", pk, nil)
	second.sale(t, sbA+"sale_add_payment", pk, pay)
}

// TestMessagesSayWhatHappened: a release of a closed presell says it was
// completed or voided, not "not claimed"; sale_remove_payment with seq 0
// says the bound, and of a payment already reversed says so.
func TestMessagesSayWhatHappened(t *testing.T) {
	alongside(t)
	l := startLane(t)
	tab := dialMux(t, l, "tablet-1", presellQuery, l.newKey("tablet-1", "presell"), "")
	c := dialMux(t, l, "counter-1", "", l.newKey("counter-1", "counter"), "")

	completed := presellOn(t, tab, 0, soldLine{1001, 1})["physkey"].(string)
	c.sale(t, presellA+"recall", completed, nil)
	c.sale(t, sbA+"sale_add_payment", completed, map[string]any{"type": 1, "amount": 5.5})
	c.sale(t, sbA+"salesbuilder_complete", completed, nil)
	voided := presellOn(t, tab, 0, soldLine{1002, 1})["physkey"].(string)
	c.sale(t, presellA+"recall", voided, nil)
	c.sale(t, sbA+"salesbuilder_cancel", voided, nil)
	paid := presellOn(t, tab, 0, soldLine{1003, 1})["physkey"].(string)
	c.sale(t, presellA+"recall", paid, nil)
	c.sale(t, sbA+"sale_add_payment", paid, map[string]any{"type": 1, "amount": 2})
	c.sale(t, sbA+"sale_add_payment", paid, map[string]any{"type": 1, "amount": 1})
	c.sale(t, sbA+"sale_remove_payment", paid, map[string]any{"seq": 1})

	cases := []struct {
		name, a, k string
		v          map[string]any
		code       string
		says       []string
	}{
		{"release of a completed presell", presellA + "release", completed, nil, "conflict", []string{completed, "was completed", "no claim left to release"}},
		{"release of a voided presell", presellA + "release", voided, nil, "conflict", []string{voided, "was voided", "no claim left to release"}},
		{"reversal of seq 0", sbA + "sale_remove_payment", paid, map[string]any{"seq": 0}, "bad_argument", []string{"v.seq: must be at least 1"}},
		{"reversal without seq", sbA + "sale_remove_payment", paid, map[string]any{}, "bad_argument", []string{"v.seq: is required"}},
		{"removal of line 0", sbA + "sale_remove_line", paid, map[string]any{"seqnce": 0}, "bad_argument", []string{"v.seqnce: must be at least 1"}},
		{"edit of line 0", sbA + "sale_edit_line", paid, map[string]any{"seqnce": 0, "qty": 2}, "bad_argument", []string{"v.seqnce: must be at least 1"}},
		{"removal without seqnce", sbA + "sale_remove_line", paid, map[string]any{}, "bad_argument", []string{"v.seqnce: is required"}},
		{"reversal of a reversed payment", sbA + "sale_remove_payment", paid, map[string]any{"seq": 1}, "not_found", []string{"payment seq 1 of sale " + paid + " was already reversed"}},
		{"reversal of a payment never taken", sbA + "sale_remove_payment", paid, map[string]any{"seq": 3}, "not_found", []string{"no payment with seq 3", "its payments: 2 (Cash $1.00)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.fails(t, tc.a, tc.k, tc.v, tc.code, tc.says...)
		})
	}
}
