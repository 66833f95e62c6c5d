package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/greenlane-pos/greenlane/lanedb"
)

// TestAPIKeyNames: apikey create refuses a name that could forge output,
// and apikey list escapes such a name an older lane already stored, so each
// key stays one row.
func TestAPIKeyNames(t *testing.T) {
	db := filepath.Join(t.TempDir(), "lane.db")
	if err := dispatch([]string{"fixture", "load", "demo", "--db", db}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	forged := "evil\n0123456789abcdef  admin-forged  admin  2026-01-01 00:00:00  -"
	for _, name := range []string{forged, "\x1b[2Kred", "abc\u202egpj", strings.Repeat("n", 5000)} {
		t.Run(name[:min(len(name), 12)], func(t *testing.T) {
			var stdout bytes.Buffer
			err := dispatch([]string{"apikey", "create", "--db", db, "--name", name, "--scope", "presell"}, &stdout, &bytes.Buffer{})
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--name") || stdout.Len() != 0 {
				t.Fatalf("apikey create: %v, printed %q; want a usage error naming --name and no key", err, stdout.String())
			}
		})
	}

	// What a lane before this check let in, written as it did.
	ldb, err := lanedb.Open(context.Background(), db, lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = ldb.WriteTx(context.Background(), func(tx *lanedb.Tx) error {
		for i, name := range []string{forged, "abc\u202egpj"} {
			if _, err := tx.ExecContext(context.Background(), `INSERT INTO api_keys (key_id, name, scopes, salt, hash, created_utc)
				VALUES (?, ?, 'presell', x'00', x'00', '2026-01-01 00:00:00')`, "oldkey"+string(rune('a'+i)), name); err != nil {
				return err
			}
		}
		return nil
	})
	ldb.Close()
	if err != nil {
		t.Fatal(err)
	}
	var list bytes.Buffer
	if err := dispatch([]string{"apikey", "list", "--db", db}, &list, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	out := list.String()
	if n := strings.Count(out, "\n"); n != 3 || strings.Contains(out, "\u202e") {
		t.Fatalf("apikey list printed %d lines for 2 keys, or a raw override:\n%s", n, out)
	}
	for _, want := range []string{`"evil\n0123456789abcdef`, `"abc\u202egpj"`} {
		if !strings.Contains(out, want) {
			t.Errorf("apikey list lacks the escaped name %s:\n%s", want, out)
		}
	}
}
