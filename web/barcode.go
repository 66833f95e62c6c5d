package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/code128"
	"github.com/boombuler/barcode/qr"
	lru "github.com/hashicorp/golang-lru/v2"
)

// Ticket text limits: a ticket's number or word is short printable ASCII;
// the bound keeps a request from making the lane encode something large.
const maxBarcodeText = 64

// Quiet zones in modules: Code 128 wants at least 10 blank modules each
// side and QR at least 4, or scanners miss the symbol's edges.
const (
	code128Quiet = 10
	qrQuiet      = 4
)

// Default pixel size of one module in the SVG's width and height: the
// image then has a natural size in a page, and being vector it stays sharp
// at any other size a page or a ticket printer scales it to.
const (
	code128ModulePx = 2
	code128HeightPx = 80
	qrModulePx      = 6
)

// The page that asks for a barcode needs no key, so drawing is bounded:
// one at a time, lane-wide (a flood of distinct texts takes one core at
// most, never the lane's requests: 64 clients took 1.7 of 2 CPUs and a
// tablet's request went from 0.8 ms to 10 ms), waiting at most
// barcodeWait for its turn; and the last barcodeCached drawn are kept (a
// ticket's two images are asked for by its tablet, and again on a reload).
const (
	barcodeCached = 512
	barcodeWait   = 2 * time.Second
)

// barcodes draws and keeps barcodes.
type barcodes struct {
	cache *lru.Cache[string, []byte] // kind + "\x00" + text → SVG
	gate  chan struct{}              // one drawing at a time
	wait  time.Duration
	drawn atomic.Int64 // drawings made, for tests
}

// BarcodeHandler serves a ticket's barcode as SVG:
// GET ?kind=code128|qr&text=TEXT. The same text always gives the same
// image, so the answer is cached for good.
func BarcodeHandler() http.Handler { return newBarcodes(barcodeWait) }

func newBarcodes(wait time.Duration) *barcodes {
	cache, err := lru.New[string, []byte](barcodeCached)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return &barcodes{cache: cache, gate: make(chan struct{}, 1), wait: wait}
}

