-- The watchdog: per-tenant settings, one evaluation per action per metric day, escalations.

CREATE TABLE tenant_settings (
    tenant_id       uuid PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,
    -- shadow: record what the watchdog would do, publish nothing.
    watchdog_mode   text NOT NULL DEFAULT 'enforce' CHECK (watchdog_mode IN ('enforce','shadow')),
    -- Watch actions from `published` for tenants whose executors never report `applied`.
    watch_published boolean NOT NULL DEFAULT false,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The newest metric day an action was evaluated for; a sweep takes only actions behind.
ALTER TABLE actions ADD COLUMN watched_as_of date;
ALTER TABLE actions ADD COLUMN escalated_at timestamptz;

CREATE TABLE watchdog_evaluations (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    cycle_id     uuid NOT NULL,
    action_id    text NOT NULL,
    as_of        date NOT NULL,
    evaluated_at timestamptz NOT NULL,
    mode         text NOT NULL CHECK (mode IN ('enforce','shadow')),
    verdict      text NOT NULL
        CHECK (verdict IN ('watching','abort','would_revert','escalate','measured','unmeasurable')),
    outcome      text CHECK (outcome IN ('successful','failed','inconclusive')),
    sentence     text NOT NULL,
    numbers      jsonb NOT NULL,
    UNIQUE (cycle_id, action_id, as_of),
    FOREIGN KEY (cycle_id, action_id) REFERENCES actions (cycle_id, action_id) ON DELETE CASCADE
);
CREATE INDEX watchdog_evaluations_tenant ON watchdog_evaluations (tenant_id, evaluated_at DESC);
CREATE INDEX actions_watched ON actions (status, watched_as_of) WHERE status IN ('applied','published','acknowledged');
