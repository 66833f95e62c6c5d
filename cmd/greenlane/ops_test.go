package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/greenlane-pos/greenlane/lanedb"
)

func TestUnitFile(t *testing.T) {
	full := `[Unit]
Description=greenlane FD1 lane server
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=pos
WorkingDirectory=/var/lib/greenlane
ExecStart=/usr/local/bin/greenlane serve --addr 0.0.0.0:3490 --db lane.db
Restart=on-failure
RestartSec=2s
LimitNOFILE=65536
NoNewPrivileges=yes
ProtectSystem=full
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
`
	tests := []struct {
		name     string
		u        unitSettings
		want     string // the whole unit, when given
		wantExec string // the ExecStart line, when given
		wantLine string // another line the unit must hold
		wantErr  string
	}{
		{name: "plain", u: unitSettings{exe: "/usr/local/bin/greenlane", user: "pos", dir: "/var/lib/greenlane", flags: []string{"--addr", "0.0.0.0:3490", "--db", "lane.db"}}, want: full},
		{name: "no flags", u: unitSettings{exe: "/opt/gl/greenlane", user: "pos", dir: "/srv/lane"},
			wantExec: "ExecStart=/opt/gl/greenlane serve"},
		{name: "spaces and quotes are quoted", u: unitSettings{exe: "/opt/my lane/greenlane", user: "pos", dir: "/srv/lane", flags: []string{"--db", `/srv/Jo's "lane".db`}},
			wantExec: `ExecStart="/opt/my lane/greenlane" serve --db "/srv/Jo's \"lane\".db"`},
		{name: "percent and dollar are not expanded", u: unitSettings{exe: "/opt/greenlane", user: "pos", dir: "/srv/100%", flags: []string{"--db=$HOME/lane%1.db"}},
			wantExec: "ExecStart=/opt/greenlane serve --db=$$HOME/lane%%1.db", wantLine: "WorkingDirectory=/srv/100%%"},
		{name: "empty and backslash and semicolon", u: unitSettings{exe: "/opt/greenlane", user: "pos", dir: "/srv", flags: []string{"--allowed-origins=", `a\b`, ";"}},
			wantExec: `ExecStart=/opt/greenlane serve --allowed-origins= "a\\b" ";"`},
		{name: "newline in an argument is escaped", u: unitSettings{exe: "/opt/greenlane", user: "pos", dir: "/srv", flags: []string{"a\nb"}},
			wantExec: `ExecStart=/opt/greenlane serve "a\nb"`},
		{name: "bad user", u: unitSettings{exe: "/opt/greenlane", user: "pos\nExecStartPre=/bin/sh", dir: "/srv"}, wantErr: "not a user name"},
		{name: "relative dir", u: unitSettings{exe: "/opt/greenlane", user: "pos", dir: "lane"}, wantErr: "absolute path"},
		{name: "private tmp dir", u: unitSettings{exe: "/opt/greenlane", user: "pos", dir: "/tmp/lane"}, wantErr: "PrivateTmp"},
		{name: "read-only dir", u: unitSettings{exe: "/opt/greenlane", user: "pos", dir: "/etc/greenlane"}, wantErr: "read-only"},
		// PrivateTmp hides the binary from the service too (203/EXEC).
		{name: "binary under /tmp", u: unitSettings{exe: "/tmp/build/greenlane", user: "pos", dir: "/srv"}, wantErr: "copy the binary to /usr/local/bin"},
		{name: "binary under /var/tmp", u: unitSettings{exe: "/var/tmp/greenlane", user: "pos", dir: "/srv"}, wantErr: "copy the binary to /usr/local/bin"},
		{name: "binary in a folder named tmp elsewhere", u: unitSettings{exe: "/opt/tmpfoo/greenlane", user: "pos", dir: "/srv"},
			wantExec: "ExecStart=/opt/tmpfoo/greenlane serve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := unitFile(tt.u)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("unit:\n%s\nwant:\n%s", got, tt.want)
			}
			lines := strings.Split(got, "\n")
			for _, want := range []string{tt.wantExec, tt.wantLine} {
				if want == "" {
					continue
				}
				found := false
				for _, l := range lines {
					found = found || l == want
				}
				if !found {
					t.Errorf("no line %q in:\n%s", want, got)
				}
			}
		})
	}
}

