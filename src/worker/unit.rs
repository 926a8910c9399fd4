//! One delivery: decode the trigger, run the store's one-transaction cycle (with retries for
//! transient failures), and say what to do with the delivery. The caller acks only after this
//! returns, i.e. after the commit, then relays the cycle's outbox rows.

use super::Failure;
use super::plan::{PlanContext, Planner, result_body};
use super::policy::{Rules, TriggerPolicy};
pub use crate::broker::Disposition;
use crate::broker::Outgoing;
use crate::config::Settings;
use crate::contract::{
    ErrorCode, KernelError, KernelOutput, ParsedTrigger, check_envelope, decode_trigger,
};
use crate::store::{CycleOutcome, CyclePolicy, CycleRequest, OutboxRow, Store};
use crate::telemetry::metrics;
use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Everything a unit needs; shared by all deliveries.
pub struct Context {
    pub store: Store,
    /// A cycle's `now` and a report's receipt time.
    pub clock: crate::clock::Clock,
    pub rules: Rules,
    pub settings: Settings,
    pub planner: Planner,
}

/// The parts of a delivery the unit reads (no broker types, so it can be tested alone). The
/// body is moved out of the delivery, never copied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Incoming {
    pub message_id: Option<String>,
    /// The AMQP `content_type`, if the publisher set one.
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub reply_to: Option<String>,
    pub correlation_id: Option<String>,
    pub redelivered: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    pub disposition: Disposition,
    /// A cycle row now exists for this trigger (what the crash-after-commit hook keys on).
    pub committed: bool,
    pub cycle_id: Option<Uuid>,
    /// Outbox rows to publish now (empty on replays: the sweeper owns those, which avoids two
    /// processes publishing the same fresh rows).
    pub relay: Vec<OutboxRow>,
    /// Best-effort messages outside the outbox: the `reply_to` reply, the event of a panic.
    pub direct: Vec<Outgoing>,
}

impl Processed {
    fn failed(f: &Failure, direct: Vec<Outgoing>) -> Self {
        let disposition = if f.is_unreachable() {
            Disposition::Unavailable(f.to_string())
        } else if f.is_retryable() {
            Disposition::Requeue(f.to_string())
        } else {
            metrics::dead_lettered(f.reason());
            Disposition::DeadLetter {
                reason: f.reason(),
                detail: f.to_string(),
            }
        };
        Self {
            disposition,
            committed: false,
            cycle_id: None,
            relay: vec![],
            direct,
        }
    }
}

impl AsRef<crate::broker::Disposition> for Processed {
    fn as_ref(&self) -> &crate::broker::Disposition {
        &self.disposition
    }
}

/// The trigger body, parsed once; what it carries is typed from here on.
pub fn decode(body: &[u8]) -> Result<ParsedTrigger, Failure> {
    decode_trigger(body).map_err(Failure::Malformed)
}

/// What is judged before parsing: the size (`amqp.max_message_bytes`) and the content type.
pub fn screen(inc: &Incoming, max_bytes: usize) -> Result<(), Failure> {
    check_envelope(inc.body.len(), inc.content_type.as_deref(), max_bytes)
        .map_err(Failure::Envelope)
}

/// A refusal before any cycle: logged, counted, dead-lettered.
fn refused(f: &Failure) -> Processed {
    tracing::warn!(reason = f.reason(), detail = %f, "trigger dead-lettered");
    metrics::rejected(f.reason());
    Processed::failed(f, vec![])
}

fn retry_policy(ctx: &Context) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(10))
        .with_max_times(ctx.settings.worker.retry_max_attempts)
}

