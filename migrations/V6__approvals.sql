-- People in the loop: which actions a tenant wants a person to approve, and every decision.

CREATE TABLE approval_policy (
    tenant_id           uuid PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,
    -- `<subsystem>:<type>` patterns, `*` for any: 'pricing:*', '*:experiment'.
    require             text[] NOT NULL DEFAULT '{}',
    max_added_spend     double precision CHECK (max_added_spend >= 0),
    max_budget_step_pct double precision CHECK (max_budget_step_pct >= 0),
    first_days          integer CHECK (first_days >= 0),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Why an action waits for a person.
ALTER TABLE actions ADD COLUMN approval_reason text;

CREATE TABLE approval_decisions (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    cycle_id   uuid NOT NULL,
    action_id  text NOT NULL,
    decision   text NOT NULL
        CHECK (decision IN ('approved','rejected','refused_stale','expired','superseded')),
    decided_by text NOT NULL,
    decided_at timestamptz NOT NULL,
    -- The hash of the action the person saw.
    hash       text,
    reason     text,
    FOREIGN KEY (cycle_id, action_id) REFERENCES actions (cycle_id, action_id) ON DELETE CASCADE
);
CREATE INDEX approval_decisions_action ON approval_decisions (cycle_id, action_id, id);
CREATE INDEX actions_pending_approval ON actions (tenant_id, created_at)
    WHERE status = 'pending_approval';
