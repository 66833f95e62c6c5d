package transcript

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/gorilla/websocket"
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

// WebSocketDialer dials base+urlQuery with gorilla/websocket.
func WebSocketDialer(base string, d *websocket.Dialer) Dialer {
	if d == nil {
		d = websocket.DefaultDialer
	}
	return func(ctx context.Context, urlQuery string) (Conn, error) {
		ws, resp, err := d.DialContext(ctx, base+urlQuery, nil)
		if err != nil {
			return nil, DialError(base+urlQuery, resp, err)
		}
		return &wsConn{ws: ws}, nil
	}
}

// DialError says why a socket could not be opened, with the server's
// answer when it gave one (a refused purpose, a wrong path).
func DialError(url string, resp *http.Response, err error) error {
	if resp != nil {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("connect %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return fmt.Errorf("connect %s: %w (is 'greenlane serve' running?)", url, err)
}

type wsConn struct {
	ws *websocket.Conn
	mu sync.Mutex // gorilla allows one writer at a time
}

func (c *wsConn) Send(p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ws.WriteMessage(websocket.TextMessage, p)
}

func (c *wsConn) Recv() ([]byte, error) {
	_, msg, err := c.ws.ReadMessage()
	return msg, err
}

func (c *wsConn) Close() error { return c.ws.Close() }
