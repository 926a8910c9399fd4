//! Row-level security and least privilege, as the worker's role sees the database: a forged
//! query for another tenant's rows finds none in any tenant-owned table, a write into
//! another tenant is refused, the role runs no DDL and cannot become the owner or switch
//! the policies off; the sweeps still work across tenants; `migrate` prints the GRANTs.

use crate::common::db::{TestDb, connect};
use crate::common::*;
use crate::cycle::{request, run};
use revenue_os::contract::KernelInput;
use revenue_os::store::*;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

const A: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
const B: &str = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb";

fn doc(tenant: &str) -> KernelInput {
    let mut input = fixture(DEMAND_BOUND);
    input.tenant_id = tenant.into();
    input
}

/// Every table with a tenant_id column, from the catalog (a table added later is covered
/// without editing this test). Month partitions are not among them: they are read and
/// written through their parent, whose policies apply (tests/store/partitions.rs).
async fn tenant_tables(admin: &Client) -> Vec<String> {
    admin
        .query(
            "SELECT c.table_name::text FROM information_schema.columns c
             JOIN information_schema.tables t USING (table_schema, table_name)
             JOIN pg_class k ON k.relname = c.table_name
                            AND k.relnamespace = 'public'::regnamespace
             WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id'
               AND t.table_type = 'BASE TABLE' AND NOT k.relispartition
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Two tenants with rows in every tenant-owned table: through the store (as the worker)
/// where a store call writes the table, by the admin for the rest.
async fn two_tenants() -> (TestDb, Uuid, Uuid) {
    let db = TestDb::new().await;
    let (a, b) = (Uuid::parse_str(A).unwrap(), Uuid::parse_str(B).unwrap());
    let (da, db_doc) = (doc(A), doc(B));
    // B's first trigger arrives before B exists: a rejected trigger of tenant B.
    assert_eq!(
        run(db.store(), &request(&db_doc, "early")).await,
        CycleOutcome::UnknownTenant
    );
    for (t, d) in [(a, &da), (b, &db_doc)] {
        db.store().import(d, &catalog()).await.unwrap();
        let policy = ApprovalPolicy {
            require: vec!["routing:*".into()],
            ..Default::default()
        };
        assert!(db.store().set_approval_policy(t, &policy).await.unwrap());
        db.store()
            .set_watchdog_settings(t, Some(true), None)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(
            run(db.store(), &request(d, &format!("m-{t}"))).await,
            CycleOutcome::Recorded {
                status: CycleStatus::Completed,
                ..
            }
        ));
    }
    // The tables only executors' reports, the watchdog, people, data-quality cycles and
    // deviation detection write: one row per tenant, on its own cycle's first action.
    db.client()
        .await
        .batch_execute(
            "INSERT INTO tenant_config (tenant_id, risk_tolerance)
             SELECT tenant_id, 'low' FROM tenants ON CONFLICT DO NOTHING;
             INSERT INTO action_results (tenant_id, action_id, target_metric, baseline_value,
                                         observed_value, delta, confidence, outcome)
             SELECT tenant_id, 'earlier', 'pipeline_total', 1, 2, 1, 0.5, 'successful'
             FROM tenants;
             INSERT INTO action_reports (tenant_id, cycle_id, action_id, source, event_id, type,
                                         received_at, status_before, status_after, result, event)
             SELECT DISTINCT ON (tenant_id) tenant_id, cycle_id, action_id, 'test',
                    tenant_id::text AS event_id, 'acknowledged', now(), 'published', 'acknowledged',
                    'applied', '{}'
             FROM actions ORDER BY tenant_id, action_id;
             INSERT INTO lever_state (tenant_id, subsystem, field, value, since, cycle_id,
                                      action_id)
             SELECT DISTINCT ON (tenant_id) tenant_id, 'crm', 'sla', '5', now(), cycle_id,
                    action_id
             FROM actions ORDER BY tenant_id, action_id;
             INSERT INTO watchdog_evaluations (tenant_id, cycle_id, action_id, as_of,
                                               evaluated_at, mode, verdict, sentence, numbers)
             SELECT DISTINCT ON (tenant_id) tenant_id, cycle_id, action_id, current_date,
                    now(), 'shadow', 'watching', 's', '{}'
             FROM actions ORDER BY tenant_id, action_id;
             INSERT INTO approval_decisions (tenant_id, cycle_id, action_id, decision,
                                             decided_by, decided_at)
             SELECT DISTINCT ON (tenant_id) tenant_id, cycle_id, action_id, 'rejected', 'test',
                    now()
             FROM actions ORDER BY tenant_id, action_id;
             INSERT INTO data_quality_actions (cycle_id, action_id, tenant_id, priority,
                                               issue_type, affected_metric, description,
                                               recommended_fix)
             SELECT cycle_id, 'dq', tenant_id, 1, 'stale_data', 'pipeline_total', 'd', 'f'
             FROM cycles WHERE status = 'completed';
             INSERT INTO loads (load_id, kind, source, started_at, committed_at)
             VALUES ('rls', 'metrics', 'test', now(), now());
             INSERT INTO ingest_rejects (load_id, line, tenant_id, problem, raw)
             SELECT 'rls', row_number() OVER (ORDER BY tenant_id), tenant_id, 'p', 'r'
             FROM tenants;
             INSERT INTO deviations (tenant_id, metric_id, day, observed, expected, band_lower,
                                     band_upper, k, method, days_used, log_scale, severity,
                                     harmful)
             SELECT tenant_id, 'leads_created', current_date, 1, 2, 1.5, 2.5, 3.5, 'mstl_ets',
                    30, true, 2, true
             FROM tenants;
             INSERT INTO webhooks (tenant_id, name, url, events, secret)
             SELECT tenant_id, 'ops', 'https://hooks.example/x', '{*}', 'a-secret-of-16-chars'
             FROM tenants;
             INSERT INTO notifications (event, subject, tenant_id, occurred_at)
             SELECT 'load_rejected', 'rls:' || tenant_id, tenant_id, now() FROM tenants;
             INSERT INTO webhook_deliveries (notification_id, tenant_id, webhook, url, event, body)
             SELECT id, tenant_id, 'tenant:ops', 'https://hooks.example/x', event, '\\x7b7d'
             FROM notifications;",
        )
        .await
        .unwrap();
    (db, a, b)
}

/// A worker-role connection, in a transaction scoped to `tenant` (`None`: nothing set).
async fn worker_as(db: &TestDb, tenant: Option<Uuid>) -> Client {
    let c = connect(&db.worker_url()).await;
    c.batch_execute("BEGIN").await.unwrap();
    if let Some(t) = tenant {
        c.execute(
            "SELECT set_config('revenue_os.tenant_id', $1, true)",
            &[&t.to_string()],
        )
        .await
        .unwrap();
    }
    c
}

async fn rows_of(c: &Client, table: &str, tenant: Uuid) -> i64 {
    c.query_one(
        &format!("SELECT count(*) FROM {table} WHERE tenant_id = $1"),
        &[&tenant],
    )
    .await
    .unwrap_or_else(|e| panic!("{table}: {e}"))
    .get(0)
}

#[tokio::test]
async fn every_tenant_table_has_forced_row_level_security() {
    let db = TestDb::new().await;
    let admin = db.client().await;
    let tables = tenant_tables(&admin).await;
    assert_eq!(tables.len(), 25, "{tables:?}");
    for t in &tables {
        let r = admin
            .query_one(
                "SELECT c.relrowsecurity, c.relforcerowsecurity,
                        (SELECT count(*) FROM pg_policy p
                          WHERE p.polrelid = c.oid AND p.polname = 'tenant_isolation')
                 FROM pg_class c WHERE c.oid = ('public.' || $1)::regclass",
                &[t],
            )
            .await
            .unwrap();
        let (on, forced, policies): (bool, bool, i64) = (r.get(0), r.get(1), r.get(2));
        assert!(
            on && forced && policies == 1,
            "{t}: {on} {forced} {policies}"
        );
        // The scope is a subquery (V23): read once per statement, not once per row.
        let r = admin
            .query_one(
                "SELECT pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
                 FROM pg_policy p
                 WHERE p.polrelid = ('public.' || $1)::regclass AND p.polname = 'tenant_isolation'",
                &[t],
            )
            .await
            .unwrap();
        for expr in [r.get::<_, String>(0), r.get::<_, String>(1)] {
            assert!(
                expr.contains("( SELECT revenue_os.current_tenant_id()"),
                "{t}: {expr}"
            );
        }
    }
    db.cleanup().await;
}

#[tokio::test]
async fn a_forged_query_for_another_tenant_finds_no_rows_in_any_table() {
    let (db, a, b) = two_tenants().await;
    let admin = db.client().await;
    let tables = tenant_tables(&admin).await;
    for t in &tables {
        assert!(rows_of(&admin, t, b).await > 0, "{t}: B has rows to hide");
    }
    let scoped_to_a = worker_as(&db, Some(a)).await;
    let unscoped = worker_as(&db, None).await;
    // The sweep functions' flag: honoured for the owner alone.
    let flagged = worker_as(&db, Some(a)).await;
    flagged
        .batch_execute("SET LOCAL revenue_os.sweep = 'on'")
        .await
        .unwrap();
    for t in &tables {
        assert_eq!(rows_of(&scoped_to_a, t, b).await, 0, "{t} scoped to A");
        assert_eq!(rows_of(&unscoped, t, b).await, 0, "{t} unscoped");
        assert_eq!(rows_of(&flagged, t, b).await, 0, "{t} with the sweep flag");
        let all: i64 = unscoped
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(all, 0, "{t}: no tenant set, no rows at all");
    }
    // A's own rows are there for A: the policies hide, they do not break.
    assert!(rows_of(&scoped_to_a, "cycles", a).await > 0);
    db.cleanup().await;
}

#[tokio::test]
async fn writing_another_tenants_rows_is_refused() {
    let (db, a, b) = two_tenants().await;
    let c = worker_as(&db, Some(a)).await;
    let refused = |e: tokio_postgres::Error| {
        assert_eq!(e.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{e}");
    };
    c.batch_execute("SAVEPOINT s").await.unwrap();
    refused(
        c.execute(
            "INSERT INTO campaigns (tenant_id, id, name, status, objective, budget_total,
                                    budget_spent, start_date)
             VALUES ($1, 'forged', 'x', 'running', 'x', 1, 0, current_date)",
            &[&b],
        )
        .await
        .unwrap_err(),
    );
    c.batch_execute("ROLLBACK TO s").await.unwrap();
    // Moving one of A's rows to B is a write into B.
    refused(
        c.execute(
            "UPDATE campaigns SET tenant_id = $2 WHERE tenant_id = $1",
            &[&a, &b],
        )
        .await
        .unwrap_err(),
    );
    c.batch_execute("ROLLBACK TO s").await.unwrap();
    // B's rows are not there to update or delete.
    let n = c
        .execute(
            "UPDATE campaigns SET name = 'forged' WHERE tenant_id = $1",
            &[&b],
        )
        .await
        .unwrap();
    assert_eq!(n, 0);
    let n = c
        .execute("DELETE FROM tenant_config WHERE tenant_id = $1", &[&b])
        .await
        .unwrap();
    assert_eq!(n, 0);
    let n = c
        .execute(
            "UPDATE outbox SET published_at = now() WHERE tenant_id = $1",
            &[&b],
        )
        .await
        .unwrap();
    assert_eq!(n, 0);
    c.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM campaigns WHERE tenant_id = '{b}' AND name = 'forged'"
        ))
        .await,
        0
    );
    assert!(
        db.count(&format!(
            "SELECT count(*) FROM outbox WHERE tenant_id = '{b}' AND published_at IS NULL"
        ))
        .await
            > 0
    );
    db.cleanup().await;
}