/// Whether the worker may publish a reply to the queue `name` through the default exchange:
/// only a server-generated exclusive queue (`amq.gen-*`), the direct reply-to pseudo-queue
/// (`amq.rabbitmq.reply-to*`), or a name in `amqp.reply_to_allow`. Anything else would let a
/// trigger publisher write into any queue with the worker's credentials.
pub fn reply_allowed(name: &str, allow: &[String]) -> bool {
    name.starts_with("amq.gen-")
        || name.starts_with("amq.rabbitmq.reply-to")
        || allow.iter().any(|a| a == name)
}

/// The reply for `reply_to`, if the trigger asked for one and names a queue it may.
fn reply(
    ctx: &Context,
    inc: &Incoming,
    status: &str,
    pctx: &PlanContext,
    cycle_id: Option<Uuid>,
    result: &Result<KernelOutput, KernelError>,
) -> Vec<Outgoing> {
    let Some(to) = inc.reply_to.clone().filter(|r| !r.is_empty()) else {
        return vec![];
    };
    if !reply_allowed(&to, &ctx.settings.amqp.reply_to_allow) {
        tracing::warn!(reply_to = %to, "reply_to names a queue that is not a private inbox \
            nor in amqp.reply_to_allow; no reply sent");
        return vec![];
    }
    let mut headers = vec![
        ("status".to_owned(), status.to_owned()),
        ("tenant_id".to_owned(), pctx.tenant_id.to_string()),
        ("trigger_message_id".to_owned(), pctx.message_id.clone()),
    ];
    if let Some(c) = cycle_id {
        headers.push(("cycle_id".to_owned(), c.to_string()));
    }
    vec![Outgoing {
        exchange: String::new(),
        routing_key: to,
        message_id: format!("{}:reply", pctx.message_id),
        headers,
        body: result_body(pctx, cycle_id, result),
        mandatory: false,
        persistent: false,
        correlation_id: inc
            .correlation_id
            .clone()
            .or_else(|| Some(pctx.message_id.clone())),
        reply_to: None,
    }]
}

/// A trigger read and checked: what its cycle needs.
pub struct Prepared {
    pctx: PlanContext,
    req: CycleRequest,
}

/// Screens and decodes a delivery; a refusal is its final answer.
pub fn prepare(inc: &Incoming, ctx: &Context) -> Result<Prepared, Processed> {
    screen(inc, ctx.settings.amqp.max_message_bytes).map_err(|f| refused(&f))?;
    let Some(message_id) = inc.message_id.clone().filter(|m| !m.trim().is_empty()) else {
        return Err(refused(&Failure::MissingMessageId));
    };
    let parsed = decode(&inc.body).map_err(|f| refused(&f))?;
    let tenant_id = parsed.tenant_id;
    let req = CycleRequest {
        message_id: message_id.clone(),
        tenant_id,
        window: parsed.window_or_default(),
        triggered_at: parsed.triggered_at,
        trigger: parsed.trigger.clone(),
        // Time-ordered (UUIDv7): every index that leads with a cycle id (cycles, actions,
        // outbox, reports) grows at its right edge instead of at a random page.
        cycle_id: Uuid::now_v7(),
    };
    let pctx = PlanContext {
        tenant_id,
        message_id,
        trigger: parsed.trigger,
    };
    Ok(Prepared { pctx, req })
}

fn policy<'a>(ctx: &'a Context, p: &'a Prepared, now: DateTime<Utc>) -> TriggerPolicy<'a> {
    TriggerPolicy {
        rules: &ctx.rules,
        planner: &ctx.planner,
        trigger: &p.pctx,
        now,
    }
}

