-- Webhook notifications (issue 23, docs/notifications.md) and the sign-in record.
--
-- A state change worth telling a person about (an action held, a decision, a revert, …) writes
-- one `notifications` row in the transaction that makes the change, unique per (event,
-- subject): a sweep that runs again inserts nothing new. The worker's `webhook_delivery`
-- service routes each new notification to the webhooks subscribed to its event (the global
-- ones of `notify.webhooks` in the settings, and the tenant's own in `webhooks`), one
-- `webhook_deliveries` row per (notification, webhook), and sends those with retries and
-- backoff until delivered or dead. Not the AMQP outbox: these go out over HTTP.
--
-- Tenant data like every other table (tenant_id, row-level security). A notification of no
-- tenant (a dead-lettered trigger whose tenant could not be read, rejected load rows of no
-- known tenant) has tenant_id NULL; such rows are seen only by a transaction that says it
-- works on them (SET LOCAL revenue_os.untenanted = 'on'), so "no tenant set, no rows" holds.

-- A tenant's own webhooks (`revenue-os webhook add`). The secret signs its deliveries.
CREATE TABLE webhooks (
    tenant_id  uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    name       text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    url        text NOT NULL CHECK (url ~ '^https?://'),
    events     text[] NOT NULL CHECK (cardinality(events) > 0),
    secret     text NOT NULL CHECK (length(secret) >= 16),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE notifications (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event       text NOT NULL CHECK (event IN ('action_held', 'approval_decided',
                    'approval_expired', 'approval_superseded', 'revert_published',
                    'watchdog_escalation', 'deviation_detected', 'trigger_dead_lettered',
                    'load_rejected')),
    -- What changed: `<cycle>:<action>`, `<cycle>:<action>:<decision>`, a load id and tenant…
    subject     text COLLATE "C" NOT NULL,
    tenant_id   uuid,
    cycle_id    uuid,
    action_id   text,
    occurred_at timestamptz NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}',
    -- Set once its deliveries are written (none when no webhook subscribes).
    routed_at   timestamptz,
    UNIQUE (event, subject)
);
CREATE INDEX notifications_unrouted ON notifications (id) WHERE routed_at IS NULL;
CREATE INDEX notifications_tenant ON notifications (tenant_id, occurred_at DESC);

-- One notification to one webhook: sent until delivered (a 2xx) or dead.
CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id bigint NOT NULL REFERENCES notifications ON DELETE CASCADE,
    tenant_id       uuid,
    -- `global:<name>` (settings) or `tenant:<name>` (the tenant's `webhooks` row).
    webhook         text COLLATE "C" NOT NULL,
    url             text NOT NULL,
    event           text NOT NULL,
    -- The exact bytes signed and sent, the same on every attempt.
    body            bytea NOT NULL,
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- Due at; while an attempt is under way, the end of its claim.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    dead_at         timestamptz,
    last_status     integer,
    last_error      text,
    UNIQUE (notification_id, webhook),
    CHECK (delivered_at IS NULL OR dead_at IS NULL)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE INDEX webhook_deliveries_dead ON webhook_deliveries (dead_at DESC) WHERE dead_at IS NOT NULL;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['webhooks', 'notifications', 'webhook_deliveries']
    LOOP
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON public.%I
                 USING (tenant_id = revenue_os.current_tenant_id())
                 WITH CHECK (tenant_id = revenue_os.current_tenant_id())', t);
        EXECUTE format(
            'CREATE POLICY owner_sweep ON public.%I FOR SELECT TO CURRENT_USER
                 USING (current_setting(''revenue_os.sweep'', true) = ''on'')', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['notifications', 'webhook_deliveries']
    LOOP
        EXECUTE format(
            'CREATE POLICY untenanted ON public.%I
                 USING (tenant_id IS NULL
                        AND current_setting(''revenue_os.untenanted'', true) = ''on'')
                 WITH CHECK (tenant_id IS NULL
                             AND current_setting(''revenue_os.untenanted'', true) = ''on'')', t);
    END LOOP;
END $$;

-- A quarantined load notifies the tenants it loaded whose rows it refused.
CREATE POLICY ingest_load ON notifications
    USING (tenant_id IN (SELECT unnest(l.tenants) FROM public.loads l
                         WHERE l.load_id = revenue_os.current_load_id()
                           AND l.committed_at IS NULL))
    WITH CHECK (tenant_id IN (SELECT unnest(l.tenants) FROM public.loads l
                              WHERE l.load_id = revenue_os.current_load_id()
                                AND l.committed_at IS NULL));

-- Notifications not yet routed to webhooks, oldest first.
CREATE FUNCTION revenue_os.unrouted_notifications(lim bigint)
    RETURNS TABLE (id bigint, tenant_id uuid)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    #variable_conflict use_column
    BEGIN
        PERFORM set_config('revenue_os.sweep', 'on', true);
        RETURN QUERY SELECT n.id, n.tenant_id FROM public.notifications n
            WHERE n.routed_at IS NULL ORDER BY n.id LIMIT lim;
        PERFORM set_config('revenue_os.sweep', 'off', true);
    END $$;

-- Deliveries due now (not delivered, not dead, not under an attempt's claim), soonest first.
CREATE FUNCTION revenue_os.due_webhook_deliveries(lim bigint)
    RETURNS TABLE (id bigint, tenant_id uuid)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    #variable_conflict use_column
    BEGIN
        PERFORM set_config('revenue_os.sweep', 'on', true);
        RETURN QUERY SELECT d.id, d.tenant_id FROM public.webhook_deliveries d
            WHERE d.delivered_at IS NULL AND d.dead_at IS NULL AND d.next_attempt_at <= now()
            ORDER BY d.next_attempt_at, d.id LIMIT lim;
        PERFORM set_config('revenue_os.sweep', 'off', true);
    END $$;

-- Deliveries for a listing, newest first: the dead ones, or every one not yet delivered.
CREATE FUNCTION revenue_os.webhook_delivery_keys(dead boolean, lim bigint)
    RETURNS TABLE (id bigint, tenant_id uuid)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    #variable_conflict use_column
    BEGIN
        PERFORM set_config('revenue_os.sweep', 'on', true);
        RETURN QUERY SELECT d.id, d.tenant_id FROM public.webhook_deliveries d
            WHERE d.delivered_at IS NULL AND (d.dead_at IS NOT NULL) = dead
            ORDER BY coalesce(d.dead_at, d.created_at) DESC, d.id DESC LIMIT lim;
        PERFORM set_config('revenue_os.sweep', 'off', true);
    END $$;

REVOKE ALL ON FUNCTION revenue_os.unrouted_notifications(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION revenue_os.due_webhook_deliveries(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION revenue_os.webhook_delivery_keys(boolean, bigint) FROM PUBLIC;

-- Console sign-ins, for the audit trail (not tenant data: an operator is everyone's).
CREATE TABLE operator_sign_ins (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operator     text NOT NULL,
    role         text NOT NULL,
    -- false: the bootstrap token (REVENUE_OS_CONSOLE_TOKEN) under a typed name.
    named        boolean NOT NULL,
    signed_in_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX operator_sign_ins_time ON operator_sign_ins (signed_in_at);