#[tokio::test]
async fn the_worker_role_runs_no_ddl_and_cannot_step_around_the_policies() {
    let (db, a, b) = two_tenants().await;
    let c = connect(&db.worker_url()).await;
    let attrs = c
        .query_one(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles
             WHERE rolname = current_user",
            &[],
        )
        .await
        .unwrap();
    let attrs: (bool, bool, bool, bool) = (attrs.get(0), attrs.get(1), attrs.get(2), attrs.get(3));
    assert_eq!(attrs, (false, false, false, false));
    for sql in [
        "CREATE TABLE stolen (x int)",
        "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE SCHEMA mine",
        "ALTER TABLE cycles ADD COLUMN x int",
        "ALTER TABLE cycles DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE cycles NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON cycles",
        "CREATE POLICY open ON cycles USING (true)",
        "DROP TABLE outbox",
        "TRUNCATE campaigns",
        "CREATE INDEX ON cycles (status)",
        "CREATE OR REPLACE FUNCTION revenue_os.current_tenant_id() RETURNS uuid \
         LANGUAGE sql AS 'SELECT NULL::uuid'",
        "SET ROLE revenue_os_owner",
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "ALTER ROLE revenue_os_worker BYPASSRLS",
    ] {
        let e = c.batch_execute(sql).await.unwrap_err();
        assert!(
            matches!(
                e.code().map(SqlState::code),
                Some("42501" | "42809" | "0LP01" | "22023")
            ) || e.to_string().contains("permission denied")
                || e.to_string().contains("must be owner"),
            "{sql}: {e}"
        );
    }
    // Turning row security off makes a query fail, not see more.
    c.batch_execute("SET row_security = off").await.unwrap();
    let e = c.query("SELECT * FROM cycles", &[]).await.unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{e}");
    c.batch_execute("RESET row_security").await.unwrap();
    // The sweep functions give keys and counts, never another tenant's rows; and the
    // definer functions' scope does not leak into the caller's transaction.
    c.batch_execute("BEGIN").await.unwrap();
    c.execute(
        "SELECT set_config('revenue_os.tenant_id', $1, true)",
        &[&a.to_string()],
    )
    .await
    .unwrap();
    let tenants: Vec<Uuid> = c
        .query("SELECT revenue_os.tenant_ids()", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tenants, vec![a, b]);
    assert_eq!(rows_of(&c, "cycles", b).await, 0);
    c.batch_execute("COMMIT").await.unwrap();
    db.cleanup().await;
}

