package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

func TestServiceInstall(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "lane-7.service")
	// The unit only names the working directory; it need not exist yet
	// (and one under /tmp is refused, see TestUnitFile).
	const work = "/srv/lane-7"
	run := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := dispatch(append([]string{"service", "install"}, args...), &stdout, &stderr)
		return stdout.String(), err
	}
	got, err := run("--user", "pos", "--dir", work, "--out", out, "--", "--addr", "0.0.0.0:3490", "--db", "lane.db")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "systemctl daemon-reload && systemctl enable --now lane-7\n") {
		t.Errorf("printed %q, want the systemctl line for lane-7", got)
	}
	unit, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	exe, _ = filepath.EvalSymlinks(exe)
	for _, want := range []string{"User=pos\n", "WorkingDirectory=" + work + "\n", "ExecStart=" + systemdQuote(exe) + " serve --addr 0.0.0.0:3490 --db lane.db\n"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	if _, err := run("--user", "pos", "--dir", work, "--out", out); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("second install over %s: err = %v, want a refusal naming --force", out, err)
	}
	if again, _ := os.ReadFile(out); !bytes.Equal(again, unit) {
		t.Error("a refused install changed the unit")
	}
	if _, err := run("--user", "pos", "--dir", work, "--out", out, "--force", "--", "--addr", "127.0.0.1:1"); err != nil {
		t.Errorf("--force: %v", err)
	}
	if again, _ := os.ReadFile(out); !strings.Contains(string(again), "serve --addr 127.0.0.1:1\n") {
		t.Errorf("--force did not replace the unit:\n%s", again)
	}
	other := filepath.Join(dir, "typo.service")
	if _, err := run("--user", "pos", "--dir", work, "--out", other, "--", "--adr", ":1"); err == nil || !strings.Contains(err.Error(), "adr") {
		t.Errorf("a serve flag typo: err = %v, want it named", err)
	}
	if _, err := os.Stat(other); err == nil {
		t.Error("a unit was written for bad serve flags")
	}
}
