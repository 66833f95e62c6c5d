package main

import (
	"bytes"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/greenlane-pos/greenlane/web"
)

// TestAPIKeyCreateQR: --qr prints the pairing link's QR on stderr while
// stdout still holds only the key, so scripts reading the key keep working.
func TestAPIKeyCreateQR(t *testing.T) {
	db := filepath.Join(t.TempDir(), "lane.db")
	if err := dispatch([]string{"fixture", "load", "demo", "--db", db}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name  string
		extra []string
		base  string // "" = no QR expected
		// loopback: a note after the QR says no tablet reaches the base,
		// naming serve --addr 0.0.0.0:PORT and --url-base.
		loopback bool
	}{
		{"no --qr", nil, "", false},
		{"default base", []string{"--qr"}, "http://127.0.0.1:3490", true},
		{"localhost base", []string{"--qr", "--url-base", "https://localhost:8443"}, "https://localhost:8443", true},
		{"LAN base", []string{"--qr", "--url-base", "http://192.168.1.20:3490/"}, "http://192.168.1.20:3490", false},
		{"https behind a path", []string{"--qr", "--url-base", "https://shop.example/lane7"}, "https://shop.example/lane7", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			keyName := "tablet-" + string(rune('a'+i))
			args := append([]string{"apikey", "create", "--db", db, "--name", keyName, "--scope", "presell"}, tc.extra...)
			if err := dispatch(args, &stdout, &stderr); err != nil {
				t.Fatalf("%v: %v\n%s", args, err, stderr.String())
			}
			key := strings.TrimSuffix(stdout.String(), "\n")
			if key == "" || strings.ContainsAny(key, "\n █▀▄") {
				t.Fatalf("stdout is not just the key: %q", stdout.String())
			}
			if tc.base == "" {
				if stderr.Len() != 0 {
					t.Fatalf("without --qr stderr is %q", stderr.String())
				}
				return
			}
			link := tc.base + "/tablet/#key=" + key
			code, err := web.QRTerminal(link)
			if err != nil {
				t.Fatal(err)
			}
			at := strings.Index(stderr.String(), code)
			if at < 0 {
				t.Fatalf("stderr does not hold the QR of %s:\n%s", link, stderr.String())
			}
			after := stderr.String()[at+len(code):]
			u, _ := url.Parse(tc.base)
			note := "serve --addr 0.0.0.0:" + u.Port() + ") and make the QR with --url-base " + u.Scheme + "://"
			if got := strings.Contains(after, note) && strings.Contains(after, "no tablet can reach it"); got != tc.loopback {
				t.Errorf("after the QR: %q; want a loopback note: %v", after, tc.loopback)
			}
			if !tc.loopback && after != "" {
				t.Errorf("stderr goes on after the QR: %q", after)
			}
			if !strings.Contains(stderr.String(), "it opens "+link+" and pairs the tablet as "+keyName) {
				t.Errorf("stderr does not say what the QR holds:\n%s", stderr.String())
			}
		})
	}
}

// TestAPIKeyCreateQRBadBase: a --url-base a tablet cannot open is a usage
// error, found before any key is made.
func TestAPIKeyCreateQRBadBase(t *testing.T) {
	db := filepath.Join(t.TempDir(), "lane.db")
	if err := dispatch([]string{"fixture", "load", "demo", "--db", db}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{"192.168.1.20:3490", "ws://127.0.0.1:3490", "http://", "http://h:1/?x=1", "http://h:1/#k", "http://u:p@h:1"} {
		t.Run(base, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := dispatch([]string{"apikey", "create", "--db", db, "--name", "tablet-bad", "--scope", "presell", "--qr", "--url-base", base}, &stdout, &stderr)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--url-base") {
				t.Fatalf("err = %v, want a usage error naming --url-base", err)
			}
			if stdout.Len() != 0 {
				t.Fatalf("a key was printed: %q", stdout.String())
			}
		})
	}
	var list bytes.Buffer
	if err := dispatch([]string{"apikey", "list", "--db", db}, &list, &list); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(list.String(), "tablet-bad") {
		t.Fatalf("a refused --url-base still created the key:\n%s", list.String())
	}
}

// TestAPIKeyMissingDBHint: apikey create on a missing lane DB gives the
// serve command that makes that file: plain serve for the default path
// (it needs no --create there), --create for any other.
func TestAPIKeyMissingDBHint(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tt := range []struct {
		db, want, not string
	}{
		{defaultDB, "start 'greenlane serve' or", "--create"},
		{"greenlane-lane.db", "start 'greenlane serve' or", "--create"},
		{filepath.Join(dir, "other.db"), "start 'greenlane serve --db " + filepath.Join(dir, "other.db") + " --create'", ""},
	} {
		t.Run(tt.db, func(t *testing.T) {
			err := dispatch([]string{"apikey", "create", "--db", tt.db, "--name", "t", "--scope", "presell"}, &bytes.Buffer{}, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) || (tt.not != "" && strings.Contains(err.Error(), tt.not)) {
				t.Fatalf("err = %v; want it to say %q (and not %q)", err, tt.want, tt.not)
			}
		})
	}
}

// TestMissingFolderIsSaid: a --db in a folder that does not exist is a
// usage error naming the folder, for every command that needs the DB to
// be there or replaces it, rather than advice to create the DB there
// (which would fail the same way) or a lock file's ENOENT.
func TestMissingFolderIsSaid(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "nodir", "lane.db")
	for _, args := range [][]string{
		{"apikey", "create", "--db", db, "--name", "t", "--scope", "presell"},
		{"apikey", "list", "--db", db},
		{"presell", "list", "--db", db},
		{"restore", "--db", db, "--from", filepath.Join(dir, "backup.db")},
	} {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			err := dispatch(args, &bytes.Buffer{}, &bytes.Buffer{})
			want := "folder " + filepath.Join(dir, "nodir") + " does not exist"
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v; want a usage error (exit status 2) saying %q", err, want)
			}
		})
	}
}
