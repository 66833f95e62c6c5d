package server

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// originPolicy is the lane's own browser origins: the port it is bound to
// and the hosts (names and addresses) under which it is reached there.
type originPolicy struct {
	port  string
	hosts map[string]bool // lower case; IPv6 without brackets
}

// ownOrigins works out the lane's own origins from the address it was
// asked to listen on (which may name a host) and the address it got. A
// lane bound to every interface (0.0.0.0, ::) is reached under each of the
// machine's interface addresses and its host name; a loopback lane also
// as localhost.
func ownOrigins(configured string, bound net.Addr, log *slog.Logger) *originPolicy {
	p := &originPolicy{hosts: map[string]bool{}}
	tcp, ok := bound.(*net.TCPAddr)
	if !ok {
		return p
	}
	p.port = strconv.Itoa(tcp.Port)
	if h, _, err := net.SplitHostPort(configured); err == nil && h != "" && net.ParseIP(h) == nil {
		p.hosts[strings.ToLower(h)] = true // --addr lane1.store:3490
	}
	add := func(ip net.IP) {
		p.hosts[ip.String()] = true
		if ip.IsLoopback() {
			p.hosts["localhost"] = true
		}
	}
	if !tcp.IP.IsUnspecified() {
		add(tcp.IP)
		return p
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		log.Warn("list interface addresses for the Origin check; only --allowed-origins and the host name apply", "err", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			add(n.IP)
		}
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		p.hosts[strings.ToLower(name)] = true
	}
	p.hosts["localhost"] = true // the loopback interface is one of them
	return p
}

// originAllowed reports whether a browser Origin may open a socket: one of
// the lane's own origins (own may be nil: none known), or one in allowed
// (scheme://host[:port], "*" for any).
func originAllowed(origin string, own *originPolicy, allowed []string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Path != "" || u.User != nil {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	if own != nil && (scheme == "http" || scheme == "https") {
		port := u.Port()
		if port == "" {
			port = defaultPorts[scheme]
		}
		if port == own.port && own.hosts[strings.ToLower(u.Hostname())] {
			return true
		}
	}
	canon, err := CanonicalOrigin(origin)
	for _, a := range allowed {
		if a == "*" {
			return true
		}
		if c, e := CanonicalOrigin(a); err == nil && e == nil && c == canon {
			return true
		}
	}
	return false
}

var defaultPorts = map[string]string{"http": "80", "https": "443"}

// CanonicalOrigin checks that s is a browser origin, http[s]://host[:port]
// with nothing after it but an optional "/", and returns it as browsers
// send it: scheme and host in lower case, a default port (80, 443) left
// out. "https://Lane4:443" and "https://lane4" are then the same origin,
// as they are to the browser.
func CanonicalOrigin(s string) (string, error) {
	u, err := url.Parse(strings.TrimSuffix(s, "/"))
	switch {
	case err != nil:
		return "", fmt.Errorf("%q is not a URL: %w", s, err)
	case u.Scheme != "http" && u.Scheme != "https": // url.Parse lower-cases the scheme
		return "", fmt.Errorf("%q: an origin starts with http:// or https://", s)
	case u.Host == "" || u.Opaque != "":
		return "", fmt.Errorf("%q names no host", s)
	case u.User != nil || u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", fmt.Errorf("%q: an origin is scheme://host[:port], with no user, path, query or fragment", s)
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if !originHost.MatchString(host) {
		return "", fmt.Errorf("%q: %q is not a host name or IP address", s, u.Hostname())
	}
	if strings.HasSuffix(u.Host, ":") || port != "" && !validPort(port) {
		return "", fmt.Errorf("%q: the port must be a number from 1 to 65535", s)
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port == "" || port == defaultPorts[scheme] {
		return scheme + "://" + host, nil
	}
	return scheme + "://" + host + ":" + port, nil
}

// originHost is a DNS name or an IP address (IPv6 without its brackets).
var originHost = regexp.MustCompile(`^[a-z0-9]([a-z0-9.\-]*[a-z0-9])?$|^[0-9a-f:.]+$`)

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}
