package lanedb

import (
	"errors"
	"slices"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// IsBusy reports whether err is SQLite giving up on a lock another
// connection (or another statement) held: SQLITE_BUSY or SQLITE_LOCKED,
// with any extended code (SQLITE_BUSY_SNAPSHOT, SQLITE_LOCKED_SHAREDCACHE…),
// or on PostgreSQL a batch that waited its whole deadline for the store's
// write lock (ErrStoreLocked). The result code decides, never the message
// text, which wrapping or a driver update may change.
func IsBusy(err error) bool {
	if errors.Is(err, ErrStoreLocked) {
		return true
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // the primary code, without the extended bits
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	return false
}

// StorageFault reports whether err is SQLite failing to write the lane
// DB's files, and says why in words an operator can act on: the disk is
// full (SQLITE_FULL), it failed a read or write (SQLITE_IOERR), or the file
// is read-only for this user (SQLITE_READONLY). Such a write did not
// happen, and no retry succeeds until someone fixes the disk, so it is
// told apart from a bug. Every SQLite error in err's tree is looked at: a
// failed ROLLBACK TO may wrap the FULL that caused it.
func StorageFault(err error) (reason string, ok bool) {
	walkErrors(err, func(e error) bool {
		se, isSQLite := e.(*sqlite.Error)
		if !isSQLite {
			return false
		}
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_FULL:
			reason = "the lane's disk is full: free space"
		case sqlite3.SQLITE_IOERR:
			reason = "the lane's disk failed a write (I/O error): check the disk"
		case sqlite3.SQLITE_READONLY:
			reason = "the lane DB is read-only for this user: make it and its folder writable"
		default:
			return false
		}
		return true
	})
	return reason, reason != ""
}

// walkErrors calls fn on err and everything it wraps, depth first, until
// fn returns true.
func walkErrors(err error, fn func(error) bool) bool {
	if err == nil {
		return false
	}
	if fn(err) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return walkErrors(u.Unwrap(), fn)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if walkErrors(e, fn) {
				return true
			}
		}
	}
	return false
}

// isSQLiteCode reports whether err holds an SQLite error whose primary
// code is one of codes.
func isSQLiteCode(err error, codes ...int) bool {
	return walkErrors(err, func(e error) bool {
		se, ok := e.(*sqlite.Error)
		return ok && slices.Contains(codes, se.Code()&0xff)
	})
}
