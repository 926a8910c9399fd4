//! The known lever state applied to the candidates: what an executor reported setting fills a
//! `current_value` the input does not carry, and a change to the value a lever already holds
//! (a switch already in that position included) is dropped. Rules in docs/kernel.md.

use super::data::Index;
use super::plays::Candidate;
use crate::contract::{Action, KnownLever};
use serde_json::Value;

/// The known lever an action changes: (its subsystem, its target entity or none, its field).
pub fn lever_of<'a>(ix: &Index<'a>, a: &Action) -> Option<&'a KnownLever> {
    ix.known(
        a.owner_subsystem,
        a.target_entity.as_ref().map(|e| e.id.as_str()),
        &a.proposed_change.field,
    )
}

/// JSON equality with numbers compared by value (`5` and `5.0` are the same setting).
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// A value as the notes and the trace show it: its exact JSON.
pub fn show(v: &Value) -> String {
    v.to_string()
}

/// Where the known value came from, for the notes and the trace.
pub fn provenance(l: &KnownLever) -> String {
    format!(
        "{} reported by the executor for {} since {}",
        show(&l.value),
        l.action_id,
        l.since
    )
}

/// Fills `current_value` from the known state where the input gave none, and drops a change
/// whose new value the lever already holds.
pub fn apply(
    ix: &Index,
    cands: Vec<Candidate>,
    drops: &mut Vec<(String, String)>,
) -> Vec<Candidate> {
    if ix.levers.is_empty() {
        return cands;
    }
    let mut out = Vec::with_capacity(cands.len());
    for mut k in cands {
        let Some(l) = lever_of(ix, &k.action) else {
            out.push(k);
            continue;
        };
        let change = &mut k.action.proposed_change;
        if same(&change.new_value, &l.value) {
            drops.push((
                k.action.action_id.clone(),
                format!(
                    "known lever state: {} already holds {}; the change would do nothing",
                    change.field,
                    provenance(l)
                ),
            ));
            continue;
        }
        if change.current_value.is_null() {
            change.current_value = l.value.clone();
            k.action.notes_for_humans.push_str(&format!(
                " {} is {} now, as the executor reported on {}.",
                change.field,
                show(&l.value),
                l.since
            ));
        }
        out.push(k);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Levers, Subsystem};
    use crate::kernel::test_support::*;
    use serde_json::json;

    fn lever(s: Subsystem, field: &str, value: Value, before: Option<Value>) -> KnownLever {
        KnownLever {
            subsystem: s,
            entity_id: None,
            field: field.into(),
            value,
            before,
            since: "2026-11-20T06:00:00Z".into(),
            cycle_id: uuid::Uuid::nil().to_string(),
            action_id: format!("{s}.config_change.{field}"),
        }
    }

    /// Speed to lead 6.6 h and rising: the SLA play proposes 5 h, the routing play round robin.
    fn decide(levers: &Levers) -> crate::contract::KernelOutput {
        let c = Tenant::short()
            .series("speed_to_lead_hours", |i| 5.0 + i as f64 * 0.055)
            .checked();
        crate::kernel::decide(&c, levers, &CATALOG, now(), uuid::Uuid::nil()).unwrap()
    }

    fn change(out: &crate::contract::KernelOutput, id: &str) -> Option<(Value, Value)> {
        out.actions.iter().find(|a| a.action_id == id).map(|a| {
            let c = &a.proposed_change;
            (c.current_value.clone(), c.new_value.clone())
        })
    }

    #[test]
    fn a_known_value_fills_current_value_and_a_switch_in_place_is_not_proposed() {
        const SLA: &str = "crm.config_change.follow_up_sla_hours";
        const RR: &str = "routing.config_change.round_robin_enabled";
        let none = decide(&Levers::default());
        assert_eq!(change(&none, SLA), Some((Value::Null, json!(5))));
        assert_eq!(change(&none, RR), Some((Value::Null, json!(true))));

        let levers = Levers::new(vec![
            lever(Subsystem::Crm, "follow_up_sla_hours", json!(24), None),
            lever(Subsystem::Routing, "round_robin_enabled", json!(true), None),
        ]);
        let out = decide(&levers);
        assert_eq!(change(&out, SLA), Some((json!(24), json!(5))));
        assert_eq!(change(&out, RR), None);

        // A change to the value the lever holds does nothing: not proposed (5 vs 5.0 too).
        let same = Levers::new(vec![lever(
            Subsystem::Crm,
            "follow_up_sla_hours",
            json!(5.0),
            None,
        )]);
        assert_eq!(change(&decide(&same), SLA), None);
    }

    #[test]
    fn numbers_compare_by_value_and_objects_by_content() {
        assert!(same(&json!(5), &json!(5.0)));
        assert!(!same(&json!(5), &json!(5.01)));
        assert!(same(
            &json!({"control": 80, "challenger": 20.0}),
            &json!({"challenger": 20, "control": 80.0})
        ));
        assert!(!same(&json!(true), &json!("true")));
        assert!(!same(&json!([1, 2]), &json!([1])));
    }
}
