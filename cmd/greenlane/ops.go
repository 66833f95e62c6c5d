package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/greenlane-pos/greenlane/lanedb"
)

func runBackup(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("backup", "backup --db PATH --out FILE", stderr)
	dbPath := fs.String("db", defaultDB, "lane DB file to copy (the lane may be serving it)")
	out := fs.String("out", "", "file to write the copy to; must not exist")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("backup needs --out FILE (see 'greenlane backup --help')")
	}
	ctx := context.Background()
	res, err := lanedb.Backup(ctx, *dbPath, *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup: wrote %s (%d bytes) in %s\n", *out, res.Bytes, res.Elapsed.Round(1e6))
	// The copy is checked at once: a backup is only worth keeping if it
	// restores to a sound lane.
	return printCheck(ctx, *out, stdout)
}

func runCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", "check --db PATH", stderr)
	dbPath := fs.String("db", defaultDB, "lane DB file to check (opened read-only; the lane may be serving it)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return printCheck(context.Background(), *dbPath, stdout)
}

// printCheck checks the lane DB at path and prints each finding, or "ok".
// Findings are an error, so that the exit status is 1.
func printCheck(ctx context.Context, path string, stdout io.Writer) error {
	found, err := lanedb.CheckFile(ctx, path)
	if err != nil {
		return err
	}
	for _, f := range found {
		fmt.Fprintf(stdout, "check: %s\n", f)
	}
	if len(found) > 0 {
		return fmt.Errorf("check %s: %d problem(s)", path, len(found))
	}
	fmt.Fprintf(stdout, "check %s: ok\n", path)
	return nil
}

func runService(args []string, stdout, stderr io.Writer) error {
	return runSubcommand("service", []subcommand{
		{"install", "install [--user U] [--dir D] [--out FILE] [--force] -- [serve flags]", serviceInstall},
	}, "", args, stdout, stderr)
}

// unitSettings are what a systemd unit for serve is made of.
type unitSettings struct {
	exe   string   // absolute path of the greenlane binary
	user  string   // the account serve runs as
	dir   string   // working directory: where a relative --db lives
	flags []string // serve's flags, as given, less those holding a secret
	// envFile is the absolute path of the environment file holding the
	// serve settings that are secrets, or "" when there are none.
	envFile string
}

// envVar is one environment variable serve reads a setting from.
type envVar struct{ name, value string }

// secretServeFlags are serve's flags whose values may be secrets, each
// with what makes a value one. A process's command line is readable by
// every local user (ps), so a service gets these from an environment file
// only root reads, as serve reads any flag (GREENLANE_DB for --db).
var secretServeFlags = []struct {
	name   string
	secret func(value string) bool
}{
	{"db", dbURLHasPassword},
	{"metrics-token", func(v string) bool { return v != "" }},
}

// dbURLHasPassword reports whether a --db value holds a password: a store
// database URL with one in its user info or as a password parameter, or a
// URL too garbled to tell. An SQLite file name holds none.
func dbURLHasPassword(v string) bool {
	if !lanedb.IsPostgresURL(v) {
		return false
	}
	u, err := url.Parse(v)
	if err != nil {
		return true
	}
	if _, ok := u.User.Password(); ok {
		return true
	}
	q := u.Query()
	return q.Has("password") || q.Has("sslpassword")
}

// secretsApart takes the serve flags in args whose values are secrets
// (secretServeFlags, values as fs parsed them) out of args, as environment
// variables.
func secretsApart(fs *flag.FlagSet, args []string) (rest []string, env []envVar, err error) {
	rest = args
	for _, sf := range secretServeFlags {
		v := fs.Lookup(sf.name).Value.String()
		if !sf.secret(v) {
			continue
		}
		// systemd drops an assignment it finds invalid and would start
		// the lane without it: refused here instead.
		if !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
			return nil, nil, fmt.Errorf("--%s: a control character or invalid UTF-8 cannot go in the service's environment file", sf.name)
		}
		rest = withoutFlag(fs, rest, sf.name)
		env = append(env, envVar{envName(sf.name), v})
	}
	return rest, env, nil
}

// envFileHeader begins every environment file service install writes.
const envFileHeader = "# Secret serve settings of "

