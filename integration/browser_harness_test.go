package integration

// The browser harness: the store's screens are tested in a real headless
// Chromium driven over the DevTools protocol (chromedp). Browser tests are
// named TestBrowser… so `go test ./integration -run '^TestBrowser'` runs
// exactly them.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browserTimeout bounds one browserRun: a page that never shows what the
// test waits for fails with a message, not a hung test binary.
const browserTimeout = 20 * time.Second

// The two widths every screen must be correct at: a phone and a desktop
// (a 10" tablet in portrait falls between).
const (
	phoneWidth   = 360
	desktopWidth = 1280
	windowHeight = 900
)

// noBrowser is the skip reason when no Chromium is installed: stated, so a
// run without a browser is never mistaken for a passing one.
const noBrowser = "no chromium on PATH; .ci/run installs it with apt-get install chromium"

type pageLogKey struct{}

// findChromium returns the first browser on PATH, Debian's name first.
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// newBrowser starts a headless Chromium for the test, with its own profile,
// and returns the context of its first tab. The page's console is recorded
// from the start (see browserLog). When the test fails, a full-page
// screenshot is saved in a folder that outlives the test and its path is
// logged, along with what the page wrote to its console.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := findChromium()
	if path == "" {
		t.Skip(noBrowser)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(desktopWidth, windowHeight),
	)
	// Chromium refuses to start its sandbox as root (CI containers run as
	// root); as another user the sandbox stays on.
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	// Cleanups run last-registered first: the screenshot is taken before
	// the tab closes, the browser stops before t.TempDir is removed.
	t.Cleanup(cancelAlloc)
	t.Cleanup(cancelTab)
	// The first Run starts the browser and binds it to ctx; it must not
	// carry a timeout, or the browser would die with it (chromedp's rule).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	log := &pageLog{}
	log.follow(ctx)
	ctx = context.WithValue(ctx, pageLogKey{}, log)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		saveScreenshot(t, ctx)
		if msgs := log.all(); len(msgs) > 0 {
			t.Logf("browser console:\n  %s", strings.Join(msgs, "\n  "))
		}
	})
	return ctx
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// saveScreenshot writes a full-page PNG under os.TempDir() (t.TempDir is
// removed when the test ends, and the picture is wanted after).
func saveScreenshot(t *testing.T, ctx context.Context) {
	dir, err := os.MkdirTemp("", "greenlane-"+unsafeName.ReplaceAllString(t.Name(), "_")+"-")
	if err != nil {
		t.Logf("no screenshot: %v", err)
		return
	}
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("no screenshot: %v", err)
		return
	}
	file := dir + "/failure.png"
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Logf("no screenshot: %v", err)
		return
	}
	t.Logf("screenshot of the page at failure: %s", file)
}

// browserRun runs the actions in order within browserTimeout and fails the
// test on the first error, saying whether it was the time bound.
func browserRun(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, browserTimeout)
	defer cancel()
	if err := chromedp.Do(tctx, actions...); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("browser: the page did not get there within %s: %v", browserTimeout, err)
		}
		t.Fatalf("browser: %v", err)
	}
}

