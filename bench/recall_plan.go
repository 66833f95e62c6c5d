package bench

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/greenlane-pos/greenlane/lanedb"
)

// The plans are read from the SQL that lanedb actually runs, not from a
// copy of it here: lanedb builds the presell list's query at run time, so a
// copy could drift from it unnoticed. recordingQueryer catches the query
// and its arguments as lanedb sends them, and EXPLAIN QUERY PLAN is run on
// exactly those.

// recordingQueryer passes queries on and remembers the last one.
type recordingQueryer struct {
	sqlx.QueryerContext
	query string
	args  []any
}

func (r *recordingQueryer) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	r.query, r.args = query, args
	return r.QueryerContext.QueryContext(ctx, query, args...)
}

func (r *recordingQueryer) QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	r.query, r.args = query, args
	return r.QueryerContext.QueryxContext(ctx, query, args...)
}

func (r *recordingQueryer) QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row {
	r.query, r.args = query, args
	return r.QueryerContext.QueryRowxContext(ctx, query, args...)
}

// queryPlan is the plan of one query as the benchmark runs it.
type queryPlan struct {
	request string   // get_presells, or recall's lookup
	names   []string // the filters that run this plan (get_presells)
	lines   []string // EXPLAIN QUERY PLAN, indented by depth
	scans   []string // lines that walk a big table or one of its full indexes
}

// ok is true when no step scans the historic sales.
func (p *queryPlan) ok() bool { return len(p.scans) == 0 }

// explainRecallQueries returns the plans of get_presells (each filter, its
// values drawn as the counters draw them; "qk mine" for claimKey) and of
// recall's lookup by ticket, grouping the filters that share a plan.
func explainRecallQueries(ctx context.Context, db *lanedb.DB, w *workload, claimKey string) ([]*queryPlan, error) {
	var plans []*queryPlan
	add := func(request, name string, lines []string) {
		for _, p := range plans {
			if p.request == request && slices.Equal(p.lines, lines) {
				p.names = append(p.names, name)
				return
			}
		}
		plans = append(plans, &queryPlan{request: request, names: []string{name}, lines: lines, scans: bigScans(lines)})
	}
	rec := &recordingQueryer{QueryerContext: db.Read}
	for v := range numListVariants {
		q := w.sample(v)
		if _, _, err := lanedb.OpenPresells(ctx, rec, presellFilter(q, claimKey)); err != nil {
			return nil, err
		}
		lines, err := explain(ctx, db, rec.query, rec.args)
		if err != nil {
			return nil, err
		}
		add("get_presells", listVariantNames[v], lines)
	}
	if _, err := lanedb.OpenPresellBy(ctx, rec, w.all[0].ticket, ""); err != nil {
		return nil, err
	}
	lines, err := explain(ctx, db, rec.query, rec.args)
	if err != nil {
		return nil, err
	}
	add("recall by ticket (lookup)", "", lines)
	return plans, nil
}

// explain runs EXPLAIN QUERY PLAN on query and returns its steps, each
// indented two spaces per level.
func explain(ctx context.Context, db *lanedb.DB, query string, args []any) ([]string, error) {
	steps, err := db.ExplainQueryPlan(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%w: %q", err, firstLineOf(query))
	}
	depth := map[int64]int{}
	var lines []string
	for _, s := range steps {
		d := 0
		if s.Parent != 0 {
			d = depth[s.Parent] + 1
		}
		depth[s.ID] = d
		lines = append(lines, strings.Repeat("  ", d)+s.Detail)
	}
	return lines, nil
}

// bigTables are the tables that grow with the lane's history, under the
// names and aliases lanedb's queries give them.
var bigTables = map[string]bool{"s": true, "sales": true, "l": true, "sale_lines": true, "payments": true}

// bigScans picks the plan steps that scan a big table, except a walk of
// one of the open-presell partial indexes, which hold only open presells.
func bigScans(lines []string) []string {
	var out []string
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "SCAN" && bigTables[f[1]] && !strings.Contains(line, "INDEX sales_open_") {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

func firstLineOf(q string) string {
	q = strings.TrimSpace(q)
	if i := strings.IndexByte(q, '\n'); i >= 0 {
		return q[:i] + "…"
	}
	return q
}
