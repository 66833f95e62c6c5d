package lanedb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/greenlane-pos/greenlane/internal/pgtest"
)

// testPostgresURL and freshPostgresDB are pgtest's, named for this
// package's tests.
func testPostgresURL(t *testing.T) string { t.Helper(); return pgtest.ServerURL(t) }

func freshPostgresDB(t *testing.T) string { t.Helper(); return pgtest.FreshDB(t) }

func TestPostgresMigrationsMirrorSQLite(t *testing.T) {
	lite, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	pg, err := PostgresMigrations()
	if err != nil {
		t.Fatal(err)
	}
	// A new SQLite step needs its PostgreSQL twin, under the same number
	// and name, so that schema_migrations means the same in both.
	name := func(ms []Migration) (out []string) {
		for _, m := range ms {
			out = append(out, fmt.Sprintf("%04d_%s", m.Version, m.Name))
		}
		return out
	}
	if got, want := name(pg), name(lite); !slices.Equal(got, want) {
		t.Fatalf("PostgreSQL migrations %v, SQLite migrations %v: each SQLite step needs its twin in migrations/postgres", got, want)
	}
}

func TestIsPostgresURL(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"postgres://postgres@127.0.0.1:5432/store", true},
		{"postgresql://u:secret@db.local/store?sslmode=disable", true},
		{"POSTGRES://host/store", true},
		{"greenlane-lane.db", false},
		{"postgres", false},                 // a file named postgres
		{"./postgres://x", false},           // a path that merely contains it
		{"/var/lib/postgresql/x.db", false}, // an SQLite file in a postgres folder
		{"file:lane.db", false},
	}
	for _, tt := range tests {
		if got := IsPostgresURL(tt.in); got != tt.want {
			t.Errorf("IsPostgresURL(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// An unreachable PostgreSQL URL is an error that hides the password, and
// never becomes an SQLite file named after the URL.
func TestOpenUnreachablePostgres(t *testing.T) {
	for _, u := range []string{
		"postgres://postgres@127.0.0.1:1/greenlane?connect_timeout=5",
		"postgresql://clerk:hunter2@127.0.0.1:1/greenlane?sslmode=disable&connect_timeout=5",
	} {
		t.Run(u, func(t *testing.T) {
			// Run from an empty folder: nothing may be created for the URL
			// (a file named after it would be a new, empty SQLite lane).
			dir := t.TempDir()
			t.Chdir(dir)
			db, err := Open(context.Background(), u, Options{})
			if err == nil {
				db.Close()
				t.Fatalf("Open(%q) opened a lane DB", u)
			}
			if !IsUnavailable(err) || !strings.Contains(err.Error(), "127.0.0.1") {
				t.Fatalf("Open(%q) = %v, want a connection error naming the server", u, err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows the password: %v", err)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("Open left %d entries in the working folder, first %q", len(left), left[0].Name())
			}
		})
	}
	// A file whose name merely looks like the word is still an SQLite lane.
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "postgres"), Options{})
	if err != nil {
		t.Fatalf("Open of a file named postgres: %v", err)
	}
	db.Close()
}

func TestPostgresSchemaMatchesSQLite(t *testing.T) {
	dbURL := freshPostgresDB(t)
	ctx := context.Background()
	if err := MigratePostgres(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	pg := readPostgresSchema(t, ctx, dbURL)
	lite := readSQLiteSchema(t, ctx, openTemp(t))

	// The comparison must have something to compare: the store-wide
	// uniqueness of open presells' tickets is the reason it exists.
	for _, want := range []struct{ table, line string }{
		{"sales", "unique index sales_open_ticket (ticket) where ticket is not null and phase in 0, 5"},
		{"sales", "unique index sales_open_ticket_barcode (ticket_barcode) where ticket_barcode is not null and phase in 0, 5"},
		{"sales", "index sales_open_presells (submitted_utc desc) where presell = 1 and phase in 0, 5"},
		{"api_keys", "unique index api_keys_live_name (name) where revoked_utc is null"},
		{"sale_lines", "primary key (sale_physkey, seqnce)"},
		{"sale_lines", "foreign key (sale_physkey) references sales (physkey) on delete cascade"},
		{"products", "unique (physkey)"},
		{"journal", "column seq integer not null"},
	} {
		if !slices.Contains(lite[want.table], want.line) {
			t.Errorf("SQLite %s lacks %q; it has:\n  %s", want.table, want.line, strings.Join(lite[want.table], "\n  "))
		}
	}

	var tables []string
	for name := range lite {
		tables = append(tables, name)
	}
	for name := range pg {
		if _, ok := lite[name]; !ok {
			tables = append(tables, name)
		}
	}
	slices.Sort(tables)
	for _, name := range tables {
		l, lok := lite[name]
		p, pok := pg[name]
		switch {
		case !pok:
			t.Errorf("table %s is in SQLite only", name)
		case !lok:
			t.Errorf("table %s is in PostgreSQL only", name)
		default:
			for _, line := range l {
				if !slices.Contains(p, line) {
					t.Errorf("%s: SQLite only: %s", name, line)
				}
			}
			for _, line := range p {
				if !slices.Contains(l, line) {
					t.Errorf("%s: PostgreSQL only: %s", name, line)
				}
			}
		}
	}
	if len(tables) < 10 {
		t.Errorf("only %d tables compared: %v", len(tables), tables)
	}
}

func TestMigratePostgresConcurrentlyThenAgain(t *testing.T) {
	dbURL := freshPostgresDB(t)
	ctx := context.Background()
	// Two instances starting at once on a new database: the advisory lock
	// makes one apply each step and the other find it done.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { errs[i] = MigratePostgres(ctx, dbURL) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if err := MigratePostgres(ctx, dbURL); err != nil {
		t.Fatalf("a third run on a migrated database: %v", err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT version || '_' || name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	lite, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range lite {
		want = append(want, fmt.Sprintf("%d_%s", m.Version, m.Name))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("schema_migrations holds %v, want each step once: %v", got, want)
	}

	// A database a newer greenlane migrated is refused, not written.
	if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_utc) VALUES (999, 'future', '2099-01-01 00:00:00')`); err != nil {
		t.Fatal(err)
	}
	err = MigratePostgres(ctx, dbURL)
	var newer *NewerSchemaError
	if !errors.As(err, &newer) || newer.DBVersion != 999 || newer.KnownVersion != len(lite) {
		t.Fatalf("MigratePostgres on a newer schema = %v, want a NewerSchemaError for 999", err)
	}
}

// A schema is each table's facts, one canonical line each, so that the
// two dialects compare line by line and a difference reads as SQL:
//
//	column NAME integer|text|blob|real [not null]
//	primary key (COLS)
//	unique (COLS)                       — an index a UNIQUE constraint made
//	[unique ]index NAME (COLS)[ where PREDICATE]
//	foreign key (COLS) references TABLE (COLS) on delete ACTION
type schema map[string][]string

// canonicalPredicate writes an index's WHERE clause, as either dialect
// prints it back, in one form: PostgreSQL adds parentheses and casts and
// turns IN (…) into = ANY (ARRAY[…]).
func canonicalPredicate(p string) string {
	p = regexp.MustCompile(`::[a-z ]+`).ReplaceAllString(strings.ToLower(p), "")
	p = regexp.MustCompile(`=\s*any\s*\(\s*array\[([^\]]*)\]\s*\)`).ReplaceAllString(p, "in ($1)")
	p = strings.NewReplacer("(", " ", ")", " ").Replace(p)
	p = strings.Join(strings.Fields(p), " ")
	return strings.ReplaceAll(p, " ,", ",")
}

func TestCanonicalPredicate(t *testing.T) {
	tests := []struct{ sqlite, postgres string }{
		{"ticket IS NOT NULL AND phase IN (0, 5)",
			"((ticket IS NOT NULL) AND (phase = ANY (ARRAY[(0)::bigint, (5)::bigint])))"},
		{"presell = 1 AND phase IN (0, 5)",
			"((presell = 1) AND (phase = ANY (ARRAY[(0)::bigint, (5)::bigint])))"},
		{"revoked_utc IS NULL", "(revoked_utc IS NULL)"},
		{"name IN ('a', 'b')", "(name = ANY (ARRAY['a'::text, 'b'::text]))"},
	}
	for _, tt := range tests {
		l, p := canonicalPredicate(tt.sqlite), canonicalPredicate(tt.postgres)
		if l != p {
			t.Errorf("SQLite %q → %q, PostgreSQL %q → %q: want the same", tt.sqlite, l, tt.postgres, p)
		}
	}
	// Different predicates must stay different.
	if a, b := canonicalPredicate("phase IN (0, 5)"), canonicalPredicate("(phase = ANY (ARRAY[(0)::bigint, (1)::bigint]))"); a == b {
		t.Errorf("phase IN (0, 5) and phase IN (0, 1) both became %q", a)
	}
}

// canonicalType maps each dialect's column type to the SQLite affinity it
// stands for; an unmapped type keeps its name, and so shows as a difference.
func canonicalType(t string) string {
	switch strings.ToLower(t) {
	case "integer", "bigint":
		return "integer"
	case "text":
		return "text"
	case "blob", "bytea":
		return "blob"
	case "real", "double precision":
		return "real"
	}
	return "unmapped " + t
}

func columnLine(name, typ string, notNull bool) string {
	s := "column " + name + " " + canonicalType(typ)
	if notNull {
		s += " not null"
	}
	return s
}

func indexLine(name string, unique bool, cols []string, where string) string {
	s := "index " + name + " (" + strings.Join(cols, ", ") + ")"
	if unique {
		s = "unique " + s
	}
	if where != "" {
		s += " where " + canonicalPredicate(where)
	}
	return s
}

func fkLine(cols []string, table string, refCols []string, onDelete string) string {
	return fmt.Sprintf("foreign key (%s) references %s (%s) on delete %s",
		strings.Join(cols, ", "), table, strings.Join(refCols, ", "), strings.ToLower(onDelete))
}

func readSQLiteSchema(t *testing.T, ctx context.Context, db *DB) schema {
	t.Helper()
	q := db.r
	var tables []string
	if err := q.SelectContext(ctx, &tables, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`); err != nil {
		t.Fatalf("list SQLite tables: %v", err)
	}
	out := schema{}
	for _, table := range tables {
		var lines []string
		var cols []struct {
			Name    string `db:"name"`
			Type    string `db:"type"`
			NotNull bool   `db:"notnull"`
			PK      int    `db:"pk"`
		}
		if err := q.SelectContext(ctx, &cols, `SELECT name, type, "notnull", pk FROM pragma_table_info(?)`, table); err != nil {
			t.Fatalf("columns of %s: %v", table, err)
		}
		pk := map[int]string{}
		for _, c := range cols {
			// A primary key column is never NULL in either dialect, though
			// SQLite reports NOT NULL only where it was written.
			lines = append(lines, columnLine(c.Name, c.Type, c.NotNull || c.PK > 0))
			if c.PK > 0 {
				pk[c.PK] = c.Name
			}
		}
		if len(pk) > 0 {
			var pkCols []string
			for i := 1; i <= len(pk); i++ {
				pkCols = append(pkCols, pk[i])
			}
			lines = append(lines, "primary key ("+strings.Join(pkCols, ", ")+")")
		}
		var idx []struct {
			Name   string `db:"name"`
			Unique bool   `db:"unique"`
			Origin string `db:"origin"`
		}
		if err := q.SelectContext(ctx, &idx, `SELECT name, "unique", origin FROM pragma_index_list(?)`, table); err != nil {
			t.Fatalf("indexes of %s: %v", table, err)
		}
		for _, ix := range idx {
			if ix.Origin == "pk" {
				continue // the primary key line says it
			}
			var keys []struct {
				Name string `db:"name"`
				Desc bool   `db:"desc"`
			}
			if err := q.SelectContext(ctx, &keys, `SELECT name, "desc" FROM pragma_index_xinfo(?) WHERE key = 1 ORDER BY seqno`, ix.Name); err != nil {
				t.Fatalf("columns of index %s: %v", ix.Name, err)
			}
			var cols []string
			for _, k := range keys {
				cols = append(cols, k.Name+map[bool]string{true: " desc"}[k.Desc])
			}
			if ix.Origin == "u" {
				lines = append(lines, "unique ("+strings.Join(cols, ", ")+")")
				continue
			}
			var ddl string
			if err := q.GetContext(ctx, &ddl, `SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?`, ix.Name); err != nil {
				t.Fatalf("SQL of index %s: %v", ix.Name, err)
			}
			var where string
			if i := strings.LastIndex(strings.ToUpper(ddl), " WHERE "); i >= 0 {
				where = ddl[i+len(" WHERE "):]
			}
			lines = append(lines, indexLine(ix.Name, ix.Unique, cols, where))
		}
		var fks []struct {
			ID       int    `db:"id"`
			Table    string `db:"table"`
			From     string `db:"from"`
			To       string `db:"to"`
			OnDelete string `db:"on_delete"`
		}
		if err := q.SelectContext(ctx, &fks, `SELECT id, "table", "from", "to", on_delete FROM pragma_foreign_key_list(?) ORDER BY id, seq`, table); err != nil {
			t.Fatalf("foreign keys of %s: %v", table, err)
		}
		for i := 0; i < len(fks); {
			j := i
			var from, to []string
			for ; j < len(fks) && fks[j].ID == fks[i].ID; j++ {
				from, to = append(from, fks[j].From), append(to, fks[j].To)
			}
			lines = append(lines, fkLine(from, fks[i].Table, to, fks[i].OnDelete))
			i = j
		}
		out[table] = lines
	}
	return out
}

func readPostgresSchema(t *testing.T, ctx context.Context, dbURL string) schema {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	type table struct {
		OID  uint32
		Name string
	}
	rows, err := conn.Query(ctx, `SELECT c.oid, c.relname::text FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind = 'r'`)
	if err != nil {
		t.Fatalf("list PostgreSQL tables: %v", err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowToStructByPos[table])
	if err != nil {
		t.Fatalf("list PostgreSQL tables: %v", err)
	}
	// colsOf lists, in order, the columns an int2vector or smallint[] of
	// attribute numbers names; DESC where the index's options say so.
	const colsOf = `ARRAY(SELECT a.attname::text FROM unnest(%s) WITH ORDINALITY k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = %s AND a.attnum = k.attnum ORDER BY k.ord)`
	out := schema{}
	for _, tb := range tables {
		var lines []string
		type column struct {
			Name    string
			Type    string
			NotNull bool
		}
		rows, err := conn.Query(ctx, `SELECT attname::text, format_type(atttypid, atttypmod), attnotnull
			FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, tb.OID)
		if err != nil {
			t.Fatalf("columns of %s: %v", tb.Name, err)
		}
		cols, err := pgx.CollectRows(rows, pgx.RowToStructByPos[column])
		if err != nil {
			t.Fatalf("columns of %s: %v", tb.Name, err)
		}
		for _, c := range cols {
			lines = append(lines, columnLine(c.Name, c.Type, c.NotNull))
		}
		type index struct {
			Name       string
			Unique     bool
			Primary    bool
			Constraint bool
			Where      string
			Cols       []string
			Desc       []bool
		}
		rows, err = conn.Query(ctx, fmt.Sprintf(`SELECT ic.relname::text, i.indisunique, i.indisprimary,
			EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid AND co.contype = 'u'),
			COALESCE(pg_get_expr(i.indpred, i.indrelid), ''),
			%s,
			ARRAY(SELECT (i.indoption[o] & 1) = 1 FROM generate_series(0, i.indnkeyatts - 1) o ORDER BY o)
			FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = $1`,
			fmt.Sprintf(colsOf, "i.indkey", "i.indrelid")), tb.OID)
		if err != nil {
			t.Fatalf("indexes of %s: %v", tb.Name, err)
		}
		idx, err := pgx.CollectRows(rows, pgx.RowToStructByPos[index])
		if err != nil {
			t.Fatalf("indexes of %s: %v", tb.Name, err)
		}
		for _, ix := range idx {
			cols := slices.Clone(ix.Cols)
			for i := range cols {
				if i < len(ix.Desc) && ix.Desc[i] {
					cols[i] += " desc"
				}
			}
			switch {
			case ix.Primary:
				lines = append(lines, "primary key ("+strings.Join(cols, ", ")+")")
			case ix.Constraint:
				lines = append(lines, "unique ("+strings.Join(cols, ", ")+")")
			default:
				lines = append(lines, indexLine(ix.Name, ix.Unique, cols, ix.Where))
			}
		}
		type fk struct {
			Table    string
			From, To []string
			OnDelete string
		}
		rows, err = conn.Query(ctx, fmt.Sprintf(`SELECT (SELECT relname::text FROM pg_class WHERE oid = co.confrelid),
			%s, %s,
			CASE co.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT'
				WHEN 'r' THEN 'RESTRICT' ELSE 'NO ACTION' END
			FROM pg_constraint co WHERE co.conrelid = $1 AND co.contype = 'f'`,
			fmt.Sprintf(colsOf, "co.conkey", "co.conrelid"), fmt.Sprintf(colsOf, "co.confkey", "co.confrelid")), tb.OID)
		if err != nil {
			t.Fatalf("foreign keys of %s: %v", tb.Name, err)
		}
		fks, err := pgx.CollectRows(rows, pgx.RowToStructByPos[fk])
		if err != nil {
			t.Fatalf("foreign keys of %s: %v", tb.Name, err)
		}
		for _, f := range fks {
			lines = append(lines, fkLine(f.From, f.Table, f.To, f.OnDelete))
		}
		out[tb.Name] = lines
	}
	return out
}
