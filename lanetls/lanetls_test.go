package lanetls

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)

func verify(t *testing.T, f Files, name string, at time.Time) error {
	t.Helper()
	ca, err := ReadCert(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ReadCert(f.Cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	_, err = c.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

func TestInitCertificate(t *testing.T) {
	tests := []struct {
		name    string
		names   []string
		wantDNS []string
		wantIP  []string
	}{
		{"names and addresses", []string{"lane-1.local", "192.168.1.20", "LOCALHOST", "::1"}, []string{"lane-1.local", "localhost"}, []string{"192.168.1.20", "::1"}},
		{"duplicates and blanks dropped", []string{"a.local", " ", "a.local", "10.0.0.1", "10.0.0.1"}, []string{"a.local"}, []string{"10.0.0.1"}},
		{"addresses only", []string{"127.0.0.1"}, nil, []string{"127.0.0.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := FilesFor(filepath.Join(t.TempDir(), "lane.db"))
			if err := Init(f, tt.names, false, t0); err != nil {
				t.Fatal(err)
			}
			c, err := ReadCert(f.Cert)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.DNSNames, tt.wantDNS) {
				t.Errorf("DNS SANs %q, want %q", c.DNSNames, tt.wantDNS)
			}
			var ips []string
			for _, ip := range c.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tt.wantIP) {
				t.Errorf("IP SANs %q, want %q", ips, tt.wantIP)
			}
			if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || c.KeyUsage != x509.KeyUsageDigitalSignature || c.IsCA {
				t.Errorf("server certificate usage: ext %v, key %v, CA %v", c.ExtKeyUsage, c.KeyUsage, c.IsCA)
			}
			if d := c.NotAfter.Sub(c.NotBefore); d > 825*24*time.Hour {
				t.Errorf("server certificate valid %s, more than 825 days", d)
			}
			if c.NotBefore.After(t0) || c.NotAfter.Before(t0.Add(365*24*time.Hour)) {
				t.Errorf("server certificate valid %s to %s, want from before %s for over a year", c.NotBefore, c.NotAfter, t0)
			}
			ca, err := ReadCert(f.CA)
			if err != nil {
				t.Fatal(err)
			}
			if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 || ca.NotAfter.Before(t0.Add(9*365*24*time.Hour)) {
				t.Errorf("CA: IsCA %v, usage %v, expires %s", ca.IsCA, ca.KeyUsage, ca.NotAfter)
			}
			if len(tt.wantIP) > 0 {
				pool := x509.NewCertPool()
				pool.AddCert(ca)
				if _, err := c.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: t0}); err != nil {
					t.Errorf("chain does not verify: %v", err)
				}
				if err := c.VerifyHostname(tt.wantIP[0]); err != nil {
					t.Errorf("certificate does not cover %s: %v", tt.wantIP[0], err)
				}
			}
			for _, n := range tt.wantDNS {
				if err := verify(t, f, n, t0); err != nil {
					t.Errorf("verify %s: %v", n, err)
				}
			}
			if err := verify(t, f, "other.local", t0); err == nil {
				t.Errorf("a name not asked for verified")
			}
			for path, want := range map[string]os.FileMode{f.CA: 0o644, f.CAKey: 0o600, f.Cert: 0o644, f.Key: 0o600} {
				st, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != want {
					t.Errorf("%s mode %v, want %v", filepath.Base(path), st.Mode().Perm(), want)
				}
			}
			if _, err := ServerConfig(f.Cert, f.Key); err != nil {
				t.Errorf("server config: %v", err)
			}
		})
	}
}

