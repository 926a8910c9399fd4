//! Learning from `recent_action_results`: reverts for failures, no re-proposals while a failure
//! is recent, the next step only after a confirmed success, reruns for inconclusive experiments.

use super::data::{Index, floor_cents, round_to};
use super::known::show;
use super::plays::{Candidate, Ctx, NEXT_STEP_RANK, Play, Proposal, REVERT_RANK};
use super::text::num;
use crate::contract::catalog::Catalog;
use crate::contract::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Confidence a success needs before the next step of the same lever is eligible.
pub const CONFIRMED_SUCCESS: f64 = 0.8;

/// One result per action id: a failure, if the id has one among the recent results (the
/// change is not proposed again while any failure is recent); otherwise the latest row.
pub fn by_id(input: &KernelInput) -> BTreeMap<&str, &ActionResult> {
    let mut m: BTreeMap<&str, &ActionResult> = BTreeMap::new();
    for r in input.recent_action_results.iter().flatten() {
        let keep_failure = m
            .get(r.action_id.as_str())
            .is_some_and(|prev| prev.outcome == Outcome::Failed);
        if !keep_failure {
            m.insert(r.action_id.as_str(), r);
        }
    }
    m
}

/// `<subsystem>.<type>[.<entity>].<field>`, the entity may itself contain dots.
pub struct ParsedId<'a> {
    pub subsystem: Subsystem,
    pub kind: ActionType,
    pub entity: Option<&'a str>,
    pub field: &'a str,
}

pub fn parse_id(id: &str) -> Option<ParsedId<'_>> {
    let (sub, rest) = id.split_once('.')?;
    let (kind, rest) = rest.split_once('.')?;
    let (entity, field) = match rest.rsplit_once('.') {
        Some((e, f)) => (Some(e), f),
        None => (None, rest),
    };
    Some(ParsedId {
        subsystem: Subsystem::parse(sub)?,
        kind: ActionType::parse(kind)?,
        entity: entity.filter(|e| !e.is_empty()),
        field,
    })
}

/// Revert candidates for failed results; `notes` says why a failure could not be reverted.
pub fn reverts(
    c: &Ctx,
    catalog: &Catalog,
    results: &BTreeMap<&str, &ActionResult>,
    notes: &mut Vec<(String, String)>,
) -> Vec<Candidate> {
    let ix = c.ix;
    let mut out = Vec::new();
    for (id, r) in results {
        if r.outcome != Outcome::Failed {
            continue;
        }
        let Some(p) = parse_id(id).filter(|p| catalog.field(p.subsystem, p.field).is_some()) else {
            notes.push((
                (*id).to_owned(),
                "failed, but the id does not name a subsystem, type and field; nothing to revert"
                    .into(),
            ));
            continue;
        };
        if p.kind == ActionType::Revert {
            notes.push((
                (*id).to_owned(),
                "a failed revert is not reverted again".into(),
            ));
            continue;
        }
        if !entity_exists(ix, &p) {
            notes.push((
                (*id).to_owned(),
                format!(
                    "failed, but {} is neither in the input nor in the lever state; nothing to \
                     revert",
                    p.entity.unwrap_or_default()
                ),
            ));
            continue;
        }
        if let (Subsystem::Campaigns, "status", Some(c)) =
            (p.subsystem, p.field, p.entity.and_then(|e| ix.campaign(e)))
            && (c.status_running || c.ended.is_some())
        {
            notes.push((
                (*id).to_owned(),
                format!(
                    "failed, but {} is {} in the input; nothing to resume",
                    c.id,
                    if c.status_running { "running" } else { "ended" }
                ),
            ));
            continue;
        }
        // The executor already reported the change undone (the watchdog's revert, or a person):
        // the lever was last set on this action's account but no longer holds what it wrote.
        if let Some(l) = ix.known(p.subsystem, p.entity, p.field)
            && l.action_id == *id
            && l.before.is_none()
        {
            notes.push((
                (*id).to_owned(),
                format!(
                    "failed and already undone: {} is {} again since {}; nothing to revert",
                    p.field, l.value, l.since
                ),
            ));
            continue;
        }
        let known = known_revert(ix, id, &p);
        let Some((entity, current, new, adds)) = known.clone().or_else(|| revert_values(ix, &p))
        else {
            notes.push((
                (*id).to_owned(),
                format!(
                    "failed; the value before the change to {} is not in the input, so it is \
                     not reverted automatically (and not proposed again)",
                    p.field
                ),
            ));
            continue;
        };
        let direction = if r.observed_value < r.baseline_value {
            ImpactDirection::Increase
        } else {
            ImpactDirection::Decrease
        };
        let magnitude = if r.baseline_value != 0.0 {
            ((r.observed_value - r.baseline_value) / r.baseline_value).abs() * 100.0
        } else {
            5.0
        };
        let metric = if catalog.is_metric(&r.target_metric) {
            r.target_metric.as_str()
        } else {
            "pipeline_total"
        };
        let mut notes_text = format!(
            "{id} failed: {} moved from {} to {} (delta {}, confidence {}); revert {}{}.",
            r.target_metric,
            num(r.baseline_value),
            num(r.observed_value),
            num(r.delta),
            num(r.confidence),
            p.field,
            entity.map(|e| format!(" on {}", e.1)).unwrap_or_default()
        );
        if known.is_some() {
            notes_text.push_str(&format!(
                " It restores {} to {}, the value the executor reported before the change; it \
                 holds {} now.",
                p.field,
                show(&new),
                show(&current)
            ));
        }
        let aborts = if adds > 0.0 {
            vec![c.cac_guard(), c.pipeline_guard()]
        } else {
            vec![c.pipeline_guard()]
        };
        let action = Proposal {
            subsystem: p.subsystem,
            kind: ActionType::Revert,
            entity,
            field: p.field,
            current,
            new,
            metric,
            direction,
            magnitude,
            confidence: round_to(r.confidence.clamp(0.05, 0.95), 2),
            window: ix.default_window,
            aborts,
            notes: notes_text,
        }
        .into_action();
        out.push(Candidate::new(action, (Play::Revert, REVERT_RANK), r.confidence).adds(adds));
    }
    out
}

