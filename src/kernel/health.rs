//! Data-health findings. They come first: a material one makes `data_quality` the constraint.

use super::data::{Index, date_string};
use super::text::{num, pct};
use crate::contract::catalog::{Catalog, Unit};
use crate::contract::{DataIssueType, MetricPoint};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Stale,
    MissingDays,
    Impossible,
    Conflict,
    Attribution,
    Overspend,
    /// A newest value that breaks a stable history: a suspected sync glitch.
    Glitch,
}

impl Kind {
    pub fn issue(self) -> DataIssueType {
        match self {
            Kind::Stale => DataIssueType::StaleData,
            Kind::MissingDays => DataIssueType::MissingData,
            Kind::Impossible | Kind::Conflict | Kind::Overspend | Kind::Glitch => {
                DataIssueType::InvalidData
            }
            Kind::Attribution => DataIssueType::MissingAttribution,
        }
    }
    fn slug(self) -> &'static str {
        match self {
            Kind::Stale => "stale",
            Kind::MissingDays => "missing_days",
            Kind::Impossible => "impossible_values",
            Kind::Conflict => "conflicting_duplicates",
            Kind::Attribution => "unattributed_revenue",
            Kind::Overspend => "overspent_campaigns",
            Kind::Glitch => "sync_glitch",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: Kind,
    pub material: bool,
    /// A dictionary metric the finding is about.
    pub metric: String,
    pub description: String,
    pub fix: String,
    /// Overspent campaign ids (Overspend only).
    pub campaigns: Vec<String>,
}

impl Finding {
    pub fn action_id(&self) -> String {
        format!("data.{}.{}", self.kind.slug(), self.metric)
    }
}

/// The metrics whose series must be fresh and complete: required ones and target ones,
/// sorted and each once.
pub fn watched_metrics<'c>(ix: &Index, catalog: &'c Catalog) -> Vec<&'c str> {
    let mut set: Vec<&str> = catalog
        .required_metrics
        .iter()
        .map(String::as_str)
        .collect();
    for (field, _) in ix.input.targets.defined() {
        if let Some(t) = catalog.target(field) {
            set.push(t.metric.as_str());
        }
    }
    set.sort_unstable();
    set.dedup();
    set
}

