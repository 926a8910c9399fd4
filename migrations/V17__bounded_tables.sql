-- Bounded tables (issue 21, part 4): the worker's `retention` service (src/worker/periodic/
-- retention.rs) keeps every table that grows by the day to a horizon:
--   * metric_snapshots and revenue_events, partitioned here by month, lose whole months (a
--     DROP of a partition: no dead rows, no vacuum) once a month ends before
--     `retention.data_days`;
--   * cycles (with their actions, data-quality actions, reports, evaluations, approval
--     decisions and outbox rows), loads (with their rejects), notifications (with their
--     deliveries), deviations, rejected triggers and sign-ins go after
--     `retention.history_days`, in small batches through prune_history below;
--   * the outbox keeps its own, shorter horizon (V16).
--
-- How partitions come to exist. No DEFAULT partition: attaching a month while a default
-- exists scans the default under ACCESS EXCLUSIVE and fails as soon as it holds a row of that
-- month, so a catch-all would need draining, row by row, under RLS. Instead every writer asks
-- for the months it writes before it writes them (ensure_month_partitions: `ingest` the
-- months its rows span, `import` its document's), and the retention service creates the
-- current and the next two months ahead, so a routine load finds its months and only a
-- backfill creates one. A writer that skipped the call would fail loudly ("no partition of
-- relation … found for row"), never write elsewhere.
--
-- Creating a month is CREATE TABLE + ATTACH PARTITION, which takes SHARE UPDATE EXCLUSIVE on
-- the parent (readers and ordinary writers go on; CREATE … PARTITION OF would take ACCESS
-- EXCLUSIVE), and, for revenue_events' foreign key, SHARE ROW EXCLUSIVE on tenants, both held
-- to the writer's commit. So writers call it before their first write (nothing they hold can
-- then be waited for by another creator), and creators take turns on an advisory lock per
-- table. Dropping a month takes ACCESS EXCLUSIVE on the parent: drop_month_partition waits at
-- most lock_timeout (1 s) for it, the pass retries later, and readers queue behind it no
-- longer than that.

-- The live statuses: an action that still waits, is under way, or is watched (or whose
-- revert failed and waits for a person) keeps its cycle, however old.
CREATE FUNCTION revenue_os.action_is_live(status text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT status IN ('pending_approval', 'pending', 'published', 'acknowledged',
                            'applied', 'reverting', 'revert_failed') $$;

-- Creates the month partitions of `tbl` (metric_snapshots or revenue_events) that `months`
-- (any day of each) lack: how many it created. A partition shows nothing when read directly
-- (row-level security on, no policy): rows are read and written through the parent, whose
-- policies apply, and the worker's role has no privilege on a partition.
CREATE FUNCTION revenue_os.ensure_month_partitions(tbl text, months date[])
    RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    SET DateStyle = 'ISO, YMD'
    AS $$
    DECLARE
        m date;
        part text;
        locked boolean := false;
        made integer := 0;
    BEGIN
        IF tbl IS NULL OR tbl NOT IN ('metric_snapshots', 'revenue_events') THEN
            RAISE EXCEPTION 'ensure_month_partitions: % is not partitioned by month', tbl
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- Held to the caller's commit: a month found here is not dropped under its rows.
        EXECUTE format('LOCK TABLE public.%I IN ACCESS SHARE MODE', tbl);
        -- (date_trunc of a timestamp without time zone: no session time zone in the way.)
        FOR m IN SELECT DISTINCT date_trunc('month', d::timestamp)::date FROM unnest(months) d
                  WHERE d IS NOT NULL ORDER BY 1
        LOOP
            part := format('%s_y%sm%s', tbl, to_char(m, 'FMYYYY'), to_char(m, 'MM'));
            -- pg_class by SQL, not to_regclass: each statement's snapshot sees a month that
            -- a concurrent creator committed while this one waited for the lock.
            CONTINUE WHEN EXISTS (SELECT 1 FROM pg_class c
                                  WHERE c.relname = part
                                    AND c.relnamespace = 'public'::regnamespace);
            IF NOT locked THEN
                PERFORM pg_advisory_xact_lock(hashtext('revenue_os.partitions'), hashtext(tbl));
                locked := true;
                CONTINUE WHEN EXISTS (SELECT 1 FROM pg_class c
                                      WHERE c.relname = part
                                        AND c.relnamespace = 'public'::regnamespace);
            END IF;
            EXECUTE format('CREATE TABLE public.%I (LIKE public.%I INCLUDING DEFAULTS
                                                   INCLUDING CONSTRAINTS)', part, tbl);
            EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', part);
            EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', part);
            EXECUTE format('ALTER TABLE public.%I ATTACH PARTITION public.%I
                                FOR VALUES FROM (%L) TO (%L)',
                           tbl, part, m, (m + interval '1 month')::date);
            made := made + 1;
        END LOOP;
        RETURN made;
    END $$;

-- Drops the oldest month partition of `tbl` that ends on or before `before` (its rows are
-- all older): its name, or NULL when none is that old.
CREATE FUNCTION revenue_os.drop_month_partition(tbl text, before date)
    RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    SET lock_timeout = '1s' SET DateStyle = 'ISO, YMD'
    AS $$
    DECLARE
        part text;
    BEGIN
        IF tbl IS NULL OR tbl NOT IN ('metric_snapshots', 'revenue_events') THEN
            RAISE EXCEPTION 'drop_month_partition: % is not partitioned by month', tbl
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        SELECT p.name INTO part FROM (
            SELECT c.relname AS name,
                   substring(pg_get_expr(c.relpartbound, c.oid)
                             FROM 'TO \(''([0-9-]+)''\)')::date AS upper_bound
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = format('public.%I', tbl)::regclass) p
         WHERE p.upper_bound <= before
         ORDER BY p.upper_bound LIMIT 1;
        IF part IS NOT NULL THEN
            -- IF EXISTS: another worker's pass may have dropped it while this one waited.
            EXECUTE format('DROP TABLE IF EXISTS public.%I', part);
        END IF;
        RETURN part;
    END $$;

-- Moves one table's rows into a new parent of the same name partitioned by month: the old
-- table is renamed, its columns, defaults and CHECKs copied (LIKE), its policies and grants
-- copied as they are, and its rows moved; the caller then adds the keys and indexes (their
-- names are free once the old table is gone) and turns row-level security on.
CREATE FUNCTION pg_temp.partition_by_month(tbl text, col text) RETURNS void
    LANGUAGE plpgsql AS $$
    DECLARE
        old text := tbl || '_v16';
        p record;
        g record;
    BEGIN
        EXECUTE format('ALTER TABLE public.%I RENAME TO %I', tbl, old);
        EXECUTE format('CREATE TABLE public.%I (LIKE public.%I INCLUDING DEFAULTS
                            INCLUDING CONSTRAINTS) PARTITION BY RANGE (%I)', tbl, old, col);
        -- Policies stay inert until row-level security is enabled, after the copy.
        FOR p IN SELECT pol.polname, pol.polcmd, pol.polpermissive,
                        pg_get_expr(pol.polqual, pol.polrelid) AS qual,
                        pg_get_expr(pol.polwithcheck, pol.polrelid) AS chk,
                        (SELECT string_agg(CASE WHEN r = 0 THEN 'public'
                                                ELSE quote_ident(pg_get_userbyid(r)) END, ', ')
                           FROM unnest(pol.polroles) r) AS roles
                   FROM pg_policy pol WHERE pol.polrelid = format('public.%I', old)::regclass
        LOOP
            EXECUTE format('CREATE POLICY %I ON public.%I AS %s FOR %s TO %s%s%s',
                p.polname, tbl,
                CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT'
                              WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                p.roles,
                CASE WHEN p.qual IS NULL THEN '' ELSE ' USING (' || p.qual || ')' END,
                CASE WHEN p.chk IS NULL THEN '' ELSE ' WITH CHECK (' || p.chk || ')' END);
        END LOOP;
        -- The worker's privileges, so a worker keeps running across the upgrade (a later
        -- `migrate --grant-to` sets the same).
        FOR g IN SELECT a.privilege_type, a.grantee
                   FROM pg_class c, aclexplode(c.relacl) a
                  WHERE c.oid = format('public.%I', old)::regclass AND a.grantee <> c.relowner
        LOOP
            EXECUTE format('GRANT %s ON public.%I TO %s', g.privilege_type, tbl,
                           CASE WHEN g.grantee = 0 THEN 'PUBLIC'
                                ELSE quote_ident(pg_get_userbyid(g.grantee)) END);
        END LOOP;
        -- The owner reads its own table past row-level security once FORCE is off.
        EXECUTE format('ALTER TABLE public.%I NO FORCE ROW LEVEL SECURITY', old);
        -- The months of the rows there are, and the current and next two.
        EXECUTE format('SELECT revenue_os.ensure_month_partitions(%L, ARRAY(
                            SELECT DISTINCT %I FROM public.%I
                            UNION SELECT (current_date + n * interval ''1 month'')::date
                                    FROM generate_series(0, 2) n))', tbl, col, old);
        EXECUTE format('INSERT INTO public.%I SELECT * FROM public.%I', tbl, old);
        EXECUTE format('DROP TABLE public.%I', old);
    END $$;

