package server

import (
	"log/slog"
	"net"
	"net/url"
	"os"
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
			port = map[string]string{"http": "80", "https": "443"}[scheme]
		}
		if port == own.port && own.hosts[strings.ToLower(u.Hostname())] {
			return true
		}
	}
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(strings.TrimSuffix(a, "/"), origin) {
			return true
		}
	}
	return false
}
