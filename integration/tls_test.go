package integration

// serve --tls with the lane's own CA (tls init): https and wss on one port,
// trusted by a client that trusts only that CA and refused by one that
// does not.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// caPool is a pool holding only the CA tls init wrote for db.
func caPool(t *testing.T, db string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(db + ".ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("no certificate in %s.ca.pem", db)
	}
	return pool
}

func TestTLSLane(t *testing.T) {
	alongside(t)
	needsOwnLane(t)
	db := filepath.Join(t.TempDir(), "lane.db")
	if _, err := cli(t, "tls", "init", "--db", db, "--names", "lane-1.test,127.0.0.1,localhost"); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{db + ".ca-key.pem": 0o600, db + ".key.pem": 0o600} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != want {
			t.Fatalf("%s: mode %v (%v), want %v", filepath.Base(path), st.Mode().Perm(), err, want)
		}
	}
	if _, err := cli(t, "tls", "init", "--db", db); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("a second tls init: %v, want a refusal naming --force", err)
	}
	l := startLaneAt(t, db, "--tls")
	if !strings.Contains(l.log(), "websocket=wss://"+l.addr) || !strings.Contains(l.log(), "screens=https://"+l.addr+"/") {
		t.Errorf("listening line does not give the wss and https URLs:\n%s", l.log())
	}
	pool := caPool(t, db)
	_, port, _ := net.SplitHostPort(l.addr)

	t.Run("wss trusting only the CA logs in and calls", func(t *testing.T) {
		d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}, HandshakeTimeout: 10 * time.Second}
		// The Origin of a page the lane served over https.
		h := http.Header{"Origin": {"https://127.0.0.1:" + port}}
		ws, resp, err := d.Dial("wss://"+l.addr+"/fd1/open_websocket", h)
		if err != nil {
			status := ""
			if resp != nil {
				status = resp.Status
			}
			t.Fatalf("dial wss: %v %s\n%s", err, status, l.log())
		}
		defer ws.Close()
		c := &conn{t: t, ws: ws}
		if r := c.call(map[string]any{"a": "fd1.session.login", "rq": "login", "v": map[string]any{"apikey": l.key}}); r.Error != nil {
			t.Fatalf("login over wss: %+v", r.Error)
		}
		c.ping()
	})

	t.Run("clients without the CA are refused", func(t *testing.T) {
		for name, roots := range map[string]*x509.CertPool{"system pool": nil, "empty pool": x509.NewCertPool()} {
			d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: roots}, HandshakeTimeout: 10 * time.Second}
			ws, _, err := d.Dial("wss://"+l.addr+"/fd1/open_websocket", nil)
			if err == nil {
				ws.Close()
				t.Fatalf("%s: wss dial succeeded without trusting the lane's CA", name)
			}
			if !strings.Contains(err.Error(), "certificate") {
				t.Errorf("%s: refused with %v, want a certificate error", name, err)
			}
		}
		// Plain ws to the TLS port gets no WebSocket either.
		if ws, _, err := websocket.DefaultDialer.Dial("ws://"+l.addr+"/fd1/open_websocket", nil); err == nil {
			ws.Close()
			t.Fatal("plain ws on the TLS port was accepted")
		}
	})

	t.Run("certificate lists the names asked for", func(t *testing.T) {
		c, err := tls.Dial("tcp", l.addr, &tls.Config{RootCAs: pool, ServerName: "lane-1.test"})
		if err != nil {
			t.Fatalf("TLS to the lane as lane-1.test: %v", err)
		}
		defer c.Close()
		cs := c.ConnectionState()
		cert := cs.PeerCertificates[0]
		var ips []string
		for _, ip := range cert.IPAddresses {
			ips = append(ips, ip.String())
		}
		if !slices.Equal(cert.DNSNames, []string{"lane-1.test", "localhost"}) || !slices.Equal(ips, []string{"127.0.0.1"}) {
			t.Errorf("certificate names %q %q, want [lane-1.test localhost] [127.0.0.1]", cert.DNSNames, ips)
		}
		if cs.Version < tls.VersionTLS12 {
			t.Errorf("negotiated TLS version %x", cs.Version)
		}
		if _, err := tls.Dial("tcp", l.addr, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}); err == nil {
			t.Error("TLS 1.1 was accepted")
		}
	})

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(t *testing.T, path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := client.Get("https://" + l.addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	t.Run("https tablet page", func(t *testing.T) {
		resp, b := get(t, "/tablet/")
		if resp.StatusCode != http.StatusOK || !strings.Contains(strings.ToLower(string(b)), "<html") {
			t.Fatalf("GET /tablet/: %s %.200s", resp.Status, b)
		}
	})
	t.Run("/ca.pem is the CA file", func(t *testing.T) {
		resp, b := get(t, "/ca.pem")
		want, err := os.ReadFile(db + ".ca.pem")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || string(b) != string(want) || resp.Header.Get("Content-Type") != "application/x-pem-file" {
			t.Fatalf("GET /ca.pem: %s %q, body equal to the CA file: %v", resp.Status, resp.Header.Get("Content-Type"), string(b) == string(want))
		}
	})
	t.Run("tls ca prints the CA, tls renew keeps it", func(t *testing.T) {
		want, err := os.ReadFile(db + ".ca.pem")
		if err != nil {
			t.Fatal(err)
		}
		out, err := cli(t, "tls", "ca", "--db", db)
		if err != nil || out != string(want) {
			t.Fatalf("tls ca printed %q (%v), want the CA file", out, err)
		}
		if out, err := cli(t, "tls", "renew", "--db", db); err != nil || !strings.HasPrefix(out, "not renewed") {
			t.Fatalf("tls renew of a new certificate: %q %v", out, err)
		}
		cert0, _ := os.ReadFile(db + ".cert.pem")
		if out, err := cli(t, "tls", "renew", "--db", db, "--force"); err != nil || !strings.HasPrefix(out, "renewed") {
			t.Fatalf("tls renew --force: %q %v", out, err)
		}
		cert1, _ := os.ReadFile(db + ".cert.pem")
		ca1, _ := os.ReadFile(db + ".ca.pem")
		if string(cert1) == string(cert0) || string(ca1) != string(want) {
			t.Fatalf("renew --force: certificate changed %v, CA kept %v", string(cert1) != string(cert0), string(ca1) == string(want))
		}
		// The running lane serves the renewed certificate without a restart.
		blk, _ := pem.Decode(cert1)
		if blk == nil {
			t.Fatal("no PEM in the renewed certificate file")
		}
		c, err := tls.Dial("tcp", l.addr, &tls.Config{RootCAs: pool, ServerName: "lane-1.test"})
		if err != nil {
			t.Fatalf("TLS after renew: %v", err)
		}
		defer c.Close()
		if got := c.ConnectionState().PeerCertificates[0].Raw; string(got) != string(blk.Bytes) {
			t.Fatal("after tls renew the lane still serves the old certificate")
		}
	})
	// The refused clients above leave handshake errors; nothing else.
	for _, line := range strings.Split(l.troubles(), "\n") {
		if line != "" && !strings.Contains(line, "TLS handshake error") {
			t.Errorf("lane logged: %s", line)
		}
	}
}

var redirecting = regexp.MustCompile(`msg="redirecting http to https" addr=(\S+)`)

// TestTLSServeErrors: --tls before tls init names tls init, TLS flags that
// do not go together are refused, and --http-redirect sends plain http to
// the https port.
func TestTLSServeErrors(t *testing.T) {
	alongside(t)
	needsOwnLane(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "lane.db")
	_, err := cli(t, "serve", "--addr", "127.0.0.1:0", "--db", db, "--create", "--tls")
	if err == nil || !strings.Contains(err.Error(), "tls init") {
		t.Fatalf("serve --tls without tls init: %v, want an error naming tls init", err)
	}
	if _, err := os.Stat(db); err == nil {
		t.Fatal("serve --tls refused but created the lane DB anyway")
	}
	if _, err := cli(t, "serve", "--addr", "127.0.0.1:0", "--db", db, "--create", "--http-redirect", "127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "--http-redirect") {
		t.Fatalf("--http-redirect without TLS: %v, want a refusal naming it", err)
	}

	if _, err := cli(t, "tls", "init", "--db", db, "--names", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--tls", "--tls-cert", db + ".cert.pem", "--tls-key", db + ".key.pem"},
		{"--tls-cert", db + ".cert.pem"},
		{"--tls-cert", db + ".cert.pem", "--tls-key", db + ".ca.pem"}, // not its key
	} {
		_, err := cli(t, append([]string{"serve", "--addr", "127.0.0.1:0", "--db", db, "--create"}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "--tls") || !strings.Contains(err.Error(), "exit status 2") {
			t.Fatalf("serve %q: %v, want a usage error naming the TLS flag", args, err)
		}
	}
	l := startLaneAt(t, db, "--tls", "--http-redirect", "127.0.0.1:0")
	m := redirecting.FindStringSubmatch(l.log())
	if m == nil {
		t.Fatalf("no redirect listener in the log:\n%s", l.log())
	}
	noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+m[1]+"/tablet/?x=1", nil)
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://" + l.addr + "/tablet/?x=1"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("redirect: %s to %q, want 308 to %q", resp.Status, resp.Header.Get("Location"), want)
	}
}