func TestInitRefusesExistingCA(t *testing.T) {
	f := FilesFor(filepath.Join(t.TempDir(), "lane.db"))
	if err := Init(f, []string{"a.local"}, false, t0); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(f.CA)
	if err := Init(f, []string{"b.local"}, false, t0); !errors.Is(err, ErrExists) {
		t.Fatalf("second init: %v, want ErrExists", err)
	}
	if after, _ := os.ReadFile(f.CA); string(after) != string(before) {
		t.Fatal("refused init changed the CA")
	}
	if err := Init(f, []string{"b.local"}, true, t0); err != nil {
		t.Fatalf("init --force: %v", err)
	}
	if after, _ := os.ReadFile(f.CA); string(after) == string(before) {
		t.Fatal("init --force kept the old CA")
	}
	if err := Init(f, nil, true, t0); err == nil {
		t.Fatal("init with no names succeeded")
	}
}

func TestRenew(t *testing.T) {
	tests := []struct {
		name  string
		at    time.Time
		force bool
		want  bool
	}{
		{"fresh, not forced", t0.Add(24 * time.Hour), false, false},
		{"fresh, forced", t0.Add(24 * time.Hour), true, true},
		{"31 days left", t0.Add(ServerValidity - 31*24*time.Hour - time.Hour), false, false},
		{"29 days left", t0.Add(ServerValidity - 29*24*time.Hour - time.Hour), false, true},
		{"expired", t0.Add(ServerValidity + time.Hour), false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := FilesFor(filepath.Join(t.TempDir(), "lane.db"))
			names := []string{"lane-1.local", "192.168.1.20"}
			if err := Init(f, names, false, t0); err != nil {
				t.Fatal(err)
			}
			ca0, _ := os.ReadFile(f.CA)
			cert0, _ := os.ReadFile(f.Cert)
			renewed, _, err := Renew(f, tt.force, tt.at)
			if err != nil {
				t.Fatal(err)
			}
			if renewed != tt.want {
				t.Fatalf("renewed %v, want %v", renewed, tt.want)
			}
			ca1, _ := os.ReadFile(f.CA)
			cert1, _ := os.ReadFile(f.Cert)
			if string(ca1) != string(ca0) {
				t.Fatal("renew changed the CA")
			}
			if (string(cert1) != string(cert0)) != tt.want {
				t.Fatalf("certificate changed: %v, want %v", string(cert1) != string(cert0), tt.want)
			}
			c, err := ReadCert(f.Cert)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.DNSNames, []string{"lane-1.local"}) || len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(net.ParseIP("192.168.1.20")) {
				t.Fatalf("renewed certificate names %q %v", c.DNSNames, c.IPAddresses)
			}
			if err := verify(t, f, "lane-1.local", tt.at); tt.want && err != nil {
				t.Fatalf("renewed certificate does not verify against the same CA: %v", err)
			}
			if st, err := os.Stat(f.Key); err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("key after renew: %v %v", st.Mode(), err)
			}
		})
	}
}

// TestDefaultNames: the names tls init uses without --names cover the
// lane reached from the machine itself and from the LAN, once each.
func TestDefaultNames(t *testing.T) {
	names := DefaultNames()
	for _, want := range []string{"localhost", "127.0.0.1"} {
		if !slices.Contains(names, want) {
			t.Errorf("default names %q lack %s", names, want)
		}
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Errorf("%s listed twice in %q", n, names)
		}
		seen[n] = true
		if ip := net.ParseIP(n); ip != nil && ip.IsLoopback() && n != "127.0.0.1" {
			t.Errorf("loopback address %s in %q", n, names)
		}
	}
	if h, err := os.Hostname(); err == nil && h != "" && !slices.Contains(names, strings.ToLower(h)) {
		t.Errorf("default names %q lack the host name %s", names, h)
	}
	f := FilesFor(filepath.Join(t.TempDir(), "lane.db"))
	if err := Init(f, names, false, t0); err != nil {
		t.Fatalf("init with the default names: %v", err)
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"lane-1.local", true},
		{"LANE-1.Local", true},
		{"localhost", true},
		{"192.168.1.20", true},
		{"::1", true},
		{"[fe80::1]", true},
		{"*.store.example", true},
		{"bad name!", false},
		{"300.1.1.1", false},
		{"1.2.3", false},
		{"*.*.x", false},
		{"*.local", false},
		{"a.*.example", false},
		{"lane*.example", false},
		{"-lane.local", false},
		{"lane-.local", false},
		{"lane..local", false},
		{"lane.local.", false},
		{"my_pc.local", false},
		{"café.local", false},
		{strings.Repeat("a", 64) + ".local", false},
		{strings.Repeat("a.", 127) + "aa", false}, // 255 characters
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckName(tt.name)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrBadName)) {
				t.Fatalf("CheckName(%q) = %v, want ok %v", tt.name, err, tt.ok)
			}
		})
	}
}

