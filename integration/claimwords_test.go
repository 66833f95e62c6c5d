package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestClaimedSaysWhatTheCallerCanDo: a claimed refusal names a way out
// the caller has. Over HTTP recall answers 501, so it says to recall over
// a WebSocket; an admin's cancel of a presell whose holder's connection
// closed hears how an admin overrides the claim.
func TestClaimedSaysWhatTheCallerCanDo(t *testing.T) {
	alongside(t)
	l := startLane(t)
	tab := dialMux(t, l, "tablet-1", presellQuery, l.newKey("tablet-1", "presell"), "")
	ck := l.newKey("counter-1", "counter")
	holder := dialMux(t, l, "counter-1", "", ck, "")
	pk := presellOn(t, tab, 0, soldLine{1001, 1})["physkey"].(string)
	holder.sale(t, presellA+"recall", pk, nil)

	status, p := l.httpCall("GET", "/fd1/salesbuilder/sale_add_payment?k="+pk+"&v.type=1&v.amount=5.5", map[string]string{"x-api-key": ck}, "")
	if status != http.StatusConflict || p.Error == nil || p.Error.Code != "claimed" {
		t.Fatalf("HTTP payment on a presell another connection of the key holds: %d %s, want 409 claimed", status, p.raw)
	}
	for _, want := range []string{"recall it over a WebSocket", "HTTP cannot recall"} {
		if !strings.Contains(p.Error.Message, want) {
			t.Errorf("HTTP claimed message %q does not say %q", p.Error.Message, want)
		}
	}
	if strings.Contains(p.Error.Message, "recall it here") {
		t.Errorf("HTTP claimed message %q says to recall here, which HTTP cannot", p.Error.Message)
	}

	admin := dialMux(t, l, "admin-2", "", l.newKey("admin-2", "counter,admin"), "")
	cancel := map[string]any{"reason": "left"}
	admin.fails(t, sbA+"salesbuilder_cancel", pk, cancel, "claimed", `"counter-1"`, "v.force", "greenlane presell void --force")
	holder.ws.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := admin.fails(t, sbA+"salesbuilder_cancel", pk, cancel, "claimed", `"counter-1"`, "v.force", "greenlane presell void --force")
		if strings.Contains(r.Error.Message, "connection has closed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after the holder's socket closed, an admin cancel still hears: %s", r.Error.Message)
		}
		time.Sleep(20 * time.Millisecond) // the lane sees the close a moment later
	}
	if row := dbSale(t, l, pk); row["phase"] != 0.0 {
		t.Fatalf("presell after refused admin cancels: %v, want still active", row)
	}
}
