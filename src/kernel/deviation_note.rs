//! A cycle raised by deviation detection (`source = deviation:<metric_id>`): when the kernel
//! scores that metric, the diagnosis names it and the deviation's size, as the detector
//! (src/deviation) measures it on the cycle's own window.

use super::diagnose::Diagnosis;
use super::text::{pct, qty};
use crate::contract::{Catalog, Checked, TriggerType, format_date};
use crate::deviation::{Params, assess};

/// The prefix of a deviation trigger's `source`.
pub const SOURCE_PREFIX: &str = "deviation:";

/// Appends one sentence to the diagnosis when the trigger names a metric the kernel scored.
pub fn annotate(diag: &mut Diagnosis, checked: &Checked, catalog: &Catalog) {
    let trigger = &checked.input().trigger;
    let Some(metric) = trigger.source.strip_prefix(SOURCE_PREFIX) else {
        return;
    };
    let scored = diag.parts.iter().any(|p| p.metric == metric)
        || diag.targets.iter().any(|t| t.metric == metric)
        || diag.priority_metric == metric;
    let Some(def) = catalog.metric(metric) else {
        return;
    };
    if trigger.kind != TriggerType::MetricDeviation || !scored {
        return;
    }
    let series: Vec<_> = checked
        .metrics()
        .filter(|(p, _)| p.metric_id == metric && p.dimension.is_none())
        .map(|(p, d)| (d, p.value))
        .collect();
    let sentence = match assess(def, &series, Params::default()) {
        Some(a) => format!(
            " This cycle was raised by a deviation in {metric}: {} on {} against {} expected ({}{}), {} the band {} to {} ({} over {} days, k {}).",
            qty(a.observed, Some(def.unit)),
            format_date(a.day),
            qty(a.expected, Some(def.unit)),
            if a.relative_change() >= 0.0 { "+" } else { "" },
            pct(a.relative_change()),
            if a.surprise.is_some() {
                "outside"
            } else {
                "within"
            },
            qty(a.lower, Some(def.unit)),
            qty(a.upper, Some(def.unit)),
            a.method.as_str(),
            a.days_used,
            a.k,
        ),
        None => format!(" This cycle was raised by a deviation in {metric}."),
    };
    diag.text.push_str(&sentence);
}
