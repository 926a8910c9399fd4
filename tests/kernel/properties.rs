//! Property: for arbitrary valid inputs the kernel emits an output that passes the seed schema,
//! the output rules and every guardrail, deterministically, or a well-formed INVALID_INPUT that
//! says which guardrail excluded what.
//!
//! Default: 128 cases. A longer run:
//! `PROPTEST_CASES=5000 cargo test --release --test kernel properties`.

use crate::support::rng::Rng;
use crate::support::*;
use proptest::prelude::*;
use revenue_os::contract::*;
use serde_json::{Value, json};

/// Guardrail knobs drawn by proptest (so failures shrink on them); bulk rows from a seed.
#[derive(Debug, Clone)]
struct Knobs {
    levers: Vec<Lever>,
    blocked: Vec<ActionType>,
    max_daily_spend: Option<f64>,
    exposure: Option<f64>,
    risk: Option<RiskTolerance>,
    min_sample: Option<u32>,
    window_days: u32,
    campaigns: usize,
    events: usize,
    opps: usize,
    results: usize,
    seed: u64,
}

fn knobs() -> impl Strategy<Value = Knobs> {
    (
        proptest::sample::subsequence(Lever::ALL.to_vec(), 1..=4),
        proptest::sample::subsequence(ActionType::ALL.to_vec(), 0..=3),
        prop::option::of(prop_oneof![Just(0.0), 0.0..6000.0f64]),
        prop::option::of(prop_oneof![Just(0.0), Just(10.0), 0.0..100.0f64]),
        prop::option::of(proptest::sample::select(RiskTolerance::ALL.to_vec())),
        prop::option::of(1u32..20_000),
        (3u32..=60, 0usize..14, 0usize..120, 0usize..80, 0usize..5),
        any::<u64>(),
    )
        .prop_map(
            |(levers, blocked, max_daily_spend, exposure, risk, min_sample, sizes, seed)| Knobs {
                levers,
                blocked,
                max_daily_spend,
                exposure,
                risk,
                min_sample,
                window_days: sizes.0,
                campaigns: sizes.1,
                events: sizes.2,
                opps: sizes.3,
                results: sizes.4,
                seed,
            },
        )
}

fn date(end: chrono::NaiveDate, back: i64) -> String {
    (end - chrono::Duration::days(back))
        .format("%Y-%m-%d")
        .to_string()
}

const CHANNELS: [&str; 5] = ["paid_search", "paid_social", "email", "events", "organic"];

