-- The tenants the watchdog has due work for, and the overdue gauge, compared each watched
-- action with its tenant's newest metric day, read once per action: at 10,000 tenants
-- 61,000 probes of every monthly partition, about 400,000 buffer reads and a quarter of a
-- second a call; at 100,000 tenants ten times that. The gauge runs every 30 s on every
-- worker all morning, the due list at the start of every load's watch. A tenant's newest
-- day is the same for all its actions, so both now read it once per tenant. MATERIALIZED
-- keeps the planner from folding that read back into the join, where it runs once per
-- action again. What they return is unchanged (tests/store/rls.rs).
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
               AND a.status IN ('applied', 'published', 'acknowledged')
               AND COALESCE(a.watched_as_of, '-infinity'::date) < n.day
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
           AND COALESCE(a.watched_as_of, '-infinity'::date) < n.day;
        PERFORM set_config('revenue_os.sweep', 'off', true);
        RETURN secs;
    END $$;