#[tokio::test]
async fn the_sweeps_still_see_every_tenant() {
    let (db, a, b) = two_tenants().await;
    let store = db.store();
    let pending = store.pending_outbox(100).await.unwrap();
    let tenants: std::collections::BTreeSet<Uuid> = pending.iter().map(|r| r.tenant_id).collect();
    assert_eq!(tenants, [a, b].into());
    let (backlog, _) = store.outbox_backlog().await.unwrap();
    assert_eq!(backlog as usize, pending.len());
    let keys: Vec<OutboxKey> = pending.iter().map(OutboxRow::key).collect();
    let won = store
        .claim_outbox(&keys, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(won.len(), pending.len());
    let lags = store.mark_published_many(&keys).await.unwrap();
    assert_eq!(lags.len(), pending.len());
    assert_eq!(store.outbox_backlog().await.unwrap().0, 0);
    let summaries = store.tenant_summaries(fixture_now(), 7).await.unwrap();
    assert_eq!(
        summaries.iter().map(|s| s.tenant_id).collect::<Vec<_>>(),
        vec![a, b]
    );
    db.client()
        .await
        .batch_execute(
            "UPDATE actions SET status = 'pending_approval'
             WHERE action_id = 'routing.config_change.round_robin_enabled'",
        )
        .await
        .unwrap();
    let held = store.pending_approvals(None).await.unwrap();
    let held_tenants: std::collections::BTreeSet<Uuid> = held.iter().map(|p| p.tenant_id).collect();
    assert_eq!(held_tenants, [a, b].into());
    let rejected = store.rejected_triggers(10).await.unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].tenant_id, b);
    // Every sweep function runs for the worker's role.
    let worker = connect(&db.worker_url()).await;
    let due: Vec<Uuid> = worker
        .query("SELECT revenue_os.watch_due_tenants()", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(due.iter().all(|t| [a, b].contains(t)), "{due:?}");
    store.oldest_overdue_evaluation_secs().await.unwrap();
    let counts = store.action_status_counts().await.unwrap();
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    assert_eq!(total, db.count("SELECT count(*) FROM actions").await);
    // A page that names only a cycle finds it, whoever's it is.
    let cycle_b: Uuid = db
        .client()
        .await
        .query_one("SELECT cycle_id FROM cycles WHERE tenant_id = $1", &[&b])
        .await
        .unwrap()
        .get(0);
    let detail = store.cycle_detail(cycle_b).await.unwrap().unwrap();
    assert_eq!(detail.brief.tenant_id, b);
    assert!(!store.cycle_actions(cycle_b).await.unwrap().is_empty());
    db.cleanup().await;
}

