// Package lanetls is the lane's own TLS: a private CA for one store and a
// server certificate it signs for the lane's names and addresses, kept as
// PEM files next to the lane DB. Tablets trust the CA once; nothing on the
// internet is involved.
package lanetls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// CAValidity is how long the store's CA lasts: long enough that a
	// tablet set up once keeps trusting the lane for years.
	CAValidity = 10 * 365 * 24 * time.Hour
	// ServerValidity is the server certificate's lifetime, counted from
	// its NotBefore (an hour back, for clock skew): Apple devices refuse
	// server certificates valid for more than 825 days.
	ServerValidity = 824 * 24 * time.Hour
	// RenewWithin is how close to expiry Renew reissues without --force.
	RenewWithin = 30 * 24 * time.Hour
	// WarnWithin is how close to expiry serve warns, at start and once a
	// day while it runs: from when tls renew would reissue the certificate,
	// so that the warning and its remedy come together.
	WarnWithin = RenewWithin
	// backdate covers tablets whose clocks run a little behind the lane's.
	backdate = time.Hour
)

// Files are the PEM files of one lane, named after its DB.
type Files struct {
	CA, CAKey, Cert, Key string
	// Own, when not nil, is called on each file written while it still has
	// its temporary name, before it takes its place: a command run as root
	// gives the files the lane's own account there, so that a running lane
	// never finds in place a key it cannot read.
	Own func(path string) error
}

// FilesFor names the files next to the lane DB at db.
func FilesFor(db string) Files {
	return Files{CA: db + ".ca.pem", CAKey: db + ".ca-key.pem", Cert: db + ".cert.pem", Key: db + ".key.pem"}
}

// ErrExists is Init's refusal to replace a CA tablets may already trust.
var ErrExists = errors.New("a CA already exists")

// DefaultNames are the names a lane is reached under when none are asked
// for: the host name, localhost, 127.0.0.1 and the machine's
// non-loopback addresses.
func DefaultNames() []string {
	var names []string
	// A host name that is no DNS name (my_pc) is left out, not refused:
	// the other names still make a working certificate.
	if h, err := os.Hostname(); err == nil && h != "" && CheckName(h) == nil {
		names = append(names, strings.ToLower(h))
	}
	names = append(names, "localhost", "127.0.0.1")
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				names = append(names, n.IP.String())
			}
		}
	}
	return dedupe(names)
}

func dedupe(names []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" || seen[strings.ToLower(n)] {
			continue
		}
		seen[strings.ToLower(n)] = true
		out = append(out, n)
	}
	return out
}

// ErrBadName is Init's refusal of a name that is neither a DNS name nor an
// IP address: a certificate for it would match no address a tablet uses.
var ErrBadName = errors.New("not a DNS name or an IP address")

// CheckName accepts an IP address (IPv6 with or without brackets) or a DNS
// name: dot-separated labels of letters, digits and inner hyphens, 1 to 63
// characters each, 253 in all, the last not all digits (300.1.1.1 is a
// mistyped address, not a name). A wildcard is allowed as the whole first
// label only, over at least two more (*.store.example, not *.local nor
// *.*.x), as browsers match it.
func CheckName(name string) error {
	if why := nameFault(name); why != "" {
		return fmt.Errorf("%q: %w (%s)", name, ErrBadName, why)
	}
	return nil
}

