//! From a delivery to its unit of work and back: a trigger runs `unit::process`, a report
//! `results::process`; both are held while the database is down and settled by `settle`.
//! Reports on one action are taken in the order they arrived.

use super::health::WorkerStatus;
use super::relay::Relay;
use super::settle::{self, DeadLetters};
use super::unit::{self, Context, Incoming, Processed};
use crate::broker::{ConfirmedPublisher, Disposition, Outgoing};
use crate::contract::{Notification, NotifyEvent};
use crate::store::OutboxRow;
use crate::store::bounded;
use crate::telemetry::metrics;
use lapin::Connection;
use lapin::message::Delivery;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::oneshot;
use tracing::Instrument;

/// Fault injection for tests: what to do right after a cycle committed, before the ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookAction {
    Continue,
    /// Close the broker connection without acking (a crash between commit and ack).
    DropConnection,
}

pub type AfterCommit = Arc<dyn Fn(&Processed) -> HookAction + Send + Sync>;
/// Runs inside the unit's task before the cycle; a panic here is a panic in the unit.
pub type BeforeCycle = Arc<dyn Fn(&Incoming) + Send + Sync>;

#[derive(Clone, Default)]
pub struct Hooks {
    pub before_cycle: Option<BeforeCycle>,
    pub after_commit: Option<AfterCommit>,
}

/// What every delivery of one session shares.
#[derive(Clone)]
pub struct Shared {
    pub ctx: Arc<Context>,
    pub relay: Arc<Relay>,
    pub status: Arc<WorkerStatus>,
    pub hooks: Hooks,
    pub conn: Arc<Connection>,
    pub publisher: Arc<ConfirmedPublisher>,
}

fn message_id(d: &Delivery) -> &str {
    d.properties
        .message_id()
        .as_ref()
        .map_or("", |m| m.as_str())
}

/// The unit's view of a delivery. The body is moved out, not copied: a trigger of
/// `amqp.max_message_bytes` costs its size once.
fn incoming(d: &mut Delivery) -> Incoming {
    if d.redelivered {
        metrics::redelivery();
    }
    let p = &d.properties;
    Incoming {
        message_id: p.message_id().as_ref().map(|s| s.to_string()),
        content_type: p.content_type().as_ref().map(|s| s.to_string()),
        reply_to: p.reply_to().as_ref().map(|s| s.to_string()),
        correlation_id: p.correlation_id().as_ref().map(|s| s.to_string()),
        redelivered: d.redelivered,
        body: std::mem::take(&mut d.data),
    }
}

/// A trigger delivery as a task: every log line of it, the store's and the relay's included,
/// carries its message id; the unit fills in tenant and cycle.
pub fn trigger(shared: Shared, d: Delivery) -> impl Future<Output = ()> + Send {
    let span = cycle_span(&d);
    handle_trigger(shared, d).instrument(span)
}

/// A trigger's span: its message id now, its tenant and cycle once the unit knows them.
fn cycle_span(d: &Delivery) -> tracing::Span {
    tracing::info_span!(
        "cycle",
        message_id = %message_id(d),
        tenant_id = tracing::field::Empty,
        cycle_id = tracing::field::Empty,
    )
}