func TestCheckDates(t *testing.T) {
	f := FilesFor(filepath.Join(t.TempDir(), "lane.db"))
	if err := Init(f, []string{"127.0.0.1"}, false, t0); err != nil {
		t.Fatal(err)
	}
	c, err := ReadCert(f.Cert)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		at       time.Time
		wantErr  error
		wantSoon bool
	}{
		{"at issue", t0, nil, false},
		{"before NotBefore", c.NotBefore.Add(-time.Minute), ErrNotYetValid, false},
		{"31 days left", c.NotAfter.Add(-31 * 24 * time.Hour), nil, false},
		{"29 days left", c.NotAfter.Add(-29 * 24 * time.Hour), nil, true},
		{"a day after NotAfter", c.NotAfter.Add(24 * time.Hour), ErrExpired, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			soon, err := CheckDates(c, tt.at)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) || soon != tt.wantSoon {
				t.Fatalf("CheckDates at %s = %v, %v; want %v, %v", tt.at, soon, err, tt.wantSoon, tt.wantErr)
			}
		})
	}
}

// TestReissue: a certificate reissued for other names holds exactly them,
// under the same CA (tablets keep trusting the lane); a bad name changes
// nothing.
func TestReissue(t *testing.T) {
	tests := []struct {
		name    string
		names   []string
		wantErr bool
	}{
		{"adds the LAN address", []string{"lane-1.local", "192.168.1.20", "127.0.0.1"}, false},
		{"a bad name", []string{"lane-1.local", "300.1.1.1"}, true},
		{"no names", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := FilesFor(filepath.Join(t.TempDir(), "lane.db"))
			if err := Init(f, []string{"lane-1.local"}, false, t0); err != nil {
				t.Fatal(err)
			}
			ca0, _ := os.ReadFile(f.CA)
			cert0, _ := os.ReadFile(f.Cert)
			err := Reissue(f, tt.names, t0.Add(time.Hour))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Reissue: %v, want an error: %v", err, tt.wantErr)
			}
			ca1, _ := os.ReadFile(f.CA)
			cert1, _ := os.ReadFile(f.Cert)
			if string(ca1) != string(ca0) {
				t.Fatal("reissue changed the CA")
			}
			if tt.wantErr {
				if string(cert1) != string(cert0) {
					t.Fatal("a refused reissue changed the certificate")
				}
				return
			}
			for _, n := range tt.names {
				if err := verify(t, f, n, t0.Add(2*time.Hour)); err != nil {
					t.Errorf("reissued certificate does not hold %s: %v", n, err)
				}
			}
		})
	}
}

// reissueSameKey writes a new certificate for the key already in f.Key,
// as a store's own CA does when it renews a certificate for the same key.
func reissueSameKey(t *testing.T, f Files, at time.Time) {
	t.Helper()
	ca, caKey, err := loadCA(f)
	if err != nil {
		t.Fatal(err)
	}
	key, err := readKey(f.Key)
	if err != nil {
		t.Fatal(err)
	}
	der, err := signServer(ca, caKey, &key.PublicKey, []string{"lane-1.local"}, at)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.writePEM(f.Cert, "CERTIFICATE", der, 0o644); err != nil {
		t.Fatal(err)
	}
}

