//! What executors send back: a CloudEvents 1.0 event in structured JSON mode on
//! `<prefix>.results`, one per thing that happened to an action. Parsed once into a `Report`;
//! `docs/executors.md` is the executor team's guide, `revenue-os schema report` the schema.

use super::envelope::is_json;
use super::parse::{MAX_SOURCE_BYTES, parse_timestamp};
use super::types::Outcome;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The `type` prefix of every report.
pub const TYPE_PREFIX: &str = "revenue_os.action.";

/// A report on the wire. Unknown top-level attributes are CloudEvents extensions and are
/// kept in the stored event but otherwise ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReportEvent {
    /// Always `1.0`.
    #[schemars(extend("const" = "1.0"))]
    pub specversion: String,
    /// Unique per `source`: a repeated (`source`, `id`) is a duplicate and changes nothing.
    pub id: String,
    /// The executor, e.g. `campaigns-executor`.
    pub source: String,
    /// `<cycle_id>:<action_id>`, the AMQP `message_id` of the action message; for a revert,
    /// the revert message's `message_id`.
    pub subject: String,
    /// When it happened at the executor (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// `application/json` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    #[serde(flatten)]
    pub payload: ReportPayload,
}

/// `type` and `data` together: each type has its own `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum ReportPayload {
    /// The executor received the action and will act on it.
    #[serde(rename = "revenue_os.action.acknowledged")]
    Acknowledged(Acknowledged),
    /// The change is live: the values read before and written after.
    #[serde(rename = "revenue_os.action.applied")]
    Applied(Applied),
    /// The external system refused or errored after trying.
    #[serde(rename = "revenue_os.action.failed")]
    Failed(Refused),
    /// The executor's own validation or policy refused it; it was not tried.
    #[serde(rename = "revenue_os.action.rejected")]
    Rejected(Refused),
    /// What the action achieved, after its observation window.
    #[serde(rename = "revenue_os.action.outcome")]
    Outcome(OutcomeData),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Acknowledged {
    pub tenant_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ref: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Applied {
    pub tenant_id: String,
    /// The value the executor read before changing it (any JSON value; `null` if unset).
    pub before: Value,
    /// The value it wrote.
    pub after: Value,
    /// How to undo it when "set the field back to `before`" is not right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inverse: Option<Inverse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ref: Option<String>,
}

/// The change that restores the prior state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Inverse {
    pub field: String,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Refused {
    pub tenant_id: String,
    /// Why, in words a person can act on.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ref: Option<String>,
}

/// The contract's action-result fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeData {
    pub tenant_id: String,
    pub target_metric: String,
    pub baseline_value: f64,
    pub observed_value: f64,
    pub delta: f64,
    /// Fraction in [0, 1].
    pub confidence: f64,
    pub outcome: Outcome,
}

/// The five report types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportKind {
    Acknowledged,
    Applied,
    Failed,
    Rejected,
    Outcome,
}

impl ReportKind {
    pub const ALL: [ReportKind; 5] = [
        ReportKind::Acknowledged,
        ReportKind::Applied,
        ReportKind::Failed,
        ReportKind::Rejected,
        ReportKind::Outcome,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Acknowledged => "acknowledged",
            ReportKind::Applied => "applied",
            ReportKind::Failed => "failed",
            ReportKind::Rejected => "rejected",
            ReportKind::Outcome => "outcome",
        }
    }

    /// From the full CloudEvents `type`.
    pub fn from_type(t: &str) -> Option<Self> {
        let short = t.strip_prefix(TYPE_PREFIX)?;
        Self::ALL.into_iter().find(|k| k.as_str() == short)
    }
}

/// What a report is about: the action itself, or the revert the watchdog published for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Action { cycle_id: Uuid, action_id: String },
    Revert { cycle_id: Uuid, action_id: String },
}

/// The `message_id` of a revert message (and so the `subject` of reports on it).
pub fn revert_message_id(cycle_id: Uuid, action_id: &str) -> String {
    format!("{cycle_id}:revert:{action_id}")
}

impl Subject {
    pub fn parse(s: &str) -> Option<Self> {
        let (cycle, rest) = s.split_once(':')?;
        let cycle_id = Uuid::parse_str(cycle).ok()?;
        match rest.strip_prefix("revert:") {
            Some(action_id) if !action_id.is_empty() => Some(Subject::Revert {
                cycle_id,
                action_id: action_id.to_owned(),
            }),
            Some(_) => None,
            None if !rest.is_empty() => Some(Subject::Action {
                cycle_id,
                action_id: rest.to_owned(),
            }),
            None => None,
        }
    }

    pub fn cycle_id(&self) -> Uuid {
        match self {
            Subject::Action { cycle_id, .. } | Subject::Revert { cycle_id, .. } => *cycle_id,
        }
    }

