-- 0006: a key's open presells, counted on every presell a tablet creates
-- (the per-key cap), from an index of their own: the index of 0003 holds
-- every open presell, and counting one key's there read each of them.
CREATE INDEX sales_open_presells_creator ON sales (created_by)
    WHERE presell = 1 AND phase IN (0, 5);
