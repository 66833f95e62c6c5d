package main

import (
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/internal/syncbuf"
)

// TestWatchSignals: each signal serve handles is logged; the first SIGINT
// or SIGTERM stops gracefully, a second exits at once, SIGHUP changes
// nothing.
func TestWatchSignals(t *testing.T) {
	tests := []struct {
		name      string
		sigs      []os.Signal
		wantStop  bool
		wantExit  bool
		wantLines []string
	}{
		{"SIGTERM", []os.Signal{syscall.SIGTERM}, true, false,
			[]string{"stopping: SIGTERM; finishing requests (up to 7s, --shutdown-grace)"}},
		{"Ctrl-C twice", []os.Signal{os.Interrupt, os.Interrupt}, true, true,
			[]string{"stopping: SIGINT;", "level=WARN", "stopping at once: a second SIGINT"}},
		{"SIGTERM then Ctrl-C", []os.Signal{syscall.SIGTERM, os.Interrupt}, true, true,
			[]string{"stopping at once: a second SIGINT"}},
		{"SIGHUP", []os.Signal{syscall.SIGHUP, syscall.SIGHUP}, false, false,
			[]string{"SIGHUP ignored: the lane reloads nothing"}},
		{"SIGHUP then SIGTERM", []os.Signal{syscall.SIGHUP, syscall.SIGTERM}, true, false,
			[]string{"SIGHUP ignored", "stopping: SIGTERM"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logBuf syncbuf.Buffer
			log := slog.New(slog.NewTextHandler(&logBuf, nil))
			sigs := make(chan os.Signal)
			done := make(chan struct{})
			ended := make(chan struct{})
			stopped := make(chan struct{}, 1)
			exited := -1
			go func() {
				defer close(ended)
				watchSignals(sigs, done, func() { stopped <- struct{}{} }, log, 7*time.Second, func(code int) { exited = code })
			}()
			for _, s := range tt.sigs {
				select {
				case sigs <- s: // unbuffered: taken only once the one before was handled
				case <-ended:
				}
			}
			close(done)
			<-ended
			if got := len(stopped) == 1; got != tt.wantStop {
				t.Errorf("stopped %v, want %v", got, tt.wantStop)
			}
			if got := exited == 1; got != tt.wantExit {
				t.Errorf("exit code %d, want exit(1) %v", exited, tt.wantExit)
			}
			for _, w := range tt.wantLines {
				if !strings.Contains(logBuf.String(), w) {
					t.Errorf("log lacks %q:\n%s", w, logBuf.String())
				}
			}
		})
	}
}
