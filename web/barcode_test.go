package web

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boombuler/barcode/qr"
)

// code128Widths is the Code 128 symbol table (ISO/IEC 15417): bar, space,
// bar, space, bar, space widths in modules for values 0 to 105, then the
// stop pattern. The tests decode the served image with it, so a rendering
// that drops, merges or shifts a module fails.
var code128Widths = [...]string{
	"212222", "222122", "222221", "121223", "121322", "131222", "122213", "122312", "132212", "221213",
	"221312", "231212", "112232", "122132", "122231", "113222", "123122", "123221", "223211", "221132",
	"221231", "213212", "223112", "312131", "311222", "321122", "321221", "312212", "322112", "322211",
	"212123", "212321", "232121", "111323", "131123", "131321", "112313", "132113", "132311", "211313",
	"231113", "231311", "112133", "112331", "132131", "113123", "113321", "133121", "313121", "211331",
	"231131", "213113", "213311", "213131", "311123", "311321", "331121", "312113", "312311", "332111",
	"314111", "221411", "431111", "111224", "111422", "121124", "121421", "141122", "141221", "112214",
	"112412", "122114", "122411", "142112", "142211", "241211", "221114", "413111", "241112", "134111",
	"111242", "121142", "121241", "114212", "124112", "124211", "411212", "421112", "421211", "212141",
	"214121", "412121", "111143", "111341", "131141", "114113", "114311", "411113", "411311", "113141",
	"114131", "311141", "411131", "211412", "211214", "211232",
}

const code128Stop = "2331112"

// parseSVG reads the served SVG: its viewBox size and the dark rects
// (those inside the group, not the white background).
func parseSVG(t *testing.T, body []byte) (vbW, vbH int, rects [][4]int) {
	t.Helper()
	var doc struct {
		ViewBox string `xml:"viewBox,attr"`
		Bg      struct {
			Fill string `xml:"fill,attr"`
		} `xml:"rect"`
		G struct {
			Fill  string `xml:"fill,attr"`
			Rects []struct {
				X int `xml:"x,attr"`
				Y int `xml:"y,attr"`
				W int `xml:"width,attr"`
				H int `xml:"height,attr"`
			} `xml:"rect"`
		} `xml:"g"`
	}
	if err := xml.Unmarshal(body, &doc); err != nil {
		t.Fatalf("served SVG does not parse: %v\n%s", err, body)
	}
	if doc.Bg.Fill != "#fff" || doc.G.Fill != "#000" {
		t.Fatalf("want black modules on a white background, got background %q, modules %q", doc.Bg.Fill, doc.G.Fill)
	}
	if _, err := fmt.Sscanf(doc.ViewBox, "0 0 %d %d", &vbW, &vbH); err != nil {
		t.Fatalf("viewBox %q: %v", doc.ViewBox, err)
	}
	for _, r := range doc.G.Rects {
		rects = append(rects, [4]int{r.X, r.Y, r.W, r.H})
	}
	return vbW, vbH, rects
}

// svgModules rasterises the rects into a vbW×vbH grid of dark modules.
func svgModules(t *testing.T, vbW, vbH int, rects [][4]int) [][]bool {
	t.Helper()
	grid := make([][]bool, vbH)
	for y := range grid {
		grid[y] = make([]bool, vbW)
	}
	for _, r := range rects {
		for y := r[1]; y < r[1]+r[3]; y++ {
			for x := r[0]; x < r[0]+r[2]; x++ {
				if x < 0 || y < 0 || x >= vbW || y >= vbH {
					t.Fatalf("rect %v outside the %dx%d viewBox", r, vbW, vbH)
				}
				grid[y][x] = true
			}
		}
	}
	return grid
}