type RevertValues<'a> = (Option<(EntityType, &'a str)>, Value, Value, f64);

/// The entity a revert targets, typed from where it exists: a campaign or channel of the input;
/// otherwise, for a lever the executors know, the kind its subsystem's plays target.
fn entity_type(ix: &Index, s: Subsystem, e: &str) -> Option<EntityType> {
    if ix.campaign(e).is_some() {
        return Some(EntityType::Campaign);
    }
    if ix.channels.contains_key(e) {
        return Some(EntityType::Channel);
    }
    match s {
        Subsystem::Pricing => Some(EntityType::Segment),
        Subsystem::Crm | Subsystem::Routing => Some(EntityType::Sequence),
        // Content plays target campaigns.
        Subsystem::Content => Some(EntityType::Campaign),
        // A campaign or channel absent from the input: nothing to type it by.
        Subsystem::Campaigns => None,
    }
}

/// A revert's entity exists in the input, or in the lever state for that field.
fn entity_exists(ix: &Index, p: &ParsedId) -> bool {
    p.entity.is_none_or(|e| {
        ix.campaign(e).is_some()
            || ix.channels.contains_key(e)
            || ix.known(p.subsystem, Some(e), p.field).is_some()
    })
}

/// A revert from the known lever state: when the lever still holds what the failed action
/// wrote and its executor reported the value before, restore exactly that value.
fn known_revert<'a>(ix: &Index, id: &str, p: &ParsedId<'a>) -> Option<RevertValues<'a>> {
    let l = ix.known(p.subsystem, p.entity, p.field)?;
    let before = l.before.as_ref().filter(|_| l.action_id == id)?;
    let entity = match p.entity {
        Some(e) => Some((entity_type(ix, p.subsystem, e)?, e)),
        None => None,
    };
    // Added daily spend, judged as the guardrails judge it: against the input's estimate.
    let adds = match (p.subsystem, p.field, p.entity.and_then(|e| ix.campaign(e))) {
        (Subsystem::Campaigns, "budget_daily", Some(c)) => before
            .as_f64()
            .map_or(0.0, |b| (b - floor_cents(c.daily)).max(0.0)),
        (Subsystem::Campaigns, "status", Some(c)) if before == &json!("running") => {
            c.daily.max(0.0)
        }
        _ => 0.0,
    };
    Some((entity, l.value.clone(), before.clone(), adds))
}

