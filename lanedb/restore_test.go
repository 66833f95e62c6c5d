package lanedb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

// counters reads how many rows lane_counters holds, the marker these
// tests write.
func counters(t *testing.T, path string) int {
	t.Helper()
	db, err := openFileRO(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.Get(&n, `SELECT COUNT(*) FROM lane_counters WHERE name LIKE 'restore-test-%'`); err != nil {
		t.Fatal(err)
	}
	return n
}

// crashedWith leaves at dir/lane.db what a lane killed mid-write leaves:
// the DB file and a WAL holding rows not yet copied into it (writes made
// after the backup).
func crashedWith(t *testing.T, src, dir string, rows int) string {
	t.Helper()
	w, err := sqlx.Open("sqlite", fileURI(src)+"?_pragma=wal_autocheckpoint(0)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range rows {
		if _, err := w.Exec(`INSERT INTO lane_counters (name, value) VALUES (?, 1)`, "restore-test-after-"+strings.Repeat("x", i%50)+string(rune('a'+i%26))+time.Now().Format(".000000000")); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(dir, "lane.db")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(src + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := os.Stat(dst + "-wal"); err != nil || st.Size() == 0 {
		t.Fatalf("the crashed lane left no WAL to test with: %v", err)
	}
	return dst
}

// markedBackup makes a lane DB holding one lane counter named marker, and a
// backup of it, in a folder of their own; it returns both paths.
func markedBackup(t *testing.T, marker string) (src, backup string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	src = filepath.Join(dir, "src.db")
	db, err := Open(ctx, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.Exec(`INSERT INTO lane_counters (name, value) VALUES (?, 1)`, marker); err != nil {
		t.Fatal(err)
	}
	db.Close()
	backup = filepath.Join(dir, "backup.db")
	if _, err := Backup(ctx, src, backup); err != nil {
		t.Fatal(err)
	}
	return src, backup
}

// TestRestoreAfterACrash: a backup restored over a lane DB that a crash
// left with a WAL is the backup, sound, and the replaced DB is kept with
// its WAL; while a lane serves the DB, restore refuses and changes nothing.
func TestRestoreAfterACrash(t *testing.T) {
	ctx := context.Background()
	src, backup := markedBackup(t, "restore-test-before")
	lane := crashedWith(t, src, t.TempDir(), 300)
	before := counters(t, lane) // the WAL's rows included

	// A lane serves it: refused, nothing moved.
	release, err := LockServing(lane)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, lane, backup, false, time.Now()); !errors.Is(err, ErrServing) || !strings.Contains(err.Error(), "stop it first") {
		t.Fatalf("restore under a serving lane: %v", err)
	}
	if got := counters(t, lane); got != before {
		t.Fatalf("a refused restore changed the DB: %d rows, had %d", got, before)
	}
	release()

	res, err := Restore(ctx, lane, backup, false, time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if found, err := CheckFile(ctx, lane); err != nil || len(found) > 0 {
		t.Fatalf("the restored DB: %v %v", found, err)
	}
	if got := counters(t, lane); got != 1 {
		t.Fatalf("the restored DB holds %d marker rows, want the backup's 1", got)
	}
	if _, err := os.Stat(lane + "-wal"); err == nil {
		if st, _ := os.Stat(lane + "-wal"); st.Size() > 0 {
			t.Fatal("the crashed DB's WAL is still beside the restored file")
		}
	}
	if want := lane + ".replaced-20261206T210000Z"; res.Kept != want {
		t.Fatalf("kept %q, want %q", res.Kept, want)
	}
	if got := counters(t, res.Kept); got != before {
		t.Fatalf("the kept DB holds %d marker rows, want its %d (its WAL kept with it)", got, before)
	}
	// Once restored, a lane may serve it again.
	release, err = LockServing(lane)
	if err != nil {
		t.Fatal(err)
	}
	release()
}

func TestRestoreRefusesWhatIsNotALaneBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	lane := filepath.Join(dir, "lane.db")
	db, err := Open(ctx, lane, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a database ", 400)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, want string }{
		{junk, "not an SQLite database"},
		{filepath.Join(dir, "missing.db"), "no such file"},
		{dir, "is not a file"},
	} {
		if _, err := Restore(ctx, lane, tc.from, false, time.Now()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("restore from %s: %v; want it to say %q", tc.from, err, tc.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 { // lane.db, lane.db-lock, junk.db: nothing left over
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("files after refused restores: %v", names)
	}
}

// TestLockServingOneAtATime: one lane serves a lane DB file at a time, and
// a rewrite waits for none: whatever name reaches the file (a symbolic
// link, a path spelled another way) finds its lock, and a file with other
// hard links is refused, as no lock could cover them.
func TestLockServingOneAtATime(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	lane := filepath.Join(dir, "lane.db")
	db, err := Open(ctx, lane, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	link := filepath.Join(t.TempDir(), "link.db")
	if err := os.Symlink(lane, link); err != nil {
		t.Fatal(err)
	}
	release, err := LockServing(lane)
	if err != nil || release == nil {
		t.Fatalf("the first lane: %v", err)
	}
	for _, name := range []string{lane, link, filepath.Join(dir, ".", "lane.db")} {
		if r, err := LockServing(name); err == nil || !strings.Contains(err.Error(), "another lane serves it") {
			if r != nil {
				r()
			}
			t.Errorf("a second lane on %s: %v, want it refused", name, err)
		}
		if _, err := LockExclusive(name); !errors.Is(err, ErrServing) {
			t.Errorf("a rewrite of %s under a lane: %v, want ErrServing", name, err)
		}
	}
	release()
	release, err = LockExclusive(link)
	if err != nil {
		t.Fatalf("a rewrite through the link once the lane stopped: %v", err)
	}
	if _, err := LockServing(lane); err == nil || !strings.Contains(err.Error(), "rewriting it") {
		t.Errorf("a lane during a rewrite through a link: %v, want it refused", err)
	}
	release()

	hard := filepath.Join(dir, "hard.db")
	if err := os.Link(lane, hard); err != nil {
		t.Fatal(err)
	}
	for _, lock := range []func(string) (func(), error){LockServing, LockExclusive} {
		if r, err := lock(lane); err == nil || !strings.Contains(err.Error(), "2 hard links") {
			if r != nil {
				r()
			}
			t.Errorf("a DB with another hard link: %v, want it refused", err)
		}
	}
}

// TestLockExclusiveOfNoDB: a rewrite lock taken where there is no DB yet
// holds off a lane meanwhile, and leaves no lock file when the command
// made no DB after all (a fixture that would not load); one that made it
// leaves the lock file, as serve does.
func TestLockExclusiveOfNoDB(t *testing.T) {
	for _, made := range []bool{false, true} {
		t.Run(fmt.Sprint("made=", made), func(t *testing.T) {
			lane := filepath.Join(t.TempDir(), "new.db")
			release, err := LockExclusive(lane)
			if err != nil {
				t.Fatal(err)
			}
			if made {
				writeSQLite(t, lane, `CREATE TABLE schema_migrations (version INTEGER)`)
			}
			release()
			_, err = os.Lstat(lane + lockSuffix)
			if made != (err == nil) {
				t.Errorf("DB made %v: lock file after release: %v", made, err)
			}
		})
	}
}

// TestRestoreLeavesTheDBAsItFoundIt: a restored DB has the mode of the file
// it replaced and, run as root (a sudo restore for a service running as
// another user), its owner; nothing of the copy (<db>.restoring, -wal,
// -shm) is left beside it. With no DB to replace, it is made as SQLite
// makes one (0644 less the umask).
func TestRestoreLeavesTheDBAsItFoundIt(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src.db")
	db, err := Open(ctx, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	backup := filepath.Join(t.TempDir(), "backup.db")
	if _, err := Backup(ctx, src, backup); err != nil {
		t.Fatal(err)
	}
	umask := syscall.Umask(0)
	syscall.Umask(umask)
	root := os.Geteuid() == 0
	for _, tc := range []struct {
		name     string
		existing bool
		mode     os.FileMode
		uid, gid int // the replaced file's owner, given only as root
	}{
		{name: "replaces a 0644 DB", existing: true, mode: 0o644, uid: -1, gid: -1},
		{name: "replaces a 0660 DB of another user", existing: true, mode: 0o660, uid: 4242, gid: 4343},
		{name: "makes a new DB", mode: 0o644 &^ os.FileMode(umask), uid: -1, gid: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			lane := filepath.Join(dir, "lane.db")
			wantUID, wantGID := os.Geteuid(), os.Getegid()
			if tc.existing {
				db, err := Open(ctx, lane, Options{})
				if err != nil {
					t.Fatal(err)
				}
				db.Close()
				if err := os.Chmod(lane, tc.mode); err != nil {
					t.Fatal(err)
				}
				if root && tc.uid >= 0 {
					if err := os.Chown(lane, tc.uid, tc.gid); err != nil {
						t.Fatal(err)
					}
					wantUID, wantGID = tc.uid, tc.gid
				}
			}
			if _, err := Restore(ctx, lane, backup, false, time.Now()); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(lane)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != tc.mode {
				t.Errorf("restored DB mode %v, want %v", st.Mode().Perm(), tc.mode)
			}
			sys := st.Sys().(*syscall.Stat_t)
			if int(sys.Uid) != wantUID || int(sys.Gid) != wantGID {
				t.Errorf("restored DB owned by %d:%d, want %d:%d", sys.Uid, sys.Gid, wantUID, wantGID)
			}
			left, _ := filepath.Glob(lane + ".restoring*")
			if len(left) > 0 {
				t.Errorf("left beside the restored DB: %v", left)
			}
		})
	}
}

// TestForeignFilesLeftAlone: a file of another program, SQLite (in either
// journal mode) or not, is refused as ErrNotLaneDB by every way a command
// reaches a lane DB file, restore onto it among them, and nothing is left
// of the attempt: its bytes are as they were and no file is made beside it
// (no -lock, -wal, -shm, copy or backup).
func TestForeignFilesLeftAlone(t *testing.T) {
	ctx := context.Background()
	backup := filepath.Join(t.TempDir(), "backup.db")
	if db, err := Open(ctx, backup, Options{}); err != nil {
		t.Fatal(err)
	} else if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	foreign := map[string]func(t *testing.T, path string){
		"not SQLite": func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(strings.Repeat("another program's data\n", 50)), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"SQLite, rollback journal": func(t *testing.T, path string) { foreignSQLite(t, path, "DELETE") },
		"SQLite, WAL mode":         func(t *testing.T, path string) { foreignSQLite(t, path, "WAL") },
	}
	ops := map[string]func(path, dir string) error{
		"LockServing": func(path, _ string) error {
			release, err := LockServing(path)
			if release != nil {
				release()
			}
			return err
		},
		"LockExclusive": func(path, _ string) error {
			release, err := LockExclusive(path)
			if release != nil {
				release()
			}
			return err
		},
		"Open": func(path, _ string) error {
			db, err := Open(ctx, path, Options{})
			if db != nil {
				db.Close()
			}
			return err
		},
		"Backup": func(path, dir string) error {
			_, err := Backup(ctx, path, filepath.Join(dir, "copy.db"))
			return err
		},
		"Restore onto it": func(path, _ string) error {
			_, err := Restore(ctx, path, backup, false, time.Now())
			return err
		},
	}
	for fname, mk := range foreign {
		for oname, op := range ops {
			t.Run(fname+"/"+oname, func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "other.db")
				mk(t, path)
				before, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := op(path, dir); !errors.Is(err, ErrNotLaneDB) {
					t.Errorf("err = %v, want ErrNotLaneDB", err)
				}
				if after, err := os.ReadFile(path); err != nil || string(after) != string(before) {
					t.Errorf("the file changed (%v)", err)
				}
				if entries, _ := os.ReadDir(dir); len(entries) != 1 {
					var names []string
					for _, e := range entries {
						names = append(names, e.Name())
					}
					t.Errorf("files beside it after the refusal: %v, want other.db alone", names)
				}
			})
		}
	}
}

// tablelessSQLite makes path an SQLite file that holds no table (a
// user_version set, so the file is written).
func tablelessSQLite(t *testing.T, path string) {
	t.Helper()
	db, err := sqlx.Open("sqlite", fileURI(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`PRAGMA user_version = 7`); err != nil {
		t.Fatal(err)
	}
}

// foreignSQLite makes an SQLite file of another program at path, in the
// journal mode given, closed (SQLite removes its -wal and -shm).
func foreignSQLite(t *testing.T, path, journalMode string) {
	t.Helper()
	db, err := sqlx.Open("sqlite", fileURI(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{"PRAGMA journal_mode=" + journalMode, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)", "INSERT INTO notes (body) VALUES ('x')"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(path + "-*"); len(left) > 0 {
		t.Fatalf("the other program's SQLite left %v", left)
	}
}

// TestRestoreNeverOverwritesAKeptDB: restores run within one second each
// keep the DB they replace under a name of its own, so the first kept DB
// (the original, before any restore) is still there, whole, after the
// second.
func TestRestoreNeverOverwritesAKeptDB(t *testing.T) {
	ctx := context.Background()
	src, backup := markedBackup(t, "restore-test-backup")
	lane := crashedWith(t, src, t.TempDir(), 40) // the original: 41 marker rows, some in its WAL
	original := counters(t, lane)
	now := time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC)
	var kept []string
	for range 3 {
		res, err := Restore(ctx, lane, backup, false, now)
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, res.Kept)
	}
	if kept[0] != lane+".replaced-20261206T210000Z" {
		t.Errorf("first kept as %q", kept[0])
	}
	if kept[0] == kept[1] || kept[1] == kept[2] || kept[0] == kept[2] {
		t.Fatalf("restores in one second kept their DBs under one name: %q", kept)
	}
	if got := counters(t, kept[0]); got != original {
		t.Fatalf("the original DB, kept as %s, holds %d marker rows, want its %d", kept[0], got, original)
	}
	for _, k := range kept[1:] {
		if got := counters(t, k); got != 1 {
			t.Errorf("%s holds %d marker rows, want the backup's 1", k, got)
		}
	}
}

// TestRestoreRefusesABackupThatIsNoLaneDB: a --from that is not already a
// lane DB (empty, 0 bytes; SQLite without tables; another program's; not
// SQLite at all), or that is the --db itself, is refused before anything
// is replaced, naming the --from file the user gave (never the temporary
// copy), and the lane DB is left as it was, with nothing kept or left over.
func TestRestoreRefusesABackupThatIsNoLaneDB(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		make func(t *testing.T, lane, from string) // writes from
		want string
	}{
		{"empty file", func(t *testing.T, _, from string) {
			if err := os.WriteFile(from, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "is empty (0 bytes)"},
		{"SQLite without tables", func(t *testing.T, _, from string) { tablelessSQLite(t, from) }, "holds no tables"},
		{"another program's SQLite", func(t *testing.T, _, from string) { foreignSQLite(t, from, "DELETE") }, "another program"},
		{"not SQLite", func(t *testing.T, _, from string) {
			if err := os.WriteFile(from, []byte(strings.Repeat("not a database ", 400)), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "not an SQLite database"},
		{"the --db itself", func(t *testing.T, lane, from string) {
			if err := os.Symlink(lane, from); err != nil {
				t.Fatal(err)
			}
		}, "is the lane DB itself"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			lane := filepath.Join(dir, "lane.db")
			db, err := Open(ctx, lane, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.w.Exec(`INSERT INTO lane_counters (name, value) VALUES ('restore-test-lane', 1)`); err != nil {
				t.Fatal(err)
			}
			db.Close()
			from := filepath.Join(t.TempDir(), "backup.db")
			tc.make(t, lane, from)

			_, err = Restore(ctx, lane, from, true, time.Now())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), from) || strings.Contains(err.Error(), ".restoring") {
				t.Fatalf("restore from it: %v; want a refusal naming %s that says %q", err, from, tc.want)
			}
			var names []string
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if strings.Join(names, " ") != "lane.db lane.db-lock" {
				t.Errorf("files beside the lane DB after the refusal: %v", names)
			}
			if got := counters(t, lane); got != 1 { // read last: it makes a -shm
				t.Errorf("the lane DB holds %d marker rows after the refusal, want its 1", got)
			}
		})
	}
}
