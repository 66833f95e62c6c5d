package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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

// TestFixtureRefusedWhileServing: the fixture commands that rewrite a lane
// DB refuse while a lane serves it (it holds lanedb.LockServing, as serve
// does), and leave its sales alone; once the lane stops, they run.
func TestFixtureRefusedWhileServing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "lane.db")
	if err := dispatch([]string{"fixture", "load", "demo", "--db", db}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.db") // a DB generate would build on
	if err := dispatch([]string{"fixture", "load", "empty", "--db", empty}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	sales := func(path string) int {
		t.Helper()
		ldb, err := lanedb.Open(ctx, path, lanedb.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer ldb.Close()
		n, err := ldb.CountRows(ctx, "sales")
		if err != nil {
			t.Fatal(err)
		}
		return int(n)
	}
	ldb, err := lanedb.Open(ctx, db, lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ldb.Exec(ctx, `INSERT INTO sales (physkey, random_key, phase, startdt, updated_utc) VALUES ('s1', 'r1', 0, 'x', 'x')`)
	ldb.Close()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		db   string
	}{
		{[]string{"fixture", "reset"}, db},
		{[]string{"fixture", "load", "demo", "--replace"}, db},
		{[]string{"fixture", "load", "demo"}, db},
		{[]string{"fixture", "generate", "--products", "3", "--sales", "2"}, empty},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			release, err := lanedb.LockServing(tt.db)
			if err != nil || release == nil {
				t.Fatalf("LockServing: %v", err)
			}
			err = dispatch(append(tt.args, "--db", tt.db), io.Discard, io.Discard)
			if !errors.Is(err, lanedb.ErrServing) || !strings.Contains(err.Error(), "stop it first") {
				t.Errorf("while served: %v, want ErrServing", err)
			}
			if tt.db == db && sales(db) != 1 {
				t.Errorf("while served, it changed the sales")
			}
			release()
		})
	}
	for _, args := range [][]string{{"fixture", "reset", "--db", db}, {"fixture", "generate", "--products", "3", "--sales", "2", "--db", empty}} {
		if err := dispatch(args, io.Discard, io.Discard); err != nil {
			t.Errorf("%q once the lane stopped: %v", args, err)
		}
	}
	if n := sales(empty); n != 2 {
		t.Errorf("generate, once the lane stopped, built %d sales, want 2", n)
	}
}

// TestFixtureGenerateBounds: a count generate cannot build is a usage
// error naming the flag and its bound, before any file is made.
func TestFixtureGenerateBounds(t *testing.T) {
	tests := []struct {
		flag, value, want string
	}{
		{"--products", "1000000000000", "--products 1000000000000: want 1 to 1000000"},
		{"--products", "0", "--products 0: want 1 to 1000000"},
		{"--customers", "10000001", "--customers 10000001: want 0 to 10000000"},
		{"--customers", "-1", "--customers -1: want 0 to 10000000"},
		{"--sales", "99999999999", "--sales 99999999999: want 0 to 100000000"},
	}
	for _, tt := range tests {
		t.Run(tt.flag+" "+tt.value, func(t *testing.T) {
			dir := t.TempDir()
			err := dispatch([]string{"fixture", "generate", "--db", filepath.Join(dir, "g.db"), tt.flag, tt.value}, io.Discard, io.Discard)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a usage error with %q", err, tt.want)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("left %s", left[0].Name())
			}
		})
	}
}

// TestFixtureExportNotEmpty: export refuses a folder that holds files, as
// backup refuses to overwrite, and leaves them as they were.
func TestFixtureExportNotEmpty(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "lane.db")
	if err := dispatch([]string{"fixture", "load", "demo", "--db", db}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	// An empty folder is fine; the second export finds it full.
	for i, want := range []string{"", "is not empty"} {
		err := dispatch([]string{"fixture", "export", "--db", db, "--out", out}, io.Discard, io.Discard)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Fatalf("export %d: %v, want %q", i+1, err, want)
		}
		if i == 0 {
			if err := os.WriteFile(filepath.Join(out, "products.jsonl"), []byte("mine\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if body, _ := os.ReadFile(filepath.Join(out, "products.jsonl")); string(body) != "mine\n" {
		t.Errorf("a refused export overwrote products.jsonl: %q", body)
	}
}

// TestFixtureLoadFailedLeavesNoNewDB: a load into a new --db that fails
// (a fixture whose rows the schema refuses) leaves no lane DB under that
// name, nor its -wal and -shm: an empty schema-only DB there would be
// served as a lane with no store. A 0-byte file counts as missing and is
// left as it was.
func TestFixtureLoadFailedLeavesNoNewDB(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.Mkdir(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"fixture.json":     `{"name": "bad"}`,
		"sale_lines.jsonl": `{"sale_physkey": "no-such-sale", "seqnce": 1, "pid": 1, "description": "x", "qty": 1, "unitprice_cents": 1, "prediscountprice_cents": 1, "totalprice_cents": 1}` + "\n",
	} {
		if err := os.WriteFile(filepath.Join(bad, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, empty := range []bool{false, true} {
		t.Run(fmt.Sprintf("empty file there %v", empty), func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "new.db")
			if empty {
				if err := os.WriteFile(db, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := dispatch([]string{"fixture", "load", bad, "--db", db}, io.Discard, io.Discard); err == nil {
				t.Fatal("the load of a fixture the schema refuses succeeded")
			}
			var left []string
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if e.Name() != "new.db-lock" {
					left = append(left, e.Name())
				}
			}
			want := ""
			if empty {
				want = "new.db"
			}
			if strings.Join(left, " ") != want {
				t.Errorf("left after the failed load: %v, want %q", left, want)
			}
			if st, err := os.Stat(db); empty && (err != nil || st.Size() != 0) {
				t.Errorf("the 0-byte file is not as it was: %v", err)
			}
			if err := dispatch([]string{"fixture", "load", "demo", "--db", db}, io.Discard, io.Discard); err != nil {
				t.Fatalf("a good load after it: %v", err)
			}
		})
	}
}