/// Trigger deliveries that were waiting together, as one task: their cycles share one
/// transaction and commit (`unit::process_batch`), then each is acked and relayed as one
/// arriving alone would be. A batch that fails, panics or meets an unreachable database is
/// handled delivery by delivery instead, so one poison trigger costs only itself.
pub async fn triggers(shared: Shared, mut ds: Vec<Delivery>) {
    if ds.len() < 2 {
        if let Some(d) = ds.pop() {
            trigger(shared, d).await;
        }
        return;
    }
    let incs: Vec<Arc<Incoming>> = ds.iter_mut().map(|d| Arc::new(incoming(d))).collect();
    let (ctx, before, batch) = (
        shared.ctx.clone(),
        shared.hooks.before_cycle.clone(),
        incs.clone(),
    );
    let work = async move {
        if let Some(h) = before {
            batch.iter().for_each(|i| h(i));
        }
        let prepared: Vec<Result<unit::Prepared, Processed>> =
            batch.iter().map(|i| unit::prepare(i, &ctx)).collect();
        let ready: Vec<(&Incoming, &unit::Prepared)> = batch
            .iter()
            .zip(&prepared)
            .filter_map(|(i, p)| p.as_ref().ok().map(|p| (i.as_ref(), p)))
            .collect();
        let mut done = match ready.len() {
            0 => vec![],
            _ => unit::process_batch(&ctx, &ready).await?,
        }
        .into_iter();
        // Back in delivery order: a refusal where it was, each cycle's outcome in turn.
        prepared
            .into_iter()
            .map(|p| match p {
                Err(refusal) => Some(refusal),
                Ok(_) => done.next(),
            })
            .collect::<Option<Vec<Processed>>>()
    };
    let span = tracing::info_span!("cycles", size = ds.len());
    match unit::guarded(work.instrument(span)).await {
        Ok(Some(processed)) => {
            let finishing = ds
                .into_iter()
                .zip(incs)
                .zip(processed)
                .map(|((d, inc), p)| {
                    let span = tracing::info_span!("cycle", message_id = %message_id(&d));
                    finish(&shared, d, inc, p).instrument(span)
                });
            // The batch's rows go out together, each cycle's in its order: one publish for
            // the batch rather than one per cycle, its confirms marked with whatever else was
            // confirmed meanwhile. Replies after them.
            let (rows, direct): (Vec<_>, Vec<_>) = futures_util::future::join_all(finishing)
                .await
                .into_iter()
                .unzip();
            relay(&shared, rows.concat(), direct.concat()).await;
        }
        Ok(None) | Err(_) => {
            let alone = ds.into_iter().zip(incs).map(|(d, inc)| {
                let span = cycle_span(&d);
                run_alone(shared.clone(), d, inc).instrument(span)
            });
            futures_util::future::join_all(alone).await;
        }
    }
}

/// One trigger, end to end. The ack happens only after `process` returned, i.e. after the
/// store committed (or decided the delivery is dead).
async fn handle_trigger(s: Shared, mut d: Delivery) {
    let inc = Arc::new(incoming(&mut d));
    run_alone(s, d, inc).await;
}

async fn run_alone(s: Shared, d: Delivery, inc: Arc<Incoming>) {
    let processed: Processed = settle::hold(&s.status, || {
        let (ctx, i2, before) = (s.ctx.clone(), inc.clone(), s.hooks.before_cycle.clone());
        let work = async move {
            if let Some(h) = before {
                h(&i2);
            }
            unit::process(&ctx, &i2).await
        }
        .in_current_span();
        let (ctx, inc) = (s.ctx.clone(), inc.clone());
        async move {
            match unit::guarded(work).await {
                Ok(p) => p,
                Err(what) => unit::panicked(&ctx, &inc, what),
            }
        }
    })
    .await;
    let (rows, direct) = finish(&s, d, inc, processed).await;
    relay(&s, rows, direct).await;
}

/// A cycle's (or a batch's) outbox rows, then its direct replies.
async fn relay(s: &Shared, rows: Vec<OutboxRow>, direct: Vec<Outgoing>) {
    if !rows.is_empty() {
        s.relay.publish(rows).await;
    }
    s.relay.publish_direct(&direct).await;
}

/// After the unit: the crash-after-commit hook, then the ack (or dead letter) and the
/// dead-letter notice. Returns the cycle's outbox rows and direct replies, for the caller to
/// relay.
async fn finish(
    s: &Shared,
    d: Delivery,
    inc: Arc<Incoming>,
    processed: Processed,
) -> (Vec<OutboxRow>, Vec<Outgoing>) {
    if processed.committed
        && let Some(hook) = &s.hooks.after_commit
        && hook(&processed) == HookAction::DropConnection
    {
        tracing::warn!(message_id = ?inc.message_id, "fault injection: dropping the connection before ack");
        let _ = s.conn.close(320, "fault injection".into()).await;
        return (vec![], vec![]);
    }
    let notice = match &processed.disposition {
        Disposition::DeadLetter { reason, detail } => Some(dead_letter_notice(
            &inc,
            d.routing_key.as_str(),
            reason,
            detail,
            s.ctx.clock.now(),
        )),
        _ => None,
    };
    // The unit's task is over, so the body is ours alone again: moved, not copied.
    let body = Arc::try_unwrap(inc).map_or_else(|shared| shared.body.clone(), |i| i.body);
    let dead = DeadLetters {
        publisher: &s.publisher,
        exchange: &s.ctx.planner.topology().dead_letter_exchange,
    };
    settle::settle(&d, &processed.disposition, dead, body).await;
    if let Some(n) = notice {
        let deadline = s.ctx.settings.database.call_timeout();
        if let Err(e) = bounded(deadline, s.ctx.store.record_notification(&n)).await {
            tracing::warn!(error = %e, "the dead-lettered trigger's notification was not recorded");
        }
    }
    (processed.relay, processed.direct)
}

