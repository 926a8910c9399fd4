-- A published action (watched for tenants with `watch_published`, whose executors never report
-- `applied`) is watched from its first broker confirm, and from the first full day after it,
-- as an applied action is from its `applied` report (V24). Two gaps are closed:
--   * the due list and the claim judged a published action's day by `applied_at` alone, which
--     it does not have, so it was evaluated on the day of its publish, with no day to check;
--   * the confirm time lives only in the outbox, which the retention service prunes after
--     `retention.outbox_days` (7), before a 14-day window ends. From then on the claim read no
--     start at all and failed its whole batch of tenants as corrupt, at every sweep.
-- The confirm followed the cycle's run within moments (or a broker outage later), so once
-- the outbox row is gone the cycle's `executed_at` stands in for it.

-- When a published action's change began: its message's first confirm, else its cycle's run.
-- Called only where `applied_at` is NULL (COALESCE stops at the first value), so the due list
-- does not pay for it on applied actions.
CREATE FUNCTION revenue_os.published_since(cycle uuid, action text)
    RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT COALESCE(
        (SELECT min(o.published_at) FROM public.outbox o
          WHERE o.cycle_id = published_since.cycle AND o.action_id = published_since.action),
        (SELECT c.executed_at FROM public.cycles c WHERE c.cycle_id = published_since.cycle))
    $$;

CREATE OR REPLACE FUNCTION revenue_os.watch_due_tenants() RETURNS SETOF uuid
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    #variable_conflict use_column
    BEGIN
        PERFORM set_config('revenue_os.sweep', 'on', true);
        RETURN QUERY
            WITH newest AS MATERIALIZED (
                SELECT t.tenant_id,
                       (SELECT max(s.date) FROM public.metric_snapshots s
                         WHERE s.tenant_id = t.tenant_id) AS day
                  FROM (SELECT DISTINCT tenant_id FROM public.actions
                         WHERE status IN ('applied', 'published', 'acknowledged')) t)
            SELECT a.tenant_id FROM public.actions a
              JOIN newest n ON n.tenant_id = a.tenant_id
             WHERE a.type <> 'experiment'
               AND (a.status = 'applied'
                    OR (a.status IN ('published', 'acknowledged')
                        AND EXISTS (SELECT 1 FROM public.tenant_settings ts
                                     WHERE ts.tenant_id = a.tenant_id AND ts.watch_published)))
               AND revenue_os.watch_is_due(
                       n.day, a.watched_as_of,
                       COALESCE(a.applied_at,
                                revenue_os.published_since(a.cycle_id, a.action_id)))
             GROUP BY a.tenant_id ORDER BY min(a.cycle_id::text);
        PERFORM set_config('revenue_os.sweep', 'off', true);
    END $$;
