-- A sweeper claims the rows it is about to publish, so that several workers sweeping the same
-- outbox do not publish the same stuck row once each. A claim expires on its own: a worker
-- that dies mid-publish leaves rows that the next sweep takes again.
ALTER TABLE outbox ADD COLUMN claimed_until timestamptz;
