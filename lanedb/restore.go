package lanedb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	sqlite3 "modernc.org/sqlite/lib"
)

// A lane DB is restored from a backup only while no lane serves it: the
// backup must replace the DB file and its WAL together. Left beside the
// restored file, the old WAL would be replayed onto it, page by page, and
// corrupt it. serve holds an exclusive lock on <db>-lock for as long as it
// runs; Restore and the fixture commands that rewrite a lane DB take it
// too, so each waits for none of the others: they refuse.

// lockSuffix names the file whose lock says that a lane serves a DB. It
// is a file of its own: a lock taken on the DB file would be dropped
// whenever any descriptor of it closed (POSIX record locks), SQLite's own
// included.
const lockSuffix = "-lock"

// ErrServing is the error of Restore, LockExclusive and LockStoreExclusive
// when a lane is serving the DB.
var ErrServing = errors.New("a lane is serving it")

// LockServing marks the lane DB at path as served until release is called
// (serve calls it before opening the DB, and again once it has made a new
// one; it releases after closing it). It fails while another lane serves
// the same file, or a restore or fixture command rewrites it: two lanes on
// one SQLite file would each take the other's counters' claims back as
// abandoned and each sweep it. A DB that does not exist yet gets no lock
// (release is nil: a start refused for it leaves no file behind), nor does
// one whose lock file cannot be made at all (a name too long): opening the
// DB there fails too, and says why. Another program's SQLite file is
// refused (ErrNotLaneDB) with no lock file made.
func LockServing(path string) (release func(), err error) {
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		return nil, nil // not a lane DB yet (an empty file is not one)
	}
	// Another program's SQLite file is refused before a lock file is
	// made beside it: serve refuses it anyway, and must leave it alone.
	if err := RefuseForeign(context.Background(), path); err != nil {
		return nil, err
	}
	f, name, err := lockFile(path)
	var links *hardLinksError
	switch {
	case errors.As(err, &links):
		return nil, err
	case errors.Is(err, syscall.EWOULDBLOCK):
		return nil, fmt.Errorf("lane db %s is in use: another lane serves it, or a restore or fixture command is rewriting it (it holds %s): stop that first", path, name)
	case err != nil:
		return nil, nil
	}
	return func() { f.Close() }, nil
}

// LockExclusive marks the lane DB at path as being replaced or rebuilt
// until release is called: it fails with ErrServing while a lane serves
// it, and a lane cannot start on it meanwhile (LockServing fails). Restore
// takes it, and so do the fixture commands that rewrite a lane DB file.
// The lock file is made even when the DB does not exist yet, so that a
// lane started with --create cannot begin serving a DB being built. A file
// of another program at path is refused (ErrNotLaneDB) before any lock
// file is made: no command rewrites it, and none leaves a file beside it.
func LockExclusive(path string) (release func(), err error) {
	if err := RefuseForeign(context.Background(), path); err != nil {
		return nil, err
	}
	_, statErr := os.Lstat(path)
	absent := errors.Is(statErr, os.ErrNotExist)
	f, name, err := lockFile(path)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, fmt.Errorf("%w, or another command is rewriting it (it holds %s): stop it first", ErrServing, name)
	}
	if err != nil {
		return nil, err
	}
	return func() {
		// A command that was to make the DB and failed (a fixture that
		// would not load) leaves no lock file where there is no DB.
		if _, err := os.Lstat(path); absent && errors.Is(err, os.ErrNotExist) {
			_ = os.Remove(name)
		}
		f.Close()
	}, nil
}

// lockName is the lock file of the lane DB at path: beside the file the
// path finally names, so that a symbolic link to a lane DB, or a path
// spelled another way, shares the DB's lock instead of making its own.
func lockName(path string) string {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	} else if dir, err := filepath.EvalSymlinks(filepath.Dir(path)); err == nil {
		path = filepath.Join(dir, filepath.Base(path)) // the DB is not made yet
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return path + lockSuffix
}

// hardLinksError refuses a lane DB file that has other names (hard
// links): the lock beside one name cannot keep a lane or a rewrite off the
// others, and SQLite itself cannot tell that they are one file.
type hardLinksError struct {
	path  string
	links uint64
}

func (e *hardLinksError) Error() string {
	return fmt.Sprintf("lane db %s has %d hard links (other names for the same file): a lane or a command using another name would not see this one's lock; keep one name (remove the others)", e.path, e.links)
}

