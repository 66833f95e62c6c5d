package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/internal/syncbuf"
	"github.com/greenlane-pos/greenlane/lanetls"
)

// TestServeCertificateDates: serve refuses a certificate no client would
// accept (expired, not yet valid), naming its date and how to renew, and
// warns at start about one that expires within 30 days, when tls renew
// would reissue it.
func TestServeCertificateDates(t *testing.T) {
	now := time.Now()
	day := 24 * time.Hour
	tests := []struct {
		name     string
		issued   time.Time // tls init's clock
		ownFiles bool      // --tls-cert/--tls-key rather than --tls
		wantErr  []string  // nil when serve must start
		wantWarn bool
	}{
		{name: "expired, --tls", issued: now.Add(-900 * day), wantErr: []string{"the certificate has expired: NotAfter ", "greenlane tls renew --db "}},
		{name: "expired, --tls-cert", issued: now.Add(-900 * day), ownFiles: true, wantErr: []string{"--tls-cert ", "the certificate has expired: NotAfter ", "tls renew"}},
		{name: "not yet valid", issued: now.Add(3 * day), wantErr: []string{"the certificate is not valid yet: NotBefore "}},
		{name: "expires within two weeks", issued: now.Add(-815 * day), wantWarn: true},
		{name: "expires within 30 days", issued: now.Add(-800 * day), wantWarn: true},
		{name: "expires in 34 days", issued: now.Add(-790 * day)},
		{name: "new", issued: now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := laneCopy(t)
			f := lanetls.FilesFor(db)
			if err := lanetls.Init(f, []string{"127.0.0.1"}, false, tt.issued); err != nil {
				t.Fatal(err)
			}
			args := []string{"--db=" + db, "--addr=127.0.0.1:0", "--tls"}
			if tt.ownFiles {
				args = []string{"--db=" + db, "--addr=127.0.0.1:0", "--tls-cert=" + f.Cert, "--tls-key=" + f.Key}
			}
			var log syncbuf.Buffer
			addr, stop, err := runServeUntilReady(t, args, &log)
			if tt.wantErr != nil {
				var ue usageError
				if err == nil {
					stop()
					t.Fatalf("serve started on %s; want a refusal", addr)
				}
				for _, w := range tt.wantErr {
					if !errors.As(err, &ue) || !strings.Contains(err.Error(), w) {
						t.Fatalf("serve: %v, want a usage error saying %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("serve: %v\n%s", err, log.String())
			}
			if err := stop(); err != nil {
				t.Errorf("serve ended with %v", err)
			}
			warned := strings.Contains(log.String(), "TLS certificate expires soon")
			if warned != tt.wantWarn {
				t.Errorf("warned %v, want %v:\n%s", warned, tt.wantWarn, log.String())
			}
		})
	}
}

// TestTLSInitRefusesBadNames: tls init issues nothing for a name that is
// neither a DNS name nor an IP address, and says which.
func TestTLSInitRefusesBadNames(t *testing.T) {
	tests := []struct {
		names string
		want  string // "" when accepted
	}{
		{"bad name!,300.1.1.1,*.*.x", `"bad name!"`},
		{"300.1.1.1", `"300.1.1.1"`},
		{"*.*.x", `"*.*.x"`},
		{"lane-1.local,192.168.1.20,[::1],*.store.example", ""},
	}
	for _, tt := range tests {
		t.Run(tt.names, func(t *testing.T) {
			db := t.TempDir() + "/lane.db"
			err := tlsInit([]string{"--db", db, "--names", tt.names}, io.Discard, io.Discard)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("tls init --names %s: %v, want a one-line usage error naming %s", tt.names, err, tt.want)
			}
			if _, err := os.Stat(lanetls.FilesFor(db).Cert); err == nil {
				t.Error("a certificate was written anyway")
			}
		})
	}
}

// TestTLSInitSaysTheServeThatWorks: the serve command tls init suggests
// next starts: with --create when the lane DB does not exist yet (any path
// but the default needs it), without it when the DB is there.
func TestTLSInitSaysTheServeThatWorks(t *testing.T) {
	for _, exists := range []bool{false, true} {
		t.Run(fmt.Sprintf("DB exists %v", exists), func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "lane.db")
			if exists {
				if err := dispatch([]string{"fixture", "load", "demo", "--db", db}, io.Discard, io.Discard); err != nil {
					t.Fatal(err)
				}
			}
			var stderr bytes.Buffer
			if err := dispatch([]string{"tls", "init", "--db", db, "--names", "localhost"}, io.Discard, &stderr); err != nil {
				t.Fatal(err)
			}
			want := "Next: greenlane serve --db " + db + " --tls"
			if !exists {
				want += " --create"
			}
			if !strings.Contains(stderr.String(), want+",") {
				t.Errorf("tls init printed %q, want %q", stderr.String(), want)
			}
		})
	}
}

