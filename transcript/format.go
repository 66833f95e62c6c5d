package transcript

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// DefaultSocket is the socket a line without "socket" uses.
const DefaultSocket = "main"

// Step is one line of a transcript.
type Step struct {
	Line    int    // 1-based line number in the file
	Comment string // {"#": …}

	Open     string // {"open": NAME, …}: dial a socket
	URLQuery string // with "open": added to the socket URL, e.g. "?purpose=presell"
	Login    *Login // with "open": log in on the new socket

	Close string // {"close": NAME}

	Send   *Value // {"send": packet}
	Expect *Value // {"expect": pattern}
	Socket string // the socket of a send or expect (DefaultSocket when absent)
}

// Login is how an opened socket logs in.
type Login struct {
	// Key is the API key: empty means the key given for the socket's name
	// (replay --key-for NAME=KEY), else the default key; "$KEY" is the
	// default key and "$KEY_NAME" the key for NAME, which a replay must be
	// given (it fails, rather than log in with the default key); anything
	// else is the key itself.
	Key string `json:"key,omitempty"`
	// Purpose is the login purpose (customerdisplay, debugscope).
	Purpose string `json:"purpose,omitempty"`
}

// line is the JSON shape of one transcript line.
type line struct {
	Comment  *string `json:"#,omitempty"`
	Open     string  `json:"open,omitempty"`
	URLQuery string  `json:"url_query,omitempty"`
	Login    *Login  `json:"login,omitempty"`
	Close    string  `json:"close,omitempty"`
	Socket   string  `json:"socket,omitempty"` // first, so a file reads as a conversation
	Send     *Value  `json:"send,omitempty"`
	Expect   *Value  `json:"expect,omitempty"`
}

var socketName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,40}$`)

// LineError is a line of a transcript that cannot be parsed.
type LineError struct {
	File string // set by ReadFile
	Line int
	Err  error
}

// Error is "FILE:LINE: problem", the form of a failed replay's report (and
// of compilers), or "line LINE: problem" without a file.
func (e *LineError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// ReadFile parses a transcript file; a line that cannot be parsed is a
// *LineError naming path.
func ReadFile(path string) ([]Step, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	steps, err := Read(f)
	var le *LineError
	if errors.As(err, &le) {
		le.File = path
		return nil, le
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return steps, nil
}

// Read parses a transcript: one JSON object per line; blank lines are
// skipped. A line that cannot be parsed is a *LineError.
func Read(r io.Reader) ([]Step, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var steps []Step
	for n := 1; sc.Scan(); n++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		st, err := parseLine(text)
		if err != nil {
			return nil, &LineError{Line: n, Err: err}
		}
		st.Line = n
		steps = append(steps, st)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return steps, nil
}

func parseLine(text []byte) (Step, error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields() // a misspelt "expcet" must not pass silently
	var l line
	if err := dec.Decode(&l); err != nil {
		return Step{}, fmt.Errorf("not a transcript line: %w", err)
	}
	st := Step{Open: l.Open, URLQuery: l.URLQuery, Login: l.Login, Close: l.Close, Send: l.Send, Expect: l.Expect, Socket: l.Socket}
	if l.Comment != nil {
		st.Comment = *l.Comment
	}
	kinds := 0
	for _, set := range []bool{l.Comment != nil, l.Open != "", l.Close != "", l.Send != nil, l.Expect != nil} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds != 1:
		return Step{}, fmt.Errorf(`want exactly one of "#", "open", "close", "send", "expect"`)
	case (l.URLQuery != "" || l.Login != nil) && l.Open == "":
		return Step{}, fmt.Errorf(`"url_query" and "login" go with "open"`)
	case l.Socket != "" && l.Send == nil && l.Expect == nil:
		return Step{}, fmt.Errorf(`"socket" goes with "send" or "expect"`)
	case l.URLQuery != "" && !strings.HasPrefix(l.URLQuery, "?"):
		return Step{}, fmt.Errorf(`"url_query" must start with "?"`)
	case l.Send != nil && l.Send.Kind != Object:
		return Step{}, fmt.Errorf(`"send" must be a JSON object (an FD1 packet)`)
	}
	if st.Socket == "" && (st.Send != nil || st.Expect != nil) {
		st.Socket = DefaultSocket
	}
	for _, name := range []string{st.Open, st.Close, st.Socket} {
		if name != "" && !socketName.MatchString(name) {
			return Step{}, fmt.Errorf("socket name %q: use letters, digits, '_', '.', '-'", name)
		}
	}
	return st, nil
}

// MarshalLine is the transcript line of a step (without its line number).
func MarshalLine(st Step) []byte {
	l := line{Open: st.Open, URLQuery: st.URLQuery, Login: st.Login, Close: st.Close, Send: st.Send, Expect: st.Expect}
	if st.Send != nil || st.Expect != nil {
		l.Socket = st.Socket
	}
	if st.Open == "" && st.Close == "" && st.Send == nil && st.Expect == nil {
		l.Comment = &st.Comment
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(l) // only strings and Values: cannot fail
	return buf.Bytes()
}
