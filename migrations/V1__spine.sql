-- Revenue OS spine: tenants, their revenue data, and every cycle's record.
-- Every tenant-owned table carries tenant_id and every index leads with it, so one tenant's
-- queries never read another tenant's rows.

CREATE TABLE tenants (
    tenant_id  uuid PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The contract's `targets` block: every target, when set, is > 0.
CREATE TABLE targets (
    tenant_id          uuid PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,
    pipeline_total     double precision CHECK (pipeline_total > 0),
    bookings_new       double precision CHECK (bookings_new > 0),
    arr_target         double precision CHECK (arr_target > 0),
    cac_max            double precision CHECK (cac_max > 0),
    payback_max_months double precision CHECK (payback_max_months > 0),
    gross_margin_min   double precision CHECK (gross_margin_min > 0 AND gross_margin_min <= 1),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE guardrails (
    tenant_id                   uuid PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,
    max_daily_spend             double precision CHECK (max_daily_spend >= 0),
    max_experiment_exposure_pct double precision
        CHECK (max_experiment_exposure_pct BETWEEN 0 AND 100),
    allowed_levers              text[] NOT NULL
        CHECK (cardinality(allowed_levers) > 0
               AND allowed_levers <@ ARRAY['campaigns','channels','sequences','pricing']),
    -- NULL: the document had no blocked_actions; '{}': it had an empty list.
    blocked_actions             text[]
        CHECK (blocked_actions <@ ARRAY['config_change','experiment','pause','scale','revert']),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);

-- The contract's optional `config` block; no row = no config.
CREATE TABLE tenant_config (
    tenant_id                       uuid PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,
    min_sample_size                 double precision
        CHECK (min_sample_size BETWEEN 1 AND 10000000 AND min_sample_size = trunc(min_sample_size)),
    default_observation_window_days double precision
        CHECK (default_observation_window_days BETWEEN 1 AND 365
               AND default_observation_window_days = trunc(default_observation_window_days)),
    risk_tolerance                  text CHECK (risk_tolerance IN ('low','medium','high')),
    updated_at                      timestamptz NOT NULL DEFAULT now()
);

-- Synced from config/metrics.toml (the catalog) on migrate and on import.
CREATE TABLE metric_dictionary (
    metric_id  text COLLATE "C" PRIMARY KEY,
    lens       text NOT NULL CHECK (lens IN ('demand','conversion','economics','data_health')),
    direction  text NOT NULL CHECK (direction IN ('up','down','band')),
    unit       text NOT NULL,
    meaning    text NOT NULL,
    dimension  text,
    synced_at  timestamptz NOT NULL DEFAULT now()
);

-- dimension '{}' stands for "no dimension" so the unique key needs no NULL handling.
CREATE TABLE metric_snapshots (
    tenant_id  uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    metric_id  text COLLATE "C" NOT NULL REFERENCES metric_dictionary,
    date       date NOT NULL,
    dimension  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(dimension) = 'object'),
    value      double precision NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, metric_id, date, dimension)
);
-- Assembly: a tenant's metrics dated within the window.
CREATE INDEX metric_snapshots_window ON metric_snapshots (tenant_id, date, metric_id);