-- metric_snapshots by `date`. Its unique key (V15) already holds the partition key; the
-- tenants' delete trigger (V15) deletes through the parent, unchanged.
SELECT pg_temp.partition_by_month('metric_snapshots', 'date');
ALTER TABLE metric_snapshots
    ADD CONSTRAINT metric_snapshots_key UNIQUE (tenant_id, date, metric_id, dimension);

-- revenue_events by `effective_date`. A unique key must hold the partition key, so the
-- database now guarantees (tenant_id, id, effective_date); (tenant_id, id) stays unique
-- because both writers look an id up before inserting it, under locks that keep another
-- writer out between the two statements: `ingest` under its SHARE ROW EXCLUSIVE lock,
-- `import` under ROW EXCLUSIVE (which that lock waits for) and the tenant's advisory lock. A
-- restated date moves the row to its month (an UPDATE of the partition key).
SELECT pg_temp.partition_by_month('revenue_events', 'effective_date');
ALTER TABLE revenue_events ADD CONSTRAINT revenue_events_pkey
    PRIMARY KEY (tenant_id, id, effective_date);
CREATE INDEX revenue_events_window ON revenue_events (tenant_id, effective_date, id);
ALTER TABLE revenue_events ADD CONSTRAINT revenue_events_tenant_id_fkey
    FOREIGN KEY (tenant_id) REFERENCES tenants ON DELETE CASCADE;

