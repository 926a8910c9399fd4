//! Deviation detection's cost: one tenant's nine metrics at 30, 60 and 90 days, and the
//! figure the issue asks for, 10,000 tenants × 9 metrics at 90 days on one core.
//! Inputs come from the calibration test's fixed generator. Run: `cargo bench --bench deviation`.

use criterion::{Criterion, criterion_group, criterion_main};
use revenue_os::Catalog;
use revenue_os::deviation::{Params, assess_tenant};
use std::hint::black_box;
use std::time::Duration;

#[path = "../tests/deviation/synth.rs"]
#[allow(dead_code)]
mod synth;
use synth::{Rng, Tenant, tenant};

fn benches(c: &mut Criterion) {
    let catalog = Catalog::embedded().expect("embedded catalog");
    let params = Params::default();
    let mut rng = Rng::new(7);

    let mut g = c.benchmark_group("deviation/tenant");
    for days in [30, 60, 90] {
        let t = tenant(&mut rng, days);
        g.bench_function(format!("9 metrics, {days} days"), |b| {
            b.iter(|| assess_tenant(&catalog, t.newest, black_box(t.as_refs()), params))
        });
    }
    g.finish();

    let tenants: Vec<Tenant> = (0..10_000).map(|_| tenant(&mut rng, 90)).collect();
    let mut g = c.benchmark_group("deviation/fleet");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.bench_function("10000 tenants x 9 metrics, 90 days", |b| {
        b.iter(|| {
            tenants
                .iter()
                .map(|t| assess_tenant(&catalog, t.newest, t.as_refs(), params).len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(deviation_benches, benches);
criterion_main!(deviation_benches);
