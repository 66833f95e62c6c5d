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

// TestVersionHelp: version --help prints what the command does, as every
// other command's --help does, and still refuses any other argument.
func TestVersionHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		help bool
	}{
		{[]string{"version", "--help"}, true},
		{[]string{"version", "-h"}, true},
		{[]string{"--version", "-help"}, true},
		{[]string{"version", "now"}, false},
	} {
		var out, errOut bytes.Buffer
		err := dispatch(tc.args, &out, &errOut)
		if tc.help && (!errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut.String(), "usage: greenlane version")) {
			t.Errorf("%v: %v, printed %q; want the command's help", tc.args, err, errOut.String())
		}
		if !tc.help && (err == nil || !strings.Contains(err.Error(), "takes no arguments")) {
			t.Errorf("%v: %v; want it refused", tc.args, err)
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

// TestParseArgs: flags count wherever they stand, "--" ends them, and a
// positional argument beyond what the command takes is refused, not
// ignored (the flag package stops at it, dropping every flag after it).
func TestParseArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		max     int
		db      string
		replace bool
		pos     []string
		wantErr string
	}{
		{name: "flags first", args: []string{"--db", "q.db", "demo"}, max: 1, db: "q.db", pos: []string{"demo"}},
		{name: "flags after", args: []string{"demo", "--db", "q.db", "--replace"}, max: 1, db: "q.db", replace: true, pos: []string{"demo"}},
		{name: "flags around", args: []string{"--replace", "demo", "--db=q.db"}, max: 1, db: "q.db", replace: true, pos: []string{"demo"}},
		{name: "none", args: nil, max: 1, db: "d.db"},
		{name: "dash dash", args: []string{"--db", "q.db", "--", "--replace"}, max: 1, db: "q.db", pos: []string{"--replace"}},
		{name: "any number", args: []string{"a", "--db", "q.db", "b", "--", "-c"}, max: -1, db: "q.db", pos: []string{"a", "b", "-c"}},
		{name: "one too many", args: []string{"demo", "empty", "--db", "q.db"}, max: 1, wantErr: `unexpected argument "empty"`},
		{name: "none taken", args: []string{"--db", "gg.db", "oops", "--replace"}, max: 0, wantErr: `unexpected argument "oops"`},
		{name: "after dash dash too", args: []string{"--", "x"}, max: 0, wantErr: `unexpected argument "x"`},
		{name: "bad flag after a positional", args: []string{"demo", "--nope"}, max: 1, wantErr: "-nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFlags("test", "test", io.Discard)
			db := fs.String("db", "d.db", "")
			replace := fs.Bool("replace", false, "")
			err := parseArgs(fs, tt.args, tt.max)
			if tt.wantErr != "" {
				var ue usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want a usage error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || *db != tt.db || *replace != tt.replace || !slices.Equal(fs.Args(), tt.pos) {
				t.Fatalf("db=%q replace=%v args=%q err=%v; want db=%q replace=%v args=%q", *db, *replace, fs.Args(), err, tt.db, tt.replace, tt.pos)
			}
		})
	}
}