// installedAt makes service install see its own binary at exe: go test's
// binary is under /tmp, which service install refuses (PrivateTmp).
func installedAt(t *testing.T, exe string) {
	t.Helper()
	old := executable
	executable = func() (string, error) { return exe, nil }
	t.Cleanup(func() { executable = old })
}

// runInstall runs `greenlane service install args…`.
func runInstall(args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	err := dispatch(append([]string{"service", "install"}, args...), &stdout, &stderr)
	return stdout.String(), err
}

func TestServiceInstall(t *testing.T) {
	installedAt(t, "/usr/local/bin/greenlane")
	dir := t.TempDir()
	out := filepath.Join(dir, "lane-7.service")
	// The working directory must exist, be writable by --user and lie
	// outside /tmp (PrivateTmp): / as root is all three on any machine.
	// Nothing is made there: the DB --create asks for is in a folder of
	// its own, outside /tmp too.
	const work = "/"
	db := filepath.Join(unitWorkDir(t), "lane.db")
	run := runInstall
	got, err := run("--user", "root", "--dir", work, "--out", out, "--", "--addr", "0.0.0.0:3490", "--db", db, "--create")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "systemctl daemon-reload && systemctl enable --now lane-7\n") {
		t.Errorf("printed %q, want the systemctl line for lane-7", got)
	}
	if !strings.Contains(got, "made lane DB "+db) {
		t.Errorf("printed %q, want it to say it made %s", got, db)
	}
	unit, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// --create is left out: were the DB lost, a restart must not make a
	// new demo store with a new admin key. The install made it once.
	for _, want := range []string{"User=root\n", "WorkingDirectory=" + work + "\n", "ExecStart=/usr/local/bin/greenlane serve --addr 0.0.0.0:3490 --db " + db + "\n"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	key, err := os.ReadFile(db + ".apikey")
	if err != nil {
		t.Fatalf("service install with --create made no lane DB and key: %v", err)
	}
	if found, err := lanedb.CheckFile(context.Background(), db); err != nil || len(found) > 0 {
		t.Fatalf("the lane DB it made: %v %v", found, err)
	}
	if _, err := os.Stat("/lane.db"); err == nil {
		t.Error("service install made a lane DB in /")
	}
	if _, err := run("--user", "root", "--dir", work, "--out", out); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("second install over %s: err = %v, want a refusal naming --force", out, err)
	}
	if again, _ := os.ReadFile(out); !bytes.Equal(again, unit) {
		t.Error("a refused install changed the unit")
	}
	// Installed again with --create, the DB is there: it is kept, key and all.
	if _, err := run("--user", "root", "--dir", work, "--out", out, "--force", "--", "--addr", "127.0.0.1:1", "--db", db, "-create=true"); err != nil {
		t.Errorf("--force: %v", err)
	}
	if again, _ := os.ReadFile(out); !strings.Contains(string(again), "serve --addr 127.0.0.1:1 --db "+db+"\n") {
		t.Errorf("--force did not replace the unit:\n%s", again)
	}
	if again, _ := os.ReadFile(db + ".apikey"); !bytes.Equal(again, key) {
		t.Error("a second install made the lane DB again")
	}
}

// TestServiceInstallNamesTheDB: the unit names its lane DB by absolute
// path, the one the install made or found, given or not, relative or not;
// serve, run as the unit says in its working directory, then refuses a
// lost DB instead of making a new demo store with a new admin key (which it
// does at the default path when --db is not given).
// unitWorkDir makes a unit's working directory outside /tmp and /var/tmp,
// which PrivateTmp hides: beside the test's sources, or, in a checkout
// that lies under /tmp itself, in the home directory.
func unitWorkDir(t *testing.T) string {
	t.Helper()
	bases := []string{"."}
	if home, err := os.UserHomeDir(); err == nil {
		bases = append(bases, home)
	}
	for _, base := range bases {
		abs, err := filepath.Abs(base)
		if err != nil || privateTmp(abs) != "" {
			continue
		}
		work, err := os.MkdirTemp(abs, "greenlane-install-")
		if err != nil {
			continue
		}
		t.Cleanup(func() { os.RemoveAll(work) })
		return work
	}
	t.Skipf("no writable folder outside /tmp and /var/tmp (tried %v): a unit's working directory cannot lie under them", bases)
	return ""
}

