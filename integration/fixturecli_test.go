package integration

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFixtureRefusedWhileServing: with a lane serving its DB, the fixture
// commands that would wipe or rebuild it exit 1 saying a lane serves it,
// and the lane's sales are still there; once the lane stops, reset runs.
func TestFixtureRefusedWhileServing(t *testing.T) {
	alongside(t)
	l := startLane(t)
	if isStoreURL(l.db) {
		t.Skip("reads the SQLite file; TestStoreFixtureRefusedWhileServing is this test on a store database")
	}
	tab := l.login(presellQuery, l.newKey("tablet-1", "presell"), "")
	k := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, tab, sbA+"sale_add_product", k, map[string]any{"pid": 1001, "qty": 1})
	sale(t, tab, sbA+"sale_park", k, nil)
	sales := func() string {
		return fmt.Sprint(sqliteRows(t, l.db, `SELECT count(*) AS n FROM sales`)[0]["n"])
	}
	if n := sales(); n != "1" {
		t.Fatalf("%s sales before, want 1", n)
	}
	for _, args := range [][]string{
		{"fixture", "reset"}, {"fixture", "load", "demo", "--replace"}, {"fixture", "load", "empty"},
		{"fixture", "generate", "--products", "3", "--sales", "2"},
	} {
		out, err := cli(t, append(args, "--db", l.db)...)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(err.Error(), "a lane is serving it") ||
			!strings.Contains(err.Error(), "stop it first") {
			t.Errorf("%q while the lane serves: %v %s, want status 1: a lane is serving it … stop it first", args, err, out)
		}
		if n := sales(); n != "1" {
			t.Fatalf("after %q the lane DB holds %s sales, want the 1 it served", args, n)
		}
	}
	l.stop()
	if out, err := cli(t, "fixture", "reset", "--db", l.db); err != nil || !strings.Contains(out, "reset ") {
		t.Fatalf("reset once the lane stopped: %v %s", err, out)
	}
	if n := sales(); n != "0" {
		t.Fatalf("reset left %s sales", n)
	}
}

// TestFixtureGenerateKilled: a generate killed half way leaves no lane DB
// under the name (it builds under a temporary one), so nothing can serve
// or check a half store as sound; the next generate builds it whole.
func TestFixtureGenerateKilled(t *testing.T) {
	alongside(t)
	needsOwnLane(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "big.db")
	cmd := exec.Command(binary, "fixture", "generate", "--db", db, "--sales", "100000000")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Killed once it is writing: a WAL with pages in it, under either name.
	for written := false; !written; {
		select {
		case err := <-exited:
			t.Fatalf("generate of 100 million sales ended by itself: %v\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		for _, wal := range []string{db + "-wal", db + ".generating-wal"} {
			if st, err := os.Stat(wal); err == nil && st.Size() > 64<<10 {
				written = true
			}
		}
	}
	_ = cmd.Process.Kill()
	<-exited
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		out, cerr := cli(t, "check", "--db", db)
		t.Fatalf("a killed generate left %s (%v); check says: %s %v", db, err, out, cerr)
	}
	if out, err := cli(t, "fixture", "generate", "--db", db, "--products", "5", "--customers", "2", "--sales", "30"); err != nil {
		t.Fatalf("generate again: %v %s", err, out)
	}
	if out, err := cli(t, "check", "--db", db); err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("check: %v %s", err, out)
	}
	if _, err := os.Stat(db + ".generating"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the killed run's temporary file is still there: %v", err)
	}
}

// TestStrayArgument: a command line with an argument the command does not
// take exits 2 naming it, and writes nothing (it loaded into
// ./greenlane-lane.db instead of --db, or built 10,000 sales instead of 3).
func TestStrayArgument(t *testing.T) {
	alongside(t)
	needsOwnLane(t)
	for _, args := range [][]string{
		{"fixture", "load", "demo", "empty", "--db", "q.db"},
		{"fixture", "generate", "--db", "gg.db", "--products", "5", "oops", "--sales", "3"},
		{"fixture", "reset", "--db", "q.db", "extra"},
		{"fixture", "export", "--db", "q.db", "--out", "e5", "e6"},
	} {
		dir := t.TempDir()
		cmd := exec.Command(binary, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "unexpected argument") {
			t.Errorf("%q: %v %s, want status 2: unexpected argument", args, err, out)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("%q left %s", args, left[0].Name())
		}
	}
}