/// Every finding, material ones first, then in the order of `Kind`, then by metric.
pub fn findings(ix: &Index, catalog: &Catalog) -> Vec<Finding> {
    let p = ix.params;
    let mut out = Vec::new();
    let end = ix.end;
    let end_s = &ix.input.analysis_window.end_date;

    let watched = watched_metrics(ix, catalog);
    for &m in &watched {
        let pts = ix.window_points(m);
        let Some((last_day, _)) = ix.latest(m) else {
            out.push(Finding {
                kind: Kind::MissingDays,
                material: true,
                metric: m.into(),
                description: format!(
                    "{m} has no undimensioned values at all, so its target cannot be scored."
                ),
                fix: format!(
                    "Connect the source of {m} and backfill daily values for {} to {end_s}.",
                    ix.input.analysis_window.start_date
                ),
                campaigns: vec![],
            });
            continue;
        };
        let age = end - last_day;
        if age > p.stale_after_days {
            out.push(Finding {
                kind: Kind::Stale,
                material: true,
                metric: m.into(),
                description: format!(
                    "{m} was last reported on {} ({age} days before the window end {end_s}; \
                     stale after {} days).",
                    date_string(last_day),
                    p.stale_after_days
                ),
                fix: format!(
                    "Re-run the {m} sync from its source system, backfill {} to {end_s}, and alert \
                     when data_freshness_hours exceeds {}.",
                    date_string(last_day + 1),
                    p.stale_after_days * 24
                ),
                campaigns: vec![],
            });
        }
        // Missing days between the window start and the newest value (staleness covers the tail).
        let upto = last_day.min(end);
        let expected = (upto - ix.start + 1).max(0);
        let missing = expected - pts.iter().filter(|x| x.0 <= upto).count() as i32;
        if missing > 0 {
            let mut gaps = Vec::new();
            let mut next = ix.start;
            for &(d, _) in pts {
                while next < d && gaps.len() < 3 {
                    gaps.push(date_string(next));
                    next += 1;
                }
                next = d + 1;
            }
            let material =
                f64::from(missing) >= p.missing_days_material_share * f64::from(ix.window_days);
            out.push(Finding {
                kind: Kind::MissingDays,
                material,
                metric: m.into(),
                description: format!(
                    "{m} has no value on {missing} of the {expected} days from {} to {} \
                     (first missing: {}).",
                    ix.input.analysis_window.start_date,
                    date_string(upto),
                    gaps.join(", ")
                ),
                fix: format!(
                    "Backfill the {missing} missing daily {m} values from the source system and \
                     make the daily sync retry failed days."
                ),
                campaigns: vec![],
            });
        }
    }

    // Impossible values, any metric, dimensioned or not.
    let mut bad: Vec<(&str, usize, &MetricPoint, &'static str)> = Vec::new();
    // Points usually come grouped by metric: look the definition up once per run of an id.
    for (id, run) in &ix.metric_runs {
        let Some(def) = catalog.metric(id) else {
            continue;
        };
        let (fraction_max, negative_ok) = (
            def.id != "net_revenue_retention",
            def.id == "pipeline_velocity",
        );
        for mp in &ix.input.metrics[run.clone()] {
            let v = mp.value;
            let problem = match def.unit {
                Unit::Fraction if v < 0.0 || (v > 1.0 && fraction_max) => {
                    Some("a fraction must lie in 0-1")
                }
                Unit::Percent if !(0.0..=100.0).contains(&v) => {
                    Some("a percentage must lie in 0-100")
                }
                Unit::Fraction | Unit::Percent => None,
                _ if v < 0.0 && !negative_ok => Some("cannot be negative"),
                _ => None,
            };
            if let Some(why) = problem {
                match bad.iter_mut().find(|b| b.0 == mp.metric_id) {
                    Some(b) => b.1 += 1,
                    None => bad.push((&mp.metric_id, 1, mp, why)),
                }
            }
        }
    }
    bad.sort_by(|a, b| a.0.cmp(b.0));
    for (m, n, first, why) in bad {
        out.push(Finding {
            kind: Kind::Impossible,
            material: true,
            metric: m.into(),
            description: format!(
                "{n} {m} value(s) are impossible ({why}), e.g. {} on {}.",
                num(first.value),
                first.date
            ),
            fix: format!(
                "Correct the {n} {m} row(s) at the source and reject such values on import; \
                 exclude them until fixed."
            ),
            campaigns: vec![],
        });
    }

    // Conflicting duplicates: same metric, date and dimension, different values.
    let mut conflicts: Vec<(&str, String, f64, f64)> = ix
        .undimensioned_conflicts
        .iter()
        .map(|&(m, d, a, b)| (m, date_string(d), a, b))
        .collect();
    let mut dim: Vec<&MetricPoint> = ix
        .input
        .metrics
        .iter()
        .filter(|m| m.dimension.as_ref().is_some_and(|d| !d.is_empty()))
        .collect();
    dim.sort_by(|a, b| {
        (&a.metric_id, &a.dimension, &a.date).cmp(&(&b.metric_id, &b.dimension, &b.date))
    });
    for w in dim.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.metric_id == b.metric_id
            && a.dimension == b.dimension
            && a.date == b.date
            && a.value != b.value
        {
            conflicts.push((&a.metric_id, a.date.clone(), a.value, b.value));
        }
    }
    conflicts.sort_by(|a, b| a.0.cmp(b.0).then_with(|| a.1.cmp(&b.1)));
    let mut i = 0;
    while i < conflicts.len() {
        let m = conflicts[i].0;
        let n = conflicts[i..].iter().take_while(|c| c.0 == m).count();
        let (_, d, a, b) = &conflicts[i];
        out.push(Finding {
            kind: Kind::Conflict,
            material: true,
            metric: m.into(),
            description: format!(
                "{m} has {n} conflicting duplicate(s): the same date and dimension with \
                 different values, e.g. {d}: {} vs {}.",
                num(*a),
                num(*b)
            ),
            fix: format!(
                "Deduplicate {m} at the source so each metric, date and dimension has one row; \
                 decide which system is authoritative for {m}."
            ),
            campaigns: vec![],
        });
        i += n;
    }

    if ix.revenue_total > 0.0 {
        let share = ix.revenue_unattributed / ix.revenue_total;
        if share > p.attribution_max_share {
            out.push(Finding {
                kind: Kind::Attribution,
                material: true,
                metric: "missing_attribution_pct".into(),
                description: format!(
                    "{} of {} revenue in the window ({}) has neither a campaign nor a channel \
                     (limit {}).",
                    num(ix.revenue_unattributed),
                    num(ix.revenue_total),
                    pct(share),
                    pct(p.attribution_max_share)
                ),
                fix: "Fix source capture (UTM parameters, CRM lead source) and backfill \
                      attributed_campaign_id or attributed_channel on the window's revenue \
                      events; campaign ROAS is unreliable until then."
                    .into(),
                campaigns: vec![],
            });
        }
    }

    let mut over: Vec<(&str, f64, f64)> = ix
        .campaigns
        .iter()
        .filter(|c| c.spent > c.total)
        .map(|c| (c.id, c.spent, c.total))
        .collect();
    if !over.is_empty() {
        over.sort_by(|a, b| a.0.cmp(b.0));
        let material = over
            .iter()
            .any(|(_, s, t)| *s > t * (1.0 + p.overspend_tolerance));
        let named: Vec<String> = over
            .iter()
            .take(5)
            .map(|(id, s, t)| format!("{id} spent {} of {}", num(*s), num(*t)))
            .collect();
        out.push(Finding {
            kind: Kind::Overspend,
            material,
            metric: "campaign_roas".into(),
            description: format!(
                "{} campaign(s) spent more than their budget: {}{}.",
                over.len(),
                named.join("; "),
                if over.len() > 5 { "; ..." } else { "" }
            ),
            fix: "Reconcile spend with the ad platforms and enforce budget_total as a hard cap; \
                  spend past budget makes ROAS and CAC unreliable."
                .into(),
            campaigns: over.iter().map(|o| o.0.to_owned()).collect(),
        });
    }

    // Suspected sync glitches: material on a watched metric (it would drive the decision).
    for g in &ix.glitches {
        let opps = if g.metric == "pipeline_total" && ix.opps.count > 0 {
            format!(" ({} open opportunities in the input)", ix.opps.count)
        } else {
            String::new()
        };
        let date = date_string(g.day);
        out.push(Finding {
            kind: Kind::Glitch,
            material: watched.binary_search(&g.metric).is_ok(),
            metric: g.metric.into(),
            description: format!(
                "{} reads {} on {date} after {} days near {}{opps}: suspected sync glitch; the \
                 value is left out and nothing adds spend while it stands.",
                g.metric,
                num(g.value),
                g.history,
                num(g.typical)
            ),
            fix: format!(
                "Re-run the {} sync for {date}, compare it with the source system, and correct \
                 or confirm the value.",
                g.metric
            ),
            campaigns: vec![],
        });
    }

    out.sort_by(|a, b| {
        b.material
            .cmp(&a.material)
            .then(a.kind.cmp(&b.kind))
            .then_with(|| a.metric.cmp(&b.metric))
    });
    out
}

