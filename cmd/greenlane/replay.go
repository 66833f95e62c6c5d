package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
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
every socket. The format is described in the README and in
'go doc github.com/greenlane-pos/greenlane/transcript'.`

// errReplayFailed is a replay that ran and found differences (exit 1, and
// the report is already printed).
var errReplayFailed = errors.New("replay failed")

// runReplay is `greenlane replay`.
func runReplay(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("replay", replaySynopsis, stderr)
	url := fs.String("url", "ws://127.0.0.1:3490", "server to replay against: ws://HOST:PORT (the socket path is added)")
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	opt := transcript.Options{
		Dial:       transcript.WebSocketDialer(base, fd1client.Options{Timeout: *timeout}),
		DefaultKey: readKey(*key, *keyFile),
		Keys:       keyFor,
		Timeout:    *timeout,
	}
	if *verbose {
		opt.Log = stdout
	}
	failed := 0
	for _, f := range files {
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

// replayFile replays one transcript and prints its one-line summary.
func replayFile(ctx context.Context, path string, opt transcript.Options, stdout io.Writer) error {
	opt.Name = filepath.Base(path)
	steps, err := transcript.ReadFile(path)
	var le *transcript.LineError
	switch {
	case errors.As(err, &le):
		// NAME:LINE:, as a line that fails in the replay is reported.
		return fmt.Errorf("FAIL %s:%d: %w", opt.Name, le.Line, le.Err)
	case err != nil:
		return fmt.Errorf("FAIL %w", err)
	}
	start := time.Now()
	res, err := transcript.Replay(ctx, steps, opt)
	if err != nil {
		var f *transcript.Failure
		if errors.As(err, &f) {
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
