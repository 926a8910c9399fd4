//! A notification as its webhook body: the structured fields, and one `text` line (Slack's
//! incoming-webhook field; `<url|label>` is Slack's link markup) naming the tenant, the
//! action and the numbers, with a link to the console page that shows it.

use crate::contract::{Notification, NotifyEvent};
use chrono::SecondsFormat;
use serde_json::{Value, json};

fn s<'a>(d: &'a Value, k: &str) -> &'a str {
    d.get(k).and_then(Value::as_str).unwrap_or("?")
}

/// A JSON value as a short human string (numbers as written, strings unquoted).
fn v(d: &Value, k: &str) -> String {
    match d.get(k) {
        None | Some(Value::Null) => "none".into(),
        Some(Value::String(x)) => x.clone(),
        Some(x) => x.to_string(),
    }
}

/// The console page that shows it.
fn link(n: &Notification, base: &str) -> String {
    let base = base.trim_end_matches('/');
    match (n.event, n.tenant_id, n.cycle_id) {
        (NotifyEvent::ActionHeld, ..) => format!("{base}/approvals"),
        (NotifyEvent::TriggerDeadLettered, ..) => format!("{base}/dead-letters"),
        (NotifyEvent::RevertPublished | NotifyEvent::WatchdogEscalation, _, Some(c)) => {
            format!("{base}/cycles/{c}")
        }
        (_, Some(t), _) => format!("{base}/tenants/{t}"),
        _ => format!("{base}/"),
    }
}

fn line(n: &Notification) -> String {
    let d = &n.details;
    let tenant = n
        .tenant_id
        .map_or_else(|| "no tenant".to_owned(), |t| format!("tenant {t}"));
    let action = n.action_id.as_deref().unwrap_or("?");
    match n.event {
        NotifyEvent::ActionHeld => format!(
            "Held for approval, {tenant}: {action}: {} {} -> {} ({})",
            s(d, "field"),
            v(d, "current_value"),
            v(d, "new_value"),
            s(d, "reason")
        ),
        NotifyEvent::ApprovalDecided => format!(
            "Approval {}, {tenant}: {action} by {}{}",
            s(d, "decision"),
            s(d, "by"),
            d.get("reason")
                .and_then(Value::as_str)
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        NotifyEvent::ApprovalExpired => format!(
            "Approval expired, {tenant}: {action} waited {} h for a person; not applied",
            v(d, "waited_hours")
        ),
        NotifyEvent::ApprovalSuperseded => format!(
            "Approval superseded, {tenant}: {action}: a newer cycle decided afresh; not applied"
        ),
        NotifyEvent::RevertPublished => format!(
            "REVERT, {tenant}: {action}: {} {} -> {}: {}",
            s(d, "field"),
            v(d, "current_value"),
            v(d, "new_value"),
            s(d, "sentence")
        ),
        NotifyEvent::WatchdogEscalation => {
            format!("Escalation, {tenant}: {action}: {}", s(d, "sentence"))
        }
        NotifyEvent::DeviationDetected => format!(
            "Deviation, {tenant}: {} was {} on {}, expected {} (band {} .. {}, severity {})",
            s(d, "metric_id"),
            v(d, "observed"),
            s(d, "day"),
            v(d, "expected"),
            v(d, "band_lower"),
            v(d, "band_upper"),
            v(d, "severity")
        ),
        NotifyEvent::TriggerDeadLettered => format!(
            "Trigger dead-lettered, {tenant}: message {}: {}: {}",
            s(d, "message_id"),
            s(d, "reason"),
            s(d, "detail")
        ),
        NotifyEvent::LoadRejected => format!(
            "Load rejected rows, {tenant}: {} ({} from {}): {} of {} rows rejected",
            s(d, "load_id"),
            s(d, "kind"),
            s(d, "source"),
            v(d, "rejected"),
            v(d, "rows")
        ),
    }
}

/// The body sent for `n`: `text` (one line, the console link in Slack's markup), then the
/// structured fields.
pub fn render(n: &Notification, console_base: &str) -> Vec<u8> {
    let url = link(n, console_base);
    let text: String = line(n)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let body = json!({
        "text": format!("Revenue OS: {text} <{url}|open in the console>"),
        "event": n.event.as_str(),
        "notification_id": n.id,
        "tenant_id": n.tenant_id,
        "cycle_id": n.cycle_id,
        "action_id": n.action_id,
        "subject": n.subject,
        "occurred_at": n.occurred_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "console_url": url,
        "details": n.details,
    });
    body.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use uuid::Uuid;

    fn held() -> Notification {
        Notification {
            id: 7,
            event: NotifyEvent::ActionHeld,
            tenant_id: Uuid::parse_str("7d3c1a52-2f4e-4c8e-9a51-0b6f2d9e4c11").ok(),
            cycle_id: None,
            action_id: Some("routing.config_change.round_robin_enabled".into()),
            subject: "c:a".into(),
            occurred_at: DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default(),
            details: json!({"field": "round_robin_enabled", "current_value": false,
                            "new_value": true, "reason": "every routing:* action needs approval"}),
        }
    }

    #[test]
    fn the_text_is_one_line_with_tenant_action_numbers_and_link() {
        let b: Value = serde_json::from_slice(&render(&held(), "https://ops.example/")).unwrap();
        assert_eq!(
            b["text"],
            "Revenue OS: Held for approval, tenant 7d3c1a52-2f4e-4c8e-9a51-0b6f2d9e4c11: \
             routing.config_change.round_robin_enabled: round_robin_enabled false -> true \
             (every routing:* action needs approval) <https://ops.example/approvals|open in the console>"
        );
        assert_eq!(b["event"], "action_held");
        assert_eq!(b["occurred_at"], "2026-01-01T00:00:00.000Z");
        assert_eq!(b["details"]["new_value"], true);
    }

    #[test]
    fn newlines_in_outside_text_stay_out_of_the_line() {
        let mut n = held();
        n.details["reason"] = json!("a\nb");
        let b: Value = serde_json::from_slice(&render(&n, "http://x")).unwrap();
        assert!(!b["text"].as_str().unwrap_or("\n").contains('\n'));
    }
}
