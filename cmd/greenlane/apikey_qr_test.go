package main

import (
	"bytes"
	"errors"
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
	}{
		{"no --qr", nil, ""},
		{"default base", []string{"--qr"}, "http://127.0.0.1:3490"},
		{"LAN base", []string{"--qr", "--url-base", "http://192.168.1.20:3490/"}, "http://192.168.1.20:3490"},
		{"https behind a path", []string{"--qr", "--url-base", "https://shop.example/lane7"}, "https://shop.example/lane7"},
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
			if !strings.HasSuffix(stderr.String(), code) {
				t.Errorf("stderr does not end with the QR of %s:\n%s", link, stderr.String())
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
