package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// runClient sends FD1 packets to a lane and prints every packet it gets
// back, one JSON object per line. Packets come from the arguments, or from
// standard input one per line. A packet may be JSON or just an endpoint
// name ("products.get_products_list"). It logs in first when it has a key.
func runClient(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("client", "client [flags] [PACKET…]", stderr)
	url := fs.String("url", "ws://127.0.0.1:3490/fd1/open_websocket", "lane socket URL (add ?purpose=presell for a presell socket)")
	key := fs.String("key", "", "API key to log in with (default: the contents of --key-file)")
	keyFile := fs.String("key-file", defaultDB+".apikey", "file holding the API key, used when --key is not given")
	purpose := fs.String("purpose", "", "login purpose: customerdisplay or debugscope")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for each reply")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *key == "" {
		if b, err := os.ReadFile(*keyFile); err == nil {
			*key = strings.TrimSpace(string(b))
		}
	}
	dialer := websocket.Dialer{HandshakeTimeout: *wait}
	ws, resp, err := dialer.Dial(*url, nil)
	if err != nil {
		return dialError(*url, resp, err)
	}
	defer ws.Close()
	c := &fd1Client{ws: ws, out: stdout, wait: *wait, replies: make(chan map[string]json.RawMessage, 16)}
	go c.readLoop()

	if *key != "" {
		v := map[string]any{"apikey": *key}
		if *purpose != "" {
			v["purpose"] = *purpose
		}
		if err := c.login(v); err != nil {
			return err
		}
	}
	if fs.NArg() > 0 {
		for _, p := range fs.Args() {
			if err := c.send(p); err != nil {
				return err
			}
		}
		return nil
	}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			if err := c.send(line); err != nil {
				fmt.Fprintln(stderr, "greenlane client:", err)
			}
		}
	}
	return sc.Err()
}

func dialError(url string, resp *http.Response, err error) error {
	if resp != nil {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("connect %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return fmt.Errorf("connect %s: %w (is 'greenlane serve' running?)", url, err)
}

type fd1Client struct {
	ws      *websocket.Conn
	out     io.Writer
	wait    time.Duration
	next    int
	replies chan map[string]json.RawMessage
}

// readLoop prints every packet and hands replies to whoever waits for them.
func (c *fd1Client) readLoop() {
	defer close(c.replies)
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		fmt.Fprintln(c.out, strings.TrimSpace(string(msg)))
		var pkt map[string]json.RawMessage
		if json.Unmarshal(msg, &pkt) == nil {
			if _, isReply := pkt["r"]; isReply {
				c.replies <- pkt
			}
		}
	}
}

// send parses one packet (JSON or a bare endpoint name) and waits for its
// reply. JSON is sent as typed, so the order of keys (which qo keeps) stands.
func (c *fd1Client) send(text string) error {
	if !strings.HasPrefix(text, "{") {
		b, _ := json.Marshal(map[string]string{"a": text})
		text = string(b)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &fields); err != nil {
		return fmt.Errorf("not a JSON packet: %v", err)
	}
	rq, ok := fields["rq"]
	if !ok {
		c.next++
		rq, _ = json.Marshal("c" + strconv.Itoa(c.next))
		sep := ","
		if len(fields) == 0 {
			sep = ""
		}
		text = `{"rq":` + string(rq) + sep + strings.TrimPrefix(strings.TrimSpace(text), "{")
	}
	var a string
	_ = json.Unmarshal(fields["a"], &a)
	return c.roundTrip(a, rq, []byte(text))
}

// login sends fd1.session.login.
func (c *fd1Client) login(v map[string]any) error {
	b, _ := json.Marshal(map[string]any{"a": "fd1.session.login", "rq": "login", "v": v})
	return c.roundTrip("fd1.session.login", json.RawMessage(`"login"`), b)
}

// roundTrip writes a packet and waits for the reply whose rp is rq.
func (c *fd1Client) roundTrip(a string, rq json.RawMessage, packet []byte) error {
	if err := c.ws.WriteMessage(websocket.TextMessage, packet); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if a == "fd1.session.ignore" || a == "session.ignore" {
		return nil
	}
	timeout := time.After(c.wait)
	for {
		select {
		case r, ok := <-c.replies:
			if !ok {
				return errors.New("the lane closed the socket")
			}
			if bytes.Equal(compact(r["rp"]), compact(rq)) {
				if e, ok := r["error"]; ok && a == "fd1.session.login" {
					return fmt.Errorf("login failed: %s", e)
				}
				return nil
			}
		case <-timeout:
			return fmt.Errorf("no reply to rq %s within %s", rq, c.wait)
		}
	}
}

func compact(raw json.RawMessage) []byte {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return raw
	}
	return buf.Bytes()
}
