-- Executors report back: the action lifecycle, every report, the levers' known state.

ALTER TABLE actions DROP CONSTRAINT actions_status_check;
ALTER TABLE actions ADD CONSTRAINT actions_status_check CHECK (status IN
    ('pending_approval','pending','published','acknowledged','applied','failed','rejected',
     'reverting','reverted','revert_failed','concluded','superseded','expired'));
-- What the executor reported applying: the prior value (or its inverse) is what a revert
-- restores.
ALTER TABLE actions ADD COLUMN applied_at timestamptz;
ALTER TABLE actions ADD COLUMN applied_before jsonb;
ALTER TABLE actions ADD COLUMN applied_after jsonb;
ALTER TABLE actions ADD COLUMN applied_inverse jsonb;
ALTER TABLE actions ADD COLUMN outcome text CHECK (outcome IN ('successful','failed','inconclusive'));
-- Gauges of actions per status, and the watchdog's scan of applied actions.
CREATE INDEX actions_status ON actions (status, tenant_id);

-- Every report, as received: who, when, what, and what it did to the action.
CREATE TABLE action_reports (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    cycle_id      uuid NOT NULL,
    action_id     text NOT NULL,
    source        text NOT NULL,
    event_id      text NOT NULL,
    type          text NOT NULL
        CHECK (type IN ('acknowledged','applied','failed','rejected','outcome')),
    on_revert     boolean NOT NULL DEFAULT false,
    event_time    timestamptz,
    received_at   timestamptz NOT NULL,
    status_before text NOT NULL,
    status_after  text NOT NULL,
    result        text NOT NULL CHECK (result IN ('applied','late','invalid_transition')),
    event         jsonb NOT NULL,
    -- CloudEvents: source + id identify an event; a repeat is a duplicate.
    UNIQUE (source, event_id),
    FOREIGN KEY (cycle_id, action_id) REFERENCES actions (cycle_id, action_id) ON DELETE CASCADE
);
CREATE INDEX action_reports_action ON action_reports (cycle_id, action_id, id);

-- The value each lever has, as the last applied report said.
CREATE TABLE lever_state (
    tenant_id  uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    subsystem  text NOT NULL
        CHECK (subsystem IN ('campaigns','crm','pricing','routing','content')),
    -- '' for a tenant-wide setting (no entity).
    entity_id  text COLLATE "C" NOT NULL DEFAULT '',
    field      text COLLATE "C" NOT NULL,
    value      jsonb NOT NULL,
    since      timestamptz NOT NULL,
    cycle_id   uuid NOT NULL,
    action_id  text NOT NULL,
    PRIMARY KEY (tenant_id, subsystem, entity_id, field)
);

-- Outcomes reported by executors (or measured) say where they came from.
ALTER TABLE action_results ADD COLUMN source text;
