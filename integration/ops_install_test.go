package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/fixtures"
	"github.com/greenlane-pos/greenlane/lanedb"
)

// runExit runs exe with args and returns its exit status and stderr. Each
// run here should end at once; one that serves instead (a refusal gone
// missing) is killed after a minute rather than hang the suite.
func runExit(t *testing.T, exe string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = quietEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s %q did not exit within a minute: %s", exe, args, stderr.String())
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stderr.String()
	}
	t.Fatalf("run %s: %v", exe, err)
	return 0, ""
}

// demoLaneDB makes a lane DB holding the demo fixture at path.
func demoLaneDB(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	db, err := lanedb.Open(ctx, path, lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	demo, err := fixtures.Find("demo")
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.Load(ctx, db, false); err != nil {
		t.Fatal(err)
	}
}

// TestOpsBackupOutOfRoomLeavesNothing: a backup that runs out of room
// exits 1 and leaves neither a partial copy nor its -journal under the
// name, so that the retry, with room, writes it. A file size limit
// (ulimit -f) stands in for the full disk: writes past it fail with EFBIG
// as they would with ENOSPC.
func TestOpsBackupOutOfRoomLeavesNothing(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("needs bash for ulimit -f")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "lane.db")
	demoLaneDB(t, db)
	const limitKiB = 100 // above the -shm file (32 KiB), below the copy
	if st, err := os.Stat(db); err != nil || st.Size() < limitKiB*1024*3/2 {
		t.Fatalf("the demo lane DB is %v bytes (%v): too small for the copy to outgrow %d KiB", st.Size(), err, limitKiB)
	}
	out := filepath.Join(dir, "copy.db")
	code, stderr := runExit(t, bash, "-c", fmt.Sprintf(`ulimit -f %d && exec "$0" "$@"`, limitKiB),
		binary, "backup", "--db", db, "--out", out)
	if code != 1 || !strings.Contains(stderr, "backup") {
		t.Fatalf("backup out of room: exit %d, %q; want exit 1 saying backup failed", code, stderr)
	}
	for _, p := range []string{out, out + "-journal"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the failed backup left %s (%v)", p, err)
		}
	}
	if got, err := cli(t, "backup", "--db", db, "--out", out); err != nil || !strings.Contains(got, ": ok\n") {
		t.Fatalf("retry with room: %q, %v", got, err)
	}
}

// TestOpsNotALaneDB: serve, check and backup each say what a file is when
// it is not a lane DB this greenlane can serve, rather than serving it
// empty or failing on a missing table.
func TestOpsNotALaneDB(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.db")
	sqliteExec(t, other, `CREATE TABLE foo (x INTEGER)`)
	otherBytes, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(dir, "newer.db")
	demoLaneDB(t, newer)
	sqliteExec(t, newer, `INSERT INTO schema_migrations VALUES (9999, 'future', '2030-01-01 00:00:00')`)
	tests := []struct {
		name     string
		args     []string
		wantExit int
		want     string
	}{
		{"serve on an empty file", []string{"serve", "--db", empty, "--addr", "127.0.0.1:0"}, 2, "the file is empty (0 bytes), not a lane DB; add --create"},
		{"serve on another program's file", []string{"serve", "--db", other, "--addr", "127.0.0.1:0"}, 1, "is an SQLite database of another program, not a lane DB"},
		{"check an empty file", []string{"check", "--db", empty}, 1, "is not a lane DB: it holds no tables"},
		{"check another program's file", []string{"check", "--db", other}, 1, "is an SQLite database of another program, not a lane DB"},
		{"check a newer greenlane's", []string{"check", "--db", newer}, 1, "written by a newer greenlane"},
		{"backup into a folder", []string{"backup", "--db", newer, "--out", dir}, 1, dir + " is a folder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stderr := runExit(t, binary, tt.args...)
			if code != tt.wantExit || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, %q; want exit %d saying %q", code, stderr, tt.wantExit, tt.want)
			}
		})
	}
	// Nothing was made of them: the empty file is still empty, and the
	// other program's has no lane table.
	if st, err := os.Stat(empty); err != nil || st.Size() != 0 {
		t.Errorf("the empty file: %v, %v", st, err)
	}
	// serve looked at the other program's file before changing it: its
	// bytes (its journal mode among them) are as they were, and no lock,
	// WAL or shared-memory file was left beside it.
	if b, err := os.ReadFile(other); err != nil || !bytes.Equal(b, otherBytes) {
		t.Errorf("the other program's file changed (%v)", err)
	}
	if left, _ := filepath.Glob(other + "-*"); len(left) > 0 {
		t.Errorf("left beside the other program's file: %v", left)
	}
	if rows := sqliteRows(t, other, `SELECT name FROM sqlite_master`); len(rows) != 1 || rows[0]["name"] != "foo" {
		t.Errorf("the other program's file now holds %v, want its table foo alone", rows)
	}
}