// lockFile takes the exclusive lock of the lane DB at path, without
// waiting (EWOULDBLOCK when it is held), and returns the lock file's name.
func lockFile(path string) (*os.File, string, error) {
	name := lockName(path)
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err == nil && st.Nlink > 1 && st.Mode&syscall.S_IFMT == syscall.S_IFREG {
		return nil, name, &hardLinksError{path: path, links: uint64(st.Nlink)}
	}
	// Read-only and readable by all: flock needs no write access, and a
	// lock file first made by root (a restore run with sudo) must still
	// be lockable by the service's own user, or its lane would hold no lock.
	f, err := os.OpenFile(name, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, name, fmt.Errorf("lock file %s: %w", name, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, name, fmt.Errorf("lock %s: %w", name, err)
	}
	return f, name, nil
}

// Restored says what Restore did.
type Restored struct {
	Findings []Finding // what check found in the backup (only with force)
	Kept     string    // where the DB it replaced was moved ("" if there was none)
}

// Restore replaces the lane DB at path by a copy of the backup file from,
// with no lane serving it (ErrServing otherwise). The backup is copied,
// brought to this greenlane's schema and checked before anything is
// replaced; a backup that check finds fault with is refused unless force.
// The DB it replaces is kept, with its WAL, as <path>.replaced-<time>; the
// restored file takes its mode (and, run as root, its owner), and no file
// of the copy (<path>.restoring…) is left beside it.
func Restore(ctx context.Context, path, from string, force bool, now time.Time) (*Restored, error) {
	release, err := LockExclusive(path)
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", path, err)
	}
	defer release()
	if isSameFile(path, from) {
		return nil, fmt.Errorf("restore %s: --from %s is the lane DB itself: name a backup that 'greenlane backup' wrote", path, from)
	}
	tmp := path + ".restoring"
	RemoveDB(tmp)
	if err := copyFile(from, tmp); err != nil {
		RemoveDB(tmp)
		return nil, fmt.Errorf("restore %s: copy %s: %w", path, from, err)
	}
	// The copy, not from, is what would be restored. Opening it as a lane
	// DB would build the schema into an empty file and serve an empty
	// store from it, so it must already hold one.
	if err := requireLaneDB(ctx, tmp, "the backup "+from); err != nil {
		RemoveDB(tmp)
		return nil, fmt.Errorf("restore %s: %w: name a backup that 'greenlane backup' wrote", path, err)
	}
	res, err := readyBackup(ctx, tmp, from, force)
	if err != nil {
		RemoveDB(tmp)
		return nil, fmt.Errorf("restore %s: %w", path, err)
	}
	if err := likeReplaced(tmp, path); err != nil {
		RemoveDB(tmp)
		return nil, fmt.Errorf("restore %s: %w", path, err)
	}
	if _, err := os.Stat(path); err == nil {
		if res.Kept, err = keepDB(path, path+".replaced-"+now.UTC().Format("20060102T150405Z")); err != nil {
			RemoveDB(tmp)
			return nil, fmt.Errorf("restore %s: keep the DB it replaces: %w", path, err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("restore %s: %w", path, err)
	}
	return res, SyncPath(filepath.Dir(path))
}

// isSameFile reports whether a and b name one file (the same path, a
// symbolic link to it, another spelling).
func isSameFile(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}

// requireLaneDB refuses the file at path unless it already is a lane DB
// (the schema's tables, its migrations recorded), naming it label: an
// empty file, SQLite without tables, another program's SQLite file and a
// file that is not SQLite are ErrNotLaneDB. It reads the file read-only
// and leaves nothing beside it.
func requireLaneDB(ctx context.Context, path, label string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	st, err := os.Stat(abs)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", label, err)
	case !st.Mode().IsRegular():
		return fmt.Errorf("%s is not a file", label)
	case st.Size() == 0:
		return fmt.Errorf("%s is empty (0 bytes): %w", label, ErrNotLaneDB)
	}
	v, err := peekSchemaVersion(ctx, abs, label)
	switch {
	case isSQLiteCode(err, sqlite3.SQLITE_NOTADB):
		return fmt.Errorf("%s is not an SQLite database: %w", label, ErrNotLaneDB)
	case err != nil:
		return err
	case v == 0:
		return fmt.Errorf("%s is an SQLite file that holds no tables: %w", label, ErrNotLaneDB)
	}
	return nil
}

// readyBackup opens the copy at tmp as a lane DB (migrating an older
// schema, refusing a newer one), closes it so that nothing of it is left in
// a WAL, and checks it.
func readyBackup(ctx context.Context, tmp, from string, force bool) (*Restored, error) {
	db, err := Open(ctx, tmp, Options{})
	if err != nil {
		return nil, fmt.Errorf("the backup %s does not open as a lane DB: %w", from, err)
	}
	if err := db.Close(); err != nil {
		return nil, fmt.Errorf("close the copy of %s: %w", from, err)
	}
	if st, err := os.Stat(tmp + "-wal"); err == nil && st.Size() > 0 {
		return nil, fmt.Errorf("the copy of %s kept a WAL after closing", from)
	}
	found, err := CheckFile(ctx, tmp)
	if err != nil {
		return nil, fmt.Errorf("check the backup %s: %w", from, err)
	}
	// Only now: check's read-only connection makes a -shm and an empty
	// -wal beside a WAL-mode file and cannot remove them when it closes.
	// Left, they would stay beside the DB as <db>.restoring-shm and -wal.
	if st, err := os.Stat(tmp + "-wal"); err == nil && st.Size() > 0 {
		return nil, fmt.Errorf("the copy of %s has a WAL after check", from)
	}
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		os.Remove(tmp + suffix) // empty, or never made in WAL mode
	}
	if len(found) > 0 && !force {
		return nil, fmt.Errorf("the backup %s fails check (%d problem(s), the first: %s): restore it anyway with --force", from, len(found), found[0])
	}
	return &Restored{Findings: found}, nil
}

