package lanedb

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jmoiron/sqlx"
)

// DataTables are the tables that hold a store's data, in an order where
// every table comes after the tables it references. Fixtures load in this
// order and clear in the reverse. (api_keys and schema_migrations are not
// store data: a fixture never touches them.)
var DataTables = []string{
	"locations", "lane", "departments", "products", "product_barcodes",
	"customers", "staff", "payment_types", "sales", "sale_lines", "payments",
}

// Row is one table row keyed by column name, as fixtures hold it.
type Row map[string]any

// Columns lists a table's columns in schema order.
func Columns(ctx context.Context, q sqlx.QueryerContext, table string) ([]string, error) {
	var cols []string
	if err := sqlx.SelectContext(ctx, q, &cols, qColumns, table); err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("no table %q in the lane db", table)
	}
	return cols, nil
}

// isDataTable guards the table names that reach SQL text.
func isDataTable(table string) bool {
	for _, t := range DataTables {
		if t == table {
			return true
		}
	}
	return false
}

// InsertRows inserts rows into a data table inside tx. Every key of every
// row must be a column of the table; rowLabel names a row in errors.
func InsertRows(ctx context.Context, tx *Tx, table string, rows []Row, rowLabel func(i int) string) error {
	if !isDataTable(table) {
		return fmt.Errorf("%q is not a data table (tables: %s)", table, strings.Join(DataTables, ", "))
	}
	cols, err := Columns(ctx, tx, table)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, c := range cols {
		known[c] = true
	}
	for i, row := range rows {
		names := make([]string, 0, len(row))
		for name := range row {
			if !known[name] {
				return fmt.Errorf("%s: table %s has no column %q (columns: %s)", rowLabel(i), table, name, strings.Join(cols, ", "))
			}
			names = append(names, name)
		}
		sort.Strings(names)
		args := make([]any, len(names))
		for j, name := range names {
			args[j] = row[name]
		}
		query := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", table,
			strings.Join(names, ", "), strings.TrimSuffix(strings.Repeat("?, ", len(names)), ", "))
		if _, err := tx.ExecContext(ctx, query, args...); err != nil {
			return fmt.Errorf("%s: insert into %s: %w", rowLabel(i), table, err)
		}
	}
	return nil
}

// ClearData deletes every row of every data table inside tx.
func ClearData(ctx context.Context, tx *Tx) error {
	for i := len(DataTables) - 1; i >= 0; i-- {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+DataTables[i]); err != nil {
			return fmt.Errorf("clear %s: %w", DataTables[i], err)
		}
	}
	return nil
}

// laneStateTables hold what the lane itself counted and recorded while it
// ran: ticket numbers and other counters, the journal (firehose events and
// their seq), and remembered idempotent replies.
var laneStateTables = []string{"lane_counters", "journal", "idempotency"}

// ClearLaneState deletes every counter, journal entry and idempotency
// record inside tx, and restarts the journal's seq at 1, so that a lane
// reset to a fixture numbers its tickets and events as a fresh one does.
func ClearLaneState(ctx context.Context, tx *Tx) error {
	for _, t := range laneStateTables {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+t); err != nil {
			return fmt.Errorf("clear %s: %w", t, err)
		}
	}
	// journal.seq is AUTOINCREMENT: its high-water mark lives here.
	if _, err := tx.ExecContext(ctx, qRestartJournalSeq); err != nil {
		return fmt.Errorf("restart the journal's seq: %w", err)
	}
	return nil
}

// HasData reports whether any data table holds a row.
func HasData(ctx context.Context, q sqlx.QueryerContext) (bool, error) {
	for _, t := range DataTables {
		var n int
		if err := sqlx.GetContext(ctx, q, &n, "SELECT CASE WHEN EXISTS (SELECT 1 FROM "+t+") THEN 1 ELSE 0 END"); err != nil {
			return false, fmt.Errorf("check %s for rows: %w", t, err)
		}
		if n == 1 {
			return true, nil
		}
	}
	return false, nil
}

// SetMeta records a fact about the lane DB in tx.
func SetMeta(ctx context.Context, tx *Tx, key, value string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO lane_meta (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("set %s: %w", key, err)
	}
	return nil
}

// Meta reads a fact about the lane DB ("" when unset).
func Meta(ctx context.Context, q sqlx.QueryerContext, key string) (string, error) {
	var v []string
	if err := sqlx.SelectContext(ctx, q, &v, `SELECT value FROM lane_meta WHERE key = ?`, key); err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	if len(v) == 0 {
		return "", nil
	}
	return v[0], nil
}

// PrimaryKey lists a table's primary key columns in key order (rowid
// tables without a declared key order by rowid).
func PrimaryKey(ctx context.Context, q sqlx.QueryerContext, table string) ([]string, error) {
	var cols []string
	err := sqlx.SelectContext(ctx, q, &cols, qPrimaryKey, table)
	if err != nil {
		return nil, fmt.Errorf("primary key of %s: %w", table, err)
	}
	if len(cols) == 0 {
		cols = []string{"rowid"}
	}
	return cols, nil
}

// ExportRows calls fn with every row of a data table in primary-key order,
// as values by column (in Columns order): int64, float64, string or nil.
func ExportRows(ctx context.Context, q sqlx.QueryerContext, table string, fn func(cols []string, vals []any) error) error {
	if !isDataTable(table) {
		return fmt.Errorf("%q is not a data table", table)
	}
	cols, err := Columns(ctx, q, table)
	if err != nil {
		return err
	}
	pk, err := PrimaryKey(ctx, q, table)
	if err != nil {
		return err
	}
	rows, err := q.QueryxContext(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM "+table+" ORDER BY "+strings.Join(pk, ", "))
	if err != nil {
		return fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		vals, err := rows.SliceScan()
		if err != nil {
			return fmt.Errorf("read %s: %w", table, err)
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				vals[i] = string(b)
			}
		}
		if err := fn(cols, vals); err != nil {
			return err
		}
	}
	return rows.Err()
}

// The catalog reads and the journal's restart have a PostgreSQL form of
// their own (dialect.go).
var (
	qColumns           = stmt(`SELECT name FROM pragma_table_info(?) ORDER BY cid`)
	qPrimaryKey        = stmt(`SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk`)
	qRestartJournalSeq = stmt(`DELETE FROM sqlite_sequence WHERE name = 'journal'`)
)
