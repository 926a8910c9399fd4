//! The audit trail as CSV (RFC 4180: fields with a comma, quote or line break are quoted,
//! quotes doubled) or JSON lines; `revenue-os audit` and `/audit.csv` write it as it streams.

use crate::store::AuditRow;
use chrono::SecondsFormat;

/// The CSV header, stable (documented in docs/console.md): `tenant_id` is empty on an event
/// of no tenant (a console sign-in).
pub const CSV_HEADER: &str = "time,actor_kind,actor,tenant_id,cycle_id,action_id,event,detail\r\n";

fn field(out: &mut String, v: &str) {
    if v.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

/// One row as a CSV record, with its line break.
pub fn csv_line(r: &AuditRow) -> String {
    let cycle = r.cycle_id.map(|c| c.to_string()).unwrap_or_default();
    let fields = [
        r.time.to_rfc3339_opts(SecondsFormat::Millis, true),
        r.actor_kind.clone(),
        r.actor.clone(),
        r.tenant_id.map(|t| t.to_string()).unwrap_or_default(),
        cycle,
        r.action_id.clone().unwrap_or_default(),
        r.event.clone(),
        r.detail.clone(),
    ];
    let mut out = String::with_capacity(160);
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(&mut out, f);
    }
    out.push_str("\r\n");
    out
}

/// One row as a JSON line.
pub fn json_line(r: &AuditRow) -> String {
    let mut s = serde_json::to_string(r).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_commas_quotes_and_newlines_are_quoted() {
        let r = AuditRow {
            time: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            actor_kind: "person".into(),
            actor: "ana".into(),
            tenant_id: Some(uuid::Uuid::nil()),
            cycle_id: None,
            action_id: Some("a.b".into()),
            event: "approval_rejected".into(),
            detail: "too \"early\", sorry\nreally".into(),
        };
        assert_eq!(
            csv_line(&r),
            "1970-01-01T00:00:00.000Z,person,ana,00000000-0000-0000-0000-000000000000,,a.b,\
             approval_rejected,\"too \"\"early\"\", sorry\nreally\"\r\n"
        );
    }

    #[test]
    fn an_event_of_no_tenant_has_an_empty_tenant_field_and_a_null_in_json() {
        let r = AuditRow {
            time: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            actor_kind: "person".into(),
            actor: "ada".into(),
            tenant_id: None,
            cycle_id: None,
            action_id: None,
            event: "sign_in".into(),
            detail: "role admin".into(),
        };
        assert_eq!(
            csv_line(&r),
            "1970-01-01T00:00:00.000Z,person,ada,,,,sign_in,role admin\r\n"
        );
        let j: serde_json::Value = serde_json::from_str(&json_line(&r)).unwrap();
        assert_eq!(j["tenant_id"], serde_json::Value::Null);
        assert_eq!(j["event"], "sign_in");
    }
}
