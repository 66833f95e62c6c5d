package bench

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/greenlane-pos/greenlane/internal/pgtest"
)

func TestPhaseDB(t *testing.T) {
	long := strings.Repeat("n", 60)
	for _, tc := range []struct {
		prefix, file, want, err string
	}{
		{"/tmp/x/bench", "gc-on", "/tmp/x/bench.gc-on.db", ""},
		{"postgres://u@127.0.0.1:5432/store?sslmode=disable", "gc-on", "postgres://u@127.0.0.1:5432/store_gc_on?sslmode=disable", ""},
		{"postgresql://h/store", "realistic-200", "postgresql://h/store_realistic_200", ""},
		{"postgres://h/", "gc-on", "", "name the database"},
		{"postgres://h/" + long, "baseline", "", "longer than PostgreSQL's 63 bytes"},
	} {
		got, err := phaseDB(tc.prefix, tc.file)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("phaseDB(%q, %q) error = %v, want one saying %q", tc.prefix, tc.file, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("phaseDB(%q, %q) = %q, %v; want %q", tc.prefix, tc.file, got, err, tc.want)
		}
	}
}

func TestConfigInstances(t *testing.T) {
	for _, tc := range []struct {
		instances int
		db        string
		ok        bool
	}{
		{1, "", true}, {1, "postgres://h/store", true}, {2, "postgres://h/store", true},
		{2, "", false}, {2, "/tmp/bench", false}, {0, "postgres://h/store", false}, {maxInstances + 1, "postgres://h/store", false},
	} {
		cfg := DefaultConfig()
		cfg.Instances, cfg.DB = tc.instances, tc.db
		if err := cfg.validate(); (err == nil) != tc.ok {
			t.Errorf("instances %d, DB %q: validate() = %v, want ok %v", tc.instances, tc.db, err, tc.ok)
		}
	}
}

// TestPresellPostgresInstances runs bench presell tiny on a PostgreSQL
// store database with two lane instances in the group-commit-on phase,
// and checks that every phase ran with no failed request, that each
// instance made sales and has its line, and that the database the URL
// names was left untouched (each phase made its own). It asserts no speed.
func TestPresellPostgresInstances(t *testing.T) {
	base := storeDB(t)
	cfg := DefaultConfig()
	cfg.Tablets, cfg.Duration, cfg.WarmUp = 4, time.Second, 200*time.Millisecond
	cfg.Realistic, cfg.IdleSockets, cfg.Instances = nil, 0, 2
	cfg.DB = base
	var log bytes.Buffer
	cfg.Log = &log
	var out bytes.Buffer
	rep, err := Run(context.Background(), cfg, &out)
	t.Logf("report:\n%s", out.String())
	if err != nil {
		t.Fatalf("Run: %v (server log: %s)", err, log.String())
	}
	if err := rep.Err(); err != nil {
		t.Errorf("requests failed: %v", err)
	}
	report := out.String()
	for _, re := range []string{
		`(?m)^greenlane bench presell — .*demo store database on PostgreSQL \(a database per phase\), 2 lane instances in the group-commit-on phase; each change with an ik, as the tablet page sends it$`,
		`(?m)^group commit on \(wait 2ms\): +\d+ sales/s +\d+ req/s +errors 0 +busy \d+$`,
		`(?m)^   instance 1: +\d+ sales/s  request p99 [0-9.]+m?s +\(2 tablets\)$`,
		`(?m)^   instance 2: +\d+ sales/s  request p99 [0-9.]+m?s +\(2 tablets\)$`,
		`(?m)^baseline-1tx: +\d+ sales/s  \(\d+ sales, 1 transaction each`,
		`(?m)^ratios: on/off \d+\.\d\d×   on/baseline \d+\.\d\d×$`,
		`(?m)^targets \(set for 200 tablets\): .*, synchronous_commit on, fsync on ✓, 0 errors ✓$`,
	} {
		if !regexp.MustCompile(re).MatchString(report) {
			t.Errorf("the report has no line matching %s", re)
		}
	}
	if n := len(regexp.MustCompile(`sales/s +\d+ req/s +errors 0 +busy \d+`).FindAllString(report, -1)); n != 4 {
		t.Errorf("want four timed phases with errors 0, found %d", n)
	}
	if n := strings.Count(report, "   instance "); n != 2 {
		t.Errorf("want two instance lines (the group-commit-on phase only), found %d", n)
	}
	for _, r := range rep.phases {
		if r.Sales == 0 {
			t.Errorf("%s made no sales", r.name)
		}
	}
	for i, in := range rep.phases[phaseOn].instances {
		if in.sales.Load() == 0 {
			t.Errorf("instance %d made no sales in the window", i+1)
		}
	}
	conn, err := pgx.Connect(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var tables int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("the database --db names holds %d tables; the bench must make its own per phase", tables)
	}
}

// storeDB is a fresh PostgreSQL database for a bench's --db; the
// databases the bench makes beside it are dropped at the end.
func storeDB(t *testing.T) string {
	base := pgtest.FreshDB(t)
	_, name, err := pgDatabase(base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dropPhaseDBs(t, base, name) })
	return base
}

// dropPhaseDBs drops the databases the bench made beside name.
func dropPhaseDBs(t *testing.T, base, name string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Errorf("connect to drop the bench's databases: %v", err)
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, name+"_")
	if err != nil {
		t.Errorf("list the bench's databases: %v", err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Errorf("list the bench's databases: %v", err)
		return
	}
	for _, n := range names {
		if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", n, err)
		}
	}
}
