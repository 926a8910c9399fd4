//! Assembly of a large tenant (100k revenue events in the window, 20k open opportunities) with
//! 1 and then 1,000 other tenants in the same tables. Assembly time must not depend on the
//! other tenants: every index it uses leads with tenant_id.
//!
//! `cargo bench --bench assemble` (add `--profile dev` for a quick run). Besides criterion's
//! report it prints a median-of-runs line for each case and the ratio.

#[path = "../tests/common/db.rs"]
#[allow(dead_code)]
mod db;

use criterion::Criterion;
use revenue_os::contract::{DateRange, Trigger, TriggerType, parse_date, parse_timestamp};
use std::time::{Duration, Instant};
use uuid::Uuid;

const BIG: &str = "b1900000-0000-4000-8000-000000000001";
const WINDOW_START: &str = "2026-10-27";
const WINDOW_END: &str = "2026-11-25";

/// Tenant rows plus data for every tenant in `tenants` (a temp table of ids), sized per
/// tenant: `events` revenue events in the window, `open_opps` open and as many closed
/// opportunities, 9 metrics x 30 days, 20 campaigns.
fn seed_sql(events: i64, open_opps: i64) -> String {
    format!(
        "
INSERT INTO tenants (tenant_id) SELECT id FROM seed_ids;
INSERT INTO targets (tenant_id, pipeline_total, bookings_new) SELECT id, 900000, 300000 FROM seed_ids;
INSERT INTO guardrails (tenant_id, max_daily_spend, allowed_levers, blocked_actions)
    SELECT id, 4000, ARRAY['campaigns','channels','sequences','pricing'], '{{}}' FROM seed_ids;
SELECT revenue_os.ensure_month_partitions(t, ARRAY[DATE '{WINDOW_START}', DATE '{WINDOW_END}'])
    FROM unnest(ARRAY['metric_snapshots', 'revenue_events']) t;
INSERT INTO metric_snapshots (tenant_id, metric_id, date, value)
    SELECT s.id, m.metric_id, d::date, 1000 + random() * 100
    FROM seed_ids s, (SELECT metric_id FROM metric_dictionary ORDER BY metric_id LIMIT 9) m,
         generate_series(DATE '{WINDOW_START}', DATE '{WINDOW_END}', interval '1 day') d;
INSERT INTO revenue_events (tenant_id, id, type, amount, effective_date, attributed_campaign_id,
                            attributed_channel)
    SELECT s.id, 'evt_' || g, 'new_booking', 100 + g % 900,
           DATE '{WINDOW_START}' + (g % 30), 'cmp_' || (g % 20), 'paid_search'
    FROM seed_ids s, generate_series(1, {events}) g;
INSERT INTO campaigns (tenant_id, id, name, status, objective, budget_total, budget_spent,
                       start_date, end_date)
    SELECT s.id, 'cmp_' || g, 'Campaign ' || g, 'running', 'pipeline', 10000, 5000,
           DATE '2026-10-01', DATE '2026-12-31'
    FROM seed_ids s, generate_series(0, 19) g;
INSERT INTO opportunities (tenant_id, id, stage, amount, expected_close_date, win_probability)
    SELECT s.id, 'opp_' || g,
           CASE WHEN g % 2 = 0 THEN 'proposal' WHEN g % 4 = 1 THEN 'closed_won' ELSE 'closed_lost' END,
           5000 + g % 1000, DATE '2026-12-01' + (g % 60), 0.3
    FROM seed_ids s, generate_series(1, {open_opps} * 2) g;
DROP TABLE seed_ids;
"
    )
}

async fn seed(client: &tokio_postgres::Client, ids_sql: &str, events: i64, open_opps: i64) {
    client
        .batch_execute(&format!(
            "CREATE TEMP TABLE seed_ids AS {ids_sql};{}",
            seed_sql(events, open_opps)
        ))
        .await
        .unwrap();
    client.batch_execute("ANALYZE").await.unwrap();
}

/// Tenant ids `n` of the other-tenant series (deterministic, never the big tenant's).
fn others_sql(from: i64, to: i64) -> String {
    format!("SELECT md5('other-' || g)::uuid AS id FROM generate_series({from}, {to}) g")
}