    pub fn action_id(&self) -> &str {
        match self {
            Subject::Action { action_id, .. } | Subject::Revert { action_id, .. } => action_id,
        }
    }
}

/// A report that parsed: typed ids and time, and the raw event to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub id: String,
    pub source: String,
    pub subject: Subject,
    pub tenant_id: Uuid,
    pub time: Option<DateTime<Utc>>,
    pub payload: ReportPayload,
    /// The event as received, extensions included.
    pub raw: Value,
}

impl Report {
    pub fn kind(&self) -> ReportKind {
        match self.payload {
            ReportPayload::Acknowledged(_) => ReportKind::Acknowledged,
            ReportPayload::Applied(_) => ReportKind::Applied,
            ReportPayload::Failed(_) => ReportKind::Failed,
            ReportPayload::Rejected(_) => ReportKind::Rejected,
            ReportPayload::Outcome(_) => ReportKind::Outcome,
        }
    }
}

/// Why a report cannot be used; each is the dead-letter reason of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("not a CloudEvents 1.0 JSON event: {0}")]
    NotCloudEvent(String),
    #[error("unknown report type '{0}'")]
    UnknownType(String),
    #[error("invalid report: {0}")]
    Invalid(String),
}

impl ReportError {
    /// The `x-revenue-os-reason` of the dead letter.
    pub fn reason(&self) -> &'static str {
        match self {
            ReportError::NotCloudEvent(_) => "not_cloudevent",
            ReportError::UnknownType(_) => "unknown_type",
            ReportError::Invalid(_) => "invalid_report",
        }
    }
}

