// Command greenlane is the FD1 lane server and its tools: serve, fixture,
// apikey and client.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // lane time zones work on machines without a zoneinfo database

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"version", "print greenlane's version, commit and Go version (also --version)", nil},
	{"serve", "run the lane server (creates a demo lane DB on first start)", runServe},
	{"fixture", "list, load, export, reset or generate the store data of a lane DB", runFixture},
	{"apikey", "create, list and revoke API keys", runAPIKey},
	{"tls", "make the store's CA and the lane's https certificate: init, ca, renew", runTLS},
	{"presell", "list, void and expire open presells in a lane DB", runPresell},
	{"client", "send FD1 packets to a lane and print the replies", runClient},
	{"replay", "replay FD1 transcripts against a server and show what differs", runReplay},
	{"bench", "measure the lane: bench presell, recall, firehose, soak", runBench},
	{"backup", "copy a lane DB while the lane serves it, and check the copy", runBackup},
	{"check", "check a lane DB: SQLite integrity and the lane's own rules", runCheck},
	{"restore", "put a backup in a lane DB's place, its WAL too, while no lane serves it", runRestore},
	{"service", "install a systemd unit that runs serve", runService},
}

func main() {
	err := dispatch(os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(os.Stderr, "greenlane:", err)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "greenlane:", err)
		os.Exit(1)
	}
}

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// isHelpFlag reports whether arg asks for a command's help, as the flag
// package takes it.
func isHelpFlag(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "--h"
}

func dispatch(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version" || args[0] == "version") {
		if len(args) == 2 && isHelpFlag(args[1]) {
			fmt.Fprintln(stderr, "usage: greenlane version (or greenlane --version)\n\nPrints the version, the commit (known only to a binary go build made in a git checkout) and the Go version.")
			return flag.ErrHelp
		}
		if len(args) > 1 {
			return usagef("version takes no arguments, got %q", args[1:])
		}
		fmt.Fprintln(stdout, versionLine())
		return nil
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stdout)
		if len(args) == 0 {
			return usagef("name a command")
		}
		return nil
	}
	for _, c := range commands {
		if c.name == args[0] && c.run != nil {
			return c.run(args[1:], stdout, stderr)
		}
	}
	return usagef("unknown command %q (commands: %s)", args[0], commandNames())
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "greenlane: a PosGreen-compatible FD1 lane server.")
	fmt.Fprintln(w, "\nUsage: greenlane <command> [flags]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'greenlane <command> --help' for a command's flags. Every flag can also be set")
	fmt.Fprintln(w, "in the environment as GREENLANE_<FLAG>, e.g. GREENLANE_ADDR=0.0.0.0:3490.")
}

func commandNames() string {
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// commandLineOnly are the flags no environment variable sets: each
// overrides a refusal that protects data (replace a CA, a recording, a
// store's data; void a claimed presell; restore a faulty backup; create a
// new lane DB where none was found). One variable is shared by every
// command, so a GREENLANE_FORCE exported for one would arm them all.
var commandLineOnly = map[string]bool{"force": true, "replace": true, "create": true}

// newFlags makes a subcommand's flag set; usage prints the synopsis and
// the flags with their defaults and environment names.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("greenlane "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: greenlane %s\n\nFlags (environment variable in brackets):\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
				def = fmt.Sprintf(" (default %s)", f.DefValue)
			}
			env := " [" + envName(f.Name) + "]"
			if commandLineOnly[f.Name] {
				env = " (command line only)"
			}
			fmt.Fprintf(stderr, "  --%s%s\n      %s%s\n", f.Name, env, f.Usage, def)
		})
	}
	return fs
}

// parseFlags parses the command line of a command that takes no positional
// arguments (see parseArgs).
func parseFlags(fs *flag.FlagSet, args []string) error {
	return parseArgs(fs, args, 0)
}

// parseArgs parses the command line of a command that takes at most max
// positional arguments (-1: any number, the command checks them), then
// fills every flag not given on the command line from its GREENLANE_*
// variable. Flags may come before, between and after the positional
// arguments: the flag package stops at the first positional one, and every
// flag after it would otherwise be dropped without a word ("fixture load
// demo x --db q.db" loading into the default DB). "--" ends the flags. A
// positional argument beyond max is a usage error, not ignored. The
// positional arguments are then fs.Args().
func parseArgs(fs *flag.FlagSet, args []string, max int) error {
	var pos []string
	for {
		if err := parseOnly(fs, args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...) // after "--", everything is positional
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	if max >= 0 && len(pos) > max {
		return usagef("unexpected argument %q (see '%s --help')", pos[max], fs.Name())
	}
	// Parsed again so that fs.Args() holds every positional argument, not
	// only those after the last flag; "--" keeps them from being read as flags.
	if err := fs.Parse(append([]string{"--"}, pos...)); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil || commandLineOnly[f.Name] {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = usagef("%s=%q: %v", envName(f.Name), v, e)
			}
		}
	})
	if err != nil {
		return err
	}
	return refuseStoreMode(fs)
}

