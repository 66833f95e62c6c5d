-- 0011 (PostgreSQL): nothing to do. ../0011_idempotency_rowid.sql makes
-- SQLite's idempotency table an ordinary one, as PostgreSQL's always was
-- (a heap with its primary key as an index).
SELECT 1;
