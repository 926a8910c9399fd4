-- Bulk loads (`revenue-os ingest`, src/store/ingest.rs): a record of every load, the rows a
-- quarantined load refused, and snapshot removal of campaigns and opportunities.
--
-- A load merges rows of many tenants in one transaction, as the worker's role, under
-- row-level security. It is scoped by a per-load setting instead of one tenant:
--     SELECT set_config('revenue_os.load_id', '<load id>', true)   -- SET LOCAL
-- which admits exactly the tenants its own `loads` row lists while that row is not yet
-- committed (committed_at IS NULL). That row is written by the load's transaction, so no
-- other session can see it, and the transaction stamps committed_at before it commits: a
-- committed (or rolled back) load admits nothing to anyone afterwards.

-- One row per load, written in the transaction that merges it.
CREATE TABLE loads (
    load_id                 text COLLATE "C" PRIMARY KEY CHECK (btrim(load_id) <> ''),
    kind                    text NOT NULL CHECK (kind IN ('metrics','revenue_events','campaigns',
                                                          'opportunities','action_results',
                                                          'tenants')),
    source                  text NOT NULL,
    snapshot                boolean NOT NULL DEFAULT false,
    rows                    bigint NOT NULL DEFAULT 0 CHECK (rows >= 0),
    inserted                bigint NOT NULL DEFAULT 0 CHECK (inserted >= 0),
    updated                 bigint NOT NULL DEFAULT 0 CHECK (updated >= 0),
    unchanged               bigint NOT NULL DEFAULT 0 CHECK (unchanged >= 0),
    rejected                bigint NOT NULL DEFAULT 0 CHECK (rejected >= 0),
    removed                 bigint NOT NULL DEFAULT 0 CHECK (removed >= 0),
    -- While loading: every tenant the file names (the scope); committed: the tenants loaded.
    tenants                 uuid[] NOT NULL DEFAULT '{}',
    started_at              timestamptz NOT NULL,
    committed_at            timestamptz,
    -- The follow-up (watchdog sweep, deviation hand-off) by a periodic service: a claim that
    -- expires on its own, then the time it was done.
    follow_up_claimed_until timestamptz,
    followed_up_at          timestamptz
);
CREATE INDEX loads_recent ON loads (committed_at DESC);
CREATE INDEX loads_tenants ON loads USING gin (tenants);
CREATE INDEX loads_follow_up ON loads (committed_at)
    WHERE followed_up_at IS NULL AND committed_at IS NOT NULL;

-- The load being merged by this transaction; NULL when none.
CREATE FUNCTION revenue_os.current_load_id() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('revenue_os.load_id', true), '') $$;

-- Rows a `--quarantine` load refused, with their line and problem. tenant_id is NULL when the
-- row had no readable one (only the owner sees those), and need not name a tenant that exists.
CREATE TABLE ingest_rejects (
    load_id   text COLLATE "C" NOT NULL REFERENCES loads ON DELETE CASCADE,
    line      bigint NOT NULL CHECK (line > 0),
    tenant_id uuid,
    problem   text NOT NULL,
    raw       text NOT NULL,
    PRIMARY KEY (load_id, line)
);
CREATE INDEX ingest_rejects_tenant ON ingest_rejects (tenant_id, load_id);

-- Snapshot loads mark rows missing from the file instead of deleting them; assembly skips them.
ALTER TABLE campaigns ADD COLUMN removed_by_load text COLLATE "C";
ALTER TABLE opportunities ADD COLUMN removed_by_load text COLLATE "C";

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'tenants', 'targets', 'guardrails', 'tenant_config',
        'metric_snapshots', 'revenue_events', 'campaigns', 'opportunities', 'action_results']
    LOOP
        -- `IN (SELECT unnest …)` is planned as a hashed subplan: one probe per row.
        EXECUTE format(
            'CREATE POLICY ingest_load ON public.%I
                 USING (tenant_id IN (SELECT unnest(l.tenants) FROM public.loads l
                                      WHERE l.load_id = revenue_os.current_load_id()
                                        AND l.committed_at IS NULL))
                 WITH CHECK (tenant_id IN (SELECT unnest(l.tenants) FROM public.loads l
                                           WHERE l.load_id = revenue_os.current_load_id()
                                             AND l.committed_at IS NULL))', t);
    END LOOP;
END $$;

ALTER TABLE ingest_rejects ENABLE ROW LEVEL SECURITY;
ALTER TABLE ingest_rejects FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ingest_rejects
    USING (tenant_id = revenue_os.current_tenant_id())
    WITH CHECK (tenant_id = revenue_os.current_tenant_id());
CREATE POLICY owner_sweep ON ingest_rejects FOR SELECT TO CURRENT_USER
    USING (current_setting('revenue_os.sweep', true) = 'on');
-- A load writes its rejects (of any tenant, or of none) while it is uncommitted.
CREATE POLICY ingest_load ON ingest_rejects
    USING (load_id = revenue_os.current_load_id()
           AND EXISTS (SELECT 1 FROM public.loads l
                       WHERE l.load_id = ingest_rejects.load_id AND l.committed_at IS NULL))
    WITH CHECK (load_id = revenue_os.current_load_id()
                AND EXISTS (SELECT 1 FROM public.loads l
                            WHERE l.load_id = ingest_rejects.load_id
                              AND l.committed_at IS NULL));

REVOKE ALL ON FUNCTION revenue_os.current_load_id() FROM PUBLIC;