// TestTLSStoreCertificate: --tls-cert and --tls-key serve a certificate the
// store already has (here one tls init made for another lane DB); there is
// no CA of the lane's own to hand out then.
func TestTLSStoreCertificate(t *testing.T) {
	alongside(t)
	needsOwnLane(t)
	other := filepath.Join(t.TempDir(), "other.db")
	if _, err := cli(t, "tls", "init", "--db", other, "--names", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	l := startLaneAt(t, filepath.Join(t.TempDir(), "lane.db"), "--tls-cert", other+".cert.pem", "--tls-key", other+".key.pem")
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: caPool(t, other)}, HandshakeTimeout: 10 * time.Second}
	ws, _, err := d.Dial("wss://"+l.addr+"/fd1/open_websocket", nil)
	if err != nil {
		t.Fatalf("dial wss: %v\n%s", err, l.log())
	}
	defer ws.Close()
	c := &conn{t: t, ws: ws}
	if r := c.call(map[string]any{"a": "fd1.session.login", "rq": "login", "v": map[string]any{"apikey": l.key}}); r.Error != nil {
		t.Fatalf("login over wss: %+v", r.Error)
	}
	c.ping()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool(t, other)}}}
	resp, err := client.Get("https://" + l.addr + "/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /ca.pem with a store certificate: %s, want 404", resp.Status)
	}
}