/// The data-health metric a `data_quality` diagnosis points at.
pub fn priority_metric(f: &Finding) -> &str {
    match f.kind {
        Kind::Stale | Kind::MissingDays | Kind::Glitch => "data_freshness_hours",
        Kind::Attribution => "missing_attribution_pct",
        _ => &f.metric,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::test_support::*;

    fn found(t: Tenant) -> Vec<Finding> {
        let c = t.checked();
        findings(&index(&c), &CATALOG)
    }

    fn kinds(f: &[Finding]) -> Vec<(Kind, bool, &str)> {
        f.iter()
            .map(|f| (f.kind, f.material, f.metric.as_str()))
            .collect()
    }

    #[test]
    fn a_clean_tenant_has_no_findings() {
        assert!(found(Tenant::new()).is_empty());
    }

    #[test]
    fn a_metric_older_than_three_days_is_stale() {
        // Newest pipeline value 4 days before the window end; 3 days is still fresh.
        let f = found(Tenant::new().without_days("pipeline_total", &[26, 27, 28, 29]));
        assert_eq!(kinds(&f), [(Kind::Stale, true, "pipeline_total")]);
        assert_eq!(f[0].action_id(), "data.stale.pipeline_total");
        assert!(found(Tenant::new().without_days("pipeline_total", &[27, 28, 29])).is_empty());
    }

    #[test]
    fn missing_days_are_material_from_a_tenth_of_the_window() {
        let two = found(Tenant::new().without_days("cac_blended", &[3, 4]));
        assert_eq!(kinds(&two), [(Kind::MissingDays, false, "cac_blended")]);
        let three = found(Tenant::new().without_days("cac_blended", &[3, 4, 5]));
        assert_eq!(kinds(&three), [(Kind::MissingDays, true, "cac_blended")]);
    }

    #[test]
    fn a_target_metric_without_values_is_missing_data() {
        let t = Tenant::new().targets(|t| t.gross_margin_min = Some(0.7));
        assert_eq!(
            kinds(&found(t)),
            [(Kind::MissingDays, true, "gross_margin")]
        );
    }

    #[test]
    fn impossible_values_follow_the_unit() {
        let f = found(Tenant::new().point("win_rate", 3, 1.5));
        assert_eq!(kinds(&f), [(Kind::Impossible, true, "win_rate")]);
        // Retention may exceed 1 and velocity may be negative.
        let ok = Tenant::new()
            .flat("net_revenue_retention", 1.2)
            .flat("pipeline_velocity", -500.0);
        assert!(found(ok).is_empty());
    }

    #[test]
    fn the_same_day_twice_with_different_values_conflicts() {
        let f = found(Tenant::new().point("pipeline_total", 10, 5.0));
        assert_eq!(kinds(&f), [(Kind::Conflict, true, "pipeline_total")]);
        // A repeated identical value is not a conflict.
        assert!(found(Tenant::new().point("pipeline_total", 10, 1_000_000.0)).is_empty());
    }

    #[test]
    fn unattributed_revenue_above_a_fifth_is_material() {
        let at = |unattributed: f64| {
            found(
                Tenant::new()
                    .revenue(100.0 - unattributed, None, Some("email"))
                    .revenue(unattributed, None, None),
            )
        };
        assert!(at(20.0).is_empty());
        assert_eq!(
            kinds(&at(21.0)),
            [(Kind::Attribution, true, "missing_attribution_pct")]
        );
    }

    #[test]
    fn overspend_is_material_beyond_two_percent() {
        let f = found(Tenant::new().campaign("c1", "running", 1000.0, 1010.0));
        assert_eq!(kinds(&f), [(Kind::Overspend, false, "campaign_roas")]);
        let f = found(Tenant::new().campaign("c1", "paused", 1000.0, 1030.0));
        assert_eq!(kinds(&f), [(Kind::Overspend, true, "campaign_roas")]);
        assert_eq!(f[0].campaigns, ["c1"]);
    }

    #[test]
    fn material_findings_come_first() {
        let f = found(
            Tenant::new()
                .campaign("c1", "running", 1000.0, 1010.0)
                .point("win_rate", 3, -0.1),
        );
        assert_eq!(
            kinds(&f),
            [
                (Kind::Impossible, true, "win_rate"),
                (Kind::Overspend, false, "campaign_roas")
            ]
        );
    }

    #[test]
    fn the_priority_metric_of_a_freshness_finding_is_data_freshness() {
        let f = found(Tenant::new().without_days("pipeline_total", &[25, 26, 27, 28, 29]));
        assert_eq!(priority_metric(&f[0]), "data_freshness_hours");
    }
}
