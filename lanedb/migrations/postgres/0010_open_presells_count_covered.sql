-- 0010 (PostgreSQL): a key's open presells are counted from the index
-- alone. The same as ../0010_open_presells_count_covered.sql; see there.
DROP INDEX sales_open_presells_creator;
CREATE INDEX sales_open_presells_creator ON sales (created_by, presell, phase)
    WHERE presell = 1 AND phase IN (0, 5);
