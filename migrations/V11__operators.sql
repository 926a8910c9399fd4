-- Named operators (issue 23): each signs in with a token of their own; only its SHA-256 is
-- kept. Not tenant data: no tenant_id, no row-level policy (the console reads it to sign in).
CREATE TABLE operators (
    name       text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    role       text NOT NULL CHECK (role IN ('viewer', 'approver', 'admin')),
    token_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

-- Categories (`<subsystem>:<type>` patterns) whose held actions need two distinct approvers,
-- and who last set the policy.
ALTER TABLE approval_policy
    ADD COLUMN two_approvers text[] NOT NULL DEFAULT '{}',
    ADD COLUMN updated_by text;

-- The first of two approvals: recorded, the action still waits.
ALTER TABLE approval_decisions DROP CONSTRAINT approval_decisions_decision_check;
ALTER TABLE approval_decisions ADD CONSTRAINT approval_decisions_decision_check
    CHECK (decision IN ('approved', 'first_approval', 'rejected', 'refused_stale', 'expired',
                        'superseded'));
