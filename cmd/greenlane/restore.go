package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
)

func runRestore(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("restore", "restore --db PATH --from BACKUP [--force]", stderr)
	dbPath := fs.String("db", defaultDB, "lane DB file to replace (no lane may be serving it)")
	from := fs.String("from", "", "backup file to restore (made by 'greenlane backup')")
	force := fs.Bool("force", false, "restore a backup even when check finds problems in it")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *from == "" {
		return usagef("restore needs --from BACKUP (see 'greenlane restore --help')")
	}
	if !lanedb.IsPostgresURL(*dbPath) {
		if err := missingFolder(*dbPath); err != nil {
			return err
		}
	}
	res, err := lanedb.Restore(context.Background(), *dbPath, *from, *force, time.Now())
	if err != nil {
		return err
	}
	for _, f := range res.Findings {
		fmt.Fprintf(stdout, "check: %s\n", f)
	}
	fmt.Fprintf(stdout, "restored %s from %s\n", *dbPath, *from)
	if res.Kept != "" {
		fmt.Fprintf(stdout, "the DB it replaced is kept as %s (with its WAL, if it had one)\n", res.Kept)
	}
	if note := staleKeyFile(*dbPath); note != "" {
		fmt.Fprintln(stdout, note)
	}
	return nil
}

// staleKeyFile warns when the DB's admin key file (written on its first
// start) holds a key the restored DB does not let in: the backup is of
// another lane, or older than that key. "" when it works, or there is none.
func staleKeyFile(dbPath string) string {
	keyFile := dbPath + ".apikey"
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return ""
	}
	ok, err := lanedb.KeyFileWorks(context.Background(), dbPath, strings.TrimSpace(string(b)))
	if err != nil || ok {
		return ""
	}
	return fmt.Sprintf("note: %s holds a key this DB does not let in (the backup is of another lane, or older than that key): "+
		"make a new admin key with 'greenlane apikey create --db %s --name admin --scope admin' and put it there", keyFile, dbPath)
}
