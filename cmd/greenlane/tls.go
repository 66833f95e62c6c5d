package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/lanetls"
	"github.com/greenlane-pos/greenlane/web"
)

func runTLS(args []string, stdout, stderr io.Writer) error {
	return runSubcommand("tls", []subcommand{
		{"init", "init [--db PATH] [--names NAME,IP,…] [--force]", tlsInit},
		{"ca", "ca [--db PATH] [--url URL]", tlsCA},
		{"renew", "renew [--db PATH] [--force] [--names NAME,IP,…]", tlsRenew},
	}, "Files live next to the lane DB: <db>.ca.pem, <db>.ca-key.pem, <db>.cert.pem, <db>.key.pem.", args, stdout, stderr)
}

func tlsInit(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tls init", "tls init [--db PATH] [--names NAME,IP,…] [--force]", stderr)
	dbPath := fs.String("db", defaultDB, "lane DB file; the certificates are written next to it")
	var names listFlag
	fs.Var(&names, "names", "DNS names and IP addresses tablets use to reach the lane, comma-separated (default: host name, localhost, 127.0.0.1 and this machine's addresses)")
	force := fs.Bool("force", false, "replace an existing CA (every tablet must then install the new one)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("tls init takes no arguments, got %q", fs.Args())
	}
	if len(names) == 0 {
		names = lanetls.DefaultNames()
	}
	f, owner, err := tlsFiles(*dbPath)
	if err != nil {
		return fmt.Errorf("tls init: %w", err)
	}
	if err := lanetls.Init(f, names, *force, time.Now()); err != nil {
		if errors.Is(err, lanetls.ErrExists) || errors.Is(err, lanetls.ErrBadName) {
			return usagef("tls init: %v", err)
		}
		return fmt.Errorf("tls init: %w", err)
	}
	c, err := lanetls.ReadCert(f.Cert)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "CA:          %s (key %s, keep private)\ncertificate: %s (key %s) for %s, valid until %s\n",
		f.CA, f.CAKey, f.Cert, f.Key, strings.Join(certNames(c.DNSNames, c.IPAddresses), ", "), c.NotAfter.Format(time.DateOnly))
	sayOwner(stdout, owner)
	// The certificates may come before the lane DB: then the serve that
	// works is the one that may create it.
	next := "--tls"
	if _, err := checkDBPath(*dbPath, false); err != nil {
		next += " --create"
	}
	fmt.Fprintf(stderr, "Next: greenlane serve --db %s %s, then greenlane tls ca --db %s to install the CA on the tablets.\n", *dbPath, next, *dbPath)
	return nil
}

func certNames(dns []string, ips []net.IP) []string {
	out := append([]string(nil), dns...)
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

// tlsCA prints the CA on stdout (to copy or pipe), and on stderr a QR of
// where the lane serves it with how to install it on a tablet.
func tlsCA(args []string, stdout, stderr io.Writer) error {
	fl := newFlags("tls ca", "tls ca [--db PATH] [--url URL]", stderr)
	dbPath := fl.String("db", defaultDB, "lane DB file the CA was made for")
	url := fl.String("url", "", "where tablets download the CA (default https://NAME:3490/ca.pem with the certificate's first LAN address or name)")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return usagef("tls ca takes no arguments, got %q", fl.Args())
	}
	f := lanetls.FilesFor(*dbPath)
	pemBytes, err := os.ReadFile(f.CA)
	if errors.Is(err, fs.ErrNotExist) {
		return usagef("no CA at %s; run greenlane tls init --db %s first", f.CA, *dbPath)
	}
	if err != nil {
		return fmt.Errorf("read the CA: %w", err)
	}
	ca, err := lanetls.ReadCert(f.CA)
	if err != nil {
		return err
	}
	if *url == "" {
		host := "localhost"
		if c, err := lanetls.ReadCert(f.Cert); err == nil {
			host = lanHost(c.DNSNames, c.IPAddresses)
		}
		*url = "https://" + net.JoinHostPort(host, "3490") + "/ca.pem"
	}
	if _, err := stdout.Write(pemBytes); err != nil {
		return err
	}
	code, err := web.QRTerminal(*url)
	if err != nil {
		return fmt.Errorf("CA QR: %w", err)
	}
	sum := sha256.Sum256(ca.Raw)
	fmt.Fprintf(stderr, "%s\nScan this with the tablet's camera to download the CA from %s (the lane must be running with serve --tls; the browser warns once, since it does not trust the lane yet).\n"+
		"SHA-256 fingerprint: %s\n"+
		"iPadOS: open the link in Safari and allow the download; then Settings > General > VPN & Device Management, tap the greenlane profile and Install; then Settings > General > About > Certificate Trust Settings and turn on full trust for it. "+
		"Android: open the link in Chrome (or copy the file over), then Settings > Security > Encryption & credentials > Install a certificate > CA certificate and pick the file (menu names differ a little between makers). "+
		"Check the fingerprint the device shows against the one above before trusting it.\n",
		code, *url, fingerprint(sum[:]))
	return nil
}

