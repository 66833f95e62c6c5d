-- 0007 (PostgreSQL): indexes that every change of a sale no longer
-- rewrites. The same as ../0007_cheaper_changes.sql; here it also lets an
-- update of a sale's totals be a HOT update (no indexed column changes).
DROP INDEX sales_holder;
CREATE INDEX sales_holder ON sales (holder_key, phase);
DROP INDEX journal_physkey;