/// The `trigger_dead_lettered` notification of a trigger moved to the dead-letter exchange:
/// its tenant if the body names a readable one, its message id (or the one derived from it,
/// as the copy carries), why.
fn dead_letter_notice(
    inc: &Incoming,
    routing_key: &str,
    reason: &str,
    detail: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Notification {
    #[derive(serde::Deserialize)]
    struct Named {
        tenant_id: Option<String>,
    }
    let tenant = serde_json::from_slice::<Named>(&inc.body)
        .ok()
        .and_then(|n| n.tenant_id)
        .and_then(|t| uuid::Uuid::parse_str(&t).ok());
    let message_id = inc
        .message_id
        .clone()
        .unwrap_or_else(|| crate::broker::derived_message_id(routing_key, &inc.body));
    let who = tenant.map_or_else(|| "none".to_owned(), |t| t.to_string());
    Notification::new(
        NotifyEvent::TriggerDeadLettered,
        format!("{who}:{message_id}"),
        tenant,
        now,
    )
    .with_details(serde_json::json!({
        "message_id": message_id,
        "reason": reason,
        "detail": detail.chars().take(500).collect::<String>(),
        "routing_key": routing_key,
    }))
}

/// Report deliveries that were waiting together, as one task after the reports on the same
/// actions before them: recorded in one transaction (`results::process_batch`), then each
/// settled as one arriving alone would be. A batch that fails, panics or meets an
/// unreachable database is handled delivery by delivery instead.
pub fn reports(
    shared: Shared,
    order: &mut SubjectOrder,
    mut ds: Vec<Delivery>,
) -> impl Future<Output = ()> + Send + use<> {
    let max = shared.ctx.settings.amqp.max_message_bytes;
    // One turn per subject: a second report on a subject of this batch follows the first
    // inside the batch's transaction, not through the order.
    let mut subjects: Vec<String> = vec![];
    let mut turns = vec![];
    for d in &ds {
        match subject_of(&d.data, max) {
            Some(s) if subjects.contains(&s) => {}
            Some(s) => {
                subjects.push(s.clone());
                turns.push(order.next(Some(s)));
            }
            None => {}
        }
    }
    let span = tracing::info_span!("reports", size = ds.len());
    async move {
        let mut done = Vec::with_capacity(turns.len());
        for t in turns {
            done.push(t.wait().await);
        }
        // Shared with the guarded task, so that a panic in it still leaves the bodies for
        // the one-by-one fallback.
        let bodies: Arc<Vec<Vec<u8>>> =
            Arc::new(ds.iter_mut().map(|d| std::mem::take(&mut d.data)).collect());
        let heads: Vec<_> = ds.iter().map(report_head).collect();
        let ctx = shared.ctx.clone();
        let (patience, max) = (report_patience(&ctx), ctx.settings.amqp.max_message_bytes);
        let running = shared.status.unit_started();
        let batch = {
            let (bodies, ctx) = (bodies.clone(), ctx.clone());
            async move {
                let envelopes: Vec<crate::results::Envelope<'_>> = heads
                    .iter()
                    .zip(bodies.iter())
                    .map(
                        |((message_id, content_type), body)| crate::results::Envelope {
                            message_id: message_id.as_deref(),
                            content_type: content_type.as_deref(),
                            body,
                            max_bytes: max,
                        },
                    )
                    .collect();
                crate::results::process_batch(&ctx.store, &ctx.clock, &envelopes, patience).await
            }
            .in_current_span()
        };
        let work = match unit::guarded(batch).await {
            Ok(out) => out,
            Err(what) => {
                tracing::error!(panic = %what, "report batch panicked; its reports go one by one");
                None
            }
        };
        drop(running);
        let bodies = Arc::unwrap_or_clone(bodies);
        let dead = report_dead_letters(&shared);
        match work {
            Some(dispositions) => {
                let settling = ds
                    .iter()
                    .zip(bodies)
                    .zip(&dispositions)
                    .map(|((d, body), disposition)| settle::settle(d, disposition, dead, body));
                futures_util::future::join_all(settling).await;
            }
            None => {
                for (mut d, body) in ds.into_iter().zip(bodies) {
                    d.data = body;
                    handle_report(shared.clone(), d).await;
                }
            }
        }
        done.into_iter().for_each(Done::finish);
    }
    .instrument(span)
}

fn report_patience(ctx: &Context) -> crate::results::Patience {
    crate::results::Patience {
        retries: ctx.settings.worker.retry_max_attempts,
        deadline: ctx.settings.database.call_timeout(),
    }
}

/// One report: record it, then ack; an unusable one is dead-lettered with its reason.
async fn handle_report(s: Shared, mut d: Delivery) {
    let (message_id, content_type) = report_head(&d);
    let ctx = &s.ctx;
    let patience = report_patience(ctx);
    let body = std::mem::take(&mut d.data);
    let disposition = settle::hold(&s.status, || {
        let envelope = crate::results::Envelope {
            message_id: message_id.as_deref(),
            content_type: content_type.as_deref(),
            body: &body,
            max_bytes: ctx.settings.amqp.max_message_bytes,
        };
        async move { crate::results::process(&ctx.store, &ctx.clock, &envelope, patience).await }
    })
    .await;
    settle::settle(&d, &disposition, report_dead_letters(&s), body).await;
}

/// A report delivery's message id and content type, owned: the envelope borrows them.
fn report_head(d: &Delivery) -> (Option<String>, Option<String>) {
    let p = &d.properties;
    (
        p.message_id().as_ref().map(|m| m.to_string()),
        p.content_type().as_ref().map(|t| t.to_string()),
    )
}

/// Where a report that cannot be recorded goes.
fn report_dead_letters(s: &Shared) -> DeadLetters<'_> {
    DeadLetters {
        publisher: &s.publisher,
        exchange: &s.ctx.planner.topology().results_dead_letter_exchange,
    }
}