// lanHost picks the name a tablet most likely reaches the lane under: a
// non-loopback address, else a name other than localhost.
func lanHost(dns []string, ips []net.IP) string {
	for _, ip := range ips {
		if !ip.IsLoopback() && ip.To4() != nil {
			return ip.String()
		}
	}
	for _, n := range dns {
		if n != "localhost" {
			return n
		}
	}
	return "localhost"
}

func fingerprint(b []byte) string {
	h := strings.ToUpper(hex.EncodeToString(b))
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func tlsRenew(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tls renew", "tls renew [--db PATH] [--force] [--names NAME,IP,…]", stderr)
	dbPath := fs.String("db", defaultDB, "lane DB file the certificates were made for")
	force := fs.Bool("force", false, "reissue now, not only within "+strconv.Itoa(int(lanetls.RenewWithin/(24*time.Hour)))+" days of expiry")
	var names listFlag
	fs.Var(&names, "names", "reissue now for these DNS names and IP addresses, comma-separated, with the same CA (default: the certificate's own names)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("tls renew takes no arguments, got %q", fs.Args())
	}
	f, owner, err := tlsFiles(*dbPath)
	if err != nil {
		return fmt.Errorf("tls renew: %w", err)
	}
	if len(names) > 0 {
		// New names are wanted now, whatever the expiry: the lane is
		// reached under a name its certificate lacks.
		if err := lanetls.Reissue(f, names, time.Now()); err != nil {
			if errors.Is(err, lanetls.ErrBadName) {
				return usagef("tls renew: %v", err)
			}
			return fmt.Errorf("tls renew (run greenlane tls init --db %s first if there is no CA): %w", *dbPath, err)
		}
		c, err := lanetls.ReadCert(f.Cert)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "renewed for %s: valid until %s; a running serve --tls picks it up on its next connection (tablets keep trusting the same CA)\n",
			strings.Join(certNames(c.DNSNames, c.IPAddresses), ", "), c.NotAfter.Format(time.DateOnly))
		sayOwner(stdout, owner)
		return nil
	}
	renewed, until, err := lanetls.Renew(f, *force, time.Now())
	if err != nil {
		return fmt.Errorf("tls renew (run greenlane tls init --db %s first if there is no CA): %w", *dbPath, err)
	}
	if !renewed {
		fmt.Fprintf(stdout, "not renewed: the certificate is valid until %s (renew reissues within %d days of expiry; --force reissues now)\n", until.Format(time.DateOnly), int(lanetls.RenewWithin/(24*time.Hour)))
		return nil
	}
	fmt.Fprintf(stdout, "renewed: valid until %s; a running serve --tls picks it up on its next connection (tablets keep trusting the same CA)\n", until.Format(time.DateOnly))
	sayOwner(stdout, owner)
	return nil
}