/// The entity, current value, restored value and added daily spend of a revert, when the
/// input tells what the value was before the change.
fn revert_values<'a>(ix: &Index, p: &ParsedId<'a>) -> Option<RevertValues<'a>> {
    let entity_kind = |e: &str| {
        if ix.campaign(e).is_some() {
            Some(EntityType::Campaign)
        } else if ix.channels.contains_key(e) {
            Some(EntityType::Channel)
        } else {
            None
        }
    };
    match (p.subsystem, p.field, p.kind) {
        // A failed scale: return to the daily rate the campaign actually ran at (its spend to
        // date over days elapsed, which mostly predates the change).
        (Subsystem::Campaigns, "budget_daily", ActionType::Scale) => {
            let e = p.entity?;
            let daily = floor_cents(ix.entity_daily(e)?);
            let kind = entity_kind(e)?;
            (daily > 0.0).then(|| (Some((kind, e)), Value::Null, json!(daily), 0.0))
        }
        // A failed pause: resume (adds the campaign's daily spend back).
        (Subsystem::Campaigns, "status", ActionType::Pause) => {
            let e = p.entity?;
            let s = ix.campaign(e)?;
            Some((
                Some((EntityType::Campaign, e)),
                json!("paused"),
                json!("running"),
                s.daily.max(0.0),
            ))
        }
        (Subsystem::Content, "variant_weights", _) => {
            let e = p.entity?;
            Some((
                Some((entity_type(ix, p.subsystem, e)?, e)),
                Value::Null,
                json!({"control": 100}),
                0.0,
            ))
        }
        // Booleans the plays only ever set one way.
        (Subsystem::Routing, "round_robin_enabled", ActionType::ConfigChange) => {
            Some((None, json!(true), json!(false), 0.0))
        }
        (Subsystem::Pricing, "promo_code_enabled", ActionType::ConfigChange) => {
            Some((None, json!(false), json!(true), 0.0))
        }
        _ => None,
    }
}

