-- pgbench script: the database work of one cycle, for the database ceiling that
-- `revenue-os bench` compares the worker with. It issues what Store::run_cycle and the relay
-- issue for one completed cycle with 6 actions and 1 cycle event: the locks, the idempotency
-- and interval checks, the six assembly reads, the inserts, the commit, and marking the
-- outbox published. Tenants are the bench's: tenant n has id 00000000-0000-4000-8000-<n hex>.
--   pgbench -n -M extended -f deploy/bench/cycle.sql -D tenants=1000 -c 8 -j 2 -T 20 <bench database>
\set n random(1, :tenants)
\set a random(1, 1000000000)
BEGIN;
SET LOCAL lock_timeout = '60s';
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid AS t,
       gen_random_uuid() AS c, 'pgbench-' || gen_random_uuid() AS m \gset
SELECT pg_advisory_xact_lock(hashtextextended(:t, 0));
SELECT pg_advisory_xact_lock(hashtextextended(:m, hashtextextended(:t, 0)));
SELECT cycle_id, status, output, error FROM cycles WHERE tenant_id = :t AND message_id = :m;
SELECT 1 FROM tenants WHERE tenant_id = :t;
SELECT cycle_id, executed_at FROM cycles
 WHERE tenant_id = :t AND status = 'completed' ORDER BY executed_at DESC LIMIT 1;
SELECT t.pipeline_total, g.allowed_levers, c.risk_tolerance
  FROM tenants n
  LEFT JOIN targets t ON t.tenant_id = n.tenant_id
  LEFT JOIN guardrails g ON g.tenant_id = n.tenant_id
  LEFT JOIN tenant_config c ON c.tenant_id = n.tenant_id
 WHERE n.tenant_id = :t;
SELECT metric_id, value, date, dimension FROM metric_snapshots
 WHERE tenant_id = :t AND date BETWEEN '2026-10-27' AND '2026-11-25'
 ORDER BY date, metric_id, dimension::text;
SELECT id, type, amount, effective_date, attributed_campaign_id, attributed_channel
  FROM revenue_events
 WHERE tenant_id = :t AND effective_date BETWEEN '2026-10-27' AND '2026-11-25'
 ORDER BY effective_date, id;
SELECT id, name, status, objective, budget_total, budget_spent, start_date, end_date
  FROM campaigns
 WHERE tenant_id = :t
   AND (status = 'running' OR (start_date <= '2026-11-25' AND (end_date IS NULL OR end_date >= '2026-10-27')))
 ORDER BY start_date, id;
SELECT id, stage, amount, expected_close_date, win_probability FROM opportunities
 WHERE tenant_id = :t AND stage NOT IN ('closed_won', 'closed_lost')
 ORDER BY expected_close_date, id;
SELECT action_id, target_metric, baseline_value, observed_value, delta, confidence, outcome
  FROM action_results
 WHERE tenant_id = :t AND recorded_at >= now() - make_interval(days => 90)
 ORDER BY recorded_at, action_id;
INSERT INTO cycles (cycle_id, tenant_id, message_id, trigger_type, trigger_source, triggered_at,
                    trigger, window_start, window_end, status, binding_constraint,
                    priority_metric, diagnosis, confidence, executed_at, duration_ms, output)
VALUES (:c, :t, :m, 'scheduled', 'pgbench', now(), '{"type":"scheduled"}',
        '2026-10-27', '2026-11-25', 'completed', 'demand', 'pipeline_total',
        repeat('d', 200), 0.7, now(), 5,
        jsonb_build_object('pad', repeat('o', 6000)));
INSERT INTO actions (cycle_id, tenant_id, action_id, priority, owner_subsystem, type,
                     target_metric, action)
SELECT :c, :t, 'campaigns.scale.cmp_' || i || '.budget_daily', i, 'campaigns', 'scale',
       'pipeline_total', jsonb_build_object('pad', repeat('a', 800))
  FROM generate_series(1, 6) AS i;
INSERT INTO outbox (cycle_id, tenant_id, exchange, routing_key, message_id, headers, body,
                    action_id)
SELECT :c, :t, 'revenue_os.actions.campaigns', 'scale.' || :t, :c || ':' || i,
       '{"tenant_id":"x"}', convert_to(repeat('b', 1000), 'UTF8'),
       CASE WHEN i <= 6 THEN 'campaigns.scale.cmp_' || i || '.budget_daily' END
  FROM generate_series(1, 7) AS i;
COMMIT;
WITH o AS (
   UPDATE outbox SET published_at = now()
    WHERE cycle_id = :c AND published_at IS NULL
   RETURNING tenant_id, cycle_id, action_id)
UPDATE actions a SET status = 'published', updated_at = now()
  FROM o
 WHERE a.tenant_id = o.tenant_id AND a.cycle_id = o.cycle_id AND a.action_id = o.action_id;
