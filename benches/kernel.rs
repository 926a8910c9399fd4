//! Kernel benchmarks: `decide` on a typical and a large tenant, and `run` (parse + validate +
//! decide) on the large tenant's bytes against `serde_json::from_slice` alone.
//! Inputs are generated here, deterministically. Run: `cargo bench --bench kernel`.

use chrono::{Duration, NaiveDate};
use criterion::{Criterion, criterion_group, criterion_main};
use revenue_os::contract::catalog::Catalog;
use revenue_os::contract::*;
use revenue_os::kernel;
use std::hint::black_box;

// The kernel tests' helpers: the same generator and clock as the property tests.
#[path = "../tests/kernel/support/mod.rs"]
mod kernel_support;
use kernel_support::now;
use kernel_support::rng::Rng;

const METRICS: [(&str, f64, f64); 20] = [
    ("pipeline_total", 640_000.0, 430_000.0),
    ("bookings_new", 9_200.0, 8_600.0),
    ("cac_blended", 3_100.0, 3_200.0),
    ("win_rate", 0.27, 0.26),
    ("gross_margin", 0.78, 0.78),
    ("payback_months", 11.0, 11.5),
    ("leads_created", 140.0, 95.0),
    ("speed_to_lead_hours", 6.0, 6.5),
    ("arr_total", 4_100_000.0, 4_160_000.0),
    ("mqls_created", 60.0, 45.0),
    ("qualified_opps_created", 12.0, 10.0),
    ("pipeline_velocity", 1_000.0, -500.0),
    ("email_reply_rate", 0.04, 0.035),
    ("meeting_book_rate", 0.02, 0.018),
    ("avg_sales_cycle_days", 45.0, 48.0),
    ("stage_conversion_lead_to_opp", 0.09, 0.085),
    ("follow_up_rate", 0.8, 0.75),
    ("mrr_total", 340_000.0, 346_000.0),
    ("ltv_to_cac", 3.2, 3.0),
    ("avg_deal_size", 21_000.0, 20_500.0),
];

const CHANNELS: [&str; 6] = [
    "paid_search",
    "paid_social",
    "email",
    "events",
    "organic",
    "partners",
];