// servedCert is the certificate a client gets from a handshake with cfg,
// checked against the lane's CA as a tablet checks it.
func servedCert(t *testing.T, cfg *tls.Config, f Files) *x509.Certificate {
	t.Helper()
	ca, err := ReadCert(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	srv, cli := net.Pipe()
	defer srv.Close()
	defer cli.Close()
	errc := make(chan error, 1)
	go func() { errc <- tls.Server(srv, cfg).Handshake() }()
	c := tls.Client(cli, &tls.Config{RootCAs: roots, ServerName: "lane-1.local", Time: func() time.Time { return t0.Add(2 * time.Hour) }})
	if err := c.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	return c.ConnectionState().PeerCertificates[0]
}

// logLines are the lines logged into b.
func logLines(b *bytes.Buffer) []string {
	return strings.FieldsFunc(b.String(), func(r rune) bool { return r == '\n' })
}

// TestReloaderTakesChanges: a lane serving a certificate takes a new one
// when either of its files changes, the certificate alone (same key)
// included, and says so with its expiry; files that do not make a pair
// leave the old certificate served, with one line naming the file at fault
// however many handshakes follow; the next change is tried again.
func TestReloaderTakesChanges(t *testing.T) {
	tests := []struct {
		name    string
		change  func(t *testing.T, f Files)
		wantNew bool     // the new certificate is served
		wantLog []string // what the one line logged says (CERT, KEY: the files); nil: no line
	}{
		{name: "nothing changed", change: func(*testing.T, Files) {}},
		{name: "certificate replaced, key kept", change: func(t *testing.T, f Files) { reissueSameKey(t, f, t0.Add(time.Hour)) },
			wantNew: true, wantLog: []string{"level=INFO", "TLS certificate reloaded", "cert=CERT", "not_after=NOTAFTER"}},
		{name: "certificate and key replaced", change: func(t *testing.T, f Files) {
			if err := Reissue(f, []string{"lane-1.local"}, t0.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}, wantNew: true, wantLog: []string{"level=INFO", "TLS certificate reloaded", "not_after=NOTAFTER"}},
		{name: "key replaced alone", change: func(t *testing.T, f Files) {
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			der, err := x509.MarshalPKCS8PrivateKey(key)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.writePEM(f.Key, "PRIVATE KEY", der, 0o600); err != nil {
				t.Fatal(err)
			}
		}, wantLog: []string{"level=WARN", "changed=KEY", "TLS key KEY with certificate CERT", "private key does not match public key", "serving_not_after=OLDNOTAFTER"}},
		{name: "certificate half written", change: func(t *testing.T, f Files) {
			b, err := os.ReadFile(f.Cert)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f.Cert, b[:len(b)/2], 0o644); err != nil {
				t.Fatal(err)
			}
		}, wantLog: []string{"level=WARN", "changed=CERT", "TLS certificate CERT: no PEM certificate"}},
		{name: "key unreadable", change: func(t *testing.T, f Files) {
			if err := os.Remove(f.Key); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(f.Key, 0o700); err != nil {
				t.Fatal(err)
			}
		}, wantLog: []string{"level=WARN", "read TLS key: read KEY: is a directory"}},
		{name: "key removed", change: func(t *testing.T, f Files) {
			if err := os.Remove(f.Key); err != nil {
				t.Fatal(err)
			}
		}, wantLog: []string{"level=WARN", "read TLS key: open KEY: no such file or directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, r, log := newReloaderOfNewLane(t)
			clock := time.Now()
			r.now = func() time.Time { return clock }
			cfg := r.Config()
			old := servedCert(t, cfg, f)
			tt.change(t, f)
			// A pair that does not load may be one still being written: for
			// settle it is tried again at each handshake, not logged.
			servedCert(t, cfg, f)
			if lines := logLines(log); !tt.wantNew && len(lines) != 0 {
				t.Fatalf("logged %q within settle of the change, want nothing yet", lines)
			}
			clock = clock.Add(settle)
			for range 3 { // one line per change, not per handshake
				got := servedCert(t, cfg, f)
				if isNew := !got.Equal(old); isNew != tt.wantNew {
					t.Fatalf("new certificate served: %v, want %v (log: %s)", isNew, tt.wantNew, log.String())
				}
			}
			lines := logLines(log)
			if tt.wantLog == nil {
				if len(lines) != 0 {
					t.Fatalf("logged %q, want nothing", lines)
				}
			} else {
				if len(lines) != 1 {
					t.Fatalf("logged %d lines, want 1:\n%s", len(lines), log.String())
				}
				served := servedCert(t, cfg, f)
				words := strings.NewReplacer("CERT", f.Cert, "KEY", f.Key, "OLDNOTAFTER", old.NotAfter.UTC().Format(time.RFC3339),
					"NOTAFTER", served.NotAfter.UTC().Format(time.RFC3339))
				for _, w := range tt.wantLog {
					if w = words.Replace(w); !strings.Contains(lines[0], w) {
						t.Errorf("logged %q, want it to say %q", lines[0], w)
					}
				}
			}
			// Whatever came before, a good new pair is taken.
			os.RemoveAll(f.Key)
			if err := Reissue(f, []string{"lane-1.local"}, t0.Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
			want, err := ReadCert(f.Cert)
			if err != nil {
				t.Fatal(err)
			}
			if got := servedCert(t, cfg, f); !got.Equal(want) {
				t.Fatalf("after a good pair was written, serving %v, want %v", got.SerialNumber, want.SerialNumber)
			}
			if lines := logLines(log); len(lines) == 0 || !strings.Contains(lines[len(lines)-1], "TLS certificate reloaded") {
				t.Errorf("logged %q, the reload last", lines)
			}
		})
	}
}

// newReloaderOfNewLane makes a lane's CA and certificate (tls init) and
// a reloader serving them that logs to the returned buffer.
func newReloaderOfNewLane(t *testing.T) (Files, *Reloader, *bytes.Buffer) {
	t.Helper()
	f := FilesFor(filepath.Join(t.TempDir(), "lane.db"))
	if err := Init(f, []string{"lane-1.local"}, false, t0); err != nil {
		t.Fatal(err)
	}
	log := new(bytes.Buffer)
	r, err := NewReloader(f.Cert, f.Key, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return f, r, log
}

// TestReloaderWaitsOutARenewal: a renewal writes the new key, then the
// new certificate. A handshake between the two is served the old pair
// without a warning, and the next one the new pair, with one line saying
// so.
func TestReloaderWaitsOutARenewal(t *testing.T) {
	f, r, log := newReloaderOfNewLane(t)
	cfg := r.Config()
	old := servedCert(t, cfg, f)
	between := 0
	f.Own = func(path string) error {
		if strings.HasPrefix(filepath.Base(path), filepath.Base(f.Cert)) { // the key is in place, the certificate not yet
			between++
			if got := servedCert(t, cfg, f); !got.Equal(old) {
				t.Errorf("between the key and the certificate, serving %v, want the old %v", got.SerialNumber, old.SerialNumber)
			}
		}
		return nil
	}
	if err := Reissue(f, []string{"lane-1.local"}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if between != 1 {
		t.Fatalf("the certificate was written %d times after the key, want 1", between)
	}
	want, err := ReadCert(f.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if got := servedCert(t, cfg, f); !got.Equal(want) {
		t.Fatalf("after the renewal, serving %v, want %v", got.SerialNumber, want.SerialNumber)
	}
	lines := logLines(log)
	if len(lines) != 1 || !strings.Contains(lines[0], "TLS certificate reloaded") {
		t.Errorf("logged %q, want one line, the reload", lines)
	}
}
