package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/greenlane-pos/greenlane/lanedb"
)

func runBackup(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("backup", "backup --db PATH --out FILE", stderr)
	dbPath := fs.String("db", defaultDB, "lane DB file to copy (the lane may be serving it)")
	out := fs.String("out", "", "file to write the copy to; must not exist")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("backup takes no arguments, got %q", fs.Args())
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
	if fs.NArg() > 0 {
		return usagef("check takes no arguments, got %q", fs.Args())
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
	flags []string // serve's flags, as given
}

func serviceInstall(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("service install", "service install [--user U] [--dir D] [--out FILE] [--force] -- [serve flags]", stderr)
	usr := fs.String("user", "", "account the lane runs as (default: $SUDO_USER, else the current user)")
	dir := fs.String("dir", "", "working directory, where a relative --db is kept; must be writable by --user (default: the current directory)")
	out := fs.String("out", "/etc/systemd/system/greenlane.service", "unit file to write")
	force := fs.Bool("force", false, "overwrite --out if it exists")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	u := unitSettings{user: *usr, flags: fs.Args()}
	// The serve flags are checked now, not at the first start under
	// systemd, where a typo would only show in the journal.
	sfs, _ := serveFlags(io.Discard)
	if err := parseOnly(sfs, u.flags); err != nil {
		return usagef("serve flags after --: %v", err)
	}
	if sfs.NArg() > 0 {
		return usagef("serve takes no arguments, got %q after --", sfs.Args())
	}
	if err := refuseStoreMode(sfs); err != nil {
		return err
	}
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
	if u.exe, err = os.Executable(); err != nil {
		return fmt.Errorf("service install: path of this greenlane binary: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(u.exe); err == nil {
		u.exe = resolved
	}
	// `go run` builds into a temporary folder that is gone when it exits:
	// a unit pointing there would fail on the next boot.
	if strings.Contains(u.exe, string(filepath.Separator)+"go-build") {
		fmt.Fprintf(stderr, "greenlane: warning: %s is a temporary 'go run' build; build greenlane (go build -o /usr/local/bin/greenlane ./cmd/greenlane) and run service install with that binary\n", u.exe)
	}
	text, err := unitFile(u)
	if err != nil {
		return usagef("service install: %v", err)
	}
	mode := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if *force {
		mode = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(*out, mode, 0o644)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("service install: %s exists; give --force to replace it", *out)
	}
	if err != nil {
		return fmt.Errorf("service install: %w", err)
	}
	if _, err := io.WriteString(f, text); err != nil {
		f.Close()
		return fmt.Errorf("service install: write %s: %w", *out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("service install: write %s: %w", *out, err)
	}
	name := strings.TrimSuffix(filepath.Base(*out), ".service")
	fmt.Fprintf(stdout, "wrote %s\nEnable and start the lane (as root):\n  systemctl daemon-reload && systemctl enable --now %s\nIts log:\n  journalctl -u %s -f\n", *out, name, name)
	return nil
}

var unitUser = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// unitFile is the systemd unit that runs serve as u says. ProtectSystem=full
// leaves only /usr, /boot and /etc read-only, so the lane DB and its WAL in
// the working directory stay writable.
func unitFile(u unitSettings) (string, error) {
	if !unitUser.MatchString(u.user) {
		return "", fmt.Errorf("--user %q is not a user name", u.user)
	}
	if !filepath.IsAbs(u.dir) || strings.ContainsAny(u.dir, "\n\r") {
		return "", fmt.Errorf("--dir %q: want an absolute path on one line", u.dir)
	}
	for _, ro := range []string{"/usr", "/boot", "/etc"} {
		if u.dir == ro || strings.HasPrefix(u.dir, ro+"/") {
			return "", fmt.Errorf("--dir %s: ProtectSystem=full makes %s read-only and the lane DB must be writable; use e.g. /var/lib/greenlane", u.dir, ro)
		}
	}
	exec := []string{systemdQuote(u.exe), "serve"}
	for _, a := range u.flags {
		exec = append(exec, systemdQuote(a))
	}
	// PrivateTmp=yes gives the service an empty /tmp of its own: a lane DB
	// there would be a new, empty one, and gone after every stop.
	for _, tmp := range []string{"/tmp", "/var/tmp"} {
		if u.dir == tmp || strings.HasPrefix(u.dir, tmp+"/") {
			return "", fmt.Errorf("--dir %s: PrivateTmp gives the service its own empty %s; use e.g. /var/lib/greenlane", u.dir, tmp)
		}
	}
	return fmt.Sprintf(`[Unit]
Description=greenlane FD1 lane server
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=%s
WorkingDirectory=%s
ExecStart=%s
Restart=on-failure
RestartSec=2s
LimitNOFILE=65536
NoNewPrivileges=yes
ProtectSystem=full
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
`, u.user, strings.ReplaceAll(u.dir, "%", "%%"), strings.Join(exec, " ")), nil
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