/// Applies the first action of `tenant`'s cycle as `kind` at noon the day before it was
/// watched up to, `behind` days before the tenant's newest metric day, and last touched
/// `hours` ago.
async fn apply_one(c: &Client, tenant: Uuid, behind: i32, kind: &str, hours: i32) {
    c.execute(
        "UPDATE actions SET status = 'applied', type = $3,
                watched_as_of = (SELECT max(date) FROM metric_snapshots
                                  WHERE tenant_id = $1) - $2::int,
                applied_at = ((SELECT max(date) FROM metric_snapshots
                                WHERE tenant_id = $1) - $2::int - 1)
                             + time '12:00' AT TIME ZONE 'UTC',
                updated_at = now() - make_interval(hours => $4)
          WHERE (cycle_id, action_id) = (SELECT cycle_id, min(action_id) FROM actions
                                          WHERE tenant_id = $1 GROUP BY cycle_id)",
        &[&tenant, &behind, &kind, &hours],
    )
    .await
    .unwrap();
}

/// The watchdog's due tenants and the overdue gauge (how long the oldest applied action has
/// waited for an evaluation of a day its own tenant already has): each tenant is measured
/// against its own newest metric day.
#[tokio::test]
async fn due_tenants_and_the_overdue_gauge_measure_each_tenant_against_its_own_newest_day() {
    let (db, a, b) = two_tenants().await;
    let store = db.store();
    let c = db.client().await;
    c.batch_execute("UPDATE actions SET status = 'pending', watched_as_of = NULL")
        .await
        .unwrap();
    // The gauge in hours (0 when nothing is overdue), and the due tenants in order.
    let state = || async {
        let secs = store.oldest_overdue_evaluation_secs().await.unwrap();
        let mut due = store.watch_due_tenants().await.unwrap();
        due.sort();
        ((secs / 3600.0).round() as i64, due)
    };
    let both = {
        let mut v = vec![a, b];
        v.sort();
        v
    };
    assert_eq!(state().await, (0, vec![]));
    // A's data ends a day before B's.
    c.execute(
        "DELETE FROM metric_snapshots WHERE tenant_id = $1
            AND date = (SELECT max(date) FROM metric_snapshots WHERE tenant_id = $1)",
        &[&a],
    )
    .await
    .unwrap();
    // Each watched up to its own tenant's newest day: nothing is due, however long ago it
    // was applied (against B's newest day, A's would be).
    apply_one(&c, a, 0, "scale", 2).await;
    apply_one(&c, b, 0, "scale", 5).await;
    assert_eq!(state().await, (0, vec![]));
    // A day behind its own tenant: due, and overdue since it was last touched.
    apply_one(&c, a, 1, "scale", 2).await;
    assert_eq!(state().await, (2, vec![a]));
    // The oldest overdue action is the gauge.
    apply_one(&c, b, 1, "scale", 5).await;
    assert_eq!(state().await, (5, both.clone()));
    // An experiment is not watched day by day.
    apply_one(&c, b, 1, "experiment", 5).await;
    assert_eq!(state().await, (2, vec![a]));
    // Applied on A's newest day: its first full day is not in the data yet, so it is
    // neither due nor overdue (V24); applied the day before, it is both.
    // `set` (a table and its column) to noon `days` before the tenant's newest metric day.
    let days_before_newest = |set: &'static str, tenant: Uuid, days: i32| {
        let c = &c;
        async move {
            let sql = format!(
                "UPDATE {set} = ((SELECT max(date) FROM metric_snapshots
                                   WHERE tenant_id = $1) - $2::int)
                                + time '12:00' AT TIME ZONE 'UTC'
                  WHERE tenant_id = $1"
            );
            c.execute(&sql, &[&tenant, &days]).await.unwrap();
        }
    };
    let applied_days_before_newest =
        |tenant: Uuid, days: i32| days_before_newest("actions SET applied_at", tenant, days);
    applied_days_before_newest(a, 0).await;
    assert_eq!(state().await, (0, vec![]));
    applied_days_before_newest(a, 1).await;
    assert_eq!(state().await, (2, vec![a]));
    // A published action is watched only for a tenant that asked for it, from the day after
    // its first confirm (V25); with no confirm in the outbox (here none was), its cycle's run.
    c.execute(
        "UPDATE actions SET status = 'published', type = 'scale', applied_at = NULL
          WHERE tenant_id = $1 AND status = 'applied'",
        &[&b],
    )
    .await
    .unwrap();
    assert_eq!(state().await, (2, vec![a]));
    let run_days_before_newest = |days: i32| days_before_newest("cycles SET executed_at", b, days);
    c.execute(
        "INSERT INTO tenant_settings (tenant_id, watch_published) VALUES ($1, true)
         ON CONFLICT (tenant_id) DO UPDATE SET watch_published = true",
        &[&b],
    )
    .await
    .unwrap();
    run_days_before_newest(0).await;
    assert_eq!(state().await, (2, vec![a]));
    run_days_before_newest(1).await;
    assert_eq!(state().await, (2, both));
    db.cleanup().await;
}

