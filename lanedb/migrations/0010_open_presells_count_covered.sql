-- 0010: the count of a key's open presells (checked on every presell a
-- tablet creates) is answered from the index alone. The index of 0006 held
-- only created_by, so the count looked up every counted sale's row to see
-- presell and phase again; with them in the index it reads no row.
DROP INDEX sales_open_presells_creator;
CREATE INDEX sales_open_presells_creator ON sales (created_by, presell, phase)
    WHERE presell = 1 AND phase IN (0, 5);