/// Runs one delivery to a decision about it.
pub async fn process(ctx: &Context, inc: &Incoming) -> Processed {
    let started = Instant::now();
    let p = match prepare(inc, ctx) {
        Ok(p) => p,
        Err(refusal) => return refusal,
    };
    let span = tracing::Span::current();
    span.record("tenant_id", tracing::field::display(p.req.tenant_id));
    span.record("cycle_id", tracing::field::display(p.req.cycle_id));
    let attempt = || async {
        let now = ctx.clock.now();
        let deadline = ctx.settings.database.call_timeout();
        crate::store::bounded(
            deadline,
            ctx.store.run_cycle(&p.req, now, &policy(ctx, &p, now)),
        )
        .await
        .map_err(Failure::from)
    };
    // An unreachable database is not retried here: the loop holds the delivery until the
    // database answers again.
    let outcome = attempt
        .retry(retry_policy(ctx))
        .when(|f| f.is_retryable() && !f.is_unreachable())
        .notify(|e, wait| tracing::warn!(error = %e, ?wait, "cycle failed, retrying"))
        .await;
    conclude(ctx, inc, &p, outcome, started)
}

/// Several deliveries' cycles in one transaction (`Store::run_cycles`), tried once. `None`
/// when it failed: nothing of it was recorded, and the caller processes each delivery alone,
/// with the retries and the waiting that `process` has.
pub async fn process_batch(
    ctx: &Context,
    items: &[(&Incoming, &Prepared)],
) -> Option<Vec<Processed>> {
    let started = Instant::now();
    let now = ctx.clock.now();
    let policies: Vec<TriggerPolicy> = items.iter().map(|(_, p)| policy(ctx, p, now)).collect();
    let batch: Vec<(&CycleRequest, &dyn CyclePolicy)> = items
        .iter()
        .zip(&policies)
        .map(|((_, p), pol)| (&p.req, pol as &dyn CyclePolicy))
        .collect();
    let deadline = ctx.settings.database.call_timeout();
    match crate::store::bounded(deadline, ctx.store.run_cycles(&batch, now)).await {
        Ok(outcomes) => Some(
            items
                .iter()
                .zip(outcomes)
                .map(|((inc, p), outcome)| {
                    let span = tracing::info_span!(
                        "cycle",
                        message_id = %p.pctx.message_id,
                        tenant_id = %p.req.tenant_id,
                        cycle_id = %p.req.cycle_id,
                    );
                    let _in = span.enter();
                    conclude(ctx, inc, p, Ok(outcome), started)
                })
                .collect(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, size = items.len(),
                "a batch of cycles failed; running them one by one");
            None
        }
    }
}

/// What the store's outcome means for the delivery: the log line, the metrics, the reply.
fn conclude(
    ctx: &Context,
    inc: &Incoming,
    p: &Prepared,
    outcome: Result<CycleOutcome, Failure>,
    started: Instant,
) -> Processed {
    let (req, pctx, tenant_id) = (&p.req, &p.pctx, p.req.tenant_id);
    match outcome {
        Err(f) if f.is_unreachable() => {
            tracing::debug!(error = %f, "cycle waits for the database");
            Processed::failed(&f, vec![])
        }
        Err(f) => {
            tracing::error!(error = %f, retryable = f.is_retryable(),
                "cycle could not be run");
            metrics::rejected(f.reason());
            Processed::failed(&f, vec![])
        }
        Ok(CycleOutcome::UnknownTenant) => {
            let error = KernelError::tenant_not_found(tenant_id);
            let f = Failure::UnknownTenant(error.clone());
            tracing::warn!(reason = %f, "trigger dead-lettered");
            metrics::rejected(f.reason());
            Processed::failed(&f, reply(ctx, inc, "rejected", pctx, None, &Err(error)))
        }
        Ok(CycleOutcome::Recorded {
            cycle_id,
            status,
            result,
            pending,
            replayed,
        }) => {
            if cycle_id != req.cycle_id {
                // A replay answers with the cycle that already exists.
                tracing::Span::current().record("cycle_id", tracing::field::display(cycle_id));
            }
            let result: Result<KernelOutput, KernelError> = result.map(|b| *b);
            let status_s = status.as_str();
            if replayed {
                tracing::info!(status = status_s, "trigger already had a cycle; replayed");
            } else {
                let constraint = match &result {
                    Ok(o) => o.cycle_summary.binding_constraint.as_str(),
                    // A cycle with nothing to do is labelled by its reason, not as an error.
                    Err(e) => crate::kernel::skip_reason(e).unwrap_or(e.code.as_str()),
                };
                metrics::cycle(status_s, constraint, started.elapsed());
                tracing::info!(
                    status = status_s,
                    constraint,
                    outbox = pending.len(),
                    "cycle recorded"
                );
            }
            Processed {
                disposition: Disposition::Ack,
                committed: true,
                cycle_id: Some(cycle_id),
                relay: if replayed { vec![] } else { pending },
                direct: reply(ctx, inc, status_s, pctx, Some(cycle_id), &result),
            }
        }
    }
}

