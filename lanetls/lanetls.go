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
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	// WarnWithin is how close to expiry serve warns at start: two weeks
	// leave time to renew before tablets refuse the lane.
	WarnWithin = 14 * 24 * time.Hour
	// backdate covers tablets whose clocks run a little behind the lane's.
	backdate = time.Hour
)

// Files are the PEM files of one lane, named after its DB.
type Files struct {
	CA, CAKey, Cert, Key string
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
	if err := writePEM(f.CAKey, "PRIVATE KEY", keyDER, 0o600); err != nil {
		return err
	}
	if err := writePEM(f.CA, "CERTIFICATE", der, 0o644); err != nil {
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
	serial, err := newSerial()
	if err != nil {
		return err
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
		return fmt.Errorf("the CA expires %s, before a new server certificate would; run tls init --force and reinstall the CA on the tablets", ca.NotAfter.Format(time.DateOnly))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("sign the server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode the server key: %w", err)
	}
	if err := writePEM(f.Key, "PRIVATE KEY", keyDER, 0o600); err != nil {
		return err
	}
	return writePEM(f.Cert, "CERTIFICATE", der, 0o644)
}

func loadCA(f Files) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	ca, err := readCert(f.CA)
	if err != nil {
		return nil, nil, err
	}
	b, err := os.ReadFile(f.CAKey)
	if err != nil {
		return nil, nil, fmt.Errorf("read the CA key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, nil, fmt.Errorf("%s: no PEM block", f.CAKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", f.CAKey, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("%s: not an ECDSA key", f.CAKey)
	}
	return ca, ek, nil
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

// ServerConfig loads a certificate and key into a server TLS config: TLS
// 1.2 at least, Go's own cipher suite choice. The files are looked at again
// on each handshake and reloaded once both have changed, so a certificate
// renewed while the lane runs is served without a restart; a pair that
// does not load (half written, mismatched) keeps the last good one.
func ServerConfig(certFile, keyFile string) (*tls.Config, error) {
	r := &reloader{certFile: certFile, keyFile: keyFile}
	if err := r.load(); err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.get}, nil
}

// reloader holds the certificate last loaded and the files' times then.
type reloader struct {
	certFile, keyFile string
	mu                sync.Mutex
	pair              *tls.Certificate
	certMod, keyMod   time.Time
}

func (r *reloader) load() error {
	// One error, on one line: the first file that cannot be read.
	cs, err := os.Stat(r.certFile)
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	ks, err := os.Stat(r.keyFile)
	if err != nil {
		return fmt.Errorf("TLS key: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	r.pair, r.certMod, r.keyMod = &pair, cs.ModTime(), ks.ModTime()
	return nil
}

func (r *reloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs, err1 := os.Stat(r.certFile)
	ks, err2 := os.Stat(r.keyFile)
	if err1 == nil && err2 == nil && !cs.ModTime().Equal(r.certMod) && !ks.ModTime().Equal(r.keyMod) {
		_ = r.load() // on failure the last good pair stays
	}
	return r.pair, nil
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	return n, nil
}

// writePEM writes one PEM block through a temporary file and a rename, so
// a crash leaves the old file or the new one, with mode set before any
// secret is written.
func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
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