func TestServiceInstallNamesTheDB(t *testing.T) {
	installedAt(t, "/usr/local/bin/greenlane")
	for _, tt := range []struct {
		name  string
		flags []string
		file  string // the DB made, in the working directory
	}{
		{"no --db", []string{"--addr", "127.0.0.1:1"}, "greenlane-lane.db"},
		{"relative --db", []string{"--db", "lane.db", "--create", "--addr", "127.0.0.1:1"}, "lane.db"},
		{"--db=./greenlane-lane.db", []string{"--db=./greenlane-lane.db", "--addr", "127.0.0.1:1"}, "greenlane-lane.db"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			work := unitWorkDir(t)
			out := filepath.Join(t.TempDir(), "lane.service")
			if _, err := runInstall(append([]string{"--user", "root", "--dir", work, "--out", out, "--"}, tt.flags...)...); err != nil {
				t.Fatal(err)
			}
			unit, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(work, tt.file)
			_, exec, _ := strings.Cut(string(unit), "ExecStart=/usr/local/bin/greenlane serve ")
			exec, _, _ = strings.Cut(exec, "\n")
			words := strings.Fields(exec)
			if n := strings.Count(exec, "--db"); n != 1 || !strings.HasSuffix(exec, " --db "+db) {
				t.Fatalf("ExecStart serve %q, want one --db, %s", exec, db)
			}
			if _, err := os.Stat(db + ".apikey"); err != nil {
				t.Fatalf("the install made no lane DB: %v", err)
			}
			// The DB is lost: serve, as the unit runs it, refuses to start.
			for _, p := range []string{db, db + ".apikey", db + "-wal", db + "-shm"} {
				os.Remove(p)
			}
			t.Chdir(work)
			err = dispatch(append([]string{"serve"}, words...), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "--create") {
				t.Errorf("serve on the lost DB: %v, want a refusal naming --create", err)
			}
			if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("serve made %s again: %v", db, err)
			}
		})
	}
}

