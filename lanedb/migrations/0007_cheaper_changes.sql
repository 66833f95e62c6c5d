-- 0007: indexes that every change of a sale no longer rewrites.
--
-- sales_holder held updated_utc, which every change of a sale sets: each
-- change moved the sale's entry within its key's part of the index, and a
-- batch of changes dirtied about one index page per change. A key's open
-- sales are few (its presells are capped), so ordering them by
-- updated_utc is a small sort at read time, not a cost on every write.
--
-- journal_physkey served no query of greenlane's (the firehose reads by
-- seq); it cost a page per journal row. A sale's history reads the journal
-- by seq range or scans it (it keeps JournalKeep rows).
DROP INDEX sales_holder;
CREATE INDEX sales_holder ON sales (holder_key, phase);
DROP INDEX journal_physkey;
