package transcript

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/greenlane-pos/greenlane/fd1client"
)

// SocketURL turns what a person gives as the server (ws://HOST:PORT,
// host:port, http://…, or a full socket URL) into the socket URL without
// its query. The lane's socket path is added when the URL has no path.
func SocketURL(server string) (string, error) {
	if !strings.Contains(server, "://") {
		server = "ws://" + server
	}
	u, err := url.Parse(server)
	if err != nil {
		return "", fmt.Errorf("server URL %q: %w", server, err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("server URL %q: want ws://HOST:PORT", server)
	}
	if u.Host == "" {
		return "", fmt.Errorf("server URL %q: no host", server)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/fd1/open_websocket"
	}
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

// WebSocketDialer dials base+urlQuery through fd1client; its Conn is the
// transcript's Conn as it is (raw frames in and out).
func WebSocketDialer(base string, o fd1client.Options) Dialer {
	return func(ctx context.Context, urlQuery string) (Conn, error) {
		return fd1client.Dial(ctx, base+urlQuery, o)
	}
}