func (b *barcodes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "barcode: only GET", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	svg, err := b.draw(r.Context(), q.Get("kind"), q.Get("text"))
	if errors.Is(err, errBarcodeBusy) {
		w.Header().Set("Retry-After", "1")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	_, _ = w.Write(svg)
}

var errBarcodeBusy = errors.New("barcode: the lane is drawing others; try again in a moment")

// draw answers from the cache, else draws in its turn.
func (b *barcodes) draw(ctx context.Context, kind, text string) ([]byte, error) {
	key := kind + "\x00" + text
	if svg, ok := b.cache.Get(key); ok {
		return svg, nil
	}
	if err := checkBarcodeText(text); err != nil {
		return nil, err // refused before it waits for a turn
	}
	timer := time.NewTimer(b.wait)
	defer timer.Stop()
	select {
	case b.gate <- struct{}{}:
	case <-timer.C:
		return nil, errBarcodeBusy
	case <-ctx.Done():
		return nil, errBarcodeBusy
	}
	defer func() { <-b.gate }()
	if svg, ok := b.cache.Get(key); ok { // drawn while this one waited
		return svg, nil
	}
	b.drawn.Add(1)
	svg, err := barcodeSVG(kind, text)
	if err != nil {
		return nil, err
	}
	b.cache.Add(key, svg)
	return svg, nil
}

// checkBarcodeText refuses what no ticket holds: empty, too long, or
// anything outside printable ASCII (which also keeps the text safe to
// echo in an error message).
func checkBarcodeText(text string) error {
	if text == "" {
		return errors.New("barcode: text is required (1 to 64 printable ASCII characters)")
	}
	if len(text) > maxBarcodeText {
		return fmt.Errorf("barcode: text is %d bytes; at most %d printable ASCII characters", len(text), maxBarcodeText)
	}
	for i := 0; i < len(text); i++ {
		if c := text[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("barcode: text byte %d is not printable ASCII", i+1)
		}
	}
	return nil
}

// barcodeSVG encodes text and draws it as SVG rects.
func barcodeSVG(kind, text string) ([]byte, error) {
	if err := checkBarcodeText(text); err != nil {
		return nil, err
	}
	switch kind {
	case "code128":
		bc, err := code128.Encode(text)
		if err != nil {
			return nil, fmt.Errorf("barcode: code128 %q: %w", text, err)
		}
		return code128SVG(bc), nil
	case "qr":
		bc, err := qr.Encode(text, qr.M, qr.Auto)
		if err != nil {
			return nil, fmt.Errorf("barcode: qr %q: %w", text, err)
		}
		return qrSVG(bc), nil
	case "":
		return nil, errors.New("barcode: kind is required: code128 or qr")
	default:
		return nil, errors.New("barcode: kind must be code128 or qr")
	}
}

// isDarkModule reports whether the module at x, y is a bar (dark) module.
func isDarkModule(img image.Image, x, y int) bool {
	b := img.Bounds()
	if x < b.Min.X || x >= b.Max.X || y < b.Min.Y || y >= b.Max.Y {
		return false
	}
	g := color.GrayModel.Convert(img.At(x, y)).(color.Gray)
	return g.Y < 128
}

// code128SVG draws one rect per bar, each as tall as the symbol; adjacent
// dark modules merge into one wider bar so there are no hairline seams.
func code128SVG(bc barcode.Barcode) []byte {
	n := bc.Bounds().Dx()
	w := n + 2*code128Quiet
	var buf bytes.Buffer
	svgOpen(&buf, w*code128ModulePx, code128HeightPx, w, code128HeightPx/code128ModulePx)
	for x := 0; x < n; {
		if !isDarkModule(bc, x, 0) {
			x++
			continue
		}
		start := x
		for x < n && isDarkModule(bc, x, 0) {
			x++
		}
		fmt.Fprintf(&buf, `<rect x="%d" y="0" width="%d" height="%d"/>`, start+code128Quiet, x-start, code128HeightPx/code128ModulePx)
	}
	buf.WriteString("</g></svg>\n")
	return buf.Bytes()
}

// qrSVG draws each row's runs of dark modules as one rect.
func qrSVG(bc barcode.Barcode) []byte {
	n := bc.Bounds().Dx()
	w := n + 2*qrQuiet
	var buf bytes.Buffer
	svgOpen(&buf, w*qrModulePx, w*qrModulePx, w, w)
	for y := 0; y < n; y++ {
		for x := 0; x < n; {
			if !isDarkModule(bc, x, y) {
				x++
				continue
			}
			start := x
			for x < n && isDarkModule(bc, x, y) {
				x++
			}
			fmt.Fprintf(&buf, `<rect x="%d" y="%d" width="%d" height="1"/>`, start+qrQuiet, y+qrQuiet, x-start)
		}
	}
	buf.WriteString("</g></svg>\n")
	return buf.Bytes()
}

// svgOpen writes the root element and the white background that makes the
// quiet zone real on any page colour. crispEdges keeps module edges sharp.
func svgOpen(buf *bytes.Buffer, pxW, pxH, vbW, vbH int) {
	fmt.Fprintf(buf, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" shape-rendering="crispEdges">`, pxW, pxH, vbW, vbH)
	fmt.Fprintf(buf, `<rect width="%d" height="%d" fill="#fff"/><g fill="#000">`, vbW, vbH)
}

// QRTerminal renders text as a QR code for a terminal: two modules per
// character row with the half blocks ▀ ▄ █ and spaces, and a 4-module quiet
// zone. The light modules are the ones drawn (terminals show text light on
// a dark background by default), so the code appears dark on light, the way
// phone cameras expect it.
func QRTerminal(text string) (string, error) {
	bc, err := qr.Encode(text, qr.M, qr.Auto)
	if err != nil {
		return "", fmt.Errorf("qr %q: %w", text, err)
	}
	n := bc.Bounds().Dx()
	size := n + 2*qrQuiet
	light := func(x, y int) bool {
		return !isDarkModule(bc, x-qrQuiet, y-qrQuiet)
	}
	var b strings.Builder
	for y := 0; y < size; y += 2 {
		for x := 0; x < size; x++ {
			top := light(x, y)
			// Below the last row the quiet zone continues: light.
			bottom := y+1 >= size || light(x, y+1)
			switch {
			case top && bottom:
				b.WriteRune('█')
			case top:
				b.WriteRune('▀')
			case bottom:
				b.WriteRune('▄')
			default:
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}