// nameFault is why name is refused, or "".
func nameFault(name string) string {
	if net.ParseIP(strings.Trim(name, "[]")) != nil {
		return ""
	}
	if len(name) > 253 {
		return "longer than 253 characters"
	}
	labels := strings.Split(name, ".")
	if labels[0] == "*" {
		if len(labels) < 3 {
			return "a wildcard needs at least two labels after it, as in *.store.example"
		}
		labels = labels[1:]
	}
	for _, l := range labels {
		switch {
		case l == "":
			return "empty label"
		case strings.Contains(l, "*"):
			return "a wildcard may only be the whole first label"
		case len(l) > 63:
			return "a label is longer than 63 characters"
		case l[0] == '-' || l[len(l)-1] == '-':
			return "a label starts or ends with a hyphen"
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Sprintf("%q is not a letter, digit or hyphen", r)
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "it ends in a number: an IPv4 address has four numbers from 0 to 255"
	}
	return ""
}

// certNames is names without repeats, refused with every bad one on one
// line, or when there are none.
func certNames(names []string) ([]string, error) {
	names = dedupe(names)
	if len(names) == 0 {
		return nil, errors.New("no names for the server certificate")
	}
	var bad []string
	for _, n := range names {
		if why := nameFault(n); why != "" {
			bad = append(bad, fmt.Sprintf("%q (%s)", n, why))
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrBadName, strings.Join(bad, "; "))
	}
	return names, nil
}

// Init creates the CA and a server certificate for names. An existing CA
// is replaced only with force: tablets that trust it would stop trusting
// the lane.
func Init(f Files, names []string, force bool, now time.Time) error {
	names, err := certNames(names)
	if err != nil {
		return err
	}
	if !force {
		if _, err := os.Stat(f.CA); err == nil {
			return fmt.Errorf("%s: %w (tablets may trust it; replace it with --force, or reissue the server certificate with renew)", f.CA, ErrExists)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("look for the CA: %w", err)
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "greenlane lane CA " + host, Organization: []string{"greenlane store CA"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(-backdate).Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("sign the CA: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("read back the CA: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(caKey)
	if err != nil {
		return fmt.Errorf("encode the CA key: %w", err)
	}
	if err := f.writePEM(f.CAKey, "PRIVATE KEY", keyDER, 0o600); err != nil {
		return err
	}
	if err := f.writePEM(f.CA, "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	return issue(f, ca, caKey, names, now)
}

// Reissue signs a new server certificate for names with the existing CA:
// a lane reached under a name its certificate lacks gets one that holds it,
// and tablets keep trusting the same CA.
func Reissue(f Files, names []string, now time.Time) error {
	names, err := certNames(names)
	if err != nil {
		return err
	}
	ca, caKey, err := loadCA(f)
	if err != nil {
		return err
	}
	return issue(f, ca, caKey, names, now)
}

// Renew reissues the server certificate with the same CA and names when
// it expires within RenewWithin, or always with force. It reports whether
// it did, and the certificate's expiry either way.
func Renew(f Files, force bool, now time.Time) (bool, time.Time, error) {
	ca, caKey, err := loadCA(f)
	if err != nil {
		return false, time.Time{}, err
	}
	cur, err := readCert(f.Cert)
	if err != nil {
		return false, time.Time{}, err
	}
	if !force && cur.NotAfter.Sub(now) > RenewWithin {
		return false, cur.NotAfter, nil
	}
	var names []string
	names = append(names, cur.DNSNames...)
	for _, ip := range cur.IPAddresses {
		names = append(names, ip.String())
	}
	if err := issue(f, ca, caKey, names, now); err != nil {
		return false, time.Time{}, err
	}
	c, err := readCert(f.Cert)
	if err != nil {
		return false, time.Time{}, err
	}
	return true, c.NotAfter, nil
}

// issue signs a new server key's certificate for names (DNS names and IP
// addresses) and writes both.
func issue(f Files, ca *x509.Certificate, caKey *ecdsa.PrivateKey, names []string, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("server key: %w", err)
	}
	der, err := signServer(ca, caKey, &key.PublicKey, names, now)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode the server key: %w", err)
	}
	if err := f.writePEM(f.Key, "PRIVATE KEY", keyDER, 0o600); err != nil {
		return err
	}
	return f.writePEM(f.Cert, "CERTIFICATE", der, 0o644)
}

// signServer is the DER of a server certificate for pub and names, signed
// by the CA, valid ServerValidity from now less backdate.
func signServer(ca *x509.Certificate, caKey *ecdsa.PrivateKey, pub *ecdsa.PublicKey, names []string, now time.Time) ([]byte, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(-backdate).Add(ServerValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(strings.Trim(n, "[]")); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, strings.ToLower(n))
		}
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		return nil, fmt.Errorf("the CA expires %s, before a new server certificate would; run tls init --force and reinstall the CA on the tablets", ca.NotAfter.Format(time.DateOnly))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign the server certificate: %w", err)
	}
	return der, nil
}

func loadCA(f Files) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	ca, err := readCert(f.CA)
	if err != nil {
		return nil, nil, err
	}
	key, err := readKey(f.CAKey)
	if err != nil {
		return nil, nil, fmt.Errorf("read the CA key: %w", err)
	}
	return ca, key, nil
}

// readKey reads an ECDSA private key from a PKCS #8 PEM file, as Init
// writes them.
func readKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ECDSA key", path)
	}
	return ek, nil
}