/// Plan shape and shared buffers (hit + read) of the two big assembly queries: what the
/// server does for the big tenant, independent of machine load.
async fn plans(client: &tokio_postgres::Client) -> String {
    let queries = [
        format!(
            "SELECT id, type, amount, effective_date, attributed_campaign_id, attributed_channel
             FROM revenue_events WHERE tenant_id = '{BIG}'
               AND effective_date BETWEEN '{WINDOW_START}' AND '{WINDOW_END}'
             ORDER BY effective_date, id"
        ),
        format!(
            "SELECT id, stage, amount, expected_close_date, win_probability FROM opportunities
             WHERE tenant_id = '{BIG}' AND stage NOT IN ('closed_won', 'closed_lost')
             ORDER BY expected_close_date, id"
        ),
    ];
    let mut out = Vec::new();
    for q in queries {
        let row = client
            .query_one(&format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {q}"), &[])
            .await
            .unwrap();
        let plan: serde_json::Value = row.get(0);
        let node = &plan[0]["Plan"];
        let mut shape = vec![node["Node Type"].as_str().unwrap_or("?").to_owned()];
        let mut child = &node["Plans"][0];
        while child.is_object() {
            shape.push(child["Node Type"].as_str().unwrap_or("?").to_owned());
            child = &child["Plans"][0];
        }
        let blocks = node["Shared Hit Blocks"].as_i64().unwrap_or(0)
            + node["Shared Read Blocks"].as_i64().unwrap_or(0);
        out.push(format!("{} ({blocks} buffers)", shape.join(" <- ")));
    }
    out.join("; ")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let test_db = rt.block_on(db::TestDb::with_pool_size(4));
    let store = test_db.store().clone();
    let client = rt.block_on(test_db.client());
    let tenant = Uuid::parse_str(BIG).unwrap();
    let trigger = Trigger {
        kind: TriggerType::Scheduled,
        source: "bench".into(),
        triggered_at: "2026-11-26T06:00:00Z".into(),
    };
    let at = parse_timestamp(&trigger.triggered_at).expect("fixed timestamp");
    let window = DateRange::new(
        parse_date(WINDOW_START).expect("fixed date"),
        parse_date(WINDOW_END).expect("fixed date"),
    )
    .expect("ordered window");

    let t = Instant::now();
    rt.block_on(seed(
        &client,
        &format!("SELECT '{BIG}'::uuid AS id"),
        100_000,
        20_000,
    ));
    rt.block_on(seed(&client, &others_sql(1, 1), 1_000, 200));
    eprintln!("seeded the big tenant + 1 other in {:?}", t.elapsed());

    let check = rt
        .block_on(store.assemble(tenant, &trigger, at, window))
        .unwrap()
        .expect("the big tenant exists")
        .input;
    assert_eq!(check.revenue_events.len(), 100_000);
    assert_eq!(check.opportunities.len(), 20_000);

    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    let runs = 15;
    let time = |label: &str, c: &mut Criterion| {
        c.bench_function(label, |b| {
            b.iter(|| {
                rt.block_on(store.assemble(tenant, &trigger, at, window))
                    .unwrap()
            })
        });
        let samples: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                rt.block_on(store.assemble(tenant, &trigger, at, window))
                    .unwrap();
                t.elapsed()
            })
            .collect();
        median(samples)
    };
    let one = time("assemble_100k_events_20k_opps/others_1", &mut c);
    let one_plans = rt.block_on(plans(&client));

    let t = Instant::now();
    rt.block_on(seed(&client, &others_sql(2, 1_000), 1_000, 200));
    eprintln!("seeded 999 more tenants in {:?}", t.elapsed());
    let rows: i64 = rt
        .block_on(client.query_one("SELECT count(*) FROM revenue_events", &[]))
        .unwrap()
        .get(0);
    eprintln!("revenue_events now holds {rows} rows");

    let thousand = time("assemble_100k_events_20k_opps/others_1000", &mut c);
    let thousand_plans = rt.block_on(plans(&client));
    c.final_summary();
    eprintln!(
        "assemble median of {runs}: 1 other tenant {:.1} ms, 1000 other tenants {:.1} ms, \
         ratio {:.2}",
        one.as_secs_f64() * 1e3,
        thousand.as_secs_f64() * 1e3,
        thousand.as_secs_f64() / one.as_secs_f64()
    );
    eprintln!("plans with 1 other tenant: {one_plans}");
    eprintln!("plans with 1000 other tenants: {thousand_plans}");
    drop(client);
    rt.block_on(test_db.cleanup());
}