fn tenant(days: i64, events: usize, campaigns: usize, opps: usize) -> KernelInput {
    let mut r = Rng(42);
    let end = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    let d = |back: i64| (end - Duration::days(back)).format("%Y-%m-%d").to_string();
    let mut metrics = Vec::new();
    for (id, first, last) in METRICS {
        for i in 0..days {
            let t = i as f64 / (days - 1) as f64;
            metrics.push(MetricPoint {
                metric_id: id.into(),
                value: (first + (last - first) * t) * (1.0 + r.range(-0.01, 0.01)),
                date: d(days - 1 - i),
                dimension: None,
            });
        }
    }
    let campaigns: Vec<Campaign> = (0..campaigns)
        .map(|i| {
            let total = r.range(5_000.0, 60_000.0).round();
            Campaign {
                id: format!("cmp_{i:05}"),
                name: format!("Campaign {i}"),
                status: if i % 7 == 6 { "paused" } else { "running" }.into(),
                objective: "pipeline".into(),
                budget_total: total,
                budget_spent: (total * r.range(0.1, 0.9)).round(),
                start_date: d(days + r.below(60) as i64),
                end_date: Some(d(-(30 + r.below(90) as i64))),
            }
        })
        .collect();
    let revenue_events = (0..events)
        .map(|i| {
            let c = r.below(campaigns.len());
            let attributed = r.f() < 0.9;
            RevenueEvent {
                id: format!("evt_{i:07}"),
                kind: "new_booking".into(),
                amount: (r.range(500.0, 12_000.0) * 100.0).round() / 100.0,
                effective_date: d(r.below(days as usize) as i64),
                attributed_campaign_id: attributed.then(|| campaigns[c].id.clone()),
                attributed_channel: attributed.then(|| CHANNELS[c % CHANNELS.len()].into()),
            }
        })
        .collect();
    let stages = [
        ("discovery", 0.1),
        ("qualification", 0.2),
        ("proposal", 0.4),
        ("negotiation", 0.6),
    ];
    let opportunities = (0..opps)
        .map(|i| {
            let (stage, p) = stages[i % 4];
            Opportunity {
                id: format!("opp_{i:06}"),
                stage: stage.into(),
                amount: r.range(5_000.0, 25_000.0).round(),
                expected_close_date: d(-(10 + r.below(80) as i64)),
                win_probability: p,
            }
        })
        .collect();
    KernelInput {
        tenant_id: "7d3c1a52-2f4e-4c8e-9a51-0b6f2d9e4c11".into(),
        trigger: Trigger {
            kind: TriggerType::Scheduled,
            source: "cron_daily".into(),
            triggered_at: "2026-11-26T06:00:00Z".into(),
        },
        analysis_window: AnalysisWindow {
            start_date: d(days - 1),
            end_date: d(0),
        },
        targets: Targets {
            pipeline_total: Some(900_000.0),
            bookings_new: Some(300_000.0),
            cac_max: Some(3_500.0),
            payback_max_months: Some(14.0),
            gross_margin_min: Some(0.7),
            arr_target: None,
        },
        guardrails: Guardrails {
            max_daily_spend: Some(campaigns.len() as f64 * 400.0),
            max_experiment_exposure_pct: Some(20.0),
            allowed_levers: Lever::ALL.to_vec(),
            blocked_actions: Some(vec![]),
        },
        metrics,
        revenue_events,
        campaigns,
        opportunities,
        recent_action_results: Some(vec![ActionResult {
            action_id: "campaigns.scale.cmp_00001.budget_daily".into(),
            target_metric: "pipeline_total".into(),
            baseline_value: 450_000.0,
            observed_value: 430_000.0,
            delta: -20_000.0,
            confidence: 0.85,
            outcome: Outcome::Failed,
        }]),
        config: Some(TenantConfig {
            min_sample_size: Some(200.0),
            default_observation_window_days: Some(14.0),
            risk_tolerance: Some(RiskTolerance::Medium),
        }),
    }
}

fn benches(c: &mut Criterion) {
    let catalog = Catalog::embedded().unwrap();
    let id = uuid::Uuid::from_u128(7);
    let levers = Levers::default();
    let large = tenant(90, 100_000, 2_000, 20_000);
    // Pretty-printed like the fixtures: about 25 MB.
    let bytes = serde_json::to_vec_pretty(&large).unwrap();
    // `decide` takes what `check_input` returns; checking is measured in `large_bytes`.
    let typical = check_input(tenant(30, 250, 10, 200), &catalog, now()).unwrap();
    let large = check_input(large, &catalog, now()).unwrap();
    for (name, checked) in [("typical", &typical), ("large", &large)] {
        let out = kernel::decide(checked, &levers, &catalog, now(), id);
        assert!(out.is_ok(), "{name}: {out:?}");
    }
    eprintln!("large input: {:.1} MB", bytes.len() as f64 / 1e6);
    assert!(kernel::run(&bytes, &levers, &catalog, now(), id).is_ok());

    let mut g = c.benchmark_group("decide");
    g.bench_function("typical", |b| {
        b.iter(|| kernel::decide(black_box(&typical), &levers, &catalog, now(), id))
    });
    g.sample_size(20);
    g.bench_function("large", |b| {
        b.iter(|| kernel::decide(black_box(&large), &levers, &catalog, now(), id))
    });
    g.finish();

    let mut g = c.benchmark_group("large_bytes");
    g.sample_size(10);
    g.bench_function("serde_json_parse_only", |b| {
        b.iter(|| serde_json::from_slice::<KernelInput>(black_box(&bytes)).unwrap())
    });
    g.bench_function("parse_and_validate", |b| {
        b.iter(|| parse_input(black_box(&bytes), &catalog, now()).unwrap())
    });
    g.bench_function("kernel_run", |b| {
        b.iter(|| kernel::run(black_box(&bytes), &levers, &catalog, now(), id))
    });
    g.finish();
}

criterion_group!(kernel_benches, benches);
criterion_main!(kernel_benches);