// TestTLSFilesTakeTheDBOwner: tls init and renew run as root for a lane DB
// the service's account owns write files that account owns, modes kept,
// and say so; for a DB root owns, or none yet, the files stay root's.
func TestTLSFilesTakeTheDBOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving files to another account needs root")
	}
	acct, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no account nobody on this machine")
	}
	tests := []struct {
		name      string
		dbOwner   *user.User // nil: no DB
		wantOwner string     // uid the files get
		wantSay   bool       // the command says whose they are
	}{
		{name: "DB of the service's account", dbOwner: acct, wantOwner: acct.Uid, wantSay: true},
		{name: "DB of root", dbOwner: &user.User{Uid: "0", Gid: "0"}, wantOwner: "0"},
		{name: "no DB yet", wantOwner: "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "lane.db")
			if tt.dbOwner != nil {
				db, _ = laneCopy(t)
				u, _ := strconv.Atoi(tt.dbOwner.Uid)
				g, _ := strconv.Atoi(tt.dbOwner.Gid)
				if err := os.Chown(db, u, g); err != nil {
					t.Fatal(err)
				}
			}
			f := lanetls.FilesFor(db)
			for _, cmd := range [][]string{
				{"tls", "init", "--db", db, "--names", "localhost"},
				{"tls", "renew", "--db", db, "--force"},
				{"tls", "renew", "--db", db, "--names", "localhost,127.0.0.1"},
			} {
				var stdout bytes.Buffer
				if err := dispatch(cmd, &stdout, io.Discard); err != nil {
					t.Fatalf("%s: %v", strings.Join(cmd, " "), err)
				}
				said := strings.Contains(stdout.String(), "owned by "+acct.Username+", the lane DB's owner")
				if said != tt.wantSay {
					t.Errorf("%s printed %q; want it to say whose the files are: %v", strings.Join(cmd, " "), stdout.String(), tt.wantSay)
				}
				for path, mode := range map[string]os.FileMode{f.CA: 0o644, f.CAKey: 0o600, f.Cert: 0o644, f.Key: 0o600} {
					st, err := os.Stat(path)
					if err != nil {
						t.Fatal(err)
					}
					u, g, _ := ownerOf(st)
					wantGid := "0"
					if tt.wantOwner == acct.Uid {
						wantGid = acct.Gid
					}
					if strconv.Itoa(u) != tt.wantOwner || strconv.Itoa(g) != wantGid || st.Mode().Perm() != mode {
						t.Errorf("after %s: %s is %d:%d %v, want %s:%s %v", strings.Join(cmd, " "), filepath.Base(path), u, g, st.Mode().Perm(), tt.wantOwner, wantGid, mode)
					}
				}
			}
		})
	}
}

// scrapeCertExpiry reads greenlane_tls_cert_expiry_timestamp_seconds from
// the TLS lane at addr, trusting the lane's CA as a tablet does.
func scrapeCertExpiry(t *testing.T, addr string, f lanetls.Files) int64 {
	t.Helper()
	ca, err := lanetls.ReadCert(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, DisableKeepAlives: true}}
	resp, err := client.Get("https://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "greenlane_tls_cert_expiry_timestamp_seconds "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			return int64(f)
		}
	}
	t.Fatalf("no greenlane_tls_cert_expiry_timestamp_seconds in /metrics:\n%s", body)
	return 0
}

