-- Each output stored once (issue 21). An action message's body is a small envelope around the
-- action its `actions` row holds, and a cycle event's body is the cycle's `output`: the outbox
-- now refers to them instead of copying them. The copies cost about 5 kB per cycle when the
-- row was written and the same again when the publish confirm rewrote it, and they doubled
-- what the outbox held for its seven days.
--
-- A row keeps its body verbatim (`body`), or names where it is (`body_ref`):
--   * 'action': the object `body_head` with the row's action (actions.action) under "action";
--   * 'cycle_output': the row's cycle's output (cycles.output).
-- The store rebuilds such a body when it reads the row back (the sweep, a replayed cycle).
-- The JSON is the same as the one first published; its bytes may differ in spacing and key
-- order, which no JSON reader sees.
ALTER TABLE outbox
    ALTER COLUMN body DROP NOT NULL,
    ADD COLUMN body_ref text CHECK (body_ref IN ('action', 'cycle_output')),
    ADD COLUMN body_head jsonb,
    ADD CONSTRAINT outbox_body_kept CHECK (
        (body IS NOT NULL AND body_ref IS NULL AND body_head IS NULL)
        OR (body IS NULL AND body_ref = 'action' AND action_id IS NOT NULL
            AND jsonb_typeof(body_head) = 'object')
        OR (body IS NULL AND body_ref = 'cycle_output' AND cycle_id IS NOT NULL
            AND body_head IS NULL));
