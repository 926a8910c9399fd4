-- An action's row is its own outbox entry (issue 21). A cycle wrote each action twice: its
-- `actions` row and an outbox row around it (V19), and the publish confirm then rewrote both.
-- The outbox row cost a heap tuple and four index entries when written and again when marked,
-- about two fifths of the database's time per cycle (README, Capacity). Now a cycle's action
-- messages live in their actions rows; the outbox keeps everything else (cycle events,
-- reverts and escalations, approved actions, deviation and load triggers).
--
-- An action row is an entry when `message` is set: the message's exchange, routing key, id,
-- headers and body head (the body is the head with the row's `action` under "action", as V19
-- rebuilds it). `outbox_id` is drawn from the outbox's own sequence, so one id names one entry
-- across both tables and orders a cycle's messages as before: its actions in priority order,
-- then its event. `published_at`, `publish_attempts`, `publish_error` and
-- `publish_claimed_until` are the outbox's `published_at`, `attempts`, `last_error` and
-- `claimed_until`. Once confirmed, a row keeps only its message's address (exchange, routing
-- key, id): the headers and the head serve a re-publish alone, and a row keeps its action for
-- `retention.history_days`, where the outbox kept a message for `retention.outbox_days`.
-- Rows written before this migration keep their outbox rows and go out as they did.
ALTER TABLE actions
    ADD COLUMN outbox_id bigint,
    ADD COLUMN message jsonb,
    ADD COLUMN published_at timestamptz,
    ADD COLUMN publish_attempts integer NOT NULL DEFAULT 0 CHECK (publish_attempts >= 0),
    ADD COLUMN publish_error text,
    ADD COLUMN publish_claimed_until timestamptz,
    ADD CONSTRAINT actions_message_kept CHECK (
        (message IS NULL AND outbox_id IS NULL)
        OR (outbox_id IS NOT NULL AND jsonb_typeof(message) = 'object'
            AND message ->> 'exchange' IS NOT NULL AND message ->> 'routing_key' IS NOT NULL
            AND message ->> 'message_id' IS NOT NULL
            AND (published_at IS NOT NULL
                 OR (jsonb_typeof(message -> 'head') = 'object'
                     AND jsonb_typeof(message -> 'headers') = 'object'))));

-- The unpublished entries, by id: the sweep's and the confirm's way in. A published row
-- leaves it when marked.
CREATE INDEX actions_unpublished ON actions (outbox_id)
    WHERE published_at IS NULL AND message IS NOT NULL;

-- The worker's role may not call nextval() on the outbox's sequence (store/roles.rs): it
-- draws an entry's id through this function.
CREATE FUNCTION revenue_os.outbox_id() RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$ SELECT nextval(pg_get_serial_sequence('public.outbox', 'id')) $$;
REVOKE ALL ON FUNCTION revenue_os.outbox_id() FROM PUBLIC;

-- The sweep: unpublished, unclaimed entries of both tables, least-tried first, then oldest.
CREATE OR REPLACE FUNCTION revenue_os.pending_outbox(lim bigint)
    RETURNS TABLE (id bigint, tenant_id uuid)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    #variable_conflict use_column
    BEGIN
        PERFORM set_config('revenue_os.sweep', 'on', true);
        RETURN QUERY SELECT p.id, p.tenant_id FROM (
            SELECT o.id, o.tenant_id, o.attempts FROM public.outbox o
             WHERE o.published_at IS NULL
               AND (o.claimed_until IS NULL OR o.claimed_until <= now())
            UNION ALL
            SELECT a.outbox_id, a.tenant_id, a.publish_attempts FROM public.actions a
             WHERE a.published_at IS NULL AND a.message IS NOT NULL
               AND (a.publish_claimed_until IS NULL OR a.publish_claimed_until <= now())) p
         ORDER BY p.attempts, p.id LIMIT lim;
        PERFORM set_config('revenue_os.sweep', 'off', true);
    END $$;

-- The backlog gauge: entries waiting, and the age in seconds of the oldest.
CREATE OR REPLACE FUNCTION revenue_os.outbox_backlog()
    RETURNS TABLE (pending bigint, oldest_secs double precision)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    #variable_conflict use_column
    BEGIN
        PERFORM set_config('revenue_os.sweep', 'on', true);
        RETURN QUERY SELECT count(*), coalesce(extract(epoch FROM now() - min(p.created_at))::float8, 0)
            FROM (SELECT o.created_at FROM public.outbox o WHERE o.published_at IS NULL
                  UNION ALL
                  SELECT a.created_at FROM public.actions a
                   WHERE a.published_at IS NULL AND a.message IS NOT NULL) p;
        PERFORM set_config('revenue_os.sweep', 'off', true);
    END $$;

-- A published action's start (V25): its own row's confirm first.
CREATE OR REPLACE FUNCTION revenue_os.published_since(cycle uuid, action text)
    RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT COALESCE(
        (SELECT a.published_at FROM public.actions a
          WHERE a.cycle_id = published_since.cycle AND a.action_id = published_since.action),
        (SELECT min(o.published_at) FROM public.outbox o
          WHERE o.cycle_id = published_since.cycle AND o.action_id = published_since.action),
        (SELECT c.executed_at FROM public.cycles c WHERE c.cycle_id = published_since.cycle))
    $$;

-- Retention (V17) keeps a cycle while any of its messages waits, in either table.
DROP POLICY retention_prune ON cycles;
CREATE POLICY retention_prune ON cycles FOR DELETE TO CURRENT_USER
    USING (current_setting('revenue_os.retention', true) = 'on'
           AND NOT EXISTS (SELECT 1 FROM public.actions a
                           WHERE a.cycle_id = cycles.cycle_id
                             AND (revenue_os.action_is_live(a.status)
                                  OR (a.published_at IS NULL AND a.message IS NOT NULL)))
           AND NOT EXISTS (SELECT 1 FROM public.outbox o
                           WHERE o.cycle_id = cycles.cycle_id AND o.published_at IS NULL));

-- The same rule in prune_history's choice of cycles, so that a batch it picks is one the
-- policy lets it delete (V17's body, with the action clause above).
CREATE OR REPLACE FUNCTION revenue_os.prune_history(what text, before timestamptz, lim integer)
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
                                     AND (revenue_os.action_is_live(a.status)
                                          OR (a.published_at IS NULL
                                              AND a.message IS NOT NULL)))
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

-- Every message the outbox relays, whichever table keeps it: what an operator reads to see
-- what waits (`WHERE published_at IS NULL`) or what went out (an action's `headers` are NULL
-- once confirmed). Read with the reader's own rights and row-level security.
CREATE VIEW outbox_messages WITH (security_invoker = true) AS
    SELECT o.id, o.tenant_id, o.cycle_id, o.action_id, o.exchange, o.routing_key,
           o.message_id, o.headers, o.attempts, o.last_error, o.created_at, o.published_at,
           o.claimed_until
      FROM outbox o
    UNION ALL
    SELECT a.outbox_id, a.tenant_id, a.cycle_id, a.action_id, a.message ->> 'exchange',
           a.message ->> 'routing_key', a.message ->> 'message_id', a.message -> 'headers',
           a.publish_attempts, a.publish_error, a.created_at, a.published_at,
           a.publish_claimed_until
      FROM actions a
     WHERE a.message IS NOT NULL;
