//! A trigger message parsed once into typed values: the tenant UUID, the trigger time and the
//! window dates. The worker decodes it at the edge; everything after reads the parsed value.

use super::messages::TriggerMessage;
use super::parse::{DateRange, MAX_SOURCE_BYTES, parse_timestamp};
use super::types::Trigger;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A trigger message whose fields have been parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedTrigger {
    pub tenant_id: Uuid,
    pub trigger: Trigger,
    pub triggered_at: DateTime<Utc>,
    /// The window the trigger names, if any.
    pub window: Option<DateRange>,
}

impl ParsedTrigger {
    /// The window the cycle covers: the named one, or the default for the trigger time.
    pub fn window_or_default(&self) -> DateRange {
        self.window
            .unwrap_or_else(|| DateRange::default_for(self.triggered_at))
    }

    /// The wire form (for `reply_to` answers and replays).
    pub fn to_message(&self) -> TriggerMessage {
        TriggerMessage {
            tenant_id: self.tenant_id.to_string(),
            trigger: self.trigger.clone(),
            analysis_window: self.window.map(|w| w.to_window()),
        }
    }
}

/// Structural decoding of a trigger body. Rules that need data (trigger age, tenant
/// existence, data sufficiency) are judged later, on the assembled input.
pub fn decode_trigger(body: &[u8]) -> Result<ParsedTrigger, String> {
    let msg: TriggerMessage =
        serde_json::from_slice(body).map_err(|e| format!("not a trigger document: {e}"))?;
    if msg.trigger.source.len() > MAX_SOURCE_BYTES {
        return Err(format!(
            "trigger.source is {} bytes; at most {MAX_SOURCE_BYTES}",
            msg.trigger.source.len()
        ));
    }
    let tenant_id = Uuid::parse_str(&msg.tenant_id)
        .map_err(|_| format!("tenant_id '{}' is not a UUID", msg.tenant_id))?;
    let triggered_at = parse_timestamp(&msg.trigger.triggered_at).ok_or_else(|| {
        format!(
            "trigger.triggered_at '{}' is not an RFC 3339 timestamp",
            msg.trigger.triggered_at
        )
    })?;
    let window = match &msg.analysis_window {
        None => None,
        Some(w) => Some(DateRange::parse(w).ok_or_else(|| {
            format!(
                "analysis_window {}..{} is not a pair of ordered YYYY-MM-DD dates",
                w.start_date, w.end_date
            )
        })?),
    };
    Ok(ParsedTrigger {
        tenant_id,
        trigger: msg.trigger,
        triggered_at,
        window,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::AnalysisWindow;

    #[test]
    fn decode_accepts_a_trigger_and_rejects_the_rest() {
        let ok = br#"{"tenant_id":"7d3c1a52-2f4e-4c8e-9a51-0b6f2d9e4c11",
            "trigger":{"type":"manual","source":"cli","triggered_at":"2026-11-26T06:00:00Z"}}"#;
        let t = decode_trigger(ok).unwrap();
        assert_eq!(
            t.window_or_default().to_window(),
            AnalysisWindow {
                start_date: "2026-10-27".into(),
                end_date: "2026-11-25".into()
            }
        );
        for bad in [
            &b"not json"[..],
            br#"{"tenant_id":"x","trigger":{"type":"manual","source":"cli","triggered_at":"2026-11-26T06:00:00Z"}}"#,
            br#"{"tenant_id":"7d3c1a52-2f4e-4c8e-9a51-0b6f2d9e4c11","trigger":{"type":"nope","source":"cli","triggered_at":"2026-11-26T06:00:00Z"}}"#,
            br#"{"tenant_id":"7d3c1a52-2f4e-4c8e-9a51-0b6f2d9e4c11","trigger":{"type":"manual","source":"cli","triggered_at":"yesterday"}}"#,
            br#"{"tenant_id":"7d3c1a52-2f4e-4c8e-9a51-0b6f2d9e4c11","trigger":{"type":"manual","source":"cli","triggered_at":"2026-11-26T06:00:00Z"},"analysis_window":{"start_date":"2026-11-02","end_date":"2026-11-01"}}"#,
        ] {
            assert!(decode_trigger(bad).is_err());
        }
    }

    #[test]
    fn a_source_longer_than_the_limit_is_refused() {
        let body = |n: usize| {
            serde_json::to_vec(&serde_json::json!({
                "tenant_id": "7d3c1a52-2f4e-4c8e-9a51-0b6f2d9e4c11",
                "trigger": {"type": "manual", "source": "s".repeat(n),
                            "triggered_at": "2026-11-26T06:00:00Z"}}))
            .unwrap()
        };
        assert!(decode_trigger(&body(MAX_SOURCE_BYTES)).is_ok());
        let e = decode_trigger(&body(MAX_SOURCE_BYTES + 1)).unwrap_err();
        assert!(e.contains("trigger.source is 201 bytes"), "{e}");
    }
}
