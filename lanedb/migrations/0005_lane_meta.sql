-- 0005: facts about the lane DB itself, e.g. which fixture it was loaded
-- from (so `greenlane fixture reset` can restore it).
CREATE TABLE lane_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
