package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
)

func TestEnvName(t *testing.T) {
	tests := map[string]string{
		"addr":            "GREENLANE_ADDR",
		"db-busy-timeout": "GREENLANE_DB_BUSY_TIMEOUT",
		"allow-origin":    "GREENLANE_ALLOW_ORIGIN",
	}
	for flagName, want := range tests {
		if got := envName(flagName); got != want {
			t.Errorf("envName(%q) = %q, want %q", flagName, got, want)
		}
	}
}

func TestParseFlagsEnvironment(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		wantDur time.Duration
		wantErr bool
	}{
		{name: "default", want: "127.0.0.1:3490", wantDur: time.Second},
		{name: "env fills", env: map[string]string{"GREENLANE_ADDR": ":9", "GREENLANE_PONG_WAIT": "5s"}, want: ":9", wantDur: 5 * time.Second},
		{name: "flag beats env", args: []string{"--addr", ":7"}, env: map[string]string{"GREENLANE_ADDR": ":9"}, want: ":7", wantDur: time.Second},
		{name: "bad env value", env: map[string]string{"GREENLANE_PONG_WAIT": "soon"}, wantErr: true},
		{name: "bad flag", args: []string{"--nope"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs := newFlags("test", "test", io.Discard)
			addr := fs.String("addr", "127.0.0.1:3490", "")
			pong := fs.Duration("pong-wait", time.Second, "")
			err := parseFlags(fs, tt.args)
			if tt.wantErr {
				var ue usageError
				if !errors.As(err, &ue) {
					t.Fatalf("err = %v, want a usage error", err)
				}
				return
			}
			if err != nil || *addr != tt.want || *pong != tt.wantDur {
				t.Fatalf("addr=%q pong=%v err=%v", *addr, *pong, err)
			}
		})
	}
}

func TestDispatchUnknownCommand(t *testing.T) {
	var out bytes.Buffer
	err := dispatch([]string{"explode"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "serve") {
		t.Fatalf("unknown command: %v", err)
	}
	if err := dispatch([]string{"serve", "--help"}, &out, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("serve --help: %v", err)
	}
	if !strings.Contains(out.String(), "GREENLANE_ADDR") {
		t.Errorf("serve --help does not name the environment variables:\n%s", out.String())
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		var out, errOut bytes.Buffer
		if err := dispatch(args, &out, &errOut); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !strings.HasPrefix(out.String(), "greenlane ") || !strings.Contains(out.String(), runtime.Version()) {
			t.Errorf("%v printed %q, want the version and %s", args, out.String(), runtime.Version())
		}
	}
}

// TestWrongFlag: a mistyped flag gets a one-line error pointing at --help,
// not the whole usage with the error scrolled away above it.
func TestWrongFlag(t *testing.T) {
	for _, cmd := range [][]string{{"serve"}, {"client"}, {"replay"}, {"fixture", "load", "demo"}, {"fixture", "reset"},
		{"apikey", "create"}, {"apikey", "list"}, {"presell", "list"}, {"presell", "expire"}} {
		var out, errOut bytes.Buffer
		err := dispatch(append(cmd, "--nope"), &out, &errOut)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "-nope") || !strings.Contains(err.Error(), "--help") {
			t.Errorf("%v --nope: err = %v, want a usage error naming -nope and --help", cmd, err)
		}
		if errOut.Len() > 0 || out.Len() > 0 {
			t.Errorf("%v --nope printed the usage (%d lines) above the error", cmd, strings.Count(errOut.String()+out.String(), "\n"))
		}
	}
}

