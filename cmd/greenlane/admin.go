package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/greenlane-pos/greenlane/fixtures"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/web"
)

func runFixture(args []string, stdout, stderr io.Writer) error {
	return runSubcommand("fixture", []subcommand{
		{"list", "list", fixtureList},
		{"load", "load NAME|DIR [--db PATH] [--replace]", fixtureLoad},
		{"export", "export [--db PATH] --out DIR", fixtureExport},
		{"reset", "reset [--db PATH]", fixtureReset},
		{"generate", "generate [--db PATH] --products N --customers N --sales N --seed S", fixtureGenerate},
	}, "", args, stdout, stderr)
}

func fixtureList(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fixture list", "fixture list", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	all, err := fixtures.List()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, f := range all {
		fmt.Fprintf(tw, "%s\t%s\n", f.Name, f.Description)
	}
	return tw.Flush()
}

func fixtureLoad(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fixture load", "fixture load NAME|DIR [--db PATH] [--replace]", stderr)
	dbPath := fs.String("db", defaultDB, "lane DB file (created and migrated if missing)")
	replace := fs.Bool("replace", false, "clear the store data already in the DB first (API keys are kept)")
	if err := parseArgs(fs, args, 1); err != nil {
		return err
	}
	name := fs.Arg(0)
	if name == "" {
		fs.Usage()
		return usagef("fixture load needs a fixture name (greenlane fixture list lists them)")
	}
	f, err := fixtures.Find(name)
	if err != nil {
		return err
	}
	// With --replace a load wipes the sales a lane may be serving; without,
	// it still changes the store under a lane, or races one started with
	// --create on a new DB.
	release, err := lockRewrite("fixture load", *dbPath, true)
	if err != nil {
		return err
	}
	defer release()
	path, err := f.LoadFile(context.Background(), *dbPath, *replace)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "loaded fixture %s into %s\n", f.Name, path)
	return nil
}

func fixtureExport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fixture export", "fixture export [--db PATH] --out DIR", stderr)
	dbPath := fs.String("db", defaultDB, "lane DB file")
	out := fs.String("out", "", "folder to write the fixture to (one JSON Lines file per table)")
	name := fs.String("name", "", "the fixture's name (default: the folder's name)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		fs.Usage()
		return usagef("fixture export needs --out")
	}
	db, err := openExisting(*dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	if *name == "" {
		*name = filepath.Base(filepath.Clean(*out))
	}
	if err := fixtures.Export(context.Background(), db, *out, *name); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "exported %s to %s\n", db.Path, *out)
	return nil
}

func fixtureReset(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fixture reset", "fixture reset [--db PATH]", stderr)
	dbPath := fs.String("db", defaultDB, "lane DB file, restored to the fixture it was loaded from (API keys are kept)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	release, err := lockRewrite("fixture reset", *dbPath, false)
	if err != nil {
		return err
	}
	defer release()
	db, err := openExisting(*dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	start := time.Now()
	f, err := fixtures.Reset(context.Background(), db)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "reset %s to fixture %s in %s\n", db.Path, f.Name, time.Since(start).Round(time.Millisecond))
	return nil
}

func fixtureGenerate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fixture generate", "fixture generate [--db PATH] --products N --customers N --sales N --seed S", stderr)
	dbPath := fs.String("db", defaultDB, "lane DB file to build the store in: a new one, or one with no store data (its API keys are kept)")
	var o fixtures.GenerateOptions
	fs.IntVar(&o.Products, "products", 1000, "products (each with a PLU and a barcode)")
	fs.IntVar(&o.Customers, "customers", 1000, "customers")
	fs.IntVar(&o.Sales, "sales", 10000, "completed historic sales")
	fs.Uint64Var(&o.Seed, "seed", 1, "the same seed builds the same store")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for _, c := range []struct {
		flag      string
		n, lo, hi int
	}{
		{"--products", o.Products, 1, fixtures.MaxProducts},
		{"--customers", o.Customers, 0, fixtures.MaxCustomers},
		{"--sales", o.Sales, 0, fixtures.MaxSales},
	} {
		if c.n < c.lo || c.n > c.hi {
			return usagef("%s %d: want %d to %d (see 'greenlane fixture generate --help')", c.flag, c.n, c.lo, c.hi)
		}
	}
	if *dbPath == "" {
		return usagef("--db is empty; name a new lane DB file")
	}
	ctx := context.Background()
	o.Progress = stderr
	if lanedb.IsPostgresURL(*dbPath) {
		// A store database is made by its administrator, not renamed
		// into place: it is built where it is.
		release, err := lockRewrite("fixture generate", *dbPath, true)
		if err != nil {
			return err
		}
		defer release()
		db, err := lanedb.Open(ctx, *dbPath, lanedb.Options{})
		if err != nil {
			return err
		}
		defer db.Close()
		if err := fixtures.Generate(ctx, db, o); err != nil {
			return err
		}
	} else {
		release, err := lockRewrite("fixture generate", *dbPath, true)
		if err != nil {
			return err
		}
		defer release()
		if err := fixtures.GenerateFile(ctx, *dbPath, o); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "generated %d products, %d customers and %d sales (seed %d) in %s\n", o.Products, o.Customers, o.Sales, o.Seed, *dbPath)
	return nil
}