// TestRunningLaneWatchesItsCertificate: a lane running for months warns
// once a day while its certificate is within 30 days of expiry, and logs
// an error once it has expired; /metrics gives the expiry of the
// certificate it serves, a renewed one's once it is taken.
func TestRunningLaneWatchesItsCertificate(t *testing.T) {
	ticks := make(chan time.Time)
	old := certTicks
	certTicks = func() (<-chan time.Time, func()) { return ticks, func() {} }
	t.Cleanup(func() { certTicks = old })
	day := 24 * time.Hour
	db, _ := laneCopy(t)
	f := lanetls.FilesFor(db)
	// Issued 100 days ago: a renewed certificate expires 100 days later.
	if err := lanetls.Init(f, []string{"127.0.0.1"}, false, time.Now().Add(-100*day)); err != nil {
		t.Fatal(err)
	}
	c, err := lanetls.ReadCert(f.Cert)
	if err != nil {
		t.Fatal(err)
	}
	var log syncbuf.Buffer
	addr, stop, err := runServeUntilReady(t, []string{"--db=" + db, "--addr=127.0.0.1:0", "--tls"}, &log)
	if err != nil {
		t.Fatalf("serve: %v\n%s", err, log.String())
	}
	// A tick is taken only once the one before it was handled: after the
	// quiet tick that follows each case, its lines are all in the log.
	quiet := c.NotAfter.Add(-60 * day)
	tests := []struct {
		name string
		at   time.Time
		want []string // what the one line logged says; nil: no line
	}{
		{name: "two months left", at: quiet},
		{name: "31 days left", at: c.NotAfter.Add(-31 * day)},
		{name: "29 days left", at: c.NotAfter.Add(-29 * day), want: []string{"level=WARN", "TLS certificate expires soon", "cert=" + f.Cert, "days_left=29", "greenlane tls renew --db " + db}},
		{name: "a day left", at: c.NotAfter.Add(-day), want: []string{"level=WARN", "days_left=1"}},
		{name: "expired", at: c.NotAfter.Add(day), want: []string{"level=ERROR", "the certificate has expired", "greenlane tls renew --db " + db}},
	}
	watched := true
	for _, tt := range tests {
		if !watched {
			break
		}
		t.Run(tt.name, func(t *testing.T) {
			before := len(log.String())
			for _, at := range []time.Time{tt.at, quiet} {
				select {
				case ticks <- at:
				case <-time.After(30 * time.Second):
					watched = false
					t.Fatal("the lane took no tick in 30s: nothing watches its certificate")
				}
			}
			lines := strings.FieldsFunc(log.String()[before:], func(r rune) bool { return r == '\n' })
			if tt.want == nil {
				if len(lines) != 0 {
					t.Fatalf("logged %q, want nothing", lines)
				}
				return
			}
			if len(lines) != 1 {
				t.Fatalf("logged %q, want one line", lines)
			}
			for _, w := range tt.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("logged %q, want it to say %q", lines[0], w)
				}
			}
		})
	}
	if got := scrapeCertExpiry(t, addr, f); got != c.NotAfter.Unix() {
		t.Errorf("expiry gauge %d, want %d", got, c.NotAfter.Unix())
	}
	if err := dispatch([]string{"tls", "renew", "--db", db, "--force"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	renewed, err := lanetls.ReadCert(f.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if got := scrapeCertExpiry(t, addr, f); got != renewed.NotAfter.Unix() {
		t.Errorf("expiry gauge after renew %d, want the renewed certificate's %d", got, renewed.NotAfter.Unix())
	}
	if err := stop(); err != nil {
		t.Errorf("serve ended with %v", err)
	}
}

// TestServeUnreadableTLSFiles: a TLS file serve cannot read is a runtime
// failure (exit status 1, not the usage error's 2), named in the message;
// files that read but are not a pair stay a usage error.
func TestServeUnreadableTLSFiles(t *testing.T) {
	unreadable := func(t *testing.T, path string) {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	noPermission := func(t *testing.T, path string) {
		if os.Geteuid() == 0 {
			t.Skip("root reads a file whatever its mode")
		}
		if err := os.Chmod(path, 0); err != nil {
			t.Fatal(err)
		}
	}
	notThePair := func(t *testing.T, path string) {
		other := lanetls.FilesFor(filepath.Join(t.TempDir(), "other.db"))
		if err := lanetls.Init(other, []string{"127.0.0.1"}, false, time.Now()); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(other.Key)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		ownFiles  bool // --tls-cert/--tls-key rather than --tls
		cert      bool // the certificate is spoiled, not the key
		spoil     func(t *testing.T, path string)
		wantUsage bool
		want      string
	}{
		{name: "--tls, key a folder", spoil: unreadable, want: "is a directory"},
		{name: "--tls, key without permission", spoil: noPermission, want: "permission denied"},
		{name: "--tls-key a folder", ownFiles: true, spoil: unreadable, want: "is a directory"},
		{name: "--tls-cert a folder", ownFiles: true, cert: true, spoil: unreadable, want: "is a directory"},
		{name: "--tls-key without permission", ownFiles: true, spoil: noPermission, want: "permission denied"},
		{name: "--tls, key of another certificate", spoil: notThePair, wantUsage: true, want: "private key does not match public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := laneCopy(t)
			f := lanetls.FilesFor(db)
			if err := lanetls.Init(f, []string{"127.0.0.1"}, false, time.Now()); err != nil {
				t.Fatal(err)
			}
			spoilt := f.Key
			if tt.cert {
				spoilt = f.Cert
			}
			tt.spoil(t, spoilt)
			args := []string{"--db=" + db, "--addr=127.0.0.1:0", "--tls"}
			if tt.ownFiles {
				args = []string{"--db=" + db, "--addr=127.0.0.1:0", "--tls-cert=" + f.Cert, "--tls-key=" + f.Key}
			}
			_, stop, err := runServeUntilReady(t, args, io.Discard)
			if err == nil {
				stop()
				t.Fatal("serve started")
			}
			var ue usageError
			if errors.As(err, &ue) != tt.wantUsage {
				t.Errorf("serve: %v; a usage error (exit status 2): %v, want %v", err, errors.As(err, &ue), tt.wantUsage)
			}
			if !strings.Contains(err.Error(), spoilt) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("serve: %v, want one line naming %s and saying %q", err, spoilt, tt.want)
			}
		})
	}
}