// decodeCode128 reads one row of modules as a scanner would: quiet zones,
// start, symbols, checksum, stop. It returns the text.
func decodeCode128(row []bool) (string, error) {
	for i := 0; i < 10; i++ {
		if row[i] || row[len(row)-1-i] {
			return "", fmt.Errorf("quiet zone under 10 modules")
		}
	}
	var widths []byte
	for i := 0; i < len(row); {
		j := i
		for j < len(row) && row[j] == row[i] {
			j++
		}
		widths = append(widths, byte('0'+j-i))
		i = j
	}
	ws := string(widths[1 : len(widths)-1]) // drop the quiet zones
	if !strings.HasSuffix(ws, code128Stop) {
		return "", fmt.Errorf("no stop pattern at the end: %s", ws)
	}
	ws = strings.TrimSuffix(ws, code128Stop)
	if len(ws)%6 != 0 {
		return "", fmt.Errorf("%d widths before stop is not whole symbols", len(ws))
	}
	var vals []int
	for i := 0; i < len(ws); i += 6 {
		v := -1
		for k, p := range code128Widths {
			if p == ws[i:i+6] {
				v = k
			}
		}
		if v < 0 {
			return "", fmt.Errorf("symbol %d %s is not in the Code 128 table", i/6, ws[i:i+6])
		}
		vals = append(vals, v)
	}
	if len(vals) < 3 {
		return "", fmt.Errorf("only %d symbols", len(vals))
	}
	sum := vals[0]
	for i, v := range vals[1 : len(vals)-1] {
		sum += (i + 1) * v
	}
	if sum%103 != vals[len(vals)-1] {
		return "", fmt.Errorf("checksum %d, symbol says %d", sum%103, vals[len(vals)-1])
	}
	set := map[int]byte{103: 'A', 104: 'B', 105: 'C'}[vals[0]]
	if set == 0 {
		return "", fmt.Errorf("first symbol %d is not a start code", vals[0])
	}
	var text strings.Builder
	for _, v := range vals[1 : len(vals)-1] {
		switch {
		case set == 'C' && v < 100:
			fmt.Fprintf(&text, "%02d", v)
		case set != 'C' && v < 96:
			c := byte(v + 32)
			if set == 'A' && v >= 64 {
				c = byte(v - 64)
			}
			text.WriteByte(c)
		case v == 99 && set != 'C':
			set = 'C'
		case v == 100 && set != 'B':
			set = 'B'
		case v == 101 && set != 'A':
			set = 'A'
		default:
			return "", fmt.Errorf("symbol %d in set %c is not handled", v, set)
		}
	}
	return text.String(), nil
}

func getBarcode(t *testing.T, srv *httptest.Server, method, kind, text string) (*http.Response, []byte) {
	t.Helper()
	q := url.Values{}
	if kind != "" {
		q.Set("kind", kind)
	}
	if text != "" {
		q.Set("text", text)
	}
	req, err := http.NewRequest(method, srv.URL+"/barcode?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestBarcodeCode128Decodes(t *testing.T) {
	srv := httptest.NewServer(BarcodeHandler())
	defer srv.Close()
	seen := map[string]string{}
	for _, text := range []string{"GL0100013F30", "GL0100013F31", "0042", "A", "mango-kiwi", strings.Repeat("Z9", 32), " !~"} {
		t.Run(text, func(t *testing.T) {
			resp, body := getBarcode(t, srv, http.MethodGet, "code128", text)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			for h, want := range map[string]string{
				"Content-Type":           "image/svg+xml",
				"Cache-Control":          "public, max-age=31536000, immutable",
				"X-Content-Type-Options": "nosniff",
			} {
				if got := resp.Header.Get(h); got != want {
					t.Errorf("%s = %q, want %q", h, got, want)
				}
			}
			vbW, vbH, rects := parseSVG(t, body)
			for _, r := range rects {
				if r[1] != 0 || r[3] != vbH {
					t.Fatalf("bar %v is not full height %d", r, vbH)
				}
			}
			row := svgModules(t, vbW, vbH, rects)[0]
			// Start + symbols + checksum at 11 modules, stop at 13, quiet 2×10.
			if (vbW-20-13)%11 != 0 {
				t.Errorf("%d modules is not start, symbols, checksum, stop and quiet zones", vbW)
			}
			got, err := decodeCode128(row)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got != text {
				t.Fatalf("decoded %q, want %q", got, text)
			}
			if prev, ok := seen[string(body)]; ok {
				t.Errorf("%q renders the same image as %q", text, prev)
			}
			seen[string(body)] = text
		})
	}
}

func TestBarcodeQRMatchesEncoder(t *testing.T) {
	srv := httptest.NewServer(BarcodeHandler())
	defer srv.Close()
	for _, text := range []string{"GL0100013F30", "mango-kiwi", strings.Repeat("x", 64)} {
		t.Run(text, func(t *testing.T) {
			resp, body := getBarcode(t, srv, http.MethodGet, "qr", text)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/svg+xml" {
				t.Fatalf("status %d, type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			vbW, vbH, rects := parseSVG(t, body)
			grid := svgModules(t, vbW, vbH, rects)
			want, err := qr.Encode(text, qr.M, qr.Auto)
			if err != nil {
				t.Fatal(err)
			}
			n := want.Bounds().Dx()
			if vbW != n+8 || vbH != n+8 {
				t.Fatalf("viewBox %dx%d, want %d modules plus a 4-module quiet zone each side", vbW, vbH, n)
			}
			for y := 0; y < vbH; y++ {
				for x := 0; x < vbW; x++ {
					if grid[y][x] != isDarkModule(want, x-4, y-4) {
						t.Fatalf("module %d,%d differs from the encoder's", x-4, y-4)
					}
				}
			}
		})
	}
}

func TestBarcodeRefusesBadInput(t *testing.T) {
	srv := httptest.NewServer(BarcodeHandler())
	defer srv.Close()
	for _, tc := range []struct {
		name, method, kind, text string
		status                   int
		msg                      string
	}{
		{"no text", http.MethodGet, "qr", "", http.StatusBadRequest, "text is required"},
		{"65 characters", http.MethodGet, "code128", strings.Repeat("1", 65), http.StatusBadRequest, "at most 64"},
		{"not ASCII", http.MethodGet, "code128", "GL01é", http.StatusBadRequest, "not printable ASCII"},
		{"control character", http.MethodGet, "qr", "GL\x0101", http.StatusBadRequest, "not printable ASCII"},
		{"newline", http.MethodGet, "qr", "GL01\n", http.StatusBadRequest, "not printable ASCII"},
		{"no kind", http.MethodGet, "", "GL01", http.StatusBadRequest, "kind is required"},
		{"unknown kind", http.MethodGet, "ean13", "GL01", http.StatusBadRequest, "kind must be code128 or qr"},
		{"POST", http.MethodPost, "qr", "GL01", http.StatusMethodNotAllowed, "only GET"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := getBarcode(t, srv, tc.method, tc.kind, tc.text)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q, want a plain message", ct)
			}
			if !strings.Contains(string(body), tc.msg) {
				t.Errorf("body %q, want it to say %q", body, tc.msg)
			}
			if cc := resp.Header.Get("Cache-Control"); strings.Contains(cc, "max-age") {
				t.Errorf("a refusal is cached: Cache-Control %q", cc)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("no nosniff on a refusal")
			}
		})
	}
}