// TestOpsServiceInstallRefuses: service install with the real binary
// refuses serve flags serve would refuse, and refuses a binary under /tmp,
// which the unit's PrivateTmp hides from the service.
func TestOpsServiceInstallRefuses(t *testing.T) {
	// The suite's binary is built under the temporary folder; put a copy
	// under /tmp itself when that is elsewhere.
	exe := binary
	if !strings.HasPrefix(exe, "/tmp/") {
		d, err := os.MkdirTemp("/tmp", "greenlane-exe-")
		if err != nil {
			t.Skipf("no /tmp to put the binary in: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		exe = filepath.Join(d, "greenlane")
		copyFile(t, binary, exe, 0o755)
	}
	unit := filepath.Join(t.TempDir(), "greenlane.service")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad address", []string{"--", "--addr", "nonsense"}, "serve flags after --: --addr: want host:port"},
		{"no lane DB and no --create", []string{"--", "--db", "nonexistent-greenlane.db"}, "no lane DB there; add --create"},
		{"binary under /tmp", []string{"--", "--db", "nonexistent-greenlane.db", "--create"}, "copy the binary to /usr/local/bin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"service", "install", "--user", "root", "--dir", "/", "--out", unit}, tt.args...)
			code, stderr := runExit(t, exe, args...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, %q; want exit 2 saying %q", code, stderr, tt.want)
			}
			if _, err := os.Stat(unit); err == nil {
				t.Fatal("a unit was written")
			}
		})
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOpsForeignFilesLeftAlone: serve, fixture load, backup and restore
// with the real binary refuse another program's file, an SQLite one in WAL
// mode or one that is not SQLite at all, and leave nothing of the attempt:
// the file's bytes are as they were, and nothing (a lock, WAL, shared
// memory, the backup's copy) is made beside it.
func TestOpsForeignFilesLeftAlone(t *testing.T) {
	backup := filepath.Join(t.TempDir(), "backup.db")
	demoLaneDB(t, backup)
	for _, kind := range []string{"SQLite in WAL mode", "not SQLite"} {
		for _, cmd := range []string{"serve", "fixture load", "backup", "restore"} {
			t.Run(kind+"/"+cmd, func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "other.db")
				if kind == "not SQLite" {
					if err := os.WriteFile(path, bytes.Repeat([]byte("another program's data\n"), 50), 0o644); err != nil {
						t.Fatal(err)
					}
				} else {
					sqliteExec(t, path, `PRAGMA journal_mode=WAL; CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('x');`)
				}
				before, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				args := map[string][]string{
					"serve":        {"serve", "--db", path, "--addr", "127.0.0.1:0"},
					"fixture load": {"fixture", "load", "demo", "--db", path, "--replace"},
					"backup":       {"backup", "--db", path, "--out", filepath.Join(dir, "copy.db")},
					"restore":      {"restore", "--db", path, "--from", backup},
				}[cmd]
				if code, stderr := runExit(t, binary, args...); code == 0 || !strings.Contains(stderr, "not a lane DB") {
					t.Errorf("exit %d, %q; want a refusal saying it is not a lane DB", code, stderr)
				}
				if after, err := os.ReadFile(path); err != nil || !bytes.Equal(after, before) {
					t.Errorf("the other program's file changed (%v)", err)
				}
				if entries, _ := os.ReadDir(dir); len(entries) != 1 {
					var names []string
					for _, e := range entries {
						names = append(names, e.Name())
					}
					t.Errorf("left in its folder: %v, want other.db alone", names)
				}
			})
		}
	}
}