/// Parses a report body. Structural problems come first (not an event, unknown type), then
/// the type's own fields.
pub fn decode_report(body: &[u8]) -> Result<Report, ReportError> {
    let raw: Value = serde_json::from_slice(body)
        .map_err(|e| ReportError::NotCloudEvent(format!("not JSON: {e}")))?;
    let obj = raw
        .as_object()
        .ok_or_else(|| ReportError::NotCloudEvent("not a JSON object".into()))?;
    let attr = |k: &str| obj.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    if attr("specversion") != Some("1.0") {
        return Err(ReportError::NotCloudEvent(
            "specversion must be \"1.0\"".into(),
        ));
    }
    for k in ["id", "source", "type", "subject"] {
        if attr(k).is_none() {
            return Err(ReportError::NotCloudEvent(format!(
                "attribute '{k}' must be a non-empty string"
            )));
        }
    }
    let kind = attr("type").unwrap_or_default();
    if ReportKind::from_type(kind).is_none() {
        return Err(ReportError::UnknownType(kind.to_owned()));
    }
    if let Some(ct) = obj.get("datacontenttype")
        && ct.as_str().is_none_or(|c| !is_json(c))
    {
        return Err(ReportError::Invalid(format!(
            "datacontenttype {ct} is not application/json"
        )));
    }
    let event: ReportEvent =
        serde_json::from_value(raw.clone()).map_err(|e| ReportError::Invalid(e.to_string()))?;
    if event.source.len() > MAX_SOURCE_BYTES {
        return Err(ReportError::Invalid(format!(
            "source is {} bytes; at most {MAX_SOURCE_BYTES}",
            event.source.len()
        )));
    }
    let subject = Subject::parse(&event.subject).ok_or_else(|| {
        ReportError::Invalid(format!(
            "subject '{}' is not <cycle_id>:<action_id>",
            event.subject
        ))
    })?;
    let time = match &event.time {
        None => None,
        Some(t) => Some(parse_timestamp(t).ok_or_else(|| {
            ReportError::Invalid(format!("time '{t}' is not an RFC 3339 timestamp"))
        })?),
    };
    let tenant = match &event.payload {
        ReportPayload::Acknowledged(d) => &d.tenant_id,
        ReportPayload::Applied(d) => &d.tenant_id,
        ReportPayload::Failed(d) | ReportPayload::Rejected(d) => &d.tenant_id,
        ReportPayload::Outcome(d) => &d.tenant_id,
    };
    let tenant_id = Uuid::parse_str(tenant)
        .map_err(|_| ReportError::Invalid(format!("data.tenant_id '{tenant}' is not a UUID")))?;
    if let ReportPayload::Outcome(o) = &event.payload {
        let finite = [o.baseline_value, o.observed_value, o.delta, o.confidence]
            .iter()
            .all(|x| x.is_finite());
        if !finite || !(0.0..=1.0).contains(&o.confidence) {
            return Err(ReportError::Invalid(
                "outcome values must be finite and confidence within [0, 1]".into(),
            ));
        }
        if o.target_metric.trim().is_empty() {
            return Err(ReportError::Invalid("data.target_metric is empty".into()));
        }
    }
    if let ReportPayload::Failed(r) | ReportPayload::Rejected(r) = &event.payload
        && r.reason.trim().is_empty()
    {
        return Err(ReportError::Invalid("data.reason is empty".into()));
    }
    Ok(Report {
        id: event.id,
        source: event.source,
        subject,
        tenant_id,
        time,
        payload: event.payload,
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CYCLE: &str = "3f2b8c1e-9d4a-4e5b-8c7d-1a2b3c4d5e6f";
    const TENANT: &str = "7d3c1a52-2f4e-4c8e-9a51-0b6f2d9e4c11";

    fn event(kind: &str, data: Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "specversion": "1.0", "id": "e-1", "source": "campaigns-executor",
            "type": format!("{TYPE_PREFIX}{kind}"), "time": "2026-11-26T06:01:02Z",
            "subject": format!("{CYCLE}:campaigns.scale.cmp_002.budget_daily"),
            "datacontenttype": "application/json", "traceparent": "00-abc-def-01",
            "data": data,
        }))
        .unwrap()
    }

    #[test]
    fn each_type_parses_with_its_data() {
        let r = decode_report(&event(
            "applied",
            serde_json::json!({"tenant_id": TENANT, "before": 517.85, "after": 621.41,
                               "external_ref": "gads:123"}),
        ))
        .unwrap();
        assert_eq!(r.kind(), ReportKind::Applied);
        assert_eq!(
            r.subject.action_id(),
            "campaigns.scale.cmp_002.budget_daily"
        );
        assert_eq!(r.tenant_id.to_string(), TENANT);
        assert_eq!(r.raw["traceparent"], "00-abc-def-01", "extensions are kept");
        for (kind, data) in [
            ("acknowledged", serde_json::json!({"tenant_id": TENANT})),
            (
                "failed",
                serde_json::json!({"tenant_id": TENANT, "reason": "API 500"}),
            ),
            (
                "rejected",
                serde_json::json!({"tenant_id": TENANT, "reason": "over cap"}),
            ),
            (
                "outcome",
                serde_json::json!({"tenant_id": TENANT, "target_metric": "pipeline_total",
                    "baseline_value": 1.0, "observed_value": 1.2, "delta": 0.2,
                    "confidence": 0.9, "outcome": "successful"}),
            ),
        ] {
            let r = decode_report(&event(kind, data)).unwrap();
            assert_eq!(r.kind().as_str(), kind);
        }
    }

    #[test]
    fn bad_reports_say_why() {
        let reason = |b: &[u8]| decode_report(b).unwrap_err().reason();
        assert_eq!(reason(b"nope"), "not_cloudevent");
        assert_eq!(reason(br#"{"specversion":"0.3"}"#), "not_cloudevent");
        assert_eq!(
            reason(&event("exploded", serde_json::json!({"tenant_id": TENANT}))),
            "unknown_type"
        );
        assert_eq!(
            reason(&event("failed", serde_json::json!({"tenant_id": TENANT}))),
            "invalid_report"
        );
        assert_eq!(
            reason(&event(
                "acknowledged",
                serde_json::json!({"tenant_id": "x"})
            )),
            "invalid_report"
        );
        assert_eq!(
            reason(&event(
                "outcome",
                serde_json::json!({"tenant_id": TENANT, "target_metric": "m",
                    "baseline_value": 1.0, "observed_value": 1.2, "delta": 0.2,
                    "confidence": 1.5, "outcome": "successful"})
            )),
            "invalid_report"
        );
        let mut long: Value = serde_json::from_slice(&event(
            "acknowledged",
            serde_json::json!({"tenant_id": TENANT}),
        ))
        .unwrap();
        long["source"] = Value::String("x".repeat(MAX_SOURCE_BYTES + 1));
        assert_eq!(
            reason(&serde_json::to_vec(&long).unwrap()),
            "invalid_report"
        );
    }

    #[test]
    fn subjects_name_an_action_or_its_revert() {
        let c = Uuid::parse_str(CYCLE).unwrap();
        assert_eq!(
            Subject::parse(&format!("{CYCLE}:crm.config_change.follow_up_sla_hours")),
            Some(Subject::Action {
                cycle_id: c,
                action_id: "crm.config_change.follow_up_sla_hours".into()
            })
        );
        let revert = revert_message_id(c, "crm.config_change.follow_up_sla_hours");
        assert!(matches!(
            Subject::parse(&revert),
            Some(Subject::Revert { .. })
        ));
        for bad in ["", "x:y", &format!("{CYCLE}:"), &format!("{CYCLE}:revert:")] {
            assert_eq!(Subject::parse(bad), None, "{bad}");
        }
    }
}