// ErrExpired and ErrNotYetValid are CheckDates' refusals: every client
// would fail the handshake with such a certificate.
var (
	ErrExpired     = errors.New("the certificate has expired")
	ErrNotYetValid = errors.New("the certificate is not valid yet")
)

// CheckDates checks that c is valid at now. It reports whether it expires
// within WarnWithin, so that serve can warn in time.
func CheckDates(c *x509.Certificate, now time.Time) (expiresSoon bool, err error) {
	switch {
	case now.After(c.NotAfter):
		return false, fmt.Errorf("%w: NotAfter %s", ErrExpired, c.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.NotBefore):
		return false, fmt.Errorf("%w: NotBefore %s (check this machine's clock)", ErrNotYetValid, c.NotBefore.UTC().Format(time.RFC3339))
	}
	return c.NotAfter.Sub(now) < WarnWithin, nil
}

// ReadCert reads the first certificate of a PEM file.
func ReadCert(path string) (*x509.Certificate, error) { return readCert(path) }

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ServerConfig is the server TLS config of a Reloader over certFile and
// keyFile that logs to slog's default logger: TLS 1.2 at least, Go's own
// cipher suite choice.
func ServerConfig(certFile, keyFile string) (*tls.Config, error) {
	r, err := NewReloader(certFile, keyFile, slog.Default())
	if err != nil {
		return nil, err
	}
	return r.Config(), nil
}

// Reloader serves a certificate and key from their files and takes them
// again when either file changes while the lane runs, so that a renewed
// certificate is served without a restart, also when only the certificate
// was replaced and the key kept. A pair that does not load (mismatched,
// unreadable, half written) is logged once and the last good pair is kept:
// a lane serving a certificate a few days older beats one failing every
// handshake. For settle after it is first seen, such a pair is taken for
// one still being written and tried again at each handshake, unlogged.
type Reloader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time // the clock settle is measured on

	mu   sync.Mutex
	pair *tls.Certificate
	// seen is the files as last looked at, loaded or refused: a refused
	// pair is tried again, and logged again, only once a file changes.
	seen [2]fileStamp
	// failing is the files as they were when a pair first did not load,
	// and failingSince when: within settle of it the pair is tried again
	// at each handshake without a word.
	failing      [2]fileStamp
	failingSince time.Time
}

// NewReloader loads the certificate and key, refusing a pair that does not
// load; log gets the reloads.
func NewReloader(certFile, keyFile string, log *slog.Logger) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, log: log, now: time.Now}
	r.seen = r.stamps()
	pair, err := loadPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	r.pair = pair
	return r, nil
}

// Config is a server TLS config serving r's pair: TLS 1.2 at least, Go's
// own cipher suite choice.
func (r *Reloader) Config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return r.Certificate(), nil
	}}
}