/// The action gauge on a big table: statuses somebody acts on are counted, the rest are
/// sampled (about 2,000 pages: all of a small table's, so here the sample is the whole).
#[tokio::test]
async fn the_action_gauge_counts_what_is_acted_on_and_samples_the_rest_past_a_million() {
    let (db, _a, _b) = two_tenants().await;
    let store = db.store();
    let c = db.client().await;
    c.batch_execute(
        "WITH r AS (SELECT cycle_id, action_id,
                           row_number() OVER (ORDER BY cycle_id, action_id) AS i FROM actions)
         UPDATE actions a SET status = CASE r.i % 3 WHEN 0 THEN 'concluded'
                                                    WHEN 1 THEN 'applied' ELSE 'pending' END
           FROM r WHERE (a.cycle_id, a.action_id) = (r.cycle_id, r.action_id)",
    )
    .await
    .unwrap();
    let gauge = || async {
        let mut v = store.action_status_counts().await.unwrap();
        v.sort();
        v
    };
    let exact = || async {
        let rows = c
            .query(
                "SELECT status, count(*) FROM actions GROUP BY status ORDER BY 1",
                &[],
            )
            .await
            .unwrap();
        rows.iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
            .collect::<Vec<_>>()
    };
    // A small table: counted.
    assert_eq!(gauge().await.len(), 3);
    assert_eq!(gauge().await, exact().await);
    // The planner's view of a table of 2,000,000 actions.
    c.batch_execute(
        "ANALYZE actions;
         UPDATE pg_class SET reltuples = 2000000 WHERE oid = 'actions'::regclass",
    )
    .await
    .unwrap();
    c.batch_execute(
        "UPDATE actions SET status = 'pending_approval'
          WHERE (cycle_id, action_id) = (SELECT cycle_id, action_id FROM actions
                                          WHERE status = 'pending' LIMIT 1)",
    )
    .await
    .unwrap();
    let big = gauge().await;
    assert!(
        big.iter().any(|(s, n)| s == "pending_approval" && *n == 1),
        "{big:?}"
    );
    assert_eq!(big, exact().await);
    // Planned at 4,000 pages, a sample takes each page with a chance of one half and counts
    // each row it sees twice. What is acted on is counted.
    c.batch_execute("UPDATE pg_class SET relpages = 4000 WHERE oid = 'actions'::regclass")
        .await
        .unwrap();
    let exact = exact().await;
    for _ in 0..8 {
        let sampled = gauge().await;
        for (status, n) in &exact {
            let got = sampled.iter().find(|(s, _)| s == status).map(|(_, n)| *n);
            if ["applied", "concluded"].contains(&status.as_str()) {
                let got = got.unwrap_or(0);
                assert!(got % 2 == 0 && got <= 2 * n, "{status}: {sampled:?}");
            } else {
                assert_eq!(got, Some(*n), "{status}: {sampled:?}");
            }
        }
    }
    db.cleanup().await;
}