// lockRewrite keeps lanes off the SQLite lane DB file at path while a
// fixture command rewrites it (lanedb.LockExclusive): a lane serving it
// would go on serving a store replaced under it, the day's sales gone and
// the journal back at seq 1, without a word. It refuses while a lane
// serves it. With create false, a DB that does not exist is not locked
// (the command refuses it anyway, and no lock file is left for it); nor is
// a path whose folder does not exist or that is a folder (opening it says
// why). A PostgreSQL store database is locked the same way with its store
// lock (lanedb.LockStoreExclusive), which every lane serving it holds
// shared.
func lockRewrite(what, path string, create bool) (release func(), err error) {
	none := func() {}
	if lanedb.IsPostgresURL(path) {
		if release, err = lanedb.LockStoreExclusive(context.Background(), path, lanedb.Options{}); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return release, nil
	}
	if path == "" {
		return none, nil
	}
	if st, err := os.Stat(filepath.Dir(path)); err != nil || !st.IsDir() {
		return none, nil
	}
	if st, err := os.Stat(path); (err != nil && !create) || (err == nil && st.IsDir()) {
		return none, nil
	}
	release, err = lanedb.LockExclusive(path)
	if err != nil {
		return nil, fmt.Errorf("%s: lane db %s: %w", what, path, err)
	}
	return release, nil
}

func runAPIKey(args []string, stdout, stderr io.Writer) error {
	return runSubcommand("apikey", []subcommand{
		{"create", "create [--db PATH] --name NAME --scope SCOPE[,SCOPE…] [--qr [--url-base URL]]", apikeyCreate},
		{"list", "list [--db PATH]", apikeyList},
		{"revoke", "revoke ID|NAME [--db PATH]", apikeyRevoke},
	}, "Scopes: presell, counter, display, debug, admin.", args, stdout, stderr)
}

// missingFolder refuses a lane DB path whose folder does not exist, as a
// usage error that says so: the advice to create the DB would fail there
// too, and SQLite's own words ("unable to open database file", a lock
// file's ENOENT) do not name the folder.
func missingFolder(path string) error {
	folder := filepath.Dir(path)
	if d, err := os.Stat(folder); err != nil || !d.IsDir() {
		return usagef("--db %s: folder %s does not exist (check the path, or create the folder first)", path, folder)
	}
	return nil
}

// openExisting opens a lane DB that must already exist.
func openExisting(path string) (*lanedb.DB, error) {
	if path == "" {
		return nil, usagef("--db is empty; name a lane DB file (default %s)", defaultDB)
	}
	if lanedb.IsPostgresURL(path) {
		// A store database exists once its administrator created it; Open
		// says so if it does not, or cannot be reached.
		return lanedb.Open(context.Background(), path, lanedb.Options{})
	}
	if err := missingFolder(path); err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err != nil {
		// serve makes the default DB by itself, and any other only with
		// --create: the hint gives the command that works for this path.
		create := "greenlane serve --db " + path + " --create"
		if isDefaultDB(path) {
			create = "greenlane serve"
		}
		return nil, fmt.Errorf("lane DB %s: %w (start '%s' or run 'greenlane fixture load demo --db %s' to create it)", path, err, create, path)
	}
	return lanedb.Open(context.Background(), path, lanedb.Options{})
}