// TestWithoutCreate: the unit's serve flags are the ones given less
// --create, however spelled; a value that looks like it stays.
func TestWithoutCreate(t *testing.T) {
	for _, tt := range []struct{ in, want []string }{
		{[]string{"--db", "lane.db", "--create"}, []string{"--db", "lane.db"}},
		{[]string{"-create", "--addr", ":1"}, []string{"--addr", ":1"}},
		{[]string{"--create=true", "--tls"}, []string{"--tls"}},
		{[]string{"--create=false", "--db=x.db"}, []string{"--db=x.db"}},
		{[]string{"--metrics-token", "--create", "--db", "x.db"}, []string{"--metrics-token", "--create", "--db", "x.db"}},
		{[]string{"--addr", ":1"}, []string{"--addr", ":1"}},
	} {
		fs, _ := serveFlags(io.Discard)
		if got := withoutCreate(fs, tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("withoutCreate(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestMakeServiceDBOwner: the DB service install makes, and its key file,
// belong to the service's account, which must open and write them.
func TestMakeServiceDBOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving files to another account needs root")
	}
	acct, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no account nobody on this machine")
	}
	db := filepath.Join(t.TempDir(), "lane.db")
	var stdout bytes.Buffer
	if err := makeServiceDB(&serveSettings{dbPath: db, create: true}, acct, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{db, db + ".apikey"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if sys := st.Sys().(*syscall.Stat_t); strconv.Itoa(int(sys.Uid)) != acct.Uid || strconv.Itoa(int(sys.Gid)) != acct.Gid {
			t.Errorf("%s owned by %d:%d, want %s:%s", p, sys.Uid, sys.Gid, acct.Uid, acct.Gid)
		}
	}
}

// TestServiceInstallRefuses: what serve would refuse at its first start
// under systemd, or what the unit could not run, writes no unit.
func TestServiceInstallRefuses(t *testing.T) {
	installedAt(t, "/usr/local/bin/greenlane")
	if cur, err := user.Current(); err == nil && cur.Username == "nobody" {
		t.Skip("the test needs an account other than nobody")
	}
	_, noNobody := user.Lookup("nobody")
	tests := []struct {
		name    string
		exe     string   // the binary's path, when not /usr/local/bin/greenlane
		own     []string // service install's flags, after --user root --dir /
		serve   []string // serve's flags, after --
		wantErr string
	}{
		{name: "serve flag typo", serve: []string{"--adr", ":1"}, wantErr: "adr"},
		{name: "an argument", serve: []string{"lane.db"}, wantErr: "serve takes no arguments"},
		{name: "bad address", serve: []string{"--addr", "nonsense"}, wantErr: "serve flags after --: --addr: want host:port"},
		{name: "zero pong wait", serve: []string{"--pong-wait", "0"}, wantErr: "--pong-wait: must be at least 1s, got 0s"},
		{name: "two bad values", serve: []string{"--pong-wait", "0", "--max-rows", "0"}, wantErr: "--max-rows"},
		{name: "bad log level", serve: []string{"--log-level", "loud"}, wantErr: "--log-level"},
		// systemd would drop such a line of the environment file.
		{name: "a secret with a newline", serve: []string{"--metrics-token", "a\nb", "--db", "postgres://u@store-db/s"}, wantErr: "--metrics-token: a control character"},
		{name: "folder of --db missing", serve: []string{"--db", "/nonexistent-greenlane-dir/lane.db", "--create"}, wantErr: "folder /nonexistent-greenlane-dir does not exist"},
		// A relative --db is taken from --dir, where serve will run.
		{name: "no lane DB and no --create", serve: []string{"--db", "nonexistent-greenlane.db"}, wantErr: "--db /nonexistent-greenlane.db: no lane DB there; add --create"},
		{name: "--tls without certificates", serve: []string{"--db", "nonexistent-greenlane.db", "--create", "--tls"}, wantErr: "--tls: no certificate at /nonexistent-greenlane.db"},
		{name: "no such user", own: []string{"--user", "nosuchuser-greenlane"}, wantErr: "--user nosuchuser-greenlane: no such account"},
		{name: "dir the user cannot write", own: []string{"--user", "nobody"}, wantErr: "nobody cannot write there"},
		{name: "dir missing", own: []string{"--dir", "/nonexistent-greenlane-dir"}, wantErr: "--dir /nonexistent-greenlane-dir does not exist"},
		{name: "dir a file", own: []string{"--dir", "/proc/self/status"}, wantErr: "--dir /proc/self/status is not a folder"},
		{name: "lane DB under /tmp", serve: []string{"--db", "/tmp/greenlane-service-test.db", "--create"}, wantErr: "--db /tmp/greenlane-service-test.db: PrivateTmp gives the service its own empty /tmp"},
		{name: "lane DB under /etc", serve: []string{"--db", "/etc/greenlane-service-test.db", "--create"}, wantErr: "--db /etc/greenlane-service-test.db: ProtectSystem=full makes /etc read-only"},
		{name: "binary under /tmp", exe: "/tmp/x/greenlane", wantErr: "copy the binary to /usr/local/bin"},
		{name: "binary under /var/tmp", exe: "/var/tmp/greenlane", wantErr: "copy the binary to /usr/local/bin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if slices.Contains(tt.own, "nobody") && noNobody != nil {
				t.Skip("no account nobody on this machine")
			}
			if tt.exe != "" {
				installedAt(t, tt.exe)
			}
			for i, a := range tt.own {
				if _, err := os.Stat(a); i > 0 && tt.own[i-1] == "--dir" && strings.HasPrefix(a, "/proc/") && err != nil {
					t.Skipf("no %s on this machine", a)
				}
			}
			out := filepath.Join(t.TempDir(), "greenlane.service")
			// Given twice, a flag's last value wins.
			args := append([]string{"--user", "root", "--dir", "/", "--out", out}, tt.own...)
			args = append(append(args, "--"), tt.serve...)
			_, err := runInstall(args...)
			var ue usageError
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &ue) {
				t.Fatalf("err = %v, want a usage error saying %q", err, tt.wantErr)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a unit was written")
			}
		})
	}
}

