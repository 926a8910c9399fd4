//! The calibration the detector promises (docs/deviations.md), re-run by anyone: a fixed seed,
//! 250 synthetic tenants × 9 metrics (2,250 series) per length. Clean series measure false
//! positives per series and per tenant-day; a 40% harmful move on the newest day measures
//! detection. The table is printed and written to target/tmp/deviation-calibration.md.

use super::synth::{PROFILES, Rng, tenant};
use revenue_os::Catalog;
use revenue_os::deviation::{Params, assess, assess_tenant, pick_trigger};
use std::fmt::Write as _;

const TENANTS: usize = 250;
const SEED: u64 = 0x2026_1204;

struct Row {
    days: usize,
    series: usize,
    false_positives: usize,
    tenants: usize,
    tenant_cycles: usize,
    helpful: usize,
    injected: usize,
    detected: usize,
    detected_by_metric: [usize; 9],
}

fn measure(catalog: &Catalog, days: usize) -> Row {
    let mut rng = Rng::new(SEED ^ days as u64);
    let params = Params::default();
    let mut row = Row {
        days,
        series: 0,
        false_positives: 0,
        tenants: TENANTS,
        tenant_cycles: 0,
        helpful: 0,
        injected: 0,
        detected: 0,
        detected_by_metric: [0; 9],
    };
    for _ in 0..TENANTS {
        let t = tenant(&mut rng, days);
        let all = assess_tenant(catalog, t.newest, t.as_refs(), params);
        row.series += t.series.len();
        row.false_positives += all.iter().filter(|a| a.is_harmful()).count();
        row.helpful += all
            .iter()
            .filter(|a| a.surprise.is_some() && !a.is_harmful())
            .count();
        row.tenant_cycles += usize::from(pick_trigger(&all).is_some());
        for (i, p) in PROFILES.iter().enumerate() {
            let mut hit = t.clone();
            hit.inject(i);
            let def = catalog.metric(p.metric_id).expect("a dictionary metric");
            row.injected += 1;
            if assess(def, &hit.series[i].1, params).is_some_and(|a| a.is_harmful()) {
                row.detected += 1;
                row.detected_by_metric[i] += 1;
            }
        }
    }
    row
}

fn pct(a: usize, b: usize) -> f64 {
    100.0 * a as f64 / b.max(1) as f64
}

#[test]
fn calibration_on_synthetic_tenants() {
    let catalog = Catalog::embedded().expect("embedded catalog");
    let rows: Vec<Row> = [30, 60, 90]
        .into_iter()
        .map(|d| measure(&catalog, d))
        .collect();

    let mut table = String::from(
        "| days | series | false positives per series | tenant-days with a deviation cycle | helpful surprises | detected 40% harmful moves |\n|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        let _ = writeln!(
            table,
            "| {} | {} | {} ({:.2}%) | {} of {} ({:.1}%) | {} ({:.2}%) | {} of {} ({:.1}%) |",
            r.days,
            r.series,
            r.false_positives,
            pct(r.false_positives, r.series),
            r.tenant_cycles,
            r.tenants,
            pct(r.tenant_cycles, r.tenants),
            r.helpful,
            pct(r.helpful, r.series),
            r.detected,
            r.injected,
            pct(r.detected, r.injected),
        );
    }
    table.push_str("\ndetection by metric (30 / 60 / 90 days):\n\n");
    for (i, p) in PROFILES.iter().enumerate() {
        let by: Vec<String> = rows
            .iter()
            .map(|r| format!("{:.0}%", pct(r.detected_by_metric[i], TENANTS)))
            .collect();
        let _ = writeln!(table, "- {}: {}", p.metric_id, by.join(" / "));
    }
    println!("{table}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join("deviation-calibration.md"), &table);
    }

    for r in &rows {
        assert!(r.series >= 2_000);
        assert!(
            pct(r.false_positives, r.series) <= 1.0,
            "{} days: {} false positives in {} series\n{table}",
            r.days,
            r.false_positives,
            r.series
        );
        assert!(
            pct(r.tenant_cycles, r.tenants) <= 5.0,
            "{} days: {} of {} clean tenant-days get a cycle\n{table}",
            r.days,
            r.tenant_cycles,
            r.tenants
        );
        if r.days >= 60 {
            assert!(
                pct(r.detected, r.injected) >= 60.0,
                "{} days: detected {} of {}\n{table}",
                r.days,
                r.detected,
                r.injected
            );
        }
    }
}