// tlsFiles are the TLS files next to the lane DB at db. Run as root (sudo)
// for a DB another account owns, the service's, they are written as that
// account's, as restore leaves the DB it puts in place: a key only root can
// read keeps a running lane on its old certificate and stops it at its
// next start. owner names that account, or is "" when the files stay the
// runner's (not root, a DB root owns, or no DB yet).
func tlsFiles(db string) (f lanetls.Files, owner string, err error) {
	f = lanetls.FilesFor(db)
	if os.Geteuid() != 0 {
		return f, "", nil
	}
	st, err := os.Stat(db)
	if errors.Is(err, fs.ErrNotExist) {
		return f, "", nil // certificates made before the DB
	}
	if err != nil {
		return f, "", fmt.Errorf("owner of the lane DB: %w", err)
	}
	uid, gid, ok := ownerOf(st)
	if !ok || uid == 0 {
		return f, "", nil
	}
	owner = strconv.Itoa(uid)
	if u, err := user.LookupId(owner); err == nil {
		owner = u.Username
	}
	f.Own = func(path string) error { return giveTo(owner, uid, gid, path) }
	return f, owner, nil
}

// sayOwner says whose the files written are, when not the runner's.
func sayOwner(stdout io.Writer, owner string) {
	if owner != "" {
		fmt.Fprintf(stdout, "the files written are owned by %s, the lane DB's owner, so that the lane can read them\n", owner)
	}
}

// servedTLS is what serve keeps of its TLS setup besides the config.
type servedTLS struct {
	certs  *lanetls.Reloader
	cert   string // the certificate file, for the log
	renew  string // how to get a new certificate, for the log
	caFile string // the CA served at /ca.pem, or "" for none
}

// serveTLS is serve's TLS setup from its flags: nil without TLS flags. A
// certificate outside its dates at now is refused (every client would fail
// the handshake), one that expires within lanetls.WarnWithin is logged as a
// warning.
func serveTLS(st *serveSettings, now time.Time, log *slog.Logger) (*tls.Config, *servedTLS, error) {
	switch {
	case st.useTLS && lanedb.IsPostgresURL(st.dbPath):
		return nil, nil, usagef("--tls uses the files tls init made next to an SQLite lane DB file; on a PostgreSQL store database give each instance --tls-cert and --tls-key")
	case st.useTLS && (st.tlsCert != "" || st.tlsKey != ""):
		return nil, nil, usagef("--tls uses the files tls init made next to --db; give it, or --tls-cert and --tls-key, not both")
	case st.tlsCert != "" && st.tlsKey == "":
		return nil, nil, usagef("--tls-cert %s needs --tls-key", st.tlsCert)
	case st.tlsKey != "" && st.tlsCert == "":
		return nil, nil, usagef("--tls-key %s needs --tls-cert", st.tlsKey)
	case st.tlsCert != "":
		// Each missing file is named once, by its flag: the loader's own
		// error lists both stats on two lines.
		for _, f := range [][2]string{{"--tls-cert", st.tlsCert}, {"--tls-key", st.tlsKey}} {
			if _, err := os.Stat(f[1]); errors.Is(err, fs.ErrNotExist) {
				return nil, nil, usagef("%s %s: no such file", f[0], f[1])
			} else if err != nil {
				return nil, nil, tlsFilesError(f[0], err)
			}
		}
		r, err := lanetls.NewReloader(st.tlsCert, st.tlsKey, log)
		if err != nil {
			return nil, nil, tlsFilesError("--tls-cert/--tls-key", err)
		}
		s := &servedTLS{certs: r, cert: st.tlsCert,
			renew: "renew it where it was issued (a certificate from greenlane tls init: greenlane tls renew --db <that DB>; README, TLS)"}
		if err := s.checkDates("--tls-cert "+st.tlsCert, now, log); err != nil {
			return nil, nil, err
		}
		return r.Config(), s, nil
	case !st.useTLS:
		return nil, nil, nil
	}
	f := lanetls.FilesFor(st.dbPath)
	for _, p := range []string{f.Cert, f.Key} {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, usagef("--tls: no certificate at %s; run greenlane tls init --db %s first", p, st.dbPath)
		}
	}
	r, err := lanetls.NewReloader(f.Cert, f.Key, log)
	if err != nil {
		return nil, nil, tlsFilesError("--tls", err)
	}
	s := &servedTLS{certs: r, cert: f.Cert, renew: "run greenlane tls renew --db " + st.dbPath + " (README, TLS)"}
	if err := s.checkDates("--tls: "+f.Cert, now, log); err != nil {
		return nil, nil, err
	}
	// A certificate put there by hand comes with no CA to hand out.
	if _, err := os.Stat(f.CA); err == nil {
		s.caFile = f.CA
	}
	return r.Config(), s, nil
}

