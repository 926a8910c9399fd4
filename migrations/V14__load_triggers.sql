-- `ingest --trigger`: the load asks for one scheduled trigger per loaded tenant, queued by
-- the load follow-up after the watchdog and deviation detection have seen the new rows (a
-- tenant whose detection queued a metric_deviation trigger gets that one instead).
ALTER TABLE loads ADD COLUMN trigger boolean NOT NULL DEFAULT false;