// Certificate is the pair to serve now: the files' pair when either file
// changed since it was last looked at and the new pair loads, else the
// pair served until now. Each handshake asks, so a stat of two files is
// all it costs while nothing changes.
func (r *Reloader) Certificate() *tls.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.stamps()
	if now == r.seen {
		return r.pair
	}
	pair, err := loadPair(r.certFile, r.keyFile)
	if err != nil {
		if now != r.failing {
			r.failing, r.failingSince = now, r.now()
		}
		if r.now().Sub(r.failingSince) < settle {
			return r.pair
		}
	}
	changed := r.changed(now)
	r.seen = now
	if err != nil {
		r.log.Warn("TLS certificate files changed but do not load; still serving the previous certificate",
			"changed", changed, "err", err, "serving_not_after", notAfter(r.pair))
		return r.pair
	}
	r.pair = pair
	r.log.Info("TLS certificate reloaded", "cert", r.certFile, "not_after", notAfter(pair))
	return r.pair
}

// settle is how long after a change of either file a pair that does not
// load is taken for one still being written rather than a mistake: a
// renewal writes the key, then the certificate, and cp or an editor writes
// a file in pieces. One handshake in between would otherwise log a
// mismatch that was never there. Measured from when the reloader first saw
// the files so, not from their modification times, which cp -p and rsync
// keep from the source.
const settle = 2 * time.Second

// Leaf is the certificate Certificate serves now.
func (r *Reloader) Leaf() *x509.Certificate { return r.Certificate().Leaf }

func (r *Reloader) stamps() [2]fileStamp {
	return [2]fileStamp{stampOf(r.certFile), stampOf(r.keyFile)}
}

// changed names the files whose stamps differ between r.seen and now.
func (r *Reloader) changed(now [2]fileStamp) string {
	var names []string
	for i, path := range []string{r.certFile, r.keyFile} {
		if now[i] != r.seen[i] {
			names = append(names, path)
		}
	}
	return strings.Join(names, " ")
}

func notAfter(pair *tls.Certificate) string {
	return pair.Leaf.NotAfter.UTC().Format(time.RFC3339)
}

// fileStamp is what tells that a file changed: a new modification time or
// size, or a new inode (a file renamed into place within the clock's
// resolution), or a file that cannot be looked at, and why.
type fileStamp struct {
	mod, size int64
	ino       uint64
	err       string
}

func stampOf(path string) fileStamp {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{err: err.Error()}
	}
	s := fileStamp{mod: st.ModTime().UnixNano(), size: st.Size()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		s.ino = uint64(sys.Ino)
	}
	return s
}

// loadPair reads a certificate (chain) and its key, naming the file at
// fault: an unreadable or garbled certificate, an unreadable or garbled
// key, or a key that is not the certificate's.
func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read TLS certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read TLS key: %w", err)
	}
	if err := checkCertPEM(certPEM); err != nil {
		return nil, fmt.Errorf("TLS certificate %s: %w", certFile, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("TLS key %s with certificate %s: %w", keyFile, certFile, err)
	}
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("TLS certificate %s: %w", certFile, err)
		}
	}
	return &pair, nil
}

// checkCertPEM finds fault with the first certificate of a PEM file, so
// that a garbled certificate file is named as such rather than as a
// mismatch with its key.
func checkCertPEM(b []byte) error {
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return errors.New("no PEM certificate (empty or half written?)")
		}
		if blk.Type == "CERTIFICATE" {
			_, err := x509.ParseCertificate(blk.Bytes)
			return err
		}
	}
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	return n, nil
}

// writePEM writes one PEM block through a temporary file and a rename, so
// a crash leaves the old file or the new one, with mode and owner (f.Own)
// set before any secret is written.
func (f Files) writePEM(path, typ string, der []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if f.Own != nil {
		if err := f.Own(tmp.Name()); err != nil {
			tmp.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := pem.Encode(tmp, &pem.Block{Type: typ, Bytes: der}); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
