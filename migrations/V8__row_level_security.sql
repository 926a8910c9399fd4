-- Row-level security: defence in depth behind the store's `WHERE tenant_id = $1`. Every
-- tenant-owned table (each carries tenant_id; no table holds tenant data without it) shows a
-- session only the rows of the tenant its transaction named with
--     SELECT set_config('revenue_os.tenant_id', '<uuid>', true)   -- SET LOCAL
-- Unset (or empty) names no tenant: no rows. FORCE applies the policies to the tables' owner
-- too, so a process that runs as the owner by mistake is scoped like the worker.
--
-- The few jobs that look across tenants (outbox relay, watchdog claim, approval expiry,
-- gauges, the console's lists, a report naming a cycle) go through the SECURITY DEFINER
-- functions in schema revenue_os below. They return keys and counts only; the rows
-- themselves are then read and written in per-tenant transactions, under the same policies.
-- They are owned by the migrating role (the owner), run with a pinned search_path, and turn
-- `revenue_os.sweep` on while they read and off before they return (a function-level SET of
-- a custom setting needs a superuser). The policy that honours that flag applies TO the
-- owner alone: the worker role may set the flag itself, and it changes nothing for it.
--
-- Privileges (which role may run which DML) are not set here: `revenue-os grants` prints
-- them and `revenue-os migrate --grant-to ROLE` applies them (src/store/roles.rs).

CREATE SCHEMA revenue_os;
REVOKE ALL ON SCHEMA revenue_os FROM PUBLIC;

-- The tenant this transaction is scoped to; NULL when none.
CREATE FUNCTION revenue_os.current_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('revenue_os.tenant_id', true), '')::uuid $$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'tenants', 'targets', 'guardrails', 'tenant_config',
        'metric_snapshots', 'revenue_events', 'campaigns', 'opportunities',
        'action_results', 'cycles', 'actions', 'data_quality_actions', 'rejected_triggers',
        'outbox', 'action_reports', 'lever_state', 'tenant_settings', 'watchdog_evaluations',
        'approval_policy', 'approval_decisions']
    LOOP
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON public.%I
                 USING (tenant_id = revenue_os.current_tenant_id())
                 WITH CHECK (tenant_id = revenue_os.current_tenant_id())', t);
        -- Read-only, for the owner, inside a revenue_os sweep function only.
        EXECUTE format(
            'CREATE POLICY owner_sweep ON public.%I FOR SELECT TO CURRENT_USER
                 USING (current_setting(''revenue_os.sweep'', true) = ''on'')', t);
    END LOOP;
END $$;

-- Every tenant, in id order (the console's overview, then one tenant at a time).
CREATE FUNCTION revenue_os.tenant_ids() RETURNS SETOF uuid
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    #variable_conflict use_column
    BEGIN
        PERFORM set_config('revenue_os.sweep', 'on', true);
        RETURN QUERY SELECT tenant_id FROM public.tenants ORDER BY tenant_id;
        PERFORM set_config('revenue_os.sweep', 'off', true);
    END $$;

-- The tenant a cycle belongs to (cycle ids are random UUIDs): a report or a console page
-- that names a cycle finds the tenant to scope its transaction to.
CREATE FUNCTION revenue_os.cycle_tenant(cycle uuid) RETURNS uuid
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        found uuid;
    BEGIN
        PERFORM set_config('revenue_os.sweep', 'on', true);
        SELECT c.tenant_id INTO found FROM public.cycles c WHERE c.cycle_id = cycle;
        PERFORM set_config('revenue_os.sweep', 'off', true);
        RETURN found;
    END $$;

-- The relay's sweep: unpublished, unclaimed rows, least-tried first.
CREATE FUNCTION revenue_os.pending_outbox(lim bigint)
    RETURNS TABLE (id bigint, tenant_id uuid)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    #variable_conflict use_column
    BEGIN
        PERFORM set_config('revenue_os.sweep', 'on', true);
        RETURN QUERY SELECT o.id, o.tenant_id FROM public.outbox o
            WHERE o.published_at IS NULL
              AND (o.claimed_until IS NULL OR o.claimed_until <= now())
            ORDER BY o.attempts, o.id LIMIT lim;
        PERFORM set_config('revenue_os.sweep', 'off', true);
    END $$;

-- The backlog gauge: rows waiting, and the age in seconds of the oldest.
CREATE FUNCTION revenue_os.outbox_backlog()
    RETURNS TABLE (pending bigint, oldest_secs double precision)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    #variable_conflict use_column
    BEGIN
        PERFORM set_config('revenue_os.sweep', 'on', true);
        RETURN QUERY SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at))::float8, 0)
            FROM public.outbox WHERE published_at IS NULL;
        PERFORM set_config('revenue_os.sweep', 'off', true);
    END $$;

