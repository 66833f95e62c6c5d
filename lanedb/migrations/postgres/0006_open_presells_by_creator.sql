-- 0006 (PostgreSQL): a key's open presells, for the per-key cap.
-- The same as ../0006_open_presells_by_creator.sql.
CREATE INDEX sales_open_presells_creator ON sales (created_by)
    WHERE presell = 1 AND phase IN (0, 5);