CREATE TABLE revenue_events (
    tenant_id              uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    id                     text COLLATE "C" NOT NULL CHECK (btrim(id) <> ''),
    type                   text NOT NULL,
    amount                 double precision NOT NULL,
    effective_date         date NOT NULL,
    attributed_campaign_id text,
    attributed_channel     text,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
-- Assembly: a tenant's events with effective_date within the window, already in output order
-- (ids are COLLATE "C": byte order, the same as Rust's, and cheaper to compare).
CREATE INDEX revenue_events_window ON revenue_events (tenant_id, effective_date, id);

CREATE TABLE campaigns (
    tenant_id    uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    id           text COLLATE "C" NOT NULL CHECK (btrim(id) <> ''),
    name         text NOT NULL,
    status       text NOT NULL,
    objective    text NOT NULL,
    budget_total double precision NOT NULL CHECK (budget_total >= 0),
    budget_spent double precision NOT NULL CHECK (budget_spent >= 0),
    start_date   date NOT NULL,
    end_date     date CHECK (end_date >= start_date),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
-- Assembly reads a tenant's campaigns through the primary key (tenant_id prefix).

CREATE TABLE opportunities (
    tenant_id           uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    id                  text COLLATE "C" NOT NULL CHECK (btrim(id) <> ''),
    stage               text NOT NULL,
    amount              double precision NOT NULL CHECK (amount >= 0),
    expected_close_date date NOT NULL,
    win_probability     double precision NOT NULL CHECK (win_probability BETWEEN 0 AND 1),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
-- Assembly: a tenant's open opportunities (closed ones never enter a cycle), in output order.
CREATE INDEX opportunities_open ON opportunities (tenant_id, expected_close_date, id)
    WHERE stage NOT IN ('closed_won', 'closed_lost');

-- What executors report about actions, stamped with the time it was recorded.
CREATE TABLE action_results (
    tenant_id      uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    action_id      text COLLATE "C" NOT NULL CHECK (btrim(action_id) <> ''),
    target_metric  text NOT NULL,
    baseline_value double precision NOT NULL,
    observed_value double precision NOT NULL,
    delta          double precision NOT NULL,
    confidence     double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    outcome        text NOT NULL CHECK (outcome IN ('successful','failed','inconclusive')),
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, action_id)
);
-- Assembly: results recorded in the last 90 days.
CREATE INDEX action_results_recent ON action_results (tenant_id, recorded_at);

-- One row per trigger message that reached a tenant: completed, failed or skipped.
CREATE TABLE cycles (
    cycle_id           uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    message_id         text NOT NULL UNIQUE,
    trigger_type       text NOT NULL
        CHECK (trigger_type IN ('scheduled','metric_deviation','lifecycle_event','manual')),
    trigger_source     text NOT NULL,
    triggered_at       timestamptz,
    trigger            jsonb NOT NULL,
    window_start       date NOT NULL,
    window_end         date NOT NULL,
    status             text NOT NULL CHECK (status IN ('completed','failed','skipped')),
    error_code         text CHECK (error_code IN
        ('INVALID_INPUT','TENANT_NOT_FOUND','INSUFFICIENT_DATA','CYCLE_TOO_RECENT','INTERNAL_ERROR')),
    error              jsonb,
    binding_constraint text
        CHECK (binding_constraint IN ('demand','conversion','economics','data_quality')),
    priority_metric    text,
    diagnosis          text,
    confidence         double precision CHECK (confidence BETWEEN 0 AND 1),
    executed_at        timestamptz NOT NULL,
    duration_ms        integer NOT NULL CHECK (duration_ms >= 0),
    output             jsonb,
    CHECK ((status = 'completed') = (output IS NOT NULL AND error IS NULL)),
    CHECK ((status = 'completed') = (error_code IS NULL))
);
-- Interval check: the tenant's latest completed cycle.
CREATE INDEX cycles_last_completed ON cycles (tenant_id, executed_at DESC)
    WHERE status = 'completed';

CREATE TABLE actions (
    cycle_id        uuid NOT NULL REFERENCES cycles ON DELETE CASCADE,
    action_id       text NOT NULL,
    tenant_id       uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    priority        smallint NOT NULL CHECK (priority BETWEEN 1 AND 7),
    owner_subsystem text NOT NULL
        CHECK (owner_subsystem IN ('campaigns','crm','pricing','routing','content')),
    type            text NOT NULL
        CHECK (type IN ('config_change','experiment','pause','scale','revert')),
    target_metric   text NOT NULL,
    action          jsonb NOT NULL,
    -- pending -> published (broker confirmed) -> executor-reported states.
    status          text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending','published','accepted','rejected','executing',
                          'executed','failed','reverted')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cycle_id, action_id)
);

CREATE TABLE data_quality_actions (
    cycle_id        uuid NOT NULL REFERENCES cycles ON DELETE CASCADE,
    action_id       text NOT NULL,
    tenant_id       uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    priority        smallint NOT NULL CHECK (priority >= 1),
    issue_type      text NOT NULL
        CHECK (issue_type IN ('missing_data','stale_data','invalid_data','missing_attribution')),
    affected_metric text NOT NULL,
    description     text NOT NULL,
    recommended_fix text NOT NULL,
    PRIMARY KEY (cycle_id, action_id)
);

-- Triggers for tenants that do not exist (no tenant row to own a cycle).
CREATE TABLE rejected_triggers (
    message_id  text PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    trigger     jsonb NOT NULL,
    error_code  text NOT NULL,
    error       jsonb NOT NULL,
    rejected_at timestamptz NOT NULL
);

-- One row per message to publish; written in the cycle's transaction, relayed afterwards.
CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cycle_id     uuid NOT NULL REFERENCES cycles ON DELETE CASCADE,
    tenant_id    uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    exchange     text NOT NULL,
    routing_key  text NOT NULL,
    message_id   text NOT NULL UNIQUE,
    headers      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(headers) = 'object'),
    body         bytea NOT NULL,
    action_id    text,
    attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    FOREIGN KEY (cycle_id, action_id) REFERENCES actions (cycle_id, action_id)
);
-- Sweeper: unpublished rows, oldest first.
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;
-- Replay: a cycle's rows.
CREATE INDEX outbox_cycle ON outbox (cycle_id);