// TestQRTerminalMatchesEncoder reads the half blocks back into modules:
// every module is the encoder's, dark where drawn as a space, with a light
// quiet zone of 4 modules.
func TestQRTerminalMatchesEncoder(t *testing.T) {
	for _, text := range []string{"http://127.0.0.1:3490/tablet/#key=abc", "GL0100013F30", strings.Repeat("k", 120)} {
		t.Run(strconv.Itoa(len(text)), func(t *testing.T) {
			out, err := QRTerminal(text)
			if err != nil {
				t.Fatal(err)
			}
			want, err := qr.Encode(text, qr.M, qr.Auto)
			if err != nil {
				t.Fatal(err)
			}
			size := want.Bounds().Dx() + 8
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != (size+1)/2 {
				t.Fatalf("%d lines, want %d for %d module rows", len(lines), (size+1)/2, size)
			}
			for cy, line := range lines {
				runes := []rune(line)
				if len(runes) != size {
					t.Fatalf("line %d has %d characters, want %d", cy, len(runes), size)
				}
				for x, r := range runes {
					var top, bottom bool // light?
					switch r {
					case '█':
						top, bottom = true, true
					case '▀':
						top = true
					case '▄':
						bottom = true
					case ' ':
					default:
						t.Fatalf("line %d has %q", cy, r)
					}
					if top != !isDarkModule(want, x-4, 2*cy-4) {
						t.Fatalf("module %d,%d differs from the encoder's", x-4, 2*cy-4)
					}
					if 2*cy+1 < size && bottom != !isDarkModule(want, x-4, 2*cy+1-4) {
						t.Fatalf("module %d,%d differs from the encoder's", x-4, 2*cy+1-4)
					}
				}
			}
		})
	}
}

// TestBarcodesAreKeptAndDrawnOneAtATime: the same barcode asked for again
// is answered from the cache, not drawn again; while one is being drawn
// another waits its turn, and past the wait it is refused 503 with
// Retry-After, not drawn alongside (clients without a key cannot take
// more than one core drawing).
func TestBarcodesAreKeptAndDrawnOneAtATime(t *testing.T) {
	b := newBarcodes(50 * time.Millisecond)
	srv := httptest.NewServer(b)
	defer srv.Close()
	get := func(text string) *http.Response {
		t.Helper()
		resp, err := http.Get(srv.URL + "/barcode?kind=qr&text=" + text)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for range 3 {
		if resp := get("GL0100019657"); resp.StatusCode != http.StatusOK {
			t.Fatalf("barcode: %s", resp.Status)
		}
	}
	if n := b.drawn.Load(); n != 1 {
		t.Fatalf("the same barcode asked for three times was drawn %d times, want 1", n)
	}
	b.gate <- struct{}{} // a drawing in progress
	resp := get("GL0100019658")
	<-b.gate
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a barcode asked for while another is drawn past the wait: %s (Retry-After %q), want 503 with Retry-After",
			resp.Status, resp.Header.Get("Retry-After"))
	}
	if resp := get("GL0100019658"); resp.StatusCode != http.StatusOK {
		t.Fatalf("the same barcode once its turn came: %s", resp.Status)
	}
}