/// `revenue-os migrate` as the owner prints the exact GRANTs the worker's role needs;
/// `grants` prints the same SQL; `migrate --grant-to` applies it.
#[tokio::test]
async fn migrate_prints_the_grants_and_grant_to_applies_them() {
    let db = TestDb::unmigrated(2).await;
    let bin = env!("CARGO_BIN_EXE_revenue-os");
    let migrate = |extra: &[&str]| {
        std::process::Command::new(bin)
            .arg("migrate")
            .args(extra)
            .env("DATABASE_URL", db.owner_url())
            .env_remove("REVENUE_OS_GRANT_TO")
            .output()
            .unwrap()
    };
    let out = migrate(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let grants = worker_grants_sql(WORKER_ROLE).unwrap();
    assert!(stderr.contains(&grants), "{stderr}");
    assert!(
        stderr.contains("GRANT SELECT, INSERT, UPDATE ON public.outbox TO \"revenue_os_worker\";"),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["migrated"], true);
    assert!(json["applied"].as_u64().unwrap() >= 8, "{json}");

    let printed = std::process::Command::new(bin)
        .args(["grants", "--role", WORKER_ROLE])
        .output()
        .unwrap();
    assert!(printed.status.success());
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout).trim_end(),
        grants.trim_end()
    );

    // Not granted yet: the worker's role reads nothing.
    let worker = connect(&db.worker_url()).await;
    let e = worker.query("SELECT 1 FROM cycles", &[]).await.unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{e}");
    let out = migrate(&["--grant-to", WORKER_ROLE]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (json["applied"].as_u64(), json["granted_to"].as_str()),
        (Some(0), Some(WORKER_ROLE))
    );
    worker.query("SELECT 1 FROM cycles", &[]).await.unwrap();
    db.cleanup().await;
}

/// The worker's role can start with `migrate_on_start` on a schema that is up to date (no
/// DDL runs), and is told to ask the owner when it is not.
#[tokio::test]
async fn the_worker_role_migrates_only_an_up_to_date_schema() {
    let db = TestDb::new().await;
    assert_eq!(db.store().migrate().await.unwrap(), 0);

    let empty = TestDb::unmigrated(1).await;
    let mut settings = empty.settings.clone();
    settings.url = empty.worker_url();
    let as_worker = Store::connect(&settings).await.unwrap();
    let e = as_worker.migrate().await.unwrap_err().to_string();
    assert!(e.contains("schema owner"), "{e}");
    db.cleanup().await;
    empty.cleanup().await;
}
