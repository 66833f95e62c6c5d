package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/greenlane-pos/greenlane/fd1client"

	"github.com/greenlane-pos/greenlane/transcript"
)

const replaySynopsis = `replay [flags] FILE…

Replays transcripts (JSON Lines of FD1 exchanges, e.g. recorded with
'greenlane client --record FILE') against a running server: opens their
sockets, sends their packets and checks every expected packet. On the first
packet that differs it prints where (the path to each differing field,
expected and got, with the packet sent) and goes on with the next file; the
exit status is 1 when any transcript failed; a transcript that sends no
packet fails too (nothing to replay). Sockets log in with the key given for
their name (--key-for tablet=KEY), else with --key: one admin key serves
every socket. A line that names a key ("$KEY_tablet") needs that key: it
fails without --key-for tablet=KEY. A --key-for name that no transcript
uses is refused (a typo). The format is described in the README and in
'go doc github.com/greenlane-pos/greenlane/transcript'.`

// errReplayFailed is a replay that ran and found differences (exit 1, and
// the report is already printed).
var errReplayFailed = errors.New("replay failed")

// runReplay is `greenlane replay`.
func runReplay(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("replay", replaySynopsis, stderr)
	url := fs.String("url", "ws://127.0.0.1:3490", "server to replay against: ws://HOST:PORT (the socket path is added)")
	ca := fs.String("ca", "", "PEM CA file to trust for a wss:// server besides the system's, e.g. greenlane-lane.db.ca.pem (what tls init wrote next to the lane DB)")
	key := fs.String("key", "", "API key of sockets with no --key-for (default: the contents of --key-file)")
	keyFile := fs.String("key-file", defaultDB+".apikey", "file holding the API key, used when --key is not given")
	keyFor := keyFlag{}
	fs.Var(keyFor, "key-for", "NAME=KEY: the key of socket NAME, and $KEY_NAME in a transcript (repeatable)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for each expected packet")
	verbose := fs.Bool("v", false, "print every step")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usagef("name a transcript file (greenlane replay --help)")
	}
	base, err := transcript.SocketURL(*url)
	if err != nil {
		return usagef("--url: %v", err)
	}
	tlsConf, err := caConfig(*ca)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	opt := transcript.Options{
		Dial:       transcript.WebSocketDialer(base, fd1client.Options{Timeout: *timeout, TLS: tlsConf}),
		DefaultKey: readKey(*key, *keyFile),
		Keys:       keyFor,
		Timeout:    *timeout,
	}
	if *verbose {
		opt.Log = stdout
	}
	// Every file is read first: a --key-for is checked against all of
	// them before anything is sent.
	parsed := make([]parsedFile, len(files))
	for i, f := range files {
		parsed[i] = readTranscript(f)
	}
	if err := checkKeyFor(keyFor, parsed); err != nil {
		return err
	}
	failed := 0
	for _, f := range parsed {
		if err := replayFile(ctx, f, opt, stdout); err != nil {
			failed++
			fmt.Fprintln(stdout, err)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d of %d transcripts", errReplayFailed, failed, len(files))
	}
	return nil
}

// parsedFile is a transcript file as read before any replay starts.
type parsedFile struct {
	name  string // the file's name in reports
	steps []transcript.Step
	err   error // why it could not be read, as its report says it
}

// readTranscript reads a transcript; a line that cannot be parsed is
// reported as NAME:LINE:, like a line that fails in the replay.
func readTranscript(path string) parsedFile {
	f := parsedFile{name: filepath.Base(path)}
	steps, err := transcript.ReadFile(path)
	var le *transcript.LineError
	switch {
	case errors.As(err, &le):
		f.err = fmt.Errorf("FAIL %s:%d: %w", f.name, le.Line, le.Err)
	case err != nil:
		f.err = fmt.Errorf("FAIL %w", err)
	}
	f.steps = steps
	return f
}

// checkKeyFor refuses a --key-for name that no transcript uses: a
// mistyped name would leave the socket it meant on --key without a word.
func checkKeyFor(keyFor keyFlag, files []parsedFile) error {
	used := map[string]bool{}
	for _, f := range files {
		for name := range transcript.KeyNames(f.steps) {
			used[name] = true
		}
	}
	names := make([]string, 0, len(used))
	for name := range used {
		names = append(names, name)
	}
	sort.Strings(names)
	given := make([]string, 0, len(keyFor))
	for name := range keyFor {
		given = append(given, name)
	}
	sort.Strings(given)
	for _, name := range given {
		if used[name] {
			continue
		}
		if len(names) == 0 {
			return usagef("--key-for %s=…: no transcript uses a key by name (every socket logs in with --key)", name)
		}
		return usagef("--key-for %s=…: no transcript uses a key named %s (they use: %s)", name, name, strings.Join(names, ", "))
	}
	return nil
}

// replayFile replays one transcript and prints its one-line summary.
func replayFile(ctx context.Context, f parsedFile, opt transcript.Options, stdout io.Writer) error {
	if f.err != nil {
		return f.err
	}
	opt.Name = f.name
	start := time.Now()
	res, err := transcript.Replay(ctx, f.steps, opt)
	if err != nil {
		var fail *transcript.Failure
		if errors.As(err, &fail) {
			return err // the report names the file and line
		}
		return fmt.Errorf("FAIL %w", err)
	}
	ignored := ""
	if n := len(res.Ignored); n > 0 {
		ignored = fmt.Sprintf(", %d more not in the transcript (ignored)", n)
	}
	fmt.Fprintf(stdout, "ok   %s: %d lines, %d packets sent, %d matched%s (%s)\n",
		opt.Name, res.Steps, res.Sent, res.Matched, ignored, time.Since(start).Round(time.Millisecond))
	return nil
}