// TestServiceHelp: each way of asking service for help prints its Usage
// line once.
func TestServiceHelp(t *testing.T) {
	for _, args := range [][]string{{"service", "--help"}, {"service", "-h"}, {"service", "install", "--help"}, {"service", "install", "-h"}, {"service", "install", "--force", "--help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := dispatch(args, &stdout, &stderr)
			if err != nil && !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("err = %v", err)
			}
			if n := strings.Count(stdout.String()+stderr.String(), "Usage:"); n != 1 {
				t.Errorf("printed Usage %d times:\n%s%s", n, stdout.String(), stderr.String())
			}
		})
	}
}

// TestServiceUnitIsPrivate: the unit may hold a secret in its serve flags
// (a metrics token, a store database URL with its password), so it is
// written readable by its owner alone, also when --force replaces a unit
// that was readable by all.
func TestServiceUnitIsPrivate(t *testing.T) {
	installedAt(t, "/usr/local/bin/greenlane")
	db := filepath.Join(unitWorkDir(t), "lane.db")
	for _, existing := range []bool{false, true} {
		t.Run(fmt.Sprintf("replacing a unit %v", existing), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "greenlane.service")
			args := []string{"--user", "root", "--dir", "/", "--out", out}
			if existing {
				if err := os.WriteFile(out, []byte("[Unit]\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--force")
			}
			if _, err := runInstall(append(args, "--", "--metrics-token", "s3cr3t", "--db", db, "--create")...); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("the unit holding --metrics-token has mode %v, want 0600", st.Mode().Perm())
			}
		})
	}
}

// unitValue is the value of the unit's first line key=…, with systemd's
// specifiers' %% read back as %; ok is false when there is none.
func unitValue(unit, key string) (string, bool) {
	for _, line := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return strings.ReplaceAll(v, "%%", "%"), true
		}
	}
	return "", false
}

// execWords splits an ExecStart= value (specifiers already read back) as
// systemd does: words apart at blanks, a word in double or single quotes
// kept whole, C escapes read everywhere, and $$ read as $.
func execWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == '\\':
			if i++; i == len(rs) {
				t.Fatalf("ExecStart ends in a backslash: %q", line)
			}
			esc, ok := map[rune]string{'n': "\n", 't': "\t", 'r': "\r", '\\': `\`, '"': `"`, '\'': "'", ' ': " "}[rs[i]]
			if !ok {
				t.Fatalf("ExecStart has an escape this test does not read: \\%c in %q", rs[i], line)
			}
			w.WriteString(esc)
			inWord = true
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("ExecStart ends inside quotes: %q", line)
	}
	if inWord {
		words = append(words, w.String())
	}
	for i, word := range words {
		if strings.Contains(strings.ReplaceAll(word, "$$", ""), "$") {
			t.Fatalf("word %q of ExecStart would be expanded by systemd", word)
		}
		words[i] = strings.ReplaceAll(word, "$$", "$")
	}
	return words
}

// envFileVars reads a systemd EnvironmentFile as systemd.exec(5) says:
// blank lines and lines starting with # or ; are skipped; in a value
// between double quotes a backslash keeps the next of \ " $ ` and any
// other escape is kept as written; between single quotes all is kept;
// unquoted, a backslash keeps the next character and blanks at either end
// go.
func envFileVars(t *testing.T, text string) map[string]string {
	t.Helper()
	vars := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimLeft(line, " \t")
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		key, raw, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("environment file line without =: %q", line)
		}
		raw = strings.TrimSpace(raw)
		var v strings.Builder
		switch {
		case strings.HasPrefix(raw, `"`):
			body := raw[1:]
			closed := false
			for i := 0; i < len(body) && !closed; i++ {
				switch c := body[i]; {
				case c == '\\' && i+1 < len(body) && strings.IndexByte("\\\"$`", body[i+1]) >= 0:
					i++
					v.WriteByte(body[i])
				case c == '"':
					if rest := strings.TrimSpace(body[i+1:]); rest != "" {
						t.Fatalf("text after the closing quote: %q", line)
					}
					closed = true
				default:
					v.WriteByte(c)
				}
			}
			if !closed {
				t.Fatalf("value not closed on its line: %q", line)
			}
		case strings.HasPrefix(raw, "'"):
			body, ok := strings.CutSuffix(raw[1:], "'")
			if !ok || strings.Contains(body, "'") {
				t.Fatalf("bad single-quoted value: %q", line)
			}
			v.WriteString(body)
		default:
			for i := 0; i < len(raw); i++ {
				if raw[i] == '\\' && i+1 < len(raw) {
					i++
				}
				v.WriteByte(raw[i])
			}
		}
		vars[strings.TrimSpace(key)] = v.String()
	}
	return vars
}