// TestDBDefault: every subcommand that takes --db defaults it to
// ./greenlane-lane.db, as serve does.
func TestDBDefault(t *testing.T) {
	for _, cmd := range [][]string{{"serve"}, {"fixture", "load"}, {"fixture", "export"}, {"fixture", "reset"}, {"fixture", "generate"},
		{"apikey", "create"}, {"apikey", "list"}, {"apikey", "revoke"}, {"presell", "list"}, {"presell", "void"}, {"presell", "expire"}} {
		var out bytes.Buffer
		if err := dispatch(append(cmd, "--help"), &out, &out); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%v --help: %v", cmd, err)
		}
		_, after, ok := strings.Cut(out.String(), "--db [GREENLANE_DB]\n")
		line, _, _ := strings.Cut(after, "\n")
		if !ok || !strings.Contains(line, "(default "+defaultDB+")") {
			t.Errorf("%v: --db does not default to %s:\n%s", cmd, defaultDB, out.String())
		}
	}
	// And it is used: a lane DB made in the current folder without --db is
	// the one the other commands find there.
	t.Chdir(t.TempDir())
	var out bytes.Buffer
	for _, args := range [][]string{{"fixture", "load", "demo"}, {"apikey", "create", "--name", "tablet-9", "--scope", "presell"}, {"apikey", "list"}} {
		if err := dispatch(args, &out, &out); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out.String())
		}
	}
	if !strings.Contains(out.String(), "tablet-9") {
		t.Fatalf("apikey list without --db does not show the key made without --db:\n%s", out.String())
	}
}

// TestDBPostgresURL: every command that takes --db takes a PostgreSQL URL,
// from the flag or the environment, and tries to reach that server (none
// listens on port 1: a connection error); the commands that only mean
// something for an SQLite file refuse it, saying what to do instead
// (ErrNotOnPostgres). None leaves anything behind in the working folder (a
// file or folder named after the URL would be a new, empty lane), and none
// prints the password.
func TestDBPostgresURL(t *testing.T) {
	const pg = "postgres://clerk:hunter2@127.0.0.1:1/store"
	cmds := [][]string{
		{"serve"}, {"serve", "--create"}, {"serve", "--tls"}, {"fixture", "load", "demo"}, {"fixture", "reset"},
		{"fixture", "export", "--out", "x"}, {"fixture", "generate"},
		{"apikey", "create", "--name", "n", "--scope", "admin"}, {"apikey", "list"}, {"apikey", "revoke", "n"},
		{"presell", "list"}, {"presell", "void", "7"}, {"presell", "expire"},
		{"tls", "init"}, {"tls", "ca"}, {"tls", "renew"}, {"backup", "--out", "copy.db"}, {"check"},
		{"bench", "presell"}, {"bench", "recall"}, {"bench", "firehose"}, {"bench", "soak"},
	}
	for _, cmd := range cmds {
		for _, viaEnv := range []bool{false, true} {
			args := slices.Clone(cmd)
			switch {
			case !viaEnv:
				args = append(args, "--db", "postgresql://"+strings.TrimPrefix(pg, "postgres://"))
			}
			t.Run(fmt.Sprint(args, viaEnv), func(t *testing.T) {
				if viaEnv {
					t.Setenv("GREENLANE_DB", pg)
				}
				dir := t.TempDir()
				t.Chdir(dir)
				var out, errOut bytes.Buffer
				err := dispatch(args, &out, &errOut)
				_, refused := notOnPostgres[strings.Join(cmd[:min(2, len(cmd))], " ")]
				if !refused {
					_, refused = notOnPostgres[cmd[0]]
				}
				switch {
				case err == nil:
					t.Fatal("no error")
				case refused && !errors.Is(err, lanedb.ErrNotOnPostgres):
					t.Fatalf("err = %v, want ErrNotOnPostgres", err)
				case !refused && slices.Contains(cmd, "--create"):
					if !strings.Contains(err.Error(), "--create makes a demo SQLite lane DB file") {
						t.Fatalf("err = %v, want --create refused", err)
					}
				case !refused && slices.Contains(cmd, "--tls"):
					if !strings.Contains(err.Error(), "give each instance --tls-cert and --tls-key") {
						t.Fatalf("err = %v, want --tls refused", err)
					}
				case !refused && !lanedb.IsUnavailable(err):
					t.Fatalf("err = %v, want a connection error", err)
				}
				if strings.Contains(err.Error()+out.String()+errOut.String(), "hunter2") {
					t.Errorf("the password was printed: %v %s %s", err, out.String(), errOut.String())
				}
				if left, _ := os.ReadDir(dir); len(left) != 0 {
					t.Errorf("left %q in the working folder", left[0].Name())
				}
			})
		}
	}
}
