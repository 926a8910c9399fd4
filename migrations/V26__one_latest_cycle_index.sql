-- One index for a tenant's latest cycle. `cycles_last_decided` (V12: completed, or skipped with
-- nothing to do) holds every row `cycles_last_completed` (V1: completed) holds, in the same
-- order, so a query for the latest completed cycle scans it with `status = 'completed'` as a
-- filter, passing over only skipped cycles. Keeping both cost every completed cycle a second
-- insert at a random page of a per-tenant index: one of the random writes that make a cycle
-- dearer at 100,000 tenants than at 10,000 (README, Capacity).
DROP INDEX cycles_last_completed;
