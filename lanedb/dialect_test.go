package lanedb

import (
	"database/sql"
	"reflect"
	"slices"
	"testing"
)

func TestDialectRewrite(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"parameters", `SELECT a FROM t WHERE b = ? AND c > ?`, `SELECT a FROM t WHERE b = $1 AND c > $2`, true},
		{"planner hint removed", "SELECT physkey FROM sales INDEXED BY sales_open_ticket\n\t\tWHERE ticket = ?",
			"SELECT physkey FROM sales\n\t\tWHERE ticket = $1", true},
		{"hint with an alias", `FROM sales s INDEXED BY sales_open_presells LEFT JOIN c`, `FROM sales s LEFT JOIN c`, true},
		{"own form", qRestartJournalSeq, postgresForms[qRestartJournalSeq], true},
		{"no form", qDataVersion, "", false},
		{"named parameters kept", `UPDATE t SET a = :a WHERE k = :k`, `UPDATE t SET a = :a WHERE k = :k`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := dialectPostgres.rewrite(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("rewrite(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
			if same, ok := dialectSQLite.rewrite(tt.in); same != tt.in || !ok {
				t.Errorf("SQLite rewrote %q to %q, %v", tt.in, same, ok)
			}
		})
	}
}

// The writer's read of a sale locks its row on PostgreSQL; the read pool's
// and SQLite's forms are the statement as written.
func TestDialectWriterForm(t *testing.T) {
	pg, _ := dialectPostgres.writerForm(qGetSale)
	if want := dialectPostgres.must(qGetSale) + " FOR UPDATE"; pg != want {
		t.Errorf("writer form = %q, want %q", pg, want)
	}
	if lite, _ := dialectSQLite.writerForm(qGetSale); lite != qGetSale {
		t.Errorf("SQLite writer form = %q", lite)
	}
	if other, _ := dialectPostgres.writerForm(qLineCount); other != dialectPostgres.must(qLineCount) {
		t.Errorf("a statement not in postgresWriterLocks got %q", other)
	}
}

// TestDialectArgsReplaceNUL: PostgreSQL's text cannot hold NUL, so a
// string argument's NULs become U+FFFD there; SQLite gets them as sent.
func TestDialectArgsReplaceNUL(t *testing.T) {
	for _, c := range []struct {
		name string
		d    dialect
		in   []any
		want []any
	}{
		{"sqlite keeps NUL", dialectSQLite, []any{"a\x00b"}, []any{"a\x00b"}},
		{"postgres string", dialectPostgres, []any{int64(1), "a\x00b\x00"}, []any{int64(1), "a\uFFFDb\uFFFD"}},
		{"postgres null string", dialectPostgres, []any{sql.NullString{String: "\x00", Valid: true}}, []any{sql.NullString{String: "\uFFFD", Valid: true}}},
		{"postgres clean", dialectPostgres, []any{"abc", nil}, []any{"abc", nil}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := slices.Clone(c.in)
			got := c.d.args(in)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("args(%q) = %q, want %q", c.in, got, c.want)
			}
			if !reflect.DeepEqual(in, c.in) {
				t.Errorf("args changed its input to %q", in)
			}
		})
	}
}