/// What a panic in `process` becomes: INTERNAL_ERROR, dead-lettered (a poison message would
/// panic again), announced as a failed cycle when the trigger could be read.
pub fn panicked(ctx: &Context, inc: &Incoming, what: String) -> Processed {
    let f = Failure::Panic(what);
    tracing::error!(message_id = ?inc.message_id, error = %f, "panic while processing a trigger");
    metrics::cycle("failed", ErrorCode::InternalError.as_str(), Duration::ZERO);
    let mut direct = vec![];
    let readable =
        screen(inc, ctx.settings.amqp.max_message_bytes).and_then(|()| decode(&inc.body));
    if let (Some(message_id), Ok(parsed)) = (inc.message_id.clone(), readable) {
        let tenant_id = parsed.tenant_id;
        let pctx = PlanContext {
            tenant_id,
            message_id: message_id.clone(),
            trigger: parsed.trigger,
        };
        let err: Result<KernelOutput, KernelError> = Err(KernelError::internal(
            "the worker failed while processing this trigger",
        ));
        direct.push(Outgoing {
            exchange: ctx.planner.topology().cycles_exchange.clone(),
            routing_key: format!("failed.{tenant_id}"),
            message_id: format!("{message_id}:panic"),
            headers: vec![
                ("tenant_id".into(), tenant_id.to_string()),
                ("status".into(), "failed".into()),
                ("trigger_message_id".into(), message_id),
            ],
            body: result_body(&pctx, None, &err),
            mandatory: false,
            persistent: true,
            correlation_id: None,
            reply_to: None,
        });
        direct.extend(reply(ctx, inc, "failed", &pctx, None, &err));
    }
    Processed::failed(&f, direct)
}

/// Runs `fut` on its own task so that a panic inside it is contained.
pub async fn guarded<F, T>(fut: F) -> Result<T, String>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::spawn(fut).await {
        Ok(p) => Ok(p),
        Err(e) if e.is_panic() => {
            let p = e.into_panic();
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".to_owned());
            Err(msg)
        }
        Err(e) => Err(format!("task cancelled: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_body_is_malformed_and_permanent() {
        let e = decode(b"not json").unwrap_err();
        assert!(matches!(e, Failure::Malformed(_)), "{e}");
        assert!(!e.is_retryable());
    }

    #[test]
    fn replies_go_only_to_private_inboxes_and_allowed_queues() {
        let allow = vec!["ops.replies".to_owned()];
        for ok in [
            "amq.gen-JzTY20BRgKO-HjmUJj0wLg",
            "amq.rabbitmq.reply-to",
            "amq.rabbitmq.reply-to.g1h2AA5yZXBseUAyNjk4NjM3NwAAC0sAAAAAaS7JzQ==.oz1T",
            "ops.replies",
        ] {
            assert!(reply_allowed(ok, &allow), "{ok}");
        }
        for bad in [
            "revenue_os.triggers",
            "payments",
            "amq.gen",
            "ops.replies.x",
            "",
        ] {
            assert!(!reply_allowed(bad, &allow), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_panic_is_contained() {
        let r = guarded(async { panic!("boom") }).await;
        assert_eq!(r.unwrap_err(), "boom");
    }
}
