package integration

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/security"
	"github.com/chromedp/chromedp"
)

// TestBrowserTabletOverTLS: the tablet page served over https pairs and
// shows the grid, so its socket went over wss and the lane's Origin check
// took the page's https origin. The browser is told to accept the lane's
// certificate (a tablet would trust the CA; trust itself is checked with a
// Go client in TestTLSLane).
func TestBrowserTabletOverTLS(t *testing.T) {
	alongside(t)
	needsOwnLane(t)
	db := filepath.Join(t.TempDir(), "lane.db")
	if _, err := cli(t, "tls", "init", "--db", db, "--names", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	l := startLaneAt(t, db, "--tls")
	ctx := newBrowser(t)
	ignore := func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, security.SetIgnoreCertificateErrors, security.SetIgnoreCertificateErrorsParams{Ignore: true})
		return chromedp.Void{}, err
	}
	browserRun(t, ctx,
		ignore,
		chromedp.Navigate("https://"+l.addr+"/tablet/"),
		chromedp.WaitVisible(chromedp.CSS("#pair-key")),
		typeInto("#pair-key", l.key),
		chromedp.Click(chromedp.CSS("#pair-go")),
		waitText("#grid", "Flat White"),
	)
	proto, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.protocol`))
	if err != nil || proto != "https:" {
		t.Fatalf("page protocol %q (%v), want https:", proto, err)
	}
	if strings.Contains(l.log(), "Origin not allowed") {
		t.Fatalf("the lane refused the https page's socket:\n%s", l.log())
	}
}
