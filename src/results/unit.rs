//! One report delivery: decode, record with the lifecycle's judgement (retrying transient
//! database failures), and say what to do with the delivery. The caller settles it.

use super::Lifecycle;
use crate::broker::Disposition;
use crate::contract::{EnvelopeError, Report, ReportError, check_envelope, decode_report};
use crate::store::{ReportOutcome, Store, StoreError};
use crate::telemetry::metrics;
use backon::{ExponentialBuilder, Retryable};
use std::time::Duration;

fn dead(reason: &'static str, detail: String, kind: &'static str) -> Disposition {
    tracing::warn!(reason, detail = %detail, "report dead-lettered");
    metrics::report(kind, "dead_lettered");
    Disposition::DeadLetter { reason, detail }
}

/// A report delivery as the unit reads it.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// The AMQP message id, which must equal the event's `id` when present.
    pub message_id: Option<&'a str>,
    /// The AMQP content type; when present it must be JSON.
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// `amqp.max_message_bytes`: a larger body is not parsed.
    pub max_bytes: usize,
}

/// How the report's store call is bounded and retried.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// In-place retries of a transient failure.
    pub retries: usize,
    /// The client-side deadline on each attempt.
    pub deadline: Duration,
}

/// Handles one report delivery: its size and content type first, then the body.
pub async fn process(
    store: &Store,
    clock: &crate::clock::Clock,
    envelope: &Envelope<'_>,
    patience: Patience,
) -> Disposition {
    match parse(envelope) {
        Ok(report) => {
            let recorded = record(store, clock, &report, patience).await;
            conclude(recorded, &report)
        }
        Err(dead) => dead,
    }
}

/// Report deliveries that were waiting together: each is read as `process` reads it, and
/// the readable ones are recorded in one transaction (`Store::record_reports`), with one
/// attempt. `None` when that attempt failed: nothing of it was recorded, and the caller
/// handles each delivery with `process` instead, with its retries and its outage hold.
pub async fn process_batch(
    store: &Store,
    clock: &crate::clock::Clock,
    envelopes: &[Envelope<'_>],
    patience: Patience,
) -> Option<Vec<Disposition>> {
    let parsed: Vec<Result<Report, Disposition>> = envelopes.iter().map(parse).collect();
    let now = clock.now();
    let batch: Vec<(&Report, chrono::DateTime<chrono::Utc>)> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().map(|r| (r, now)))
        .collect();
    let mut recorded = match batch.len() {
        0 => vec![],
        _ => {
            let call = store.record_reports(&batch, &Lifecycle);
            match crate::store::bounded(patience.deadline, call).await {
                Ok(outcomes) => outcomes,
                Err(e) => {
                    tracing::info!(error = %e, size = batch.len(),
                        "report batch not recorded; recording one by one");
                    return None;
                }
            }
        }
    }
    .into_iter();
    // Back in delivery order: an unreadable delivery's disposition where it was.
    parsed
        .into_iter()
        .map(|p| match p {
            Err(dead) => Some(dead),
            Ok(report) => recorded.next().map(|o| conclude(Ok(o), &report)),
        })
        .collect()
}

/// The report in a delivery, or the dead letter it gets.
fn parse(envelope: &Envelope<'_>) -> Result<Report, Disposition> {
    let Envelope {
        message_id,
        content_type,
        body,
        max_bytes,
    } = *envelope;
    match check_envelope(body.len(), content_type, max_bytes) {
        Ok(()) => {}
        Err(e @ EnvelopeError::TooLarge { .. }) => {
            return Err(dead("too_large", e.to_string(), "unknown"));
        }
        Err(e @ EnvelopeError::NotJson(_)) => {
            return Err(dead("not_cloudevent", e.to_string(), "unknown"));
        }
    }
    let report = match decode_report(body) {
        Ok(r) => r,
        Err(e) => return Err(dead(e.reason(), e.to_string(), "unknown")),
    };
    let span = tracing::Span::current();
    span.record("tenant_id", tracing::field::display(report.tenant_id));
    span.record(
        "cycle_id",
        tracing::field::display(report.subject.cycle_id()),
    );
    span.record("action_id", report.subject.action_id());
    if let Some(m) = message_id
        && m != report.id
    {
        let e = ReportError::Invalid(format!(
            "AMQP message_id '{m}' differs from the event id '{}'",
            report.id
        ));
        return Err(dead(e.reason(), e.to_string(), report.kind().as_str()));
    }
    Ok(report)
}

/// What to do with a report's delivery, given how its recording went.
fn conclude(recorded: Result<ReportOutcome, StoreError>, report: &Report) -> Disposition {
    let kind = report.kind().as_str();
    match recorded {
        Err(e) if e.is_unreachable() => Disposition::Unavailable(e.to_string()),
        Err(e) if e.is_retryable() => {
            tracing::warn!(error = %e, "report not recorded; requeued");
            Disposition::Requeue(e.to_string())
        }
        Err(e) => dead("store", e.to_string(), kind),
        Ok(ReportOutcome::UnknownAction) => dead(
            "unknown_action",
            format!("subject {} names no action", report.raw["subject"]),
            kind,
        ),
        Ok(ReportOutcome::WrongTenant) => dead(
            "tenant_mismatch",
            format!("the action does not belong to tenant {}", report.tenant_id),
            kind,
        ),
        Ok(ReportOutcome::Duplicate) => {
            tracing::info!(kind, source = %report.source, id = %report.id, "duplicate report");
            metrics::report(kind, "duplicate");
            Disposition::Ack
        }
        Ok(ReportOutcome::Recorded {
            before,
            after,
            result,
        }) => {
            tracing::info!(kind, %before, %after, result = result.as_str(), "report recorded");
            metrics::report(kind, result.as_str());
            Disposition::Ack
        }
    }
}

async fn record(
    store: &Store,
    clock: &crate::clock::Clock,
    report: &Report,
    patience: Patience,
) -> Result<ReportOutcome, StoreError> {
    let policy = ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(patience.retries);
    let call = || {
        crate::store::bounded(
            patience.deadline,
            store.record_report(report, clock.now(), &Lifecycle),
        )
    };
    // An unreachable database is waited out by the caller, not retried here.
    call.retry(policy)
        .when(|e| e.is_retryable() && !e.is_unreachable())
        .await
}
