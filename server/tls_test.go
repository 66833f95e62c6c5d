package server

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRedirectToHTTPS(t *testing.T) {
	tests := []struct {
		host, target, want string
	}{
		{"192.168.1.20:3480", "/tablet/?x=1", "https://192.168.1.20:3490/tablet/?x=1"},
		{"lane-1.local", "/", "https://lane-1.local:3490/"},
		{"[fe80::1]:80", "/ca.pem", "https://[fe80::1]:3490/ca.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.target, nil)
			r.Host = tt.host
			w := httptest.NewRecorder()
			redirectToHTTPS("3490").ServeHTTP(w, r)
			if w.Code != http.StatusPermanentRedirect || w.Header().Get("Location") != tt.want {
				t.Fatalf("%d to %q, want 308 to %q", w.Code, w.Header().Get("Location"), tt.want)
			}
		})
	}
}

// TestRedirectRefusesAPICalls: on the plain-http port, an API call or a
// request carrying a key is refused, not redirected: its key has crossed
// the network in clear, and a client that follows redirects would never
// learn it does so on every call.
func TestRedirectRefusesAPICalls(t *testing.T) {
	tests := []struct {
		name, method, target, header string
	}{
		{"HTTP-mode call", "GET", "/fd1/products/get_products_list?plu=FW", ""},
		{"HTTP-mode POST", "POST", "/fd1/debug/ping", ""},
		{"socket upgrade", "GET", "/fd1/open_websocket?purpose=presell", ""},
		{"metrics", "GET", "/metrics", ""},
		{"a key header on a page", "GET", "/tablet/", "x-api-key"},
		{"the old key header", "GET", "/", "x-apikey"},
		{"a bearer token", "GET", "/", "Authorization"},
		{"the display's key in its URL", "GET", "/display/?key=abc", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, nil)
			r.Host = "lane-1.local:3480"
			if tt.header != "" {
				r.Header.Set(tt.header, "secret")
			}
			w := httptest.NewRecorder()
			redirectToHTTPS("3490").ServeHTTP(w, r)
			if w.Code != http.StatusForbidden || w.Header().Get("Location") != "" {
				t.Fatalf("%d (Location %q), want 403 and no redirect", w.Code, w.Header().Get("Location"))
			}
			if !strings.Contains(w.Body.String(), "https://lane-1.local:3490/") {
				t.Fatalf("the refusal does not say where to go: %q", w.Body)
			}
		})
	}
}

func TestConfigHTTPRedirect(t *testing.T) {
	tests := []struct {
		name     string
		redirect string
		tls      bool
		wantErr  string // "" when valid
	}{
		{"none", "", false, ""},
		{"none with TLS", "", true, ""},
		{"with TLS", "0.0.0.0:3480", true, ""},
		{"without TLS", "0.0.0.0:3480", false, "needs TLS"},
		{"not an address", "3480", true, "host:port"},
		{"port out of range", ":70000", true, "port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.HTTPRedirect = tt.redirect
			if tt.tls {
				c.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "HTTPRedirect") {
				t.Fatalf("got %v, want an HTTPRedirect error saying %q", err, tt.wantErr)
			}
		})
	}
}
