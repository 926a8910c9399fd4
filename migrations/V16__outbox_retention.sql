-- Retention of the outbox (issue 21, "bounded tables"): a published row has done its job once
-- the broker confirmed it; at 100,000 cycles a day the table would otherwise grow by
-- gigabytes a week. The worker's `retention` periodic service calls prune_outbox in small
-- batches (each its own short transaction, so no lock is held long).
--
-- Deleting is the owner's, inside this function only, and only of published rows: an
-- unpublished row is never removed, however old.
CREATE POLICY retention_prune ON outbox FOR DELETE TO CURRENT_USER
    USING (current_setting('revenue_os.retention', true) = 'on' AND published_at IS NOT NULL);

-- Deletes at most `lim` rows published before `before`, oldest first: how many it deleted.
CREATE FUNCTION revenue_os.prune_outbox(before timestamptz, lim integer)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        n bigint;
    BEGIN
        PERFORM set_config('revenue_os.sweep', 'on', true);
        PERFORM set_config('revenue_os.retention', 'on', true);
        DELETE FROM public.outbox
         WHERE id IN (SELECT o.id FROM public.outbox o
                      WHERE o.published_at < before ORDER BY o.id LIMIT lim);
        GET DIAGNOSTICS n = ROW_COUNT;
        PERFORM set_config('revenue_os.retention', 'off', true);
        PERFORM set_config('revenue_os.sweep', 'off', true);
        RETURN n;
    END $$;
REVOKE ALL ON FUNCTION revenue_os.prune_outbox(timestamptz, integer) FROM PUBLIC;