ALTER TABLE metric_snapshots ENABLE ROW LEVEL SECURITY;
ALTER TABLE metric_snapshots FORCE ROW LEVEL SECURITY;
ALTER TABLE revenue_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE revenue_events FORCE ROW LEVEL SECURITY;
DROP FUNCTION pg_temp.partition_by_month(text, text);
ANALYZE metric_snapshots;
ANALYZE revenue_events;

-- History. Each batch finds its oldest rows through an index on their time.
CREATE INDEX cycles_executed ON cycles (executed_at);
CREATE INDEX notifications_occurred ON notifications (occurred_at);
CREATE INDEX deviations_day ON deviations (day);
CREATE INDEX rejected_triggers_rejected ON rejected_triggers (rejected_at);

-- Deleting is the owner's, inside prune_history only. A cycle with a live action or an
-- unpublished outbox row is never deleted, however old (its actions, reports, evaluations,
-- decisions and outbox rows go with it through ON DELETE CASCADE); nor is a notification
-- with a delivery still being tried.
CREATE POLICY retention_prune ON cycles FOR DELETE TO CURRENT_USER
    USING (current_setting('revenue_os.retention', true) = 'on'
           AND NOT EXISTS (SELECT 1 FROM public.actions a
                           WHERE a.cycle_id = cycles.cycle_id
                             AND revenue_os.action_is_live(a.status))
           AND NOT EXISTS (SELECT 1 FROM public.outbox o
                           WHERE o.cycle_id = cycles.cycle_id AND o.published_at IS NULL));
