package integration

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// The SQL claimer: a second OS process that claims, renews and releases
// presells by writing the lane DB directly with the statements that
// docs/lanedb.md gives counter programs, taken verbatim from the docs at
// start-up (so the suite fails if the docs drift from what the server
// accepts). The test binary plays it: started with
// GREENLANE_IT_SQLCLAIMER=<db path> it runs sqlClaimerMain and exits.
//
// Protocol, one command per line on stdin, one answer per line on stdout:
//
//	(at start)          ready <session>  |  error <why>
//	claim <physkey> [pause]
//	                    won | lost | error <why>; pause (a Go duration) is
//	                    how long it waits between reading the version and
//	                    claiming, to let others get in between
//	renew <physkey>     ok  | lost | error <why>
//	release <physkey>   ok  | lost | error <why>
const (
	sqlClaimerEnv     = "GREENLANE_IT_SQLCLAIMER"      // the lane DB
	sqlClaimerDocsEnv = "GREENLANE_IT_SQLCLAIMER_DOCS" // docs/lanedb.md
	sqlClaimerName    = "sql-counter"                  // claim_key and claim_name it writes
)

func init() {
	if db := os.Getenv(sqlClaimerEnv); db != "" {
		os.Exit(sqlClaimerMain(db, os.Getenv(sqlClaimerDocsEnv), os.Stdin, os.Stdout))
	}
}

// docSQL are the statements of docs/lanedb.md a counter program runs.
// JournalLock is the store-wide journal lock a program takes on a
// PostgreSQL store database before it journals (the docs' PostgreSQL
// section).
type docSQL struct {
	Claim, Renew, Release, Journal, JournalLock string
}

// docJournalLock finds the journal lock statement in the docs' text.
var docJournalLock = regexp.MustCompile(`SELECT pg_advisory_xact_lock\(\d+\)`)

// readDocSQL extracts the first ```sql block under the headings "Claim …",
// "Renew …", "Release …" and "The journal" of docs/lanedb.md.
func readDocSQL(path string) (docSQL, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return docSQL{}, err
	}
	blocks := map[string]string{} // heading -> its first sql block
	var heading string
	var block []string
	inBlock, isSQL := false, false
	for _, line := range strings.Split(string(text), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case inBlock && strings.HasPrefix(trimmed, "```"):
			if _, seen := blocks[heading]; isSQL && !seen {
				blocks[heading] = strings.TrimSpace(strings.Join(block, "\n"))
			}
			inBlock, block = false, nil
		case inBlock:
			block = append(block, line)
		case strings.HasPrefix(trimmed, "```"):
			inBlock, isSQL = true, strings.TrimSpace(strings.TrimPrefix(trimmed, "```")) == "sql"
		case strings.HasPrefix(trimmed, "#"):
			heading = strings.TrimSpace(strings.TrimLeft(trimmed, "#"))
		}
	}
	find := func(match func(string) bool, what string) (string, error) {
		var found []string
		for h, b := range blocks {
			if match(h) {
				found = append(found, b)
			}
		}
		if len(found) != 1 {
			return "", fmt.Errorf("%s: want one ```sql block under a heading %s, found %d", path, what, len(found))
		}
		return strings.TrimSuffix(found[0], ";"), nil
	}
	firstWord := func(w string) func(string) bool {
		return func(h string) bool { f := strings.Fields(h); return len(f) > 0 && f[0] == w }
	}
	var d docSQL
	if d.Claim, err = find(firstWord("Claim"), `"Claim …"`); err != nil {
		return d, err
	}
	if d.Renew, err = find(firstWord("Renew"), `"Renew …"`); err != nil {
		return d, err
	}
	if d.Release, err = find(firstWord("Release"), `"Release …"`); err != nil {
		return d, err
	}
	if d.Journal, err = find(func(h string) bool { return strings.EqualFold(h, "The journal") }, `"The journal"`); err != nil {
		return d, err
	}
	if strings.Count(d.Journal, "'claimed'") != 1 {
		return d, fmt.Errorf("%s: the journal INSERT should name the event 'claimed' once: %s", path, d.Journal)
	}
	if d.JournalLock = docJournalLock.FindString(string(text)); d.JournalLock == "" {
		return d, fmt.Errorf("%s: no journal lock (SELECT pg_advisory_xact_lock(…)) in the PostgreSQL section", path)
	}
	return d, nil
}