// notOnPostgres names the commands whose --db can only be an SQLite lane DB
// file, and says what to do instead on a PostgreSQL store database. Every
// other command takes a postgres:// or postgresql:// URL as --db.
var notOnPostgres = map[string]string{
	"backup":    "backup copies an SQLite file; back a PostgreSQL store database up with pg_dump",
	"check":     "check runs SQLite's integrity checks; on PostgreSQL run pg_amcheck",
	"restore":   "restore replaces an SQLite file; restore a PostgreSQL store database with pg_restore",
	"tls init":  "the certificates are written next to an SQLite lane DB file; serve each instance with --tls-cert and --tls-key instead",
	"tls ca":    "the CA is kept next to an SQLite lane DB file",
	"tls renew": "the certificates are kept next to an SQLite lane DB file",
}

// refuseStoreMode refuses a PostgreSQL URL as --db for the commands in
// notOnPostgres: each would take the URL for a file name (a folder
// "postgres:", a new SQLite file).
func refuseStoreMode(fs *flag.FlagSet) error {
	f := fs.Lookup("db")
	if f == nil || !lanedb.IsPostgresURL(f.Value.String()) {
		return nil
	}
	why, ok := notOnPostgres[strings.TrimPrefix(fs.Name(), "greenlane ")]
	if !ok {
		return nil
	}
	return fmt.Errorf("--db: %w: %s", lanedb.ErrNotOnPostgres, why)
}

// parseOnly is fs.Parse, except that a mistake is not printed above the
// whole usage (where it scrolls away): the usage is printed for --help
// only, and a mistake comes back as a usage error that main prints last,
// with a pointer to --help.
func parseOnly(fs *flag.FlagSet, args []string) error {
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage()
		return err
	case err != nil:
		return usagef("%v%s (see '%s --help')", err, valueHint(fs, err), fs.Name())
	}
	return nil
}

// valueHint says what a flag takes when its value could not be read: the
// flag package says only "parse error".
func valueHint(fs *flag.FlagSet, err error) string {
	// "invalid value "x" for flag -name: parse error", or for a bool
	// "invalid boolean value "x" for -name: parse error".
	_, name, ok := strings.Cut(err.Error(), " for flag -")
	if !ok {
		_, name, _ = strings.Cut(err.Error(), " for -")
	}
	if name, _, ok = strings.Cut(name, ": parse error"); !ok {
		return ""
	}
	f := fs.Lookup(strings.TrimPrefix(name, "-"))
	if f == nil {
		return ""
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return ""
	}
	switch g.Get().(type) {
	case time.Duration:
		return ": want a duration such as 90s, 30m or 12h"
	case int, int64, uint, uint64:
		return ": want a whole number"
	case float64:
		return ": want a number"
	case bool:
		return ": want true or false"
	}
	return ""
}

// versionLine is what --version prints: the module version, the commit it
// was built from (when the build recorded one) and the Go version.
func versionLine() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "greenlane (no build information) " + runtime.Version()
	}
	v := "greenlane " + bi.Main.Version
	var rev, when string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" {
		v += " commit " + rev
		if when != "" {
			v += " (" + when + ")"
		}
		if modified {
			v += " with local changes"
		}
	}
	return v + " " + bi.GoVersion
}

// envName is a flag's environment variable: --db-busy-timeout → GREENLANE_DB_BUSY_TIMEOUT.
func envName(flagName string) string {
	return "GREENLANE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// listFlag is a comma-separated list flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	*l = nil
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

// subcommand is one verb of a command with several (fixture load, apikey
// create …).
type subcommand struct {
	name  string
	usage string // "load NAME|DIR --db PATH [--replace]"
	run   func(args []string, stdout, stderr io.Writer) error
}

// runSubcommand dispatches args to the named subcommand of command, or
// prints the synopsis of them all.
func runSubcommand(command string, subs []subcommand, footer string, args []string, stdout, stderr io.Writer) error {
	names := make([]string, len(subs))
	for i, sc := range subs {
		names[i] = sc.name
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		for i, sc := range subs {
			prefix := "Usage: "
			if i > 0 {
				prefix = "       "
			}
			fmt.Fprintf(stderr, "%sgreenlane %s %s\n", prefix, command, sc.usage)
		}
		if footer != "" {
			fmt.Fprintln(stderr, footer)
		}
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return nil
		}
		return usagef("%s needs a subcommand: %s", command, strings.Join(names, ", "))
	}
	for _, sc := range subs {
		if sc.name == args[0] {
			return sc.run(args[1:], stdout, stderr)
		}
	}
	return usagef("unknown %s subcommand %q (%s)", command, args[0], strings.Join(names, ", "))
}

// buildVersion is the module version this binary was built as ("(devel)"
// for a build from a checkout), for greenlane_build_info.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}

// moneyFlag is an amount held in cents and written in currency units, as
// FD1 writes money: "500", "12.50".
type moneyFlag protocol.Money

func (m *moneyFlag) String() string {
	if m == nil {
		return "0"
	}
	return protocol.Money(*m).String()
}

func (m *moneyFlag) Set(s string) error {
	var v protocol.Money
	if err := json.Unmarshal([]byte(strconv.Quote(s)), &v); err != nil {
		return errors.New("want an amount with at most two decimals, like 500 or 12.50")
	}
	*m = moneyFlag(v)
	return nil
}