// envFileText is env as a systemd EnvironmentFile: each value in double
// quotes, in which a backslash keeps the next of \ " $ ` as it is.
func envFileText(unit string, env []envVar) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s%s, kept off the lane's command line (which every\n# local user can read); readable by root alone.\n", envFileHeader, unit)
	quote := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`")
	for _, v := range env {
		fmt.Fprintf(&b, "%s=\"%s\"\n", v.name, quote.Replace(v.value))
	}
	return b.String()
}

// executable is the path of the running greenlane binary, which the unit
// runs. A variable so that tests, whose binary go test builds under /tmp,
// can name one that a unit may run.
var executable = os.Executable

func serviceInstall(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("service install", "service install [--user U] [--dir D] [--out FILE] [--force] -- [serve flags]", stderr)
	usr := fs.String("user", "", "account the lane runs as (default: $SUDO_USER, else the current user)")
	dir := fs.String("dir", "", "working directory, where a relative --db is kept; must be writable by --user (default: the current directory)")
	out := fs.String("out", "/etc/systemd/system/greenlane.service", "unit file to write")
	envFile := fs.String("env-file", "", "environment file for the serve flags that hold secrets (--metrics-token, a --db URL with a password), root's alone (default: --out with .env for .service)")
	force := fs.Bool("force", false, "overwrite --out if it exists")
	// Everything after the first "--" is serve's, passed on as it is.
	var serveArgs []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, serveArgs = args[:i], args[i+1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	u := unitSettings{user: *usr, flags: serveArgs}
	if u.user == "" {
		u.user = os.Getenv("SUDO_USER")
	}
	if u.user == "" {
		cur, err := user.Current()
		if err != nil {
			return fmt.Errorf("service install: who is the current user (give --user): %w", err)
		}
		u.user = cur.Username
	}
	var err error
	if *dir == "" {
		*dir = "."
	}
	if u.dir, err = filepath.Abs(*dir); err != nil {
		return fmt.Errorf("service install: --dir %q: %w", *dir, err)
	}
	// Everything a start under systemd would trip on is checked now, where
	// the message is seen, not in the journal after every restart.
	if err := errors.Join(unitUserProblem(u.user), unitDirProblem(u.dir)); err != nil {
		return usagef("service install: %v", err)
	}
	acct, err := user.Lookup(u.user)
	if err != nil {
		return usagef("service install: --user %s: no such account on this machine (%v); create it first, e.g. useradd --system %s", u.user, err, u.user)
	}
	if err := dirWritableBy(u.dir, acct); err != nil {
		return usagef("service install: %v", err)
	}
	// The serve flags get serve's own checks, with relative files taken
	// from --dir, serve's working directory under the unit. The installer's
	// GREENLANE_* variables are not read: the unit does not carry them.
	sfs, st := serveFlags(io.Discard)
	if err := parseOnly(sfs, u.flags); err != nil {
		return usagef("serve flags after --: %v", err)
	}
	if err := refuseStoreMode(sfs); err != nil {
		return err
	}
	// At serve's default path (--db not given), the install makes or keeps
	// the DB in --dir, as serve would at its first start there.
	if isDefaultDB(st.dbPath) {
		st.create = true
	}
	if _, _, _, err := checkServe(sfs, st, u.dir, io.Discard); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			return usagef("serve flags after --: %v", err)
		}
		return fmt.Errorf("serve flags after --: %w", err)
	}
	// The unit never carries --create: were the DB lost, a restart would
	// quietly make a new demo store with a new admin key, the very thing
	// --create exists to prevent. The DB it asks for is made once, now.
	// The unit names the DB by its absolute path, the one made or found
	// now, never serve's default: serve makes a missing DB at the default
	// path, and so would turn a lost DB into a new demo store too.
	u.flags = append(withoutFlag(sfs, withoutCreate(sfs, u.flags), "db"), "--db", st.dbPath)
	if err := unitWritableProblem("--db", st.dbPath); err != nil {
		return usagef("service install: %v", err)
	}
	var env []envVar
	if u.flags, env, err = secretsApart(sfs, u.flags); err != nil {
		return usagef("serve flags after --: %v", err)
	}
	envPath, err := envFilePath(*envFile, *out)
	if err != nil {
		return usagef("service install: %v", err)
	}
	if len(env) > 0 {
		u.envFile = envPath
	}
	if u.exe, err = executable(); err != nil {
		return fmt.Errorf("service install: path of this greenlane binary: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(u.exe); err == nil {
		u.exe = resolved
	}
	// `go run` builds into a temporary folder that is gone when it exits:
	// a unit pointing there would fail on the next boot.
	// (Under /tmp, unitFile refuses it outright.)
	if privateTmp(u.exe) == "" && strings.Contains(u.exe, string(filepath.Separator)+"go-build") {
		fmt.Fprintf(stderr, "greenlane: warning: %s is a temporary 'go run' build; build greenlane (go build -o /usr/local/bin/greenlane ./cmd/greenlane) and run service install with that binary\n", u.exe)
	}
	text, err := unitFile(u)
	if err != nil {
		return usagef("service install: %v", err)
	}
	for _, p := range []string{*out, u.envFile} {
		if _, err := os.Stat(p); p != "" && err == nil && !*force {
			return fmt.Errorf("service install: %s exists; give --force to replace it", p)
		}
	}
	if err := makeServiceDB(st, acct, stdout, stderr); err != nil {
		return fmt.Errorf("service install: %w", err)
	}
	name := strings.TrimSuffix(filepath.Base(*out), ".service")
	if u.envFile != "" {
		if err := writePrivate(u.envFile, envFileText(name+".service", env), *force); err != nil {
			return fmt.Errorf("service install: %w", err)
		}
		var names []string
		for _, v := range env {
			names = append(names, v.name)
		}
		fmt.Fprintf(stdout, "wrote %s, readable by root alone: %s, kept off the lane's command line, which every local user can read\n", u.envFile, strings.Join(names, " and "))
	}
	if err := writePrivate(*out, text, *force); err != nil {
		return fmt.Errorf("service install: %w", err)
	}
	if u.envFile == "" {
		if err := removeOldEnvFile(envPath, stdout); err != nil {
			return fmt.Errorf("service install: %w", err)
		}
	}
	fmt.Fprintf(stdout, "wrote %s\nEnable and start the lane (as root):\n  systemctl daemon-reload && systemctl enable --now %s\nIts log:\n  journalctl -u %s -f\n", *out, name, name)
	return nil
}

// removeOldEnvFile removes, when the unit now needs none, the environment
// file an earlier install wrote at path (known by envFileText's first
// line): no unit reads it any more, and it would keep the old secrets.
// A file of anyone else's there is left as it is.
func removeOldEnvFile(path string, stdout io.Writer) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the earlier environment file: %w", err)
	}
	if !strings.HasPrefix(string(b), envFileHeader) {
		return nil
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove the earlier environment file, which holds old secrets: %w", err)
	}
	fmt.Fprintf(stdout, "removed %s, the earlier install's secrets: this unit needs none\n", path)
	return nil
}

// envFilePath is where the unit's environment file goes: given, or --out
// with .env for .service, beside it; absolute, as EnvironmentFile= wants.
func envFilePath(given, out string) (string, error) {
	if given == "" {
		given = strings.TrimSuffix(out, ".service") + ".env"
	}
	p, err := filepath.Abs(given)
	if err != nil {
		return "", fmt.Errorf("--env-file %q: %w", given, err)
	}
	if strings.ContainsAny(p, "\n\r") {
		return "", fmt.Errorf("--env-file %q: want a path on one line", given)
	}
	if unit, err := filepath.Abs(out); err == nil && unit == p {
		return "", fmt.Errorf("--env-file %s is --out, the unit itself", given)
	}
	return p, nil
}

// writePrivate writes text to path, readable by its owner (root) alone,
// always: a unit's serve flags and its environment file hold what may be
// secret, and only systemd, as root, needs to read them. An existing file
// is replaced only with force; it is chmodded too, since it may have been
// readable by all.
func writePrivate(path, text string, force bool) error {
	mode := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		mode = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, mode, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists; give --force to replace it", path)
	}
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("make %s private: %w", path, err)
	}
	if _, err := io.WriteString(f, text); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// withoutCreate is the serve flags args without --create (in any of its
// spellings), each other flag kept with its value.
func withoutCreate(fs *flag.FlagSet, args []string) []string {
	return withoutFlag(fs, args, "create")
}

// withoutFlag is the flags args without the flag drop (in any of its
// spellings, with its value), each other flag kept with its value.
func withoutFlag(fs *flag.FlagSet, args []string, drop string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || a == "-" || !strings.HasPrefix(a, "-") {
			return append(out, args[i:]...) // no flags after these
		}
		name, _, inline := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		f := fs.Lookup(name)
		takesNext := f != nil && !inline && !isBoolFlag(f) && i+1 < len(args)
		if name == drop {
			if takesNext {
				i++ // its value goes with it
			}
			continue
		}
		out = append(out, a)
		if takesNext {
			i++
			out = append(out, args[i]) // its value, even one that starts with -
		}
	}
	return out
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// makeServiceDB makes the lane DB that serve with the unit's flags and
// --create would make at its first start (demo fixture, admin key in
// <db>.apikey; service install asks for it with --create, or without --db,
// for the default path), unless one is
// there, and gives it and its key file to acct, the service's account
// (service install runs as root). Like serve, it keeps lanes off the file
// meanwhile.
func makeServiceDB(st *serveSettings, acct *user.User, stdout, stderr io.Writer) error {
	fresh, err := checkDBPath(st.dbPath, st.create)
	if err != nil || !fresh {
		return err
	}
	release, err := lanedb.LockExclusive(st.dbPath)
	if err != nil {
		return fmt.Errorf("make lane DB %s: %w", st.dbPath, err)
	}
	defer release()
	log, err := newLogger(stderr, "info", "text")
	if err != nil {
		return err
	}
	db, err := openLaneDB(context.Background(), st.dbPath, true, st.db, log)
	if err != nil {
		return fmt.Errorf("make lane DB %s: %w", st.dbPath, err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("make lane DB %s: %w", st.dbPath, err)
	}
	uid, uerr := strconv.Atoi(acct.Uid)
	gid, gerr := strconv.Atoi(acct.Gid)
	if err := errors.Join(uerr, gerr); err != nil {
		return fmt.Errorf("account %s: %w", acct.Username, err)
	}
	if uid != os.Geteuid() {
		if err := giveTo(acct.Username, uid, gid, st.dbPath, st.dbPath+".apikey", st.dbPath+"-wal", st.dbPath+"-shm"); err != nil {
			return fmt.Errorf("%w (run service install as root)", err)
		}
	}
	fmt.Fprintf(stdout, "made lane DB %s (demo fixture), owned by %s; its admin API key is in %s.apikey\n"+
		"the unit serves it without --create: were it lost, the lane stops rather than make a new one\n", st.dbPath, acct.Username, st.dbPath)
	return nil
}

// giveTo gives the files at paths that exist to uid:gid, the account
// called name: a command run as root (sudo) for a lane whose service runs
// as another account must leave files that account can open.
func giveTo(name string, uid, gid int, paths ...string) error {
	for _, p := range paths {
		if err := os.Chown(p, uid, gid); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("give %s to %s: %w", p, name, err)
		}
	}
	return nil
}

// ownerOf is the account that owns the file st describes, where the system
// says (ok false elsewhere).
func ownerOf(st fs.FileInfo) (uid, gid int, ok bool) {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(sys.Uid), int(sys.Gid), true
}

// dirWritableBy reports why acct cannot make files in dir (the lane DB,
// its WAL), or nil, as far as this process can tell. For the current user
// the kernel answers (access(2), which knows read-only mounts too); another
// account is judged by the folder's owner, group and mode bits (an ACL is
// not read), and root writes anywhere.
func dirWritableBy(dir string, acct *user.User) error {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("--dir %s does not exist; make it, owned by %s (install -d -o %s %s)", dir, acct.Username, acct.Username, dir)
	}
	if err != nil {
		return fmt.Errorf("--dir %s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("--dir %s is not a folder", dir)
	}
	cantWrite := fmt.Errorf("--dir %s: %s cannot write there (the lane DB and its WAL are made there); give it the folder (chown %s %s)", dir, acct.Username, acct.Username, dir)
	if cur, err := user.Current(); err == nil && cur.Uid == acct.Uid {
		if err := syscall.Access(dir, 0o2|0o1); err != nil { // W_OK|X_OK
			return cantWrite
		}
		return nil
	}
	uid, gid, ok := ownerOf(st)
	if acct.Uid == "0" || !ok {
		return nil
	}
	perm := st.Mode().Perm()
	var bits fs.FileMode = 0o003 // write and search, for others
	switch {
	case strconv.Itoa(uid) == acct.Uid:
		bits = 0o300
	case inGroup(acct, strconv.Itoa(gid)):
		bits = 0o030
	}
	if perm&bits != bits {
		return cantWrite
	}
	return nil
}

// inGroup reports whether acct is in the group gid.
func inGroup(acct *user.User, gid string) bool {
	if acct.Gid == gid {
		return true
	}
	gids, err := acct.GroupIds()
	if err != nil {
		return false
	}
	return slices.Contains(gids, gid)
}

var unitUser = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// unitUserProblem says why name cannot be the unit's User=, or nil.
func unitUserProblem(name string) error {
	if !unitUser.MatchString(name) {
		return fmt.Errorf("--user %q is not a user name", name)
	}
	return nil
}

// unitDirProblem says why dir cannot be the unit's WorkingDirectory=, or
// nil, from the path alone.
func unitDirProblem(dir string) error {
	if !filepath.IsAbs(dir) || strings.ContainsAny(dir, "\n\r") {
		return fmt.Errorf("--dir %q: want an absolute path on one line", dir)
	}
	return unitWritableProblem("--dir", dir)
}

// unitWritableProblem says why the service could not write at path, named
// by flag, or nil.
func unitWritableProblem(flag, path string) error {
	for _, ro := range []string{"/usr", "/boot", "/etc"} {
		if path == ro || strings.HasPrefix(path, ro+"/") {
			return fmt.Errorf("%s %s: ProtectSystem=full makes %s read-only and the lane DB must be writable; use e.g. /var/lib/greenlane", flag, path, ro)
		}
	}
	// PrivateTmp=yes gives the service an empty /tmp of its own: a lane DB
	// there is not the one install found or made, and one the service made
	// would be gone after every stop.
	if tmp := privateTmp(path); tmp != "" {
		return fmt.Errorf("%s %s: PrivateTmp gives the service its own empty %s; use e.g. /var/lib/greenlane", flag, path, tmp)
	}
	return nil
}

// privateTmp is the folder of PrivateTmp=yes that path is in, or "".
func privateTmp(path string) string {
	for _, tmp := range []string{"/tmp", "/var/tmp"} {
		if path == tmp || strings.HasPrefix(path, tmp+"/") {
			return tmp
		}
	}
	return ""
}

// unitFile is the systemd unit that runs serve as u says. ProtectSystem=full
// leaves only /usr, /boot and /etc read-only, so the lane DB and its WAL in
// the working directory stay writable.
func unitFile(u unitSettings) (string, error) {
	if err := errors.Join(unitUserProblem(u.user), unitDirProblem(u.dir)); err != nil {
		return "", err
	}
	// PrivateTmp=yes gives the service an empty /tmp of its own: a binary
	// there is not found (status 203/EXEC).
	if tmp := privateTmp(u.exe); tmp != "" {
		return "", fmt.Errorf("greenlane is at %s, under %s, which PrivateTmp hides from the service: copy the binary to /usr/local/bin (install -m 0755 %s /usr/local/bin/greenlane) and run service install with that one", u.exe, tmp, u.exe)
	}
	exec := []string{systemdQuote(u.exe), "serve"}
	for _, a := range u.flags {
		exec = append(exec, systemdQuote(a))
	}
	// Without the "-" prefix: a lane whose secrets are missing does not
	// start (one without its metrics token would serve /metrics to all).
	var envFile string
	if u.envFile != "" {
		envFile = "EnvironmentFile=" + strings.ReplaceAll(u.envFile, "%", "%%") + "\n"
	}
	return fmt.Sprintf(`[Unit]
Description=greenlane FD1 lane server
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=%s
WorkingDirectory=%s
%sExecStart=%s
Restart=on-failure
RestartSec=2s
LimitNOFILE=65536
NoNewPrivileges=yes
ProtectSystem=full
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
`, u.user, strings.ReplaceAll(u.dir, "%", "%%"), envFile, strings.Join(exec, " ")), nil
}

// systemdQuote makes arg one word of an ExecStart= line: % and $ are
// doubled (systemd would expand them as specifiers and variables), and a
// word with anything beyond plain path and flag characters is put in
// double quotes with C-style escapes.
func systemdQuote(arg string) string {
	s := strings.NewReplacer("%", "%%", "$", "$$").Replace(arg)
	plain := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_@%$+=:,./-", r))
	}) < 0
	if plain {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`, "\r", `\r`).Replace(s) + `"`
}