-- The action-status gauge.
CREATE FUNCTION revenue_os.action_status_counts() RETURNS TABLE (status text, n bigint)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    #variable_conflict use_column
    BEGIN
        PERFORM set_config('revenue_os.sweep', 'on', true);
        RETURN QUERY SELECT status, count(*) FROM public.actions GROUP BY status;
        PERFORM set_config('revenue_os.sweep', 'off', true);
    END $$;

-- Tenants with an action the watchdog may be due to evaluate, the one holding the lowest
-- (cycle, action) first. A superset of what the claim takes: the claim, per tenant and
-- FOR UPDATE SKIP LOCKED, decides.
CREATE FUNCTION revenue_os.watch_due_tenants() RETURNS SETOF uuid
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    #variable_conflict use_column
    BEGIN
        PERFORM set_config('revenue_os.sweep', 'on', true);
        RETURN QUERY SELECT a.tenant_id FROM public.actions a
            WHERE a.type <> 'experiment'
              AND a.status IN ('applied', 'published', 'acknowledged')
              AND COALESCE(a.watched_as_of, '-infinity'::date) <
                  (SELECT max(date) FROM public.metric_snapshots s WHERE s.tenant_id = a.tenant_id)
            GROUP BY a.tenant_id ORDER BY min(a.cycle_id::text);
        PERFORM set_config('revenue_os.sweep', 'off', true);
    END $$;

-- The watchdog-overdue gauge (the query the worker ran before, unchanged).
CREATE FUNCTION revenue_os.oldest_overdue_evaluation_secs() RETURNS double precision
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        secs double precision;
    BEGIN
        PERFORM set_config('revenue_os.sweep', 'on', true);
        SELECT COALESCE(extract(epoch FROM now() - min(a.updated_at))::float8, 0) INTO secs
          FROM public.actions a
          WHERE a.status = 'applied' AND a.type <> 'experiment'
            AND COALESCE(a.watched_as_of, '-infinity'::date) <
                (SELECT max(s.date) FROM public.metric_snapshots s
                 WHERE s.tenant_id = a.tenant_id);
        PERFORM set_config('revenue_os.sweep', 'off', true);
        RETURN secs;
    END $$;

-- Held actions, oldest first (the expiry sweep, the approvals queue of every tenant).
CREATE FUNCTION revenue_os.pending_approvals(lim bigint)
    RETURNS TABLE (tenant_id uuid, cycle_id uuid, action_id text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    #variable_conflict use_column
    BEGIN
        PERFORM set_config('revenue_os.sweep', 'on', true);
        RETURN QUERY SELECT a.tenant_id, a.cycle_id, a.action_id FROM public.actions a
            WHERE a.status = 'pending_approval'
            ORDER BY a.created_at, a.cycle_id, a.action_id LIMIT lim;
        PERFORM set_config('revenue_os.sweep', 'off', true);
    END $$;

-- Triggers rejected for an unknown tenant, newest first (the console's dead-letter page).
CREATE FUNCTION revenue_os.rejected_triggers(lim bigint)
    RETURNS TABLE (tenant_id uuid, message_id text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    #variable_conflict use_column
    BEGIN
        PERFORM set_config('revenue_os.sweep', 'on', true);
        RETURN QUERY SELECT r.tenant_id, r.message_id FROM public.rejected_triggers r
            ORDER BY r.rejected_at DESC, r.message_id LIMIT lim;
        PERFORM set_config('revenue_os.sweep', 'off', true);
    END $$;

-- Functions are executable by PUBLIC by default; these only by the roles granted them.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA revenue_os FROM PUBLIC;