CREATE POLICY retention_prune ON notifications FOR DELETE TO CURRENT_USER
    USING (current_setting('revenue_os.retention', true) = 'on'
           AND NOT EXISTS (SELECT 1 FROM public.webhook_deliveries d
                           WHERE d.notification_id = notifications.id
                             AND d.delivered_at IS NULL AND d.dead_at IS NULL));
CREATE POLICY retention_prune ON deviations FOR DELETE TO CURRENT_USER
    USING (current_setting('revenue_os.retention', true) = 'on');
CREATE POLICY retention_prune ON rejected_triggers FOR DELETE TO CURRENT_USER
    USING (current_setting('revenue_os.retention', true) = 'on');

-- Deletes at most `lim` rows of one history table (`what`: cycles, loads, notifications,
-- deviations, rejected_triggers, operator_sign_ins) older than `before`, oldest first: how
-- many it deleted (cascaded rows not counted). One short transaction per call.
CREATE FUNCTION revenue_os.prune_history(what text, before timestamptz, lim integer)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        n bigint;
    BEGIN
        PERFORM set_config('revenue_os.sweep', 'on', true);
        PERFORM set_config('revenue_os.retention', 'on', true);
        CASE what
        WHEN 'cycles' THEN
            DELETE FROM public.cycles WHERE cycle_id IN (
                SELECT c.cycle_id FROM public.cycles c
                 WHERE c.executed_at < before
                   AND NOT EXISTS (SELECT 1 FROM public.actions a
                                   WHERE a.cycle_id = c.cycle_id
                                     AND revenue_os.action_is_live(a.status))
                   AND NOT EXISTS (SELECT 1 FROM public.outbox o
                                   WHERE o.cycle_id = c.cycle_id AND o.published_at IS NULL)
                 ORDER BY c.executed_at LIMIT lim);
        WHEN 'loads' THEN
            DELETE FROM public.loads WHERE load_id IN (
                SELECT l.load_id FROM public.loads l
                 WHERE l.committed_at < before ORDER BY l.committed_at LIMIT lim);
        WHEN 'notifications' THEN
            DELETE FROM public.notifications WHERE id IN (
                SELECT x.id FROM public.notifications x
                 WHERE x.occurred_at < before
                   AND NOT EXISTS (SELECT 1 FROM public.webhook_deliveries d
                                   WHERE d.notification_id = x.id
                                     AND d.delivered_at IS NULL AND d.dead_at IS NULL)
                 ORDER BY x.occurred_at LIMIT lim);
        WHEN 'deviations' THEN
            DELETE FROM public.deviations WHERE (tenant_id, metric_id, day) IN (
                SELECT v.tenant_id, v.metric_id, v.day FROM public.deviations v
                 WHERE v.day < (before AT TIME ZONE 'UTC')::date ORDER BY v.day LIMIT lim);
        WHEN 'rejected_triggers' THEN
            DELETE FROM public.rejected_triggers WHERE (tenant_id, message_id) IN (
                SELECT r.tenant_id, r.message_id FROM public.rejected_triggers r
                 WHERE r.rejected_at < before ORDER BY r.rejected_at LIMIT lim);
        WHEN 'operator_sign_ins' THEN
            DELETE FROM public.operator_sign_ins WHERE id IN (
                SELECT s.id FROM public.operator_sign_ins s
                 WHERE s.signed_in_at < before ORDER BY s.signed_in_at LIMIT lim);
        ELSE
            RAISE EXCEPTION 'prune_history: no history table %', what
                USING ERRCODE = 'invalid_parameter_value';
        END CASE;
        GET DIAGNOSTICS n = ROW_COUNT;
        PERFORM set_config('revenue_os.retention', 'off', true);
        PERFORM set_config('revenue_os.sweep', 'off', true);
        RETURN n;
    END $$;

REVOKE ALL ON FUNCTION revenue_os.action_is_live(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION revenue_os.ensure_month_partitions(text, date[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION revenue_os.drop_month_partition(text, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION revenue_os.prune_history(text, timestamptz, integer) FROM PUBLIC;