fn build(k: &Knobs) -> Value {
    let mut r = Rng(k.seed);
    let end = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    let n = i64::from(k.window_days);
    let cat = catalog();
    // About a third of tenants carry data problems; the rest are clean, so both paths get tested.
    let dirty = r.chance(0.3);
    let bad = |r: &mut Rng, p: f64| dirty && r.chance(p);

    let mut targets = serde_json::Map::new();
    for (field, lo, hi) in [
        ("pipeline_total", 1e4, 3e6),
        ("bookings_new", 1e3, 1e6),
        ("arr_target", 1e5, 1e7),
        ("cac_max", 100.0, 10_000.0),
        ("payback_max_months", 3.0, 36.0),
        ("gross_margin_min", 0.05, 1.0),
    ] {
        if r.chance(0.6) {
            targets.insert(field.into(), json!(r.range(lo, hi)));
        }
    }
    if targets.is_empty() {
        targets.insert("pipeline_total".into(), json!(500_000.0));
    }

    let mut metrics = Vec::new();
    let mut ids: Vec<&str> = vec!["pipeline_total", "bookings_new", "cac_blended"];
    // Target metrics are usually reported (a missing one is a data-quality finding).
    for field in targets.keys() {
        let m = cat.target(field).unwrap().metric.as_str();
        if !ids.contains(&m) && !bad(&mut r, 0.3) {
            ids.push(m);
        }
    }
    for m in cat.metrics() {
        if !ids.contains(&m.id.as_str()) && r.chance(0.35) {
            ids.push(&m.id);
        }
    }
    for id in ids {
        let def = cat.metric(id).unwrap();
        let scale = match def.unit {
            revenue_os::contract::catalog::Unit::Fraction => 1.0,
            revenue_os::contract::catalog::Unit::Percent => 100.0,
            revenue_os::contract::catalog::Unit::Currency => r.range(1_000.0, 2_000_000.0),
            _ => r.range(1.0, 500.0),
        };
        let (a, b) = (r.range(0.0, 1.0) * scale, r.range(0.0, 1.0) * scale);
        let stale = if bad(&mut r, 0.1) {
            r.range(0.0, 8.0) as i64
        } else {
            0
        };
        for i in 0..n {
            if (i < stale || bad(&mut r, 0.03)) && i != n - 1 {
                continue;
            }
            let back = i;
            let t = (n - 1 - i) as f64 / (n.max(2) - 1) as f64;
            let mut v = a + (b - a) * t;
            if bad(&mut r, 0.01) {
                v = -v - 1.0;
            }
            let mut p = json!({"metric_id": id, "value": v, "date": date(end, back)});
            if def.dimension.is_some() || bad(&mut r, 0.02) {
                p["dimension"] = json!({"channel": *r.pick(&CHANNELS)});
            }
            metrics.push(p.clone());
            if bad(&mut r, 0.01) {
                p["value"] = json!(v * 1.1 + 1.0);
                metrics.push(p);
            }
        }
    }

    let camp_ids: Vec<String> = (0..k.campaigns).map(|i| format!("cmp_{i:03}")).collect();
    let campaigns: Vec<Value> = camp_ids
        .iter()
        .map(|id| {
            let total = r.range(0.0, 80_000.0).round();
            let spent = (total * r.range(0.0, if dirty { 1.1 } else { 1.0 })).round();
            let start = r.range(1.0, 120.0) as i64;
            let mut c = json!({
                "id": id, "name": format!("Campaign {id}"),
                "status": *r.pick(&["running", "running", "running", "paused", "ended", "active"]),
                "objective": "pipeline", "budget_total": total, "budget_spent": spent,
                "start_date": date(end, start),
            });
            if r.chance(0.7) {
                c["end_date"] = json!(date(end, start - r.range(1.0, 200.0) as i64));
            }
            c
        })
        .collect();

    let events: Vec<Value> = (0..k.events)
        .map(|i| {
            let mut e = json!({
                "id": format!("evt_{i:05}"), "type": "new_booking",
                "amount": (r.range(-500.0, 20_000.0) * 100.0).round() / 100.0,
                "effective_date": date(end, r.range(-1.0, n as f64 + 2.0) as i64),
            });
            let attributed = if dirty { 0.5 } else { 0.9 };
            if !camp_ids.is_empty() && r.chance(attributed) {
                e["attributed_campaign_id"] = json!(r.pick(&camp_ids));
            } else if r.chance(0.1) {
                e["attributed_campaign_id"] = json!("cmp_unknown");
            }
            if r.chance(attributed) {
                e["attributed_channel"] = json!(*r.pick(&CHANNELS));
            }
            e
        })
        .collect();

    let opps: Vec<Value> = (0..k.opps)
        .map(|i| {
            json!({
                "id": format!("opp_{i:05}"),
                "stage": *r.pick(&["discovery", "qualification", "proposal", "negotiation"]),
                "amount": r.range(0.0, 50_000.0).round(),
                "expected_close_date": date(end, -(r.range(-10.0, 120.0) as i64)),
                "win_probability": (r.f() * 100.0).round() / 100.0,
            })
        })
        .collect();

    let mut result_ids: Vec<String> = vec![
        "crm.config_change.follow_up_sla_hours".into(),
        "routing.config_change.round_robin_enabled".into(),
        "pricing.config_change.promo_code_enabled".into(),
        "crm.experiment.sequence_delay_days".into(),
        "not.an.action".into(),
    ];
    for id in &camp_ids {
        result_ids.push(format!("campaigns.scale.{id}.budget_daily"));
        result_ids.push(format!("campaigns.pause.{id}.status"));
        result_ids.push(format!("content.experiment.{id}.variant_weights"));
    }
    let results: Vec<Value> = (0..k.results)
        .map(|_| {
            json!({
                "action_id": r.pick(&result_ids), "target_metric": "pipeline_total",
                "baseline_value": r.range(0.0, 1e6), "observed_value": r.range(0.0, 1e6),
                "delta": r.range(-1e5, 1e5), "confidence": r.f(),
                "outcome": *r.pick(&["successful", "failed", "inconclusive"]),
            })
        })
        .collect();

    let mut guardrails = json!({
        "allowed_levers": k.levers,
        "blocked_actions": k.blocked.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
    });
    if let Some(x) = k.max_daily_spend {
        guardrails["max_daily_spend"] = json!(x);
    }
    if let Some(x) = k.exposure {
        guardrails["max_experiment_exposure_pct"] = json!(x);
    }
    let mut config = serde_json::Map::new();
    if let Some(x) = k.min_sample {
        config.insert("min_sample_size".into(), json!(x));
    }
    if let Some(x) = k.risk {
        config.insert("risk_tolerance".into(), json!(x));
    }
    if r.chance(0.5) {
        config.insert(
            "default_observation_window_days".into(),
            json!(r.range(1.0, 60.0).round()),
        );
    }

    json!({
        "tenant_id": "7d3c1a52-2f4e-4c8e-9a51-0b6f2d9e4c11",
        "trigger": {"type": "scheduled", "source": "cron_daily", "triggered_at": "2026-11-26T06:00:00Z"},
        "analysis_window": {"start_date": date(end, n - 1), "end_date": date(end, 0)},
        "targets": targets,
        "guardrails": guardrails,
        "metrics": metrics,
        "revenue_events": events,
        "campaigns": campaigns,
        "opportunities": opps,
        "recent_action_results": results,
        "config": config,
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: Some(Box::new(beside_the_source())),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_valid_input_gives_a_sound_output_or_a_guardrail_error(k in knobs()) {
        let bytes = serde_json::to_vec(&build(&k)).unwrap();
        let input = parse_input(&bytes, catalog(), now())
            .unwrap_or_else(|e| panic!("generator made an invalid input: {e:?}"));
        match decide(&input) {
            Ok(out) => assert_sound(&out, &input),
            Err(e) => {
                prop_assert_eq!(e.code, ErrorCode::InvalidInput, "{:?}", e);
                let d = e.details.as_ref().unwrap();
                prop_assert!(d.contains_key("excluded"));
                prop_assert!(!e.violations().is_empty());
            }
        }
        assert_deterministic(&input);
    }
}
