-- 0005 (PostgreSQL): facts about the lane DB itself.
-- The same as ../0005_lane_meta.sql.
CREATE TABLE lane_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