// likeReplaced gives the restored copy at tmp the mode of the DB file at
// path it is to replace and, when run as root, its owner: a restore run
// with sudo for a lane whose service runs as another user must leave a DB
// that user can still open and write. With no DB at path, tmp keeps the
// mode it was made with (0644 less the umask, as SQLite makes a new DB).
func likeReplaced(tmp, path string) error {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the mode of the DB it replaces: %w", err)
	}
	if err := os.Chmod(tmp, st.Mode().Perm()); err != nil {
		return fmt.Errorf("give the restored DB the mode of the one it replaces: %w", err)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
		if err := os.Chown(tmp, int(sys.Uid), int(sys.Gid)); err != nil {
			return fmt.Errorf("give the restored DB the owner of the one it replaces: %w", err)
		}
	}
	return nil
}

// dbSuffixes are the files SQLite keeps beside a DB in WAL mode; a DB
// moved without them loses what its WAL holds.
var dbSuffixes = []string{"-wal", "-shm", ""}

// keepDB moves the DB file at path, with its WAL and shared-memory files,
// to a name that nothing holds yet: base, else base.2, base.3 and so on,
// and returns the name. A kept DB may be the only copy of a store (two
// restores in one second would otherwise both pick base, and the second
// rename would overwrite the first kept DB), so a name is claimed by
// creating it with O_EXCL, which no other file can already hold, before
// the DB is renamed onto it.
func keepDB(path, base string) (string, error) {
	for n := 1; n <= 1000; n++ {
		name := base
		if n > 1 {
			name = fmt.Sprintf("%s.%d", base, n)
		}
		err := claimNames(name)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if err := moveDB(path, name); err != nil {
			return "", err
		}
		return name, nil
	}
	return "", fmt.Errorf("%s and its next 999 numbered names are all taken: move some of those kept DBs away", base)
}

// claimNames creates name and its -wal and -shm names as empty files, each
// only if no file holds it (os.ErrExist otherwise, with none of them left
// made), for moveDB to rename onto.
func claimNames(name string) error {
	var made []string
	for _, suffix := range dbSuffixes {
		f, err := os.OpenFile(name+suffix, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			for _, m := range made {
				os.Remove(m)
			}
			if errors.Is(err, os.ErrExist) {
				return err
			}
			return fmt.Errorf("claim the name %s: %w", name+suffix, err)
		}
		f.Close()
		made = append(made, name+suffix)
	}
	return nil
}

// moveDB renames a DB file with its WAL and shared-memory files onto the
// names claimNames made for them, so that SQLite finds them together under
// the new name. A claimed name with no file to move, or left unused by a
// rename that failed, is removed again: it is our own empty file.
func moveDB(from, to string) error {
	for i, suffix := range dbSuffixes {
		err := os.Rename(from+suffix, to+suffix)
		if errors.Is(err, os.ErrNotExist) {
			os.Remove(to + suffix)
			continue
		}
		if err != nil {
			for _, rest := range dbSuffixes[i:] {
				os.Remove(to + rest)
			}
			return err
		}
	}
	return nil
}

// RemoveDB removes an SQLite file with its WAL, shared memory and
// journal, as a half-made copy of one is cleared away.
func RemoveDB(path string) {
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		os.Remove(path + suffix)
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	if st, err := in.Stat(); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a file", from)
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// SyncPath makes a file's contents, or the renames in a folder, durable.
func SyncPath(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
