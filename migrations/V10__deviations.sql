-- Deviation detection (src/deviation, src/store/deviations.rs, docs/deviations.md): one row per
-- tenant, metric and day whose newest value left its band by a practical amount, with the
-- numbers that decided it; harmful ones may raise a metric_deviation trigger through the outbox.

CREATE TABLE deviations (
    tenant_id          uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    metric_id          text COLLATE "C" NOT NULL,
    day                date NOT NULL,
    observed           double precision NOT NULL,
    expected           double precision NOT NULL,
    band_lower         double precision NOT NULL,
    band_upper         double precision NOT NULL,
    k                  double precision NOT NULL CHECK (k > 0),
    method             text NOT NULL CHECK (method IN ('mstl_ets', 'rolling_median')),
    days_used          integer NOT NULL CHECK (days_used >= 0),
    log_scale          boolean NOT NULL,
    -- |observed - expected| / band half-width, on the model's scale.
    severity           double precision NOT NULL CHECK (severity >= 0),
    -- false: a helpful surprise, recorded and never a trigger.
    harmful            boolean NOT NULL,
    -- The AMQP message_id of the trigger this deviation raised, if it raised one.
    trigger_message_id text,
    detected_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, metric_id, day)
);
CREATE INDEX deviations_by_day ON deviations (tenant_id, day DESC);

-- Per-tenant opt-out (the global switch is the setting deviation.enabled).
ALTER TABLE tenant_settings ADD COLUMN deviation_enabled boolean NOT NULL DEFAULT true;

-- A deviation trigger belongs to no cycle: it asks for one.
ALTER TABLE outbox ALTER COLUMN cycle_id DROP NOT NULL;

ALTER TABLE deviations ENABLE ROW LEVEL SECURITY;
ALTER TABLE deviations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON deviations
    USING (tenant_id = revenue_os.current_tenant_id())
    WITH CHECK (tenant_id = revenue_os.current_tenant_id());
CREATE POLICY owner_sweep ON deviations FOR SELECT TO CURRENT_USER
    USING (current_setting('revenue_os.sweep', true) = 'on');
