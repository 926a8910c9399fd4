//! After a bulk load (`revenue-os ingest`): the watchdog over the loaded tenants that have
//! actions due, then whoever else wants the touched tenants (the deviation detector). Loads
//! are claimed from the store with a lease (`claim_load_follow_ups`, `SKIP LOCKED`) and marked
//! done afterwards, so a worker that dies mid-way leaves them to the next tick, and several
//! workers share them.

use super::{Next, Periodic};
use crate::broker::Topology;
use crate::clock::Clock;
use crate::contract::{Trigger, TriggerType};
use crate::store::OutboxMessage;
use crate::store::{LoadFollowUp as Load, Store, StoreError, bounded};
use crate::watchdog::Watchdog;
use crate::worker::relay::Relay;
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::future::BoxFuture;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The message id of a load's scheduled trigger for a tenant: one per load and tenant.
pub fn load_trigger_message_id(load_id: &str, tenant: Uuid) -> String {
    format!("load:{load_id}:{tenant}")
}

/// The scheduled trigger `ingest --trigger` asks for.
fn scheduled_after(
    topology: &Topology,
    load_id: &str,
    tenant: Uuid,
    now: DateTime<Utc>,
) -> OutboxMessage {
    let trigger = Trigger {
        kind: TriggerType::Scheduled,
        source: "ingest".into(),
        triggered_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
    };
    let id = load_trigger_message_id(load_id, tenant);
    crate::worker::deviation::queued_trigger(topology, tenant, trigger, None, id)
}

/// Told about each load's tenants, a page at a time, once the watchdog has run for all of
/// them; answers the tenants of the page it queued a trigger for (they get no `--trigger`
/// one).
pub trait LoadListener: Send + Sync {
    fn loaded<'a>(
        &'a self,
        load: &'a Load,
        tenants: &'a [Uuid],
    ) -> BoxFuture<'a, Result<Vec<Uuid>, StoreError>>;
}

pub struct LoadFollowUp {
    pub store: Store,
    pub watchdog: Watchdog,
    pub relay: Arc<Relay>,
    pub listeners: Vec<Arc<dyn LoadListener>>,
    pub topology: Topology,
    pub clock: Clock,
    pub every: Duration,
    pub deadline: Duration,
}

/// Loads claimed per tick.
const CLAIM: i64 = 16;
/// Scheduled triggers written in one transaction (`queue_uncycled`) and published per step.
const QUEUE_CHUNK: usize = 500;
/// A load's tenants read at a time: the follow-up's memory is a page's, however many tenants
/// a load lists.
const TENANT_PAGE: usize = 10_000;

impl Periodic for LoadFollowUp {
    fn name(&self) -> &'static str {
        "load_follow_up"
    }

    fn interval(&self) -> Duration {
        self.every
    }

    fn run_once(&self) -> BoxFuture<'_, Result<Next, StoreError>> {
        Box::pin(async move {
            let lease = self.deadline * 16;
            let loads = bounded(
                self.deadline,
                self.store.claim_load_follow_ups(CLAIM, lease),
            )
            .await?;
            // Which tenants have actions due, read once for the whole claim.
            let due = match loads.is_empty() {
                true => Vec::new(),
                false => bounded(self.deadline, self.store.watch_due_tenants()).await?,
            };
            for load in &loads {
                self.follow_up(load, &due).await?;
                bounded(self.deadline, self.store.load_followed_up(&load.load_id)).await?;
            }
            // A full claim: more may be waiting.
            Ok(if loads.len() as i64 == CLAIM {
                Next::After(Duration::ZERO)
            } else {
                Next::Interval
            })
        })
    }
}

impl LoadFollowUp {
    /// One load, in three passes over its tenants, each a page at a time: the watchdog for
    /// those with actions due (in `due`'s order), then the listeners, then the scheduled
    /// triggers. Every tenant is watched before any is detected or triggered, as when the
    /// whole list was held at once.
    async fn follow_up(&self, load: &Load, due: &[Uuid]) -> Result<(), StoreError> {
        let mut from = 0;
        while let Some(page) = self.page(load, &mut from).await? {
            let page: HashSet<Uuid> = page.into_iter().collect();
            let mine: Vec<Uuid> = due.iter().copied().filter(|t| page.contains(t)).collect();
            let swept =
                crate::watchdog::sweep_tenants(&self.store, &self.watchdog, &mine, self.deadline);
            let done = swept.await?;
            if !done.outbox.is_empty() {
                self.relay.publish(done.outbox).await;
            }
        }
        let mut triggered = HashSet::new();
        let mut from = 0;
        while let Some(page) = self.page(load, &mut from).await? {
            for l in &self.listeners {
                triggered.extend(l.loaded(load, &page).await?);
            }
        }
        if !load.trigger {
            return Ok(());
        }
        let mut queued = 0;
        let mut from = 0;
        while let Some(page) = self.page(load, &mut from).await? {
            let wanted: Vec<Uuid> = page
                .into_iter()
                .filter(|t| !triggered.contains(t))
                .collect();
            // Queued and published a chunk at a time: the triggers go out as they are
            // written, not at the outbox sweep's pace (500 rows per sweep interval).
            for chunk in wanted.chunks(QUEUE_CHUNK) {
                let now = self.clock.now();
                let messages: Vec<_> = chunk
                    .iter()
                    .map(|t| (*t, scheduled_after(&self.topology, &load.load_id, *t, now)))
                    .collect();
                let rows = bounded(self.deadline, self.store.queue_uncycled(&messages)).await?;
                queued += rows.len();
                if !rows.is_empty() {
                    self.relay.publish(rows).await;
                }
            }
        }
        tracing::info!(load_id = %load.load_id, queued,
            deviation_cycles = triggered.len(), "load --trigger: scheduled triggers queued");
        Ok(())
    }

    /// The next page of `load`'s tenants from `*from` (advanced past it), or `None` at the end.
    async fn page(&self, load: &Load, from: &mut usize) -> Result<Option<Vec<Uuid>>, StoreError> {
        if *from >= load.tenant_count {
            return Ok(None);
        }
        let page = bounded(
            self.deadline,
            self.store.load_tenants(&load.load_id, *from, TENANT_PAGE),
        )
        .await?;
        *from += TENANT_PAGE;
        Ok((!page.is_empty()).then_some(page))
    }
}