// TestServiceInstallKeepsSecretsOffTheCommandLine: the serve flags that
// hold a secret go to an environment file readable by root alone, which
// the unit names, and not to ExecStart, which every local user can read
// on the running lane's command line; the other flags stay on ExecStart.
// Read back as systemd reads them, the unit and the file give serve the
// very settings of the flags given.
func TestServiceInstallKeepsSecretsOffTheCommandLine(t *testing.T) {
	installedAt(t, "/usr/local/bin/greenlane")
	work := unitWorkDir(t)
	sqlite := filepath.Join(work, "lane.db")
	if _, err := runInstall("--user", "root", "--dir", work, "--out", filepath.Join(t.TempDir(), "make-db.service"), "--", "--db", sqlite, "--create"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		flags   []string // serve's, after --
		secrets []string // what neither the unit nor ExecStart may hold
		wantEnv []string // the variables in the environment file; nil: no file
	}{
		{name: "store URL with a password and a metrics token",
			flags:   []string{"--addr", "0.0.0.0:3490", "--db", "postgres://user:Pw-9xq@store-db/greenlane_store", "--metrics-token", "s3cr3t-tok"},
			secrets: []string{"Pw-9xq", "s3cr3t-tok"}, wantEnv: []string{"GREENLANE_DB", "GREENLANE_METRICS_TOKEN"}},
		{name: "characters systemd reads specially",
			flags:   []string{"--metrics-token", "a%hb$c\"d`e'f\\g h#;", "--db", "postgres://greenlane:p%40ss$x@127.0.0.1:24381/greenlane_store?sslmode=disable&application_name=x y", "--log-level", "debug"},
			secrets: []string{"a%hb", "p%40ss"}, wantEnv: []string{"GREENLANE_DB", "GREENLANE_METRICS_TOKEN"}},
		{name: "password as a URL parameter, flags spelled inline",
			flags:   []string{"-db=postgres://u@store-db/s?password=Pw-9xq", "--metrics-token=s3cr3t-tok", "--max-rows=50"},
			secrets: []string{"Pw-9xq", "s3cr3t-tok"}, wantEnv: []string{"GREENLANE_DB", "GREENLANE_METRICS_TOKEN"}},
		{name: "a flag given twice: the last value wins",
			flags:   []string{"--metrics-token", "first-tok", "--db", sqlite, "--metrics-token", "s3cr3t-tok"},
			secrets: []string{"first-tok", "s3cr3t-tok"}, wantEnv: []string{"GREENLANE_METRICS_TOKEN"}},
		{name: "store URL without a password stays", flags: []string{"--db", "postgres://u@store-db/s?sslmode=require", "--addr", "0.0.0.0:3490"}},
		{name: "no secret", flags: []string{"--db", sqlite, "--addr", "0.0.0.0:3490", "--allowed-origins", "http://lane1:3490,http://lane2:3490", "--log-format", "json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "lane-3.service")
			stdout, err := runInstall(append([]string{"--user", "root", "--dir", work, "--out", out, "--"}, tt.flags...)...)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			unit := string(b)
			for _, s := range tt.secrets {
				if strings.Contains(unit, s) {
					t.Errorf("the unit holds the secret %q:\n%s", s, unit)
				}
			}
			exec, ok := unitValue(unit, "ExecStart")
			if !ok {
				t.Fatalf("no ExecStart in:\n%s", unit)
			}
			words := execWords(t, exec)
			if len(words) < 2 || words[0] != "/usr/local/bin/greenlane" || words[1] != "serve" {
				t.Fatalf("ExecStart runs %q", words)
			}
			for _, s := range tt.secrets {
				if strings.Contains(strings.Join(words, " "), s) {
					t.Errorf("the lane's command line holds the secret %q: %q", s, words)
				}
			}
			envPath, named := unitValue(unit, "EnvironmentFile")
			env := map[string]string{}
			if named != (tt.wantEnv != nil) {
				t.Fatalf("unit names an environment file: %v, want %v:\n%s", named, tt.wantEnv != nil, unit)
			}
			if named {
				if want := filepath.Join(dir, "lane-3.env"); envPath != want {
					t.Errorf("EnvironmentFile=%s, want %s", envPath, want)
				}
				st, err := os.Stat(envPath)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != 0o600 {
					t.Errorf("environment file mode %v, want 0600", st.Mode().Perm())
				}
				text, err := os.ReadFile(envPath)
				if err != nil {
					t.Fatal(err)
				}
				env = envFileVars(t, string(text))
				if got := slices.Sorted(maps.Keys(env)); !slices.Equal(got, tt.wantEnv) {
					t.Errorf("environment file sets %q, want %q", got, tt.wantEnv)
				}
				if !strings.Contains(stdout, "wrote "+envPath+", readable by root alone") {
					t.Errorf("install printed %q, want it to name the environment file", stdout)
				}
			}
			// What serve gets, as systemd starts it: the unit's words and
			// the file's variables, and nothing else of the environment.
			for _, kv := range os.Environ() {
				if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "GREENLANE_") {
					t.Setenv(name, "")
					os.Unsetenv(name)
				}
			}
			for k, v := range env {
				t.Setenv(k, v)
			}
			gotFS, got := serveFlags(io.Discard)
			if err := parseFlags(gotFS, words[2:]); err != nil {
				t.Fatalf("serve %q: %v", words[2:], err)
			}
			wantFS, want := serveFlags(io.Discard)
			if err := parseOnly(wantFS, tt.flags); err != nil {
				t.Fatal(err)
			}
			if !filepath.IsAbs(want.dbPath) && !lanedb.IsPostgresURL(want.dbPath) {
				want.dbPath = filepath.Join(work, want.dbPath)
			}
			// A func is equal to nothing, itself included: the lane's
			// clock is the one default that is a func.
			got.lane.Sales.Now, want.lane.Sales.Now = nil, nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("serve under the unit gets\n%+v\nwant the settings of %q:\n%+v", got, tt.flags, want)
			}
		})
	}
}

