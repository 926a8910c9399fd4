-- An applied action is watched from the first full day of its change, the day after its
-- `applied` report (docs/watchdog.md). Until the tenant's data reaches that day there is
-- nothing to check: the evaluation had no days, said "watching" and moved watched_as_of.
-- The claim (store/watch.rs, DUE), the due list and the overdue gauge now wait for that day,
-- all through revenue_os.watch_is_due: a SQL function the planner inlines into each query.
-- At 100,000 tenants the 300-second sweep landed in the middle of the morning's decide and
-- evaluated the 33,000 actions applied since the cycles began, each for nothing.
--
-- The due list also follows the claim on published and acknowledged actions: they are
-- watched only for tenants with `watch_published`. Before, every tenant with a fresh
-- action was listed, and the claim then found nothing due for it.

-- Due when the tenant's newest day is after both the day last evaluated and the day the
-- change was applied.
CREATE FUNCTION revenue_os.watch_is_due(newest date, watched_as_of date, applied_at timestamptz)
    RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT newest > GREATEST(COALESCE(watched_as_of, '-infinity'::date),
                             COALESCE((applied_at AT TIME ZONE 'UTC')::date, '-infinity'::date))
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
               AND revenue_os.watch_is_due(n.day, a.watched_as_of, a.applied_at)
             GROUP BY a.tenant_id ORDER BY min(a.cycle_id::text);
        PERFORM set_config('revenue_os.sweep', 'off', true);
    END $$;

CREATE OR REPLACE FUNCTION revenue_os.oldest_overdue_evaluation_secs() RETURNS double precision
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        secs double precision;
    BEGIN
        PERFORM set_config('revenue_os.sweep', 'on', true);
        WITH newest AS MATERIALIZED (
            SELECT t.tenant_id,
                   (SELECT max(s.date) FROM public.metric_snapshots s
                     WHERE s.tenant_id = t.tenant_id) AS day
              FROM (SELECT DISTINCT tenant_id FROM public.actions
                     WHERE status = 'applied') t)
        SELECT COALESCE(extract(epoch FROM now() - min(a.updated_at))::float8, 0) INTO secs
          FROM public.actions a
          JOIN newest n ON n.tenant_id = a.tenant_id
         WHERE a.status = 'applied' AND a.type <> 'experiment'
           AND revenue_os.watch_is_due(n.day, a.watched_as_of, a.applied_at);
        PERFORM set_config('revenue_os.sweep', 'off', true);
        RETURN secs;
    END $$;