// tlsFilesError is err, from looking at the TLS files flag names: a file
// that cannot be read (its permissions, a folder, the disk) is a runtime
// failure, exit status 1, as any file serve cannot open; files that read
// but do not make a pair are the wrong files named, a usage error.
func tlsFilesError(flag string, err error) error {
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return fmt.Errorf("%s: %w", flag, err)
	}
	return usagef("%s: %v", flag, err)
}

// checkDates refuses the certificate when it is not valid at now, and
// warns when it expires within lanetls.WarnWithin; what says the flag and
// file.
func (s *servedTLS) checkDates(what string, now time.Time, log *slog.Logger) error {
	if _, err := lanetls.CheckDates(s.certs.Leaf(), now); err != nil {
		return usagef("%s: %v; %s", what, err, s.renew)
	}
	s.warnExpiry(now, log)
	return nil
}

// warnExpiry logs a warning when the certificate served expires within
// lanetls.WarnWithin, and an error when it is not valid at now: tablets
// refuse the lane then.
func (s *servedTLS) warnExpiry(now time.Time, log *slog.Logger) {
	c := s.certs.Leaf()
	soon, err := lanetls.CheckDates(c, now)
	switch {
	case err != nil:
		log.Error("TLS certificate not valid: tablets refuse the lane", "cert", s.cert, "err", err, "renew", s.renew)
	case soon:
		log.Warn("TLS certificate expires soon; tablets will refuse the lane after that", "cert", s.cert,
			"not_after", c.NotAfter.UTC().Format(time.RFC3339), "days_left", int(c.NotAfter.Sub(now).Hours()/24), "renew", s.renew)
	}
}

// certTicks are when a running lane looks at its certificate's expiry
// again: once a day. A variable so that tests tick at the times they
// choose.
var certTicks = func() (ticks <-chan time.Time, stop func()) {
	t := time.NewTicker(24 * time.Hour)
	return t.C, t.Stop
}

// watchExpiry warns of the served certificate's expiry at each of
// certTicks (a lane runs for months; a warning at its start alone is long
// gone from the log when the certificate runs out), until stop is called.
func (s *servedTLS) watchExpiry(log *slog.Logger) (stop func()) {
	ticks, stopTicks := certTicks()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-ticks:
				s.warnExpiry(now, log)
			}
		}
	}()
	return func() {
		cancel()
		stopTicks()
		<-done
	}
}

// certExpiryGauge is greenlane_tls_cert_expiry_timestamp_seconds, read at
// each scrape from the certificate the lane serves (a renewed one as soon
// as it is taken), so that monitoring can alert before tablets refuse it.
func certExpiryGauge(certs *lanetls.Reloader) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "greenlane_tls_cert_expiry_timestamp_seconds",
		Help: "When the TLS certificate the lane serves expires (its NotAfter), in seconds since the Unix epoch.",
	}, func() float64 { return float64(certs.Leaf().NotAfter.Unix()) })
}

// caHandler serves the store's CA certificate, read per request so that
// tls init --force takes effect without a restart. It is public: a CA
// certificate holds no secret.
func caHandler(path string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(path)
		if err != nil {
			http.Error(w, "CA certificate not readable\n", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Header().Set("Content-Disposition", `attachment; filename="greenlane-ca.pem"`)
		_, _ = w.Write(b)
	})
}
