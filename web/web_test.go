package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, s *Site, path string) *http.Response {
	t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", path, nil)
	r.Host = "lane.local:3490"
	s.ServeHTTP(w, r)
	return w.Result()
}

// TestSite: every page is served with the security headers, never cached,
// and names its assets under the current version; assets are cached for
// good under that version and only there.
func TestSite(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	assetRef := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`)
	for _, page := range []string{"/", "/tablet/", "/counter/", "/display/"} {
		t.Run(page, func(t *testing.T) {
			res := get(t, s, page)
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			for h, want := range map[string]string{
				"Content-Type":           "text/html; charset=utf-8",
				"Cache-Control":          "no-cache",
				"X-Content-Type-Options": "nosniff",
				"X-Frame-Options":        "DENY",
			} {
				if got := res.Header.Get(h); got != want {
					t.Errorf("%s: %q, want %q", h, got, want)
				}
			}
			policy := res.Header.Get("Content-Security-Policy")
			for _, want := range []string{"script-src 'self'", "default-src 'none'", "frame-ancestors 'none'", "ws://lane.local:3490"} {
				if !strings.Contains(policy, want) {
					t.Errorf("CSP %q lacks %q", policy, want)
				}
			}
			if strings.Contains(policy, "unsafe-inline") || strings.Contains(string(body), assetToken) {
				t.Errorf("inline allowed or an asset token left in the page")
			}
			if strings.Contains(string(body), "<script>") || strings.Contains(string(body), "style=") {
				t.Errorf("page has inline script or style, which the CSP refuses")
			}
			refs := assetRef.FindAllStringSubmatch(string(body), -1)
			if len(refs) == 0 {
				t.Fatalf("page names no assets")
			}
			for _, ref := range refs {
				if !strings.HasPrefix(ref[1], "/assets/"+s.Version()+"/") {
					t.Errorf("asset %s is not under the current version %s", ref[1], s.Version())
				}
				a := get(t, s, ref[1])
				if a.StatusCode != http.StatusOK || a.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
					t.Errorf("asset %s: %d, Cache-Control %q", ref[1], a.StatusCode, a.Header.Get("Cache-Control"))
				}
			}
		})
	}
	for _, tt := range []struct {
		path string
		want int
	}{
		{"/assets/" + s.Version() + "/lib/fd1.js", http.StatusOK},
		{"/assets/000000000000/lib/fd1.js", http.StatusNotFound}, // an old binary's version
		{"/assets/" + s.Version() + "/tablet/index.html", http.StatusNotFound},
		{"/assets/" + s.Version() + "/../../web.go", http.StatusTemporaryRedirect}, // cleaned to a path that is not found
		{"/assets/" + s.Version() + "/lib/nothing.js", http.StatusNotFound},
		{"/tablet/nothing", http.StatusNotFound},
		{"/favicon.ico", http.StatusOK},
		{"/barcode?kind=code128&text=GL0100013F30", http.StatusOK},
	} {
		if got := get(t, s, tt.path).StatusCode; got != tt.want {
			t.Errorf("GET %s: %d, want %d", tt.path, got, tt.want)
		}
	}
	if ct := get(t, s, "/assets/"+s.Version()+"/lib/fd1.js").Header.Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Errorf("a module is served as %q; browsers run modules only with a JavaScript type", ct)
	}
}

// TestCSPHost: a Host header that could break out of the header value is
// not written into connect-src.
func TestCSPHost(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "evil; script-src *"
	s.ServeHTTP(w, r)
	if p := w.Header().Get("Content-Security-Policy"); strings.Contains(p, "evil") {
		t.Fatalf("CSP took the Host header as is: %q", p)
	}
}

// TestCSPOtherLanes: the store's other lanes (the lane's --allowed-origins)
// are named in connect-src as sockets and in img-src, so a tablet may move
// to one of them; "*" and anything that is not an origin are left out.
func TestCSPOtherLanes(t *testing.T) {
	for _, tt := range []struct {
		name    string
		lanes   []string
		want    []string // in the policy
		wantNot []string
	}{
		{"none", nil, []string{"connect-src 'self' ws://lane.local:3490 wss://lane.local:3490"}, []string{"lane2"}},
		{"http lane", []string{"http://Lane2.local:3490"}, []string{"img-src 'self' http://lane2.local:3490 data:", " ws://lane2.local:3490"}, []string{"wss://lane2"}},
		{"https lane", []string{"https://lane2.local/"}, []string{"img-src 'self' https://lane2.local data:", " wss://lane2.local"}, []string{"ws://lane2"}},
		{"two lanes", []string{"http://10.0.0.2:3490", "http://[fd00::3]:3490"}, []string{" ws://10.0.0.2:3490", " ws://[fd00::3]:3490"}, nil},
		{"any origin is not a lane", []string{"*"}, nil, []string{"*"}},
		{"not origins", []string{"http://lane2.local/path", "ftp://lane2.local", "http://user@lane2.local", "http://a b;script-src *"}, nil, []string{"lane2", "script-src *"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Config{OtherLanes: tt.lanes})
			if err != nil {
				t.Fatal(err)
			}
			policy := get(t, s, "/tablet/").Header.Get("Content-Security-Policy")
			for _, w := range tt.want {
				if !strings.Contains(policy, w) {
					t.Errorf("CSP %q lacks %q", policy, w)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(policy, w) {
					t.Errorf("CSP %q has %q", policy, w)
				}
			}
		})
	}
}
