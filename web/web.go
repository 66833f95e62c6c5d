// Package web is the store's screens: the tablet, the counter and the
// customer display, plain HTML, CSS and JavaScript modules embedded in the
// binary and served by the lane beside its FD1 endpoints. The pages speak
// FD1 over the lane's own WebSocket like any other client; nothing here
// prices, stores or decides anything a page shows.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
)

//go:embed static
var embedded embed.FS

// assetToken in a page is replaced by the versioned asset prefix, so that a
// page always loads the scripts and styles of the binary that served it,
// and those can be cached for good.
const assetToken = "{{ASSETS}}"

// csp allows the page's own scripts, styles, images and socket only: no
// inline script, no eval, no other origin, no framing. connect-src names
// the ws/wss forms of the page's host for browsers whose 'self' does not
// yet cover WebSockets.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"media-src 'self' blob:; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; " +
	"connect-src 'self'"

// hostOK is what a Host header may hold to be named in connect-src.
var hostOK = regexp.MustCompile(`^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`)

// Config is what a site needs to know of the store around its lane.
type Config struct {
	// OtherLanes are origins (http[s]://host[:port]) of other lanes on the
	// same store database that the pages may reach besides the lane that
	// served them: a tablet given several lanes moves its socket to another
	// when its own goes away, and loads the ticket's barcode images from
	// there. The lane passes its --allowed-origins (the lanes of a store
	// allow each other); "*" and what is not such an origin are left out,
	// so that no page may connect just anywhere. Default none.
	OtherLanes []string
}

// Site serves the screens.
type Site struct {
	static fs.FS
	// connect and img are what the CSP adds to connect-src and img-src
	// for Config.OtherLanes, each entry with a leading space.
	connect, img string
	version      string            // content hash of every embedded file
	pages        map[string][]byte // "/tablet/" → index.html with the asset prefix filled in
	mux          *http.ServeMux
}

// New reads the embedded files once and builds the site.
func New(cfg Config) (*Site, error) {
	static, err := fs.Sub(embedded, "static")
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	version, err := hashFiles(static)
	if err != nil {
		return nil, fmt.Errorf("web: hash assets: %w", err)
	}
	s := &Site{static: static, version: version, pages: map[string][]byte{}, mux: http.NewServeMux()}
	for _, o := range cfg.OtherLanes {
		u, err := url.Parse(strings.TrimSuffix(o, "/"))
		if err != nil || u.Path != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || !hostOK.MatchString(u.Host) {
			continue
		}
		host := strings.ToLower(u.Host)
		switch strings.ToLower(u.Scheme) {
		case "http":
			s.connect += " ws://" + host
			s.img += " http://" + host
		case "https":
			s.connect += " wss://" + host
			s.img += " https://" + host
		}
	}
	prefix := "/assets/" + version
	for _, p := range []string{"/", "/tablet/", "/counter/", "/display/"} {
		b, err := fs.ReadFile(static, strings.TrimPrefix(p, "/")+"index.html")
		if err != nil {
			return nil, fmt.Errorf("web: page %s: %w", p, err)
		}
		s.pages[p] = []byte(strings.ReplaceAll(string(b), assetToken, prefix))
		s.mux.HandleFunc("GET "+p+"{$}", s.page)
	}
	s.mux.HandleFunc("GET /assets/{version}/{file...}", s.asset)
	s.mux.HandleFunc("GET /favicon.ico", s.favicon)
	s.mux.Handle("GET /barcode", BarcodeHandler())
	return s, nil
}

// Version is the content hash the asset URLs carry.
func (s *Site) Version() string { return s.version }

// Routes lists the patterns the site answers, for the server to mount.
func (s *Site) Routes() []string {
	return []string{"GET /{$}", "GET /tablet/", "GET /counter/", "GET /display/", "GET /assets/", "GET /favicon.ico", "GET /barcode"}
}

// ServeHTTP serves a page or an asset, with the site's security headers.
func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	policy := strings.Replace(csp, "img-src 'self'", "img-src 'self'"+s.img, 1) + s.connect
	if hostOK.MatchString(r.Host) {
		policy += " ws://" + r.Host + " wss://" + r.Host
	}
	h.Set("Content-Security-Policy", policy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	s.mux.ServeHTTP(w, r)
}

// page serves a screen's HTML. It is never cached: it names the current
// asset version, so a new binary's pages load its new scripts.
func (s *Site) page(w http.ResponseWriter, r *http.Request) {
	b, ok := s.pages[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}

// asset serves a script, style or image under the version prefix, cached
// for a year: a new binary has a new prefix. An old prefix is not found
// rather than answered with new content a browser would keep for a year.
func (s *Site) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if r.PathValue("version") != s.version || strings.HasSuffix(name, ".html") || !fs.ValidPath(name) {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(s.static, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Write(b)
}

// favicon answers the browser's own request for /favicon.ico (pages name
// their icon, but other paths, like /healthz, do not).
func (s *Site) favicon(w http.ResponseWriter, r *http.Request) {
	b, err := fs.ReadFile(s.static, "lib/icon.svg")
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.Write(b)
}

// hashFiles is a short hash of every file's path and content.
func hashFiles(fsys fs.FS) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12], err
}