var sqlParam = regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)`)

// namedArgs binds every :name a statement uses from values, and fails on a
// name the program does not know (the docs grew a parameter).
func namedArgs(stmt string, values map[string]any) ([]any, error) {
	var args []any
	seen := map[string]bool{}
	for _, m := range sqlParam.FindAllStringSubmatch(stmt, -1) {
		name := m[1]
		if seen[name] {
			continue
		}
		seen[name] = true
		v, ok := values[name]
		if !ok {
			return nil, fmt.Errorf("the statement uses :%s, which a counter program cannot fill: %s", name, stmt)
		}
		args = append(args, sql.Named(name, v))
	}
	return args, nil
}

// sqlClaimer is the program's state: one connection, one session.
type sqlClaimer struct {
	db      *sql.DB
	doc     docSQL
	release string // the journal INSERT with event 'released'
	session string
	store   bool // a PostgreSQL store database, not the SQLite file
}

func sqlClaimerMain(dbPath, docsPath string, in io.Reader, out io.Writer) int {
	w := bufio.NewWriter(out)
	say := func(format string, args ...any) {
		fmt.Fprintf(w, format+"\n", args...)
		w.Flush()
	}
	doc, err := readDocSQL(docsPath)
	if err != nil {
		say("error %s", oneLine(err))
		return 1
	}
	db, err := openClaimerDB(dbPath)
	if err != nil {
		say("error open: %s", oneLine(err))
		return 1
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	c := &sqlClaimer{db: db, doc: doc, session: newUUID(), store: isStoreURL(dbPath),
		release: strings.Replace(doc.Journal, "'claimed'", "'released'", 1)}
	// Every statement must at least compile against the lane's schema.
	for name, stmt := range map[string]string{"claim": doc.Claim, "renew": doc.Renew, "release": doc.Release, "journal": doc.Journal} {
		p, err := db.Prepare(c.dialect(stmt))
		if err != nil {
			say("error the %s statement of the docs does not compile: %s", name, oneLine(err))
			return 1
		}
		p.Close()
	}
	say("ready %s", c.session)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		verb, physkey, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		physkey, arg, _ := strings.Cut(physkey, " ")
		var answer string
		var err error
		switch verb {
		case "claim":
			var pause time.Duration
			if arg != "" {
				if pause, err = time.ParseDuration(arg); err != nil {
					break
				}
			}
			answer, err = c.claim(physkey, pause)
		case "renew":
			answer, err = c.renew(physkey)
		case "release":
			answer, err = c.releaseClaim(physkey)
		case "":
			continue
		default:
			err = fmt.Errorf("unknown command %q", verb)
		}
		if err != nil {
			say("error %s", oneLine(err))
			continue
		}
		say("%s", answer)
	}
	return 0
}

// openClaimerDB opens the lane DB as a counter program would: the SQLite
// file with the docs' settings (BEGIN IMMEDIATE), or a store database.
func openClaimerDB(dbPath string) (*sql.DB, error) {
	if isStoreURL(dbPath) {
		return sql.Open("pgx", dbPath)
	}
	abs, err := filepath.Abs(dbPath)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	return sql.Open("sqlite", (&url.URL{Scheme: "file", Path: abs}).String()+"?"+q.Encode())
}

// dialect is stmt as the claimer's database takes it: on PostgreSQL each
// :name becomes $n, numbered by first use (the docs keep the names for
// reading; namedArgs gives the values in that order).
func (c *sqlClaimer) dialect(stmt string) string {
	if !c.store {
		return stmt
	}
	num := map[string]int{}
	return sqlParam.ReplaceAllStringFunc(stmt, func(m string) string {
		if _, ok := num[m]; !ok {
			num[m] = len(num) + 1
		}
		return fmt.Sprintf("$%d", num[m])
	})
}

// bind is namedArgs as the claimer's database takes them: positional on
// PostgreSQL.
func (c *sqlClaimer) bind(stmt string, values map[string]any) ([]any, error) {
	args, err := namedArgs(stmt, values)
	if err != nil || !c.store {
		return args, err
	}
	for i, a := range args {
		args[i] = a.(sql.NamedArg).Value
	}
	return args, nil
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }

// values are the parameters a counter program fills in, now.
func (c *sqlClaimer) values(physkey string, version int64) map[string]any {
	now := time.Now()
	return map[string]any{
		"session": c.session, "key_id": sqlClaimerName, "key_name": sqlClaimerName,
		"now_ms": now.UnixMilli(), "now_utc": now.UTC().Format("2006-01-02 15:04:05"),
		"physkey": physkey, "version": version, "force": 0,
	}
}

// write runs stmt and, if it changed exactly one row, journal (when not
// empty), in one BEGIN IMMEDIATE transaction (the DSN's _txlock). It
// reports whether the row changed.
func (c *sqlClaimer) write(stmt, journal string, values map[string]any) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args, err := c.bind(stmt, values)
	if err != nil {
		return false, err
	}
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if c.store && journal != "" {
		// The docs: take the journal lock before the transaction's first
		// journal row; taken first, it is never waited for while this
		// transaction holds the row's lock (greenlane's batches hold it
		// from their BEGIN).
		if _, err := tx.ExecContext(ctx, c.doc.JournalLock); err != nil {
			return false, fmt.Errorf("journal lock: %w", err)
		}
	}
	res, err := tx.ExecContext(ctx, c.dialect(stmt), args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	if n != 1 {
		return false, nil // rolled back by the deferred Rollback: nothing to keep
	}
	if journal != "" {
		jargs, err := c.bind(journal, values)
		if err != nil {
			return false, err
		}
		if _, err := tx.ExecContext(ctx, c.dialect(journal), jargs...); err != nil {
			return false, fmt.Errorf("journal: %w", err)
		}
	}
	return true, tx.Commit()
}

func (c *sqlClaimer) claim(physkey string, pause time.Duration) (string, error) {
	// Read the presell first (the docs read it by ticket; the race knows
	// the physkey), then claim it naming the version read.
	var version int64
	read := `SELECT version FROM sales WHERE physkey = :physkey AND phase IN (0, 5)`
	args, err := c.bind(read, map[string]any{"physkey": physkey})
	if err != nil {
		return "", err
	}
	err = c.db.QueryRow(c.dialect(read), args...).Scan(&version)
	if errors.Is(err, sql.ErrNoRows) {
		return "lost", nil
	}
	if err != nil {
		return "", fmt.Errorf("read version: %w", err)
	}
	if pause > 0 {
		time.Sleep(pause)
	}
	ok, err := c.write(c.doc.Claim, c.doc.Journal, c.values(physkey, version))
	if err != nil || !ok {
		return "lost", err
	}
	return "won", nil
}

func (c *sqlClaimer) renew(physkey string) (string, error) {
	ok, err := c.write(c.doc.Renew, "", c.values(physkey, 0))
	if err != nil || !ok {
		return "lost", err
	}
	return "ok", nil
}

func (c *sqlClaimer) releaseClaim(physkey string) (string, error) {
	ok, err := c.write(c.doc.Release, c.release, c.values(physkey, 0))
	if err != nil || !ok {
		return "lost", err
	}
	return "ok", nil
}

// --- the test side ---

// sqlClaimerProc is a running SQL claimer.
type sqlClaimerProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan string
	stderr  bytes.Buffer
	session string
}

// startSQLClaimer starts the SQL claimer on db and waits until it has read
// the docs and compiled their statements.
func startSQLClaimer(t *testing.T, db string) *sqlClaimerProc {
	t.Helper()
	docs, err := filepath.Abs("../docs/lanedb.md")
	if err != nil {
		t.Fatal(err)
	}
	p := &sqlClaimerProc{lines: make(chan string, 16)}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(quietEnv(), sqlClaimerEnv+"="+db, sqlClaimerDocsEnv+"="+docs)
	p.cmd.Stderr = &p.stderr
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start the SQL claimer: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		_ = p.cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		p.stdin.Close() // EOF: the claimer ends
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-exited
		}
	})
	first := p.read()
	session, ok := strings.CutPrefix(first, "ready ")
	if !ok {
		t.Fatalf("the SQL claimer did not start: %q\n%s", first, p.stderr.String())
	}
	p.session = session
	return p
}

func (p *sqlClaimerProc) read() string {
	select {
	case line, ok := <-p.lines:
		if !ok {
			return "exited: " + p.stderr.String()
		}
		return line
	case <-time.After(30 * time.Second):
		return "timeout: no answer within 30s"
	}
}

// do sends one command and returns the answer. It is safe from one
// goroutine at a time; it does not fail the test, so it can be called
// from goroutines.
func (p *sqlClaimerProc) do(verb, physkey string) string {
	if _, err := fmt.Fprintf(p.stdin, "%s %s\n", verb, physkey); err != nil {
		return "error write: " + err.Error()
	}
	return p.read()
}

// must sends a command and fails the test unless the answer is want.
func (p *sqlClaimerProc) must(t *testing.T, verb, physkey, want string) {
	t.Helper()
	if got := p.do(verb, physkey); got != want {
		t.Fatalf("SQL claimer %s %s: %q, want %q", verb, physkey, got, want)
	}
}
