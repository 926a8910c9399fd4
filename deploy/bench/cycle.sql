-- pgbench script: the database work of one cycle, for the database ceiling that
-- `revenue-os bench` compares the worker with. It issues what Store::run_cycle and the relay
-- issue for one completed cycle with 6 actions and 1 cycle event: the tenant scope for
-- row-level security (SET LOCAL), the locks, the idempotency and interval checks, the six
-- assembly reads, the lever state, the approval gate's facts, the inserts (the actions with their
-- messages, which are their own outbox entries, and the cycle event's outbox row, as the
-- store writes them), the commit, and, in a second tenant-scoped transaction, locking the
-- actions and marking them and the event published, by the ids the inserts drew, as the
-- relay does. pgbench sends one statement at a time; the worker
-- pipelines the independent ones, which this ceiling does not credit it for. Both prepare
-- their statements (`-M prepared`; the worker through its connection's statement cache), so
-- neither pays for planning each call. Run it as the worker's role (revenue_os_worker) so the policies apply.
-- Tenants are the bench's: tenant n has id 00000000-0000-4000-8000-<n hex>.
-- ws and we are the analysis window its reads cover (the bench's tenants' dates):
--   pgbench -n -M prepared -f deploy/bench/cycle.sql -D tenants=1000 -D ws=2026-10-27 \
--           -D we=2026-11-25 -c 8 -j 2 -T 20 <bench database, as revenue_os_worker>
\set n random(1, :tenants)
\set a random(1, 1000000000)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid AS t,
       gen_random_uuid() AS c, 'pgbench-' || gen_random_uuid() AS m \gset
BEGIN;
SELECT set_config('revenue_os.tenant_id', :t, true);
SET LOCAL lock_timeout = '20s';
SELECT pg_advisory_xact_lock(hashtextextended(:t, 0));
SELECT pg_advisory_xact_lock(hashtextextended(:m, hashtextextended(:t, 0)));
SELECT cycle_id, status, output, error FROM cycles WHERE tenant_id = :t AND message_id = :m;
SELECT 1 FROM tenants WHERE tenant_id = :t;
SELECT cycle_id, executed_at FROM cycles
 WHERE tenant_id = :t AND (status = 'completed' OR skip_reason IS NOT NULL)
 ORDER BY executed_at DESC LIMIT 1;
SELECT t.pipeline_total, t.bookings_new, t.arr_target, t.cac_max, t.payback_max_months,
       t.gross_margin_min, g.max_daily_spend, g.max_experiment_exposure_pct, g.allowed_levers,
       g.blocked_actions, c.tenant_id IS NOT NULL AS has_config, c.min_sample_size,
       c.default_observation_window_days, c.risk_tolerance
  FROM tenants n
  LEFT JOIN targets t ON t.tenant_id = n.tenant_id
  LEFT JOIN guardrails g ON g.tenant_id = n.tenant_id
  LEFT JOIN tenant_config c ON c.tenant_id = n.tenant_id
 WHERE n.tenant_id = :t;
SELECT metric_id, value, date, dimension FROM metric_snapshots
 WHERE tenant_id = :t AND date BETWEEN :ws AND :we
 ORDER BY date, metric_id, dimension::text;
SELECT id, type, amount, effective_date, attributed_campaign_id, attributed_channel
  FROM revenue_events
 WHERE tenant_id = :t AND effective_date BETWEEN :ws AND :we
 ORDER BY effective_date, id;
SELECT id, name, status, objective, budget_total, budget_spent, start_date, end_date
  FROM campaigns
 WHERE tenant_id = :t AND removed_by_load IS NULL
   AND (status = 'running' OR (start_date <= :we AND (end_date IS NULL OR end_date >= :ws)))
 ORDER BY start_date, id;
SELECT id, stage, amount, expected_close_date, win_probability FROM opportunities
 WHERE tenant_id = :t AND stage NOT IN ('closed_won', 'closed_lost')
   AND removed_by_load IS NULL
 ORDER BY expected_close_date, id;
SELECT action_id, target_metric, baseline_value, observed_value, delta, confidence, outcome
  FROM action_results
 WHERE tenant_id = :t AND recorded_at >= now() - make_interval(days => 90)
 ORDER BY recorded_at, action_id;
SELECT l.subsystem, l.entity_id, l.field, l.value, l.since, l.cycle_id, l.action_id,
       a.applied_before, a.applied_inverse
  FROM lever_state l
  LEFT JOIN actions a ON a.cycle_id = l.cycle_id AND a.action_id = l.action_id
                     AND a.applied_after = l.value
 WHERE l.tenant_id = :t ORDER BY l.subsystem, l.entity_id, l.field;
INSERT INTO cycles (cycle_id, tenant_id, message_id, trigger_type, trigger_source, triggered_at,
                    trigger, window_start, window_end, status, binding_constraint,
                    priority_metric, diagnosis, confidence, executed_at, duration_ms, output)
VALUES (:c, :t, :m, 'scheduled', 'pgbench', now(), '{"type":"scheduled"}',
        :ws, :we, 'completed', 'demand', 'pipeline_total',
        repeat('d', 200), 0.7, now(), 5,
        jsonb_build_object('pad', repeat('o', 6000)));
SELECT created_at FROM tenants WHERE tenant_id = :t;
SELECT require, max_added_spend, max_budget_step_pct, first_days, two_approvers
  FROM approval_policy WHERE tenant_id = :t;
WITH ins AS (
INSERT INTO actions (cycle_id, tenant_id, action_id, priority, owner_subsystem, type,
                     target_metric, action, message, outbox_id)
SELECT :c, :t, 'campaigns.scale.cmp_' || i || '.budget_daily', i, 'campaigns', 'scale',
       'pipeline_total', jsonb_build_object('pad', repeat('a', 800)),
       jsonb_build_object('exchange', 'revenue_os.actions.campaigns',
                          'routing_key', 'scale.' || :t, 'message_id', :c || ':' || i,
                          'headers', jsonb_build_object('tenant_id', (:t)::text,
                                                        'cycle_id', (:c)::text,
                                                        'action_id', i, 'version', 'v1'),
                          'head', jsonb_build_object('version', 'v1', 'tenant_id', (:t)::text,
                                                     'cycle_id', (:c)::text,
                                                     'executed_at', now()::text)),
       revenue_os.outbox_id()
  FROM generate_series(1, 6) WITH ORDINALITY AS g(i, n)
 ORDER BY n
RETURNING action_id, outbox_id)
SELECT array_agg(outbox_id)::text AS ids FROM ins \gset
INSERT INTO outbox (cycle_id, tenant_id, exchange, routing_key, message_id, headers, body_ref)
SELECT :c, :t, 'revenue_os.cycles', 'completed.' || :t, :c || ':' || 'cycle',
       '{"tenant_id":"x"}', 'cycle_output'
RETURNING id AS eid \gset
COMMIT;
BEGIN;
SELECT set_config('revenue_os.tenant_id', :t, true);
SELECT 1 FROM actions a
 WHERE (a.cycle_id, a.action_id) IN (
       SELECT o.cycle_id, o.action_id FROM outbox o
        WHERE o.id = ANY((:ids)::bigint[] || (:eid)::bigint) AND o.published_at IS NULL
          AND o.action_id IS NOT NULL
       UNION ALL
       SELECT e.cycle_id, e.action_id FROM actions e
        WHERE e.outbox_id = ANY((:ids)::bigint[] || (:eid)::bigint)
          AND e.published_at IS NULL AND e.message IS NOT NULL)
 ORDER BY a.cycle_id, a.action_id COLLATE "C"
   FOR UPDATE OF a;
WITH o AS (
   UPDATE outbox SET published_at = now()
    WHERE id = ANY((:ids)::bigint[] || (:eid)::bigint) AND published_at IS NULL
   RETURNING tenant_id, cycle_id, action_id,
             extract(epoch FROM now() - created_at)::float8 AS lag),
a AS (
   UPDATE actions a SET status = 'published', updated_at = now()
     FROM o
    WHERE a.tenant_id = o.tenant_id AND a.cycle_id = o.cycle_id
      AND a.action_id = o.action_id AND a.status = 'pending' COLLATE "C"),
e AS (
   UPDATE actions SET published_at = now(),
          status = CASE status WHEN 'pending' THEN 'published' ELSE status END,
          message = message - 'headers' - 'head', updated_at = now()
    WHERE outbox_id = ANY((:ids)::bigint[] || (:eid)::bigint)
      AND published_at IS NULL AND message IS NOT NULL
   RETURNING extract(epoch FROM now() - created_at)::float8 AS lag)
SELECT lag FROM o UNION ALL SELECT lag FROM e;
COMMIT;
