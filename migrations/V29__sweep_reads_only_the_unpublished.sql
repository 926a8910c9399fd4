-- The outbox sweep (`pending_outbox`) and its backlog gauge (`outbox_backlog`) must read only
-- the unpublished entries, which the partial indexes `outbox_pending` and
-- `actions_unpublished` hold. The planner cannot see that: it multiplies the fractions of
-- `published_at IS NULL` and `message IS NOT NULL` as if they were independent, and where
-- many actions carry no message (rows from before V27, held actions, whose message goes
-- through the outbox once approved, the bench's seeded history) that estimate is a quarter
-- of the table. It then scans all of `actions`: at 100,000 tenants
-- (a million actions, 1.5 GB) each sweep and each gauge read 188,000 pages, about a second
-- each, where the index holds a few hundred entries. Inside these two functions only:
-- - sequential scans are off, so they take the indexes whatever the statistics say;
-- - so are bitmap scans: until vacuum the indexes still hold the entries of rows published
--   since, and a plain index scan marks those dead as it meets them, so the next sweep skips
--   them, where a bitmap scan reads their heap pages at every sweep;
-- - so are parallel workers, whose start (tens of milliseconds) would cost more than the read.
ALTER FUNCTION revenue_os.pending_outbox(bigint)
    SET enable_seqscan = off SET enable_bitmapscan = off SET max_parallel_workers_per_gather = 0;
ALTER FUNCTION revenue_os.outbox_backlog()
    SET enable_seqscan = off SET enable_bitmapscan = off SET max_parallel_workers_per_gather = 0;
