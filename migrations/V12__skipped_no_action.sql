-- A cycle with nothing to do is not a failure (issue 24): when the tenant's guardrails leave
-- no executable action, the cycle is `skipped` with `skip_reason` 'no_executable_action', no
-- error code (the input was not invalid), and the kernel's error kept in `error` for its list
-- of excluded candidates. Such a cycle was decided, so it counts toward the spacing rule.
ALTER TABLE cycles ADD COLUMN skip_reason text
    CHECK (skip_reason IN ('no_executable_action'));

-- The V1 rule "completed exactly when there is no error code" now has one exception.
DO $$
DECLARE c text;
BEGIN
    SELECT conname INTO c FROM pg_constraint
     WHERE conrelid = 'public.cycles'::regclass AND contype = 'c'
       AND pg_get_constraintdef(oid) LIKE '%error_code IS NULL%';
    EXECUTE format('ALTER TABLE public.cycles DROP CONSTRAINT %I', c);
END $$;
ALTER TABLE cycles ADD CONSTRAINT cycles_error_code_by_status CHECK (
    CASE
        WHEN skip_reason IS NOT NULL THEN status = 'skipped' AND error_code IS NULL
        ELSE (status = 'completed') = (error_code IS NULL)
    END);

-- Spacing: the tenant's latest decided cycle (completed, or skipped with nothing to do).
CREATE INDEX cycles_last_decided ON cycles (tenant_id, executed_at DESC)
    WHERE status = 'completed' OR skip_reason IS NOT NULL;