/// Applies results to the plays: failed -> dropped; inconclusive experiment -> rerun with twice
/// the sample if it still fits in the time limit, other inconclusive -> left alone; success
/// below the confirmation level -> wait; confirmed success -> eligible, ranked first.
pub fn apply(
    ix: &Index,
    results: &BTreeMap<&str, &ActionResult>,
    cands: Vec<Candidate>,
    drops: &mut Vec<(String, String)>,
) -> Vec<Candidate> {
    let mut out = Vec::with_capacity(cands.len());
    for mut k in cands {
        let Some(r) = results.get(k.action.action_id.as_str()) else {
            out.push(k);
            continue;
        };
        let id = k.action.action_id.clone();
        match r.outcome {
            Outcome::Failed => drops.push((
                id,
                "learning: this change failed recently; not proposed again".into(),
            )),
            Outcome::Successful if r.confidence >= CONFIRMED_SUCCESS => {
                k.rank = NEXT_STEP_RANK;
                k.action.notes_for_humans.push_str(&format!(
                    " The previous step succeeded ({} {} -> {}, confidence {}), so the next step \
                     is eligible.",
                    r.target_metric,
                    num(r.baseline_value),
                    num(r.observed_value),
                    num(r.confidence)
                ));
                out.push(k);
            }
            Outcome::Successful => drops.push((
                id,
                format!(
                    "learning: previous step succeeded with confidence {} < {CONFIRMED_SUCCESS}; \
                     wait for confirmation",
                    num(r.confidence)
                ),
            )),
            Outcome::Inconclusive => match (k.action.experiment.as_mut(), k.sizing.as_ref()) {
                (Some(e), Some(s)) => {
                    let n = e.min_sample_size.saturating_mul(2);
                    let days = s.days.map(|d| d.saturating_mul(2));
                    if days.is_some_and(|d| d > ix.params.max_experiment_days) {
                        drops.push((
                            id,
                            format!(
                                "learning: inconclusive before; a rerun with {n} per arm needs \
                                 more than {} days",
                                ix.params.max_experiment_days
                            ),
                        ));
                        continue;
                    }
                    e.min_sample_size = n;
                    let window = days.unwrap_or(k.action.observation_window_days.saturating_mul(2));
                    k.action.observation_window_days =
                        window.clamp(1, ix.params.max_experiment_days);
                    k.action.notes_for_humans.push_str(&format!(
                        " The last run was inconclusive (confidence {}), so this rerun doubles the \
                         sample to {n} per arm.",
                        num(r.confidence)
                    ));
                    out.push(k);
                }
                _ => drops.push((
                    id,
                    "learning: inconclusive before and not an experiment; left alone".into(),
                )),
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(outcome: Outcome) -> ActionResult {
        ActionResult {
            action_id: "pricing.config_change.promo_code_enabled".into(),
            target_metric: "win_rate".into(),
            baseline_value: 0.2,
            observed_value: 0.2,
            delta: 0.0,
            confidence: 0.9,
            outcome,
        }
    }

    #[test]
    fn a_revert_restores_the_value_the_executor_reported_before_the_failed_change() {
        use crate::kernel::test_support::*;
        const ID: &str = "pricing.config_change.promo_code_enabled";
        let mut t = Tenant::new()
            .flat("cac_blended", 4_000.0)
            .flat("win_rate", 0.2);
        t.0.recent_action_results = Some(vec![result(Outcome::Failed)]);
        let c = t.checked();
        let lever = |action_id: &str, before: Option<Value>| KnownLever {
            subsystem: Subsystem::Pricing,
            entity_id: None,
            field: "promo_code_enabled".into(),
            value: json!(false),
            before,
            since: "2026-11-20T06:00:00Z".into(),
            cycle_id: uuid::Uuid::nil().to_string(),
            action_id: action_id.into(),
        };
        let revert = |levers: &Levers| {
            // No other play fits this tenant: without the revert there is no output at all.
            let out = crate::kernel::decide(&c, levers, &CATALOG, now(), uuid::Uuid::nil()).ok()?;
            let a = out
                .actions
                .iter()
                .find(|a| a.action_id == "pricing.revert.promo_code_enabled")
                .cloned();
            a.map(|a| (a.proposed_change.current_value, a.proposed_change.new_value))
        };
        // Known: it held "true" before the failed change wrote false.
        let known = Levers::new(vec![lever(ID, Some(json!(true)))]);
        assert_eq!(revert(&known), Some((json!(false), json!(true))));
        // The executor reported the field unset before: the revert restores null... which the
        // executor map refuses for a boolean, so nothing is reverted rather than a guess.
        let unset = Levers::new(vec![lever(ID, Some(Value::Null))]);
        assert_eq!(revert(&unset), None);
        // Without a reported prior value: the play's one-way default, the known current value.
        let other = Levers::new(vec![lever("pricing.experiment.promo_code_enabled", None)]);
        assert_eq!(revert(&other), Some((json!(false), json!(true))));
        assert_eq!(
            revert(&Levers::default()),
            Some((json!(false), json!(true)))
        );
        // Set on the failed change's account but no longer holding what it wrote (the store
        // gives no `before` then): already undone, so no second revert.
        let undone = Levers::new(vec![lever(ID, None)]);
        assert_eq!(revert(&undone), None);
    }

    #[test]
    fn a_recent_failure_outranks_a_later_success_of_the_same_change() {
        let doc = include_str!("../../tests/fixtures/valid/demand_bound.json");
        let mut input = decode_input(doc.as_bytes()).unwrap();
        input.recent_action_results =
            Some(vec![result(Outcome::Failed), result(Outcome::Successful)]);
        let m = by_id(&input);
        assert_eq!(
            m["pricing.config_change.promo_code_enabled"].outcome,
            Outcome::Failed
        );

        input.recent_action_results = Some(vec![
            result(Outcome::Inconclusive),
            result(Outcome::Successful),
        ]);
        let m = by_id(&input);
        assert_eq!(
            m["pricing.config_change.promo_code_enabled"].outcome,
            Outcome::Successful
        );
    }
}