// TestServiceReinstallDropsOldSecrets: a --force reinstall whose serve
// flags hold no secret removes the environment file the earlier install
// wrote, which no unit reads any more and which holds the old secrets; a
// file of someone else's at that path is left alone.
func TestServiceReinstallDropsOldSecrets(t *testing.T) {
	installedAt(t, "/usr/local/bin/greenlane")
	work := unitWorkDir(t)
	sqlite := filepath.Join(work, "lane.db")
	for _, tt := range []struct {
		name     string
		earlier  func(t *testing.T, out, env string) // what is at env before the reinstall
		wantGone bool
	}{
		{"the earlier install's", func(t *testing.T, out, env string) {
			if _, err := runInstall("--user", "root", "--dir", work, "--out", out, "--", "--db", sqlite, "--create", "--metrics-token", "s3cr3t-tok"); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"someone else's", func(t *testing.T, out, env string) {
			if err := os.WriteFile(env, []byte("PATH=/opt/bin\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "lane-4.service")
			env := strings.TrimSuffix(out, ".service") + ".env"
			tt.earlier(t, out, env)
			if _, err := os.Stat(env); err != nil {
				t.Fatalf("before the reinstall: %v", err)
			}
			stdout, err := runInstall("--user", "root", "--dir", work, "--out", out, "--force", "--", "--db", sqlite, "--create")
			if err != nil {
				t.Fatal(err)
			}
			_, err = os.Stat(env)
			if gone := errors.Is(err, fs.ErrNotExist); gone != tt.wantGone {
				t.Fatalf("%s removed: %v, want %v (stdout: %s)", env, gone, tt.wantGone, stdout)
			}
			if said := strings.Contains(stdout, "removed "+env); said != tt.wantGone {
				t.Errorf("stdout says it removed %s: %v, want %v:\n%s", env, said, tt.wantGone, stdout)
			}
		})
	}
}
