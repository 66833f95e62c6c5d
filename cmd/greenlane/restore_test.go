package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/greenlane-pos/greenlane/lanedb"
)

// laneWithKey makes a lane DB at path and writes an admin key of it to
// path.apikey, as serve does on first start.
func laneWithKey(t *testing.T, path string) {
	t.Helper()
	db, err := lanedb.Open(context.Background(), path, lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key, err := db.CreateAPIKey(context.Background(), "admin", []string{"admin"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".apikey", []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreSaysTheKeyFileIsStale: restoring another lane's backup keeps
// the DB's admin key file, whose key that DB does not know: restore says
// so, and how to make one. Its own backup says nothing of the kind.
func TestRestoreSaysTheKeyFileIsStale(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	lane, other := filepath.Join(dir, "lane.db"), filepath.Join(dir, "other.db")
	laneWithKey(t, lane)
	laneWithKey(t, other)
	for _, tt := range []struct {
		name, from string
		stale      bool
	}{
		{"its own backup", lane, false},
		{"another lane's", other, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			backup := filepath.Join(t.TempDir(), "b.db")
			if err := dispatch([]string{"backup", "--db", tt.from, "--out", backup}, io.Discard, io.Discard); err != nil {
				t.Fatalf("backup: %v", err)
			}
			var out bytes.Buffer
			if err := dispatch([]string{"restore", "--db", lane, "--from", backup}, &out, io.Discard); err != nil {
				t.Fatalf("restore: %v\n%s", err, out.String())
			}
			said := strings.Contains(out.String(), "lane.db.apikey holds a key this DB does not let in") &&
				strings.Contains(out.String(), "greenlane apikey create --db "+lane)
			if said != tt.stale {
				t.Errorf("restore of %s printed:\n%s\nwant a note on the stale key file: %v", tt.name, out.String(), tt.stale)
			}
		})
	}
}