/// The `subject` of a report body, if it has one (the full decode happens in the task). A
/// body over the limit is not read: the task dead-letters it.
fn subject_of(body: &[u8], max_bytes: usize) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Subject {
        subject: String,
    }
    if body.len() > max_bytes {
        return None;
    }
    serde_json::from_slice::<Subject>(body)
        .ok()
        .map(|s| s.subject)
}

/// Reports on one action are handled in the order they were delivered: each waits for the
/// one before it on the same subject. An executor's `acknowledged` then `applied` are judged
/// in that order by this worker (across workers the lifecycle still copes with any order).
#[derive(Default)]
pub struct SubjectOrder {
    last: HashMap<String, oneshot::Receiver<()>>,
}

struct Turn {
    previous: Option<oneshot::Receiver<()>>,
    done: oneshot::Sender<()>,
}

struct Done(oneshot::Sender<()>);

impl SubjectOrder {
    fn next(&mut self, subject: Option<String>) -> Turn {
        let (done, rx) = oneshot::channel();
        let previous = match subject {
            Some(s) => self.last.insert(s, rx),
            None => None,
        };
        if self.last.len() > 4096 {
            // Forget subjects whose last report is finished.
            self.last
                .retain(|_, rx| matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty)));
        }
        Turn { previous, done }
    }
}

impl Turn {
    /// Waits for the previous report on the subject (finished, or its task gone).
    async fn wait(self) -> Done {
        if let Some(p) = self.previous {
            let _ = p.await;
        }
        Done(self.done)
    }
}

impl Done {
    fn finish(self) {
        let _ = self.0.send(());
    }
}