// TestUnexpectedArgument: every command refuses a positional argument it
// does not take with a usage error (status 2), before it opens or writes
// anything.
func TestUnexpectedArgument(t *testing.T) {
	cmds := [][]string{
		{"fixture", "list"}, {"fixture", "load", "demo"}, {"fixture", "export", "--out", "e5"}, {"fixture", "reset"},
		{"fixture", "generate", "--products", "5", "--sales", "3"},
		{"apikey", "create", "--name", "n", "--scope", "admin"}, {"apikey", "list"}, {"apikey", "revoke", "n"},
		{"presell", "list"}, {"presell", "void", "7"}, {"presell", "expire"},
		{"tls", "init"}, {"tls", "ca"}, {"tls", "renew"}, {"backup", "--out", "copy.db"}, {"check"},
		{"restore", "--from", "b.db"}, {"service", "install", "--out", "unit"}, {"serve"},
		{"bench", "presell"}, {"bench", "recall"}, {"bench", "firehose"}, {"bench", "soak"},
	}
	for _, cmd := range cmds {
		t.Run(strings.Join(cmd, " "), func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			// The stray argument stands before a flag, which must not be lost.
			args := slices.Concat(cmd, []string{"stray", "--db", "q.db"})
			if len(cmd) > 1 && (cmd[0]+cmd[1] == "fixturelist" || cmd[1] == "install") { // no --db
				args = slices.Concat(cmd[:2], []string{"stray"}, cmd[2:])
			}
			err := dispatch(args, io.Discard, io.Discard)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), `unexpected argument "stray"`) {
				t.Fatalf("err = %v, want a usage error: unexpected argument \"stray\"", err)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("left %q in the working folder", left[0].Name())
			}
		})
	}
}

// TestFlagsAfterArgument: a flag after the positional argument is used,
// not dropped (the fixture was loaded into the default DB instead of --db).
func TestFlagsAfterArgument(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, args := range [][]string{
		{"fixture", "load", "--replace", "demo", "--db", "q.db"},
		{"fixture", "generate", "--db", "gg.db", "--products", "5", "--customers", "2", "--sales", "3"},
		{"apikey", "create", "--db", "q.db", "--name", "k1", "--scope", "admin"},
		{"apikey", "revoke", "k1", "--db", "q.db"},
	} {
		if err := dispatch(args, io.Discard, io.Discard); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
	}
	if _, err := os.Stat(defaultDB); err == nil {
		t.Fatalf("a command wrote the default %s, not its --db", defaultDB)
	}
	var out bytes.Buffer
	if err := dispatch([]string{"apikey", "list", "--db", "q.db"}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "k1") {
		t.Fatalf("apikey list: %v\n%s", err, out.String())
	}
	if n := strings.Count(out.String(), "\n"); n != 2 || strings.Count(out.String(), " -\n") != 0 {
		t.Errorf("the key was not revoked by 'apikey revoke k1 --db q.db':\n%s", out.String())
	}
}

// TestOverridesAreCommandLineOnly: a flag that overrides a refusal
// protecting data is never set from the environment (one GREENLANE_FORCE
// exported for a recording would arm every command's --force), and its
// help says so.
func TestOverridesAreCommandLineOnly(t *testing.T) {
	for _, name := range []string{"force", "replace", "create"} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(envName(name), "true")
			var help bytes.Buffer
			fs := newFlags("test", "test", &help)
			on := fs.Bool(name, false, "")
			if err := parseFlags(fs, nil); err != nil || *on {
				t.Fatalf("--%s = %v (err %v) with %s=true in the environment, want false", name, *on, err, envName(name))
			}
			if err := parseFlags(fs, []string{"--" + name}); err != nil || !*on {
				t.Fatalf("--%s on the command line: %v (err %v)", name, *on, err)
			}
			fs.Usage()
			if !strings.Contains(help.String(), "--"+name+" (command line only)") {
				t.Errorf("help: %q, want --%s marked command line only", help.String(), name)
			}
		})
	}
}

// TestFlagValueHints: a flag value that cannot be read is refused with
// what the flag takes, not the flag package's bare "parse error".
func TestFlagValueHints(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"presell", "expire", "--older-than", "soon"}, "-older-than: parse error: want a duration such as 90s, 30m or 12h"},
		{[]string{"bench", "presell", "--tablets", "many"}, "-tablets: parse error: want a whole number"},
		{[]string{"presell", "void", "1", "--force=maybe"}, "-force: parse error: want true or false"},
	} {
		err := dispatch(tt.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v; want an error saying %q", tt.args, err, tt.want)
		}
		if !errors.As(err, new(usageError)) {
			t.Errorf("%q: %v is not a usage error (status 2)", tt.args, err)
		}
	}
}