func apikeyCreate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("apikey create", "apikey create [--db PATH] --name NAME --scope SCOPE[,SCOPE…] [--qr [--url-base URL]]", stderr)
	dbPath := fs.String("db", defaultDB, "lane DB file")
	name := fs.String("name", "", "who holds the key, e.g. tablet-3 or counter-1 (shown in logs and on presells)")
	scope := fs.String("scope", "", "comma-separated scopes: presell, counter, display, debug, admin")
	qr := fs.Bool("qr", false, "also print on stderr a QR code of the tablet pairing link URL-BASE/tablet/#key=KEY, for the tablet's camera")
	urlBase := fs.String("url-base", "http://127.0.0.1:3490", "the lane's address as the tablet reaches it, for --qr (give the LAN address, e.g. http://192.168.1.20:3490)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *name == "" || *scope == "" {
		fs.Usage()
		return usagef("apikey create needs --name and --scope")
	}
	scopes, err := protocol.ParseScopes(*scope)
	if err != nil {
		return usagef("--scope: %v", err)
	}
	// Checked before the key exists, so a bad address leaves no stray key.
	var base string
	if *qr {
		if base, err = pairingBase(*urlBase); err != nil {
			return usagef("--url-base: %v", err)
		}
	}
	db, err := openExisting(*dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	names := make([]string, len(scopes))
	for i, s := range scopes {
		names[i] = string(s)
	}
	key, err := db.CreateAPIKey(context.Background(), *name, names)
	if errors.Is(err, lanedb.ErrBadKeyName) {
		return usagef("--name: %v", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, key)
	if *qr {
		// The key rides in the fragment: browsers never send it to a
		// server, so it stays out of access logs and proxies.
		link := pairingURL(base, key)
		code, err := web.QRTerminal(link)
		if err != nil {
			return fmt.Errorf("pairing QR: %w", err)
		}
		fmt.Fprintf(stderr, "Scan this with the tablet's camera: it opens %s and pairs the tablet as %s.\nThe link holds the key: show it only to that device.\n%s", link, *name, code)
		if note := loopbackNote(base); note != "" {
			fmt.Fprintln(stderr, note)
		}
	}
	return nil
}

// loopbackNote is what to do instead when the pairing link's base is this
// machine's loopback address (the default): on a tablet that address is
// the tablet itself, so the QR opens nothing. "" for any other base.
func loopbackNote(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	if !strings.EqualFold(host, "localhost") && (ip == nil || !ip.IsLoopback()) {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = "3490"
	}
	lan := "<this machine's LAN address>"
	if ips := lanIPs(&net.TCPAddr{IP: net.IPv4zero}); len(ips) > 0 {
		lan = ips[0]
	}
	return fmt.Sprintf("Note: %s is this machine's own loopback address; no tablet can reach it, so this QR opens nothing there. "+
		"Run the lane on the network (greenlane serve --addr 0.0.0.0:%s) and make the QR with --url-base %s://%s.",
		u.Host, port, u.Scheme, net.JoinHostPort(lan, port))
}

// pairingBase checks --url-base: an http or https address with a host and
// no query or fragment (the pairing link adds its own path and fragment).
func pairingBase(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an http:// or https:// address with a host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q: give only scheme, host, port and an optional path", raw)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// pairingURL is the link the tablet page reads its key from (#key=).
func pairingURL(base, key string) string {
	return base + "/tablet/#key=" + url.QueryEscape(key)
}

func apikeyList(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("apikey list", "apikey list [--db PATH]", stderr)
	dbPath := fs.String("db", defaultDB, "lane DB file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	db, err := openExisting(*dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	keys, err := db.ListAPIKeys(context.Background())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tCREATED (UTC)\tREVOKED (UTC)")
	for _, k := range keys {
		revoked := "-"
		if k.RevokedUTC.Valid {
			revoked = k.RevokedUTC.String
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.KeyID, listedName(k.Name), k.Scopes, k.CreatedUTC, revoked)
	}
	return tw.Flush()
}

// listedName is a key name as apikey list shows it: as it is when
// CreateAPIKey would accept it today, else quoted with Go escapes (\n,
// \u202e), so that a name an older lane stored cannot break or forge rows.
func listedName(name string) string {
	if lanedb.CheckKeyName(name) != nil {
		return strconv.QuoteToASCII(name)
	}
	return name
}

func apikeyRevoke(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("apikey revoke", "apikey revoke ID|NAME [--db PATH]", stderr)
	dbPath := fs.String("db", defaultDB, "lane DB file")
	if err := parseArgs(fs, args, 1); err != nil {
		return err
	}
	which := fs.Arg(0)
	if which == "" {
		fs.Usage()
		return usagef("apikey revoke needs the key's id or name")
	}
	db, err := openExisting(*dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	id, err := db.RevokeAPIKey(context.Background(), which)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked API key %s\n", id)
	return nil
}
