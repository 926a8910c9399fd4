//! `revenue-os report --tenant UUID`: the tenant page as plain text for a terminal.

use super::view::{self, TenantView};
use crate::contract::catalog::Catalog;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::fmt::Write as _;
use uuid::Uuid;

const WIDTH: usize = 100;

fn short(id: Uuid) -> String {
    id.to_string()[..8].to_owned() + "…"
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

/// `text` wrapped at `WIDTH`, every line indented by `indent` spaces.
fn wrap(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent + line.len() + 1 + word.len() > WIDTH {
            out += &format!("{pad}{line}\n");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line += word;
    }
    if !line.is_empty() {
        out += &format!("{pad}{line}\n");
    }
    out
}

/// The report of `tenant`; `None` when there is no such tenant.
pub async fn report(
    store: &Store,
    catalog: &Catalog,
    tenant: Uuid,
) -> Result<Option<String>, StoreError> {
    Ok(view::tenant(store, catalog, tenant)
        .await?
        .map(|v| render(&v, Utc::now())))
}

/// The text of a tenant view.
pub fn render(v: &TenantView, now: DateTime<Utc>) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "tenant {}   (as of {} UTC)", v.tenant_id, time(now));

    let _ = writeln!(o, "\nbinding constraint, latest cycles first:");
    if v.cycles.is_empty() {
        let _ = writeln!(o, "  (no cycles yet)");
    }
    for c in &v.cycles {
        let what = match (&c.binding_constraint, &c.error_code) {
            (Some(b), _) => format!(
                "{:<13} {:<22} confidence {:.2}",
                b,
                c.priority_metric.as_deref().unwrap_or("-"),
                c.confidence.unwrap_or(0.0)
            ),
            (None, _) => super::view::outcome(c),
        };
        let _ = writeln!(
            o,
            "  {}  {:<9}  {}  cycle {}",
            time(c.executed_at),
            c.status,
            what,
            short(c.cycle_id)
        );
    }

    if let Some(l) = &v.latest {
        let _ = writeln!(
            o,
            "\nlatest diagnosis (cycle {}, {}):",
            l.cycle_id,
            time(l.executed_at)
        );
        o += &wrap(l.diagnosis.as_deref().unwrap_or("-"), 2);
    }

    let _ = writeln!(o, "\nactions of the latest cycle:");
    if v.actions.is_empty() {
        let _ = writeln!(o, "  (none)");
    }
    for h in &v.actions {
        let a = &h.action;
        let _ = writeln!(o, "  {}. {}  [{}]", a.priority, a.action_id, a.status);
        let mut detail = view::change(&a.action);
        for c in &a.action.guardrails.abort_conditions {
            detail += "; ";
            detail += &view::condition(c);
        }
        o += &wrap(&detail, 5);
        if let Some(why) = &a.approval_reason {
            o += &wrap(&format!("held for approval: {why}"), 5);
        }
        for d in &h.decisions {
            let why = d
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            let line = format!(
                "{} {} by {}{why}",
                d.decided_at.format("%m-%d %H:%M"),
                d.decision,
                d.decided_by
            );
            o += &wrap(&line, 5);
        }
        if let Some(first) = h.reports.first() {
            let one_source = h.reports.iter().all(|r| r.source == first.source);
            let steps: Vec<String> = h
                .reports
                .iter()
                .map(|r| {
                    let by = if one_source {
                        String::new()
                    } else {
                        format!(" by {}", r.source)
                    };
                    let revert = if r.on_revert { " (revert)" } else { "" };
                    format!(
                        "{}{revert} {}{by}",
                        r.kind,
                        r.received_at.format("%m-%d %H:%M")
                    )
                })
                .collect();
            let head = if one_source {
                format!("reported by {}: ", first.source)
            } else {
                "reported: ".to_owned()
            };
            o += &wrap(&(head + &steps.join(" → ")), 5);
        }
    }

    let _ = writeln!(o, "\nwatchdog evaluations, newest first:");
    if v.evaluations.is_empty() {
        let _ = writeln!(o, "  (none)");
    }
    for e in &v.evaluations {
        let _ = writeln!(
            o,
            "  {}  {:<12} {}{}",
            e.as_of,
            e.verdict,
            e.action_id,
            if e.mode == "shadow" { " (shadow)" } else { "" }
        );
        o += &wrap(&e.sentence, 14);
    }

    let _ = writeln!(o, "\noutcomes, newest first:");
    if v.outcomes.is_empty() {
        let _ = writeln!(o, "  (none)");
    }
    for r in &v.outcomes {
        let _ = writeln!(
            o,
            "  {}  {:<12} {}: {} {} -> {} (delta {}), confidence {:.2}, from {}",
            time(r.recorded_at),
            r.outcome,
            r.action_id,
            r.target_metric,
            super::chart::compact(r.baseline_value),
            super::chart::compact(r.observed_value),
            super::chart::compact(r.delta),
            r.confidence,
            r.source.as_deref().unwrap_or("import")
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_wraps_under_the_indent() {
        let text = "word ".repeat(60);
        let w = wrap(&text, 4);
        assert!(w.lines().count() > 1);
        assert!(w.lines().all(|l| l.starts_with("    ") && l.len() <= WIDTH));
    }
}