// waitText waits until the first element matching the CSS selector exists
// and its text contains want. On timeout the error names the text it last
// saw, which is usually the whole diagnosis.
func waitText(selector, want string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		expr := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.textContent : null })()`, selector)
		last := "(no element)"
		for {
			got, err := chromedp.Evaluate[*string](expr)(ctx, tg)
			if err == nil && got != nil {
				last = *got
				if strings.Contains(last, want) {
					return nil
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %q in %s, it shows %q: %w", want, selector, last, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// typeInto focuses the input matching the CSS selector and types text as
// key presses (end it with kb.Enter for a keyboard-wedge scanner's scan).
func typeInto(selector, text string) chromedp.Action[chromedp.Void] {
	return chromedp.SendKeys(chromedp.CSS(selector), text)
}

// readText returns the visible text of the first element matching the CSS
// selector, waiting for it to exist.
func readText(t *testing.T, ctx context.Context, selector string) string {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, browserTimeout)
	defer cancel()
	s, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(selector)))
	if err != nil {
		t.Fatalf("browser: read text of %s: %v", selector, err)
	}
	return s
}

// setViewport sets the page width (phoneWidth or desktopWidth).
func setViewport(width int64) chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(width, windowHeight)
}

// pageLog records what the tab wrote to its console: console calls,
// uncaught exceptions and rejections, and the browser's own log (where
// Content-Security-Policy violations and failed loads appear).
type pageLog struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

func (l *pageLog) follow(ctx context.Context) {
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			l.mu.Lock()
			l.msgs = append(l.msgs, m)
			l.mu.Unlock()
		}
	}()
}

// browserLog is the console record of newBrowser's tab.
func browserLog(ctx context.Context) *pageLog {
	return ctx.Value(pageLogKey{}).(*pageLog)
}

func consoleLine(m chromedp.ConsoleMessage) string {
	s := m.String()
	if m.URL != "" {
		s += fmt.Sprintf(" (%s:%d)", m.URL, m.Line+1)
	}
	return s
}

// all is every message so far, one line each.
func (l *pageLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, len(l.msgs))
	for i, m := range l.msgs {
		out[i] = consoleLine(m)
	}
	return out
}

// errors is the errors and uncaught exceptions so far.
func (l *pageLog) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.msgs {
		if m.Type == chromedp.ConsoleError || m.IsException() {
			out = append(out, consoleLine(m))
		}
	}
	return out
}

// wantNoErrors fails the test if the page logged an error or threw.
func (l *pageLog) wantNoErrors(t *testing.T) {
	t.Helper()
	if errs := l.errors(); len(errs) > 0 {
		t.Errorf("the page logged %d error(s):\n  %s", len(errs), strings.Join(errs, "\n  "))
	}
}

// waitError waits (within browserTimeout) for a logged error or exception
// containing text: console events arrive apart from the action that caused
// them.
func (l *pageLog) waitError(t *testing.T, text string) {
	t.Helper()
	deadline := time.Now().Add(browserTimeout)
	for {
		for _, e := range l.errors() {
			if strings.Contains(e, text) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no console error containing %q within %s; the console has:\n  %s", text, browserTimeout, strings.Join(l.all(), "\n  "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logged reports whether the page logged a message of that type and text.
func (l *pageLog) logged(typ chromedp.ConsoleType, text string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.msgs {
		if m.Type == typ && m.Text == text {
			return true
		}
	}
	return false
}

// TestBrowserHarness proves the harness itself: the browser reaches a lane,
// reads a page, and hears a page's errors, uncaught exceptions and CSP
// violations (the page tests rely on that to assert a clean console).
func TestBrowserHarness(t *testing.T) {
	alongside(t)
	ctx := newBrowser(t) // first: without a browser, skip before starting a lane
	log := browserLog(ctx)
	l := startLane(t)

	// A clean page leaves a clean console (a data: page asks for no
	// favicon, which a plain lane without its web screens would 404).
	browserRun(t, ctx, setViewport(phoneWidth), chromedp.Navigate(`data:text/html,<p id="p">clean</p><script>console.log("clean ran")</script>`), waitText("#p", "clean"))
	width, err := chromedp.Run(ctx, chromedp.Evaluate[int]("window.innerWidth"))
	if err != nil || width != phoneWidth {
		t.Fatalf("viewport width %d (%v), want %d", width, err, phoneWidth)
	}
	// Console events arrive apart from the action that caused them.
	deadline := time.Now().Add(browserTimeout)
	for !log.logged(chromedp.ConsoleLog, "clean ran") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !log.logged(chromedp.ConsoleLog, "clean ran") {
		t.Fatalf("the console record missed a console.log; it has:\n  %s", strings.Join(log.all(), "\n  "))
	}
	log.wantNoErrors(t)

	browserRun(t, ctx, setViewport(desktopWidth), chromedp.Navigate("http://"+l.addr+"/healthz"), waitText("body", "ok"))
	if got := strings.TrimSpace(readText(t, ctx, "body")); got != "ok" {
		t.Fatalf("/healthz in the browser reads %q, want ok", got)
	}

	// A page that fails three ways: the console, an uncaught exception,
	// and an inline script its own CSP forbids.
	page := `<!doctype html><meta http-equiv="Content-Security-Policy" content="script-src 'none'">` +
		`<p id="p">broken page</p><script>console.log("inline script ran")</script>`
	browserRun(t, ctx, chromedp.Navigate("data:text/html,"+page), waitText("#p", "broken page"))
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`console.error("harness-console-error"); setTimeout(() => { throw new Error("harness-uncaught") }); 0`)); err != nil {
		t.Fatal(err)
	}
	log.waitError(t, "harness-console-error")
	log.waitError(t, "Uncaught Error: harness-uncaught")
	log.waitError(t, "Content Security Policy")
	if log.logged(chromedp.ConsoleLog, "inline script ran") {
		t.Fatal("the CSP did not stop the inline script")
	}
}
