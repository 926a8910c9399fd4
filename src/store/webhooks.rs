//! Webhook notifications in PostgreSQL (migrations/V13): a tenant's own webhooks, one
//! `notifications` row per state change (written by the transaction that makes the change,
//! `record`, unique per event and subject), and the deliveries the worker's
//! `webhook_delivery` service routes, claims and finishes. What goes to which webhook and
//! how a body looks is the caller's (`Router`); the store keeps the facts.

use super::cached::Cached;
use super::tenant::{set_tenant, tenant_tx};
use super::{Store, StoreError};
use crate::contract::{Action, Notification, NotifyEvent};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use serde::Serialize;
use std::time::Duration;
use uuid::Uuid;

/// A tenant's webhook (`revenue-os webhook add`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantWebhook {
    pub tenant_id: Uuid,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    /// Signs its deliveries; never printed.
    #[serde(skip)]
    pub secret: String,
    pub created_at: DateTime<Utc>,
}

/// One delivery a router asks for: this body to this webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// `global:<name>` or `tenant:<name>`.
    pub webhook: String,
    pub url: String,
    pub body: Vec<u8>,
}

/// Which webhooks receive a notification, and the body they get.
pub trait Router: Sync {
    fn route(&self, n: &Notification, tenant_webhooks: &[TenantWebhook]) -> Vec<NewDelivery>;
}

/// A delivery claimed for one attempt (its claim runs out on its own if the worker dies).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub tenant_id: Option<Uuid>,
    pub webhook: String,
    pub url: String,
    pub event: String,
    pub body: Vec<u8>,
    /// Attempts so far, this one included.
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    /// The tenant webhook's secret (`tenant:` webhooks); global ones are the caller's.
    pub tenant_secret: Option<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptEnd {
    Delivered {
        status: u16,
    },
    /// Try again after `after`.
    Retry {
        status: Option<u16>,
        error: String,
        after: Duration,
    },
    /// No more attempts: dead-lettered.
    Dead {
        status: Option<u16>,
        error: String,
    },
}

/// A delivery as listed (`webhook deliveries`, the console's dead letters).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryView {
    pub id: i64,
    pub tenant_id: Option<Uuid>,
    pub event: String,
    pub subject: String,
    pub webhook: String,
    pub url: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub dead_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
}

/// Records `n` in `tx` (the state change's own transaction) unless its event and subject
/// are already recorded; `true` when new. A notification of no tenant needs the
/// transaction's leave to see such rows (`untenanted`).
pub(super) async fn record(tx: &Transaction<'_>, n: &Notification) -> Result<bool, StoreError> {
    if n.tenant_id.is_none() {
        untenanted(tx).await?;
    }
    let inserted = tx
        .execute_cached(
            "INSERT INTO notifications (event, subject, tenant_id, cycle_id, action_id,
                                        occurred_at, details)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (event, subject) DO NOTHING",
            &[
                &n.event.as_str(),
                &n.subject,
                &n.tenant_id,
                &n.cycle_id,
                &n.action_id,
                &n.occurred_at,
                &n.details,
            ],
        )
        .await?;
    Ok(inserted == 1)
}

/// An action's change as a notification's details, with `extra` fields added.
pub(super) fn action_details(a: &Action, extra: serde_json::Value) -> serde_json::Value {
    let mut d = serde_json::json!({
        "owner_subsystem": a.owner_subsystem.as_str(),
        "type": a.kind.as_str(),
        "target_metric": a.target_metric,
        "field": a.proposed_change.field,
        "current_value": a.proposed_change.current_value,
        "new_value": a.proposed_change.new_value,
        "max_additional_spend": a.guardrails.max_additional_spend,
    });
    if let (Some(m), serde_json::Value::Object(x)) = (d.as_object_mut(), extra) {
        m.extend(x);
    }
    d
}

/// Lets the rest of `tx` see and write rows of no tenant (V13's `untenanted` policy).
async fn untenanted(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.batch_execute("SELECT set_config('revenue_os.untenanted', 'on', true)")
        .await?;
    Ok(())
}

/// Scopes `tx` to `tenant`, or to rows of no tenant.
async fn scope(tx: &Transaction<'_>, tenant: Option<Uuid>) -> Result<(), StoreError> {
    match tenant {
        Some(t) => set_tenant(tx, t).await,
        None => untenanted(tx).await,
    }
}

/// Groups `(id, tenant)` keys by tenant, tenants in first-seen order.
fn by_tenant(keys: &[(i64, Option<Uuid>)]) -> Vec<(Option<Uuid>, Vec<i64>)> {
    let mut out: Vec<(Option<Uuid>, Vec<i64>)> = Vec::new();
    for (id, t) in keys {
        match out.iter_mut().find(|(k, _)| k == t) {
            Some((_, ids)) => ids.push(*id),
            None => out.push((*t, vec![*id])),
        }
    }
    out
}

async fn keys(
    client: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<(i64, Option<Uuid>)>, StoreError> {
    client
        .query(sql, params)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

fn notification(r: &tokio_postgres::Row) -> Result<Notification, StoreError> {
    let event: String = r.try_get(1)?;
    Ok(Notification {
        id: r.try_get(0)?,
        event: NotifyEvent::parse(&event)
            .ok_or_else(|| StoreError::Corrupt(format!("notification event '{event}'")))?,
        subject: r.try_get(2)?,
        tenant_id: r.try_get(3)?,
        cycle_id: r.try_get(4)?,
        action_id: r.try_get(5)?,
        occurred_at: r.try_get(6)?,
        details: r.try_get(7)?,
    })
}

fn webhook(r: &tokio_postgres::Row) -> Result<TenantWebhook, StoreError> {
    Ok(TenantWebhook {
        tenant_id: r.try_get(0)?,
        name: r.try_get(1)?,
        url: r.try_get(2)?,
        events: r.try_get(3)?,
        secret: r.try_get(4)?,
        created_at: r.try_get(5)?,
    })
}

const WEBHOOK_COLUMNS: &str = "tenant_id, name, url, events, secret, created_at";

async fn tenant_webhooks(
    tx: &Transaction<'_>,
    tenant: Uuid,
) -> Result<Vec<TenantWebhook>, StoreError> {
    tx.query(
        &format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1 ORDER BY name"),
        &[&tenant],
    )
    .await?
    .iter()
    .map(webhook)
    .collect()
}

impl Store {
    /// Records `n` in a transaction of its own (a change that is not a database write, such as
    /// a trigger moved to the dead-letter exchange); `true` when new.
    pub async fn record_notification(&self, n: &Notification) -> Result<bool, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        scope(&tx, n.tenant_id).await?;
        let new = record(&tx, n).await?;
        tx.commit().await?;
        Ok(new)
    }

    /// Adds (or replaces, by name) a tenant's webhook; `false` when the tenant does not exist.
    pub async fn add_webhook(&self, w: &TenantWebhook) -> Result<bool, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, w.tenant_id).await?;
        let n = tx
            .execute(
                "INSERT INTO webhooks (tenant_id, name, url, events, secret)
                 SELECT $1, $2, $3, $4, $5 FROM tenants WHERE tenant_id = $1
                 ON CONFLICT (tenant_id, name) DO UPDATE SET url = EXCLUDED.url,
                     events = EXCLUDED.events, secret = EXCLUDED.secret",
                &[&w.tenant_id, &w.name, &w.url, &w.events, &w.secret],
            )
            .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// A tenant's webhooks, by name.
    pub async fn webhooks(&self, tenant: Uuid) -> Result<Vec<TenantWebhook>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, tenant).await?;
        let out = tenant_webhooks(&tx, tenant).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Removes a tenant's webhook; `false` when it had none of that name.
    pub async fn remove_webhook(&self, tenant: Uuid, name: &str) -> Result<bool, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, tenant).await?;
        let n = tx
            .execute(
                "DELETE FROM webhooks WHERE tenant_id = $1 AND name = $2",
                &[&tenant, &name],
            )
            .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Routes up to `limit` new notifications: one delivery per webhook `router` names
    /// (written once per notification and webhook), then marks each routed. Returns how many
    /// deliveries it wrote. Several workers may route at once: each takes other rows.
    pub async fn route_notifications(
        &self,
        router: &dyn Router,
        limit: i64,
    ) -> Result<usize, StoreError> {
        let client = self.pool.get().await?;
        let found = keys(
            &client,
            "SELECT id, tenant_id FROM revenue_os.unrouted_notifications($1)",
            &[&limit],
        )
        .await?;
        drop(client);
        let mut written = 0;
        for (tenant, ids) in by_tenant(&found) {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            scope(&tx, tenant).await?;
            let rows = tx
                .query(
                    "SELECT id, event, subject, tenant_id, cycle_id, action_id, occurred_at,
                            details
                     FROM notifications WHERE id = ANY($1) AND routed_at IS NULL
                     ORDER BY id FOR UPDATE SKIP LOCKED",
                    &[&ids],
                )
                .await?;
            let hooks = match tenant {
                Some(t) => tenant_webhooks(&tx, t).await?,
                None => Vec::new(),
            };
            let mut routed = Vec::with_capacity(rows.len());
            for r in &rows {
                let n = notification(r)?;
                for d in router.route(&n, &hooks) {
                    written += tx
                        .execute(
                            "INSERT INTO webhook_deliveries (notification_id, tenant_id, webhook,
                                                             url, event, body)
                             VALUES ($1, $2, $3, $4, $5, $6)
                             ON CONFLICT (notification_id, webhook) DO NOTHING",
                            &[
                                &n.id,
                                &n.tenant_id,
                                &d.webhook,
                                &d.url,
                                &n.event.as_str(),
                                &d.body,
                            ],
                        )
                        .await? as usize;
                }
                routed.push(n.id);
            }
            tx.execute(
                "UPDATE notifications SET routed_at = now() WHERE id = ANY($1)",
                &[&routed],
            )
            .await?;
            tx.commit().await?;
        }
        Ok(written)
    }

    /// Claims up to `limit` due deliveries for one attempt each: counted, and not due again
    /// for `lease` (the attempt's bound), so other workers pass over them
    /// (`FOR UPDATE SKIP LOCKED`) and a worker that dies mid-attempt leaves them due later.
    pub async fn claim_deliveries(
        &self,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let client = self.pool.get().await?;
        let found = keys(
            &client,
            "SELECT id, tenant_id FROM revenue_os.due_webhook_deliveries($1)",
            &[&limit],
        )
        .await?;
        drop(client);
        let lease_secs = lease.as_secs_f64();
        let mut out = Vec::new();
        for (tenant, ids) in by_tenant(&found) {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            scope(&tx, tenant).await?;
            let rows = tx
                .query(
                    "UPDATE webhook_deliveries d
                        SET attempts = d.attempts + 1,
                            next_attempt_at = now() + make_interval(secs => $2)
                       FROM (SELECT id FROM webhook_deliveries
                             WHERE id = ANY($1) AND delivered_at IS NULL AND dead_at IS NULL
                               AND next_attempt_at <= now()
                             ORDER BY id FOR UPDATE SKIP LOCKED) c
                      WHERE d.id = c.id
                  RETURNING d.id, d.tenant_id, d.webhook, d.url, d.event, d.body, d.attempts,
                            d.created_at",
                    &[&ids, &lease_secs],
                )
                .await?;
            let hooks = match tenant {
                Some(t) => tenant_webhooks(&tx, t).await?,
                None => Vec::new(),
            };
            tx.commit().await?;
            for r in &rows {
                let webhook: String = r.try_get(2)?;
                let tenant_secret = webhook
                    .strip_prefix("tenant:")
                    .and_then(|name| hooks.iter().find(|h| h.name == name))
                    .map(|h| h.secret.clone());
                out.push(ClaimedDelivery {
                    id: r.try_get(0)?,
                    tenant_id: r.try_get(1)?,
                    webhook,
                    url: r.try_get(3)?,
                    event: r.try_get(4)?,
                    body: r.try_get(5)?,
                    attempts: r.try_get(6)?,
                    created_at: r.try_get(7)?,
                    tenant_secret,
                });
            }
        }
        Ok(out)
    }

    /// Records how an attempt on a claimed delivery ended.
    pub async fn finish_delivery(
        &self,
        d: &ClaimedDelivery,
        end: &AttemptEnd,
    ) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        scope(&tx, d.tenant_id).await?;
        let (status, error) = match end {
            AttemptEnd::Delivered { status } => (Some(*status), None),
            AttemptEnd::Retry { status, error, .. } | AttemptEnd::Dead { status, error } => {
                (*status, Some(error.as_str()))
            }
        };
        let status = status.map(i32::from);
        let error: Option<String> = error.map(|e| e.chars().take(500).collect());
        match end {
            AttemptEnd::Delivered { .. } => {
                tx.execute(
                    "UPDATE webhook_deliveries SET delivered_at = now(), last_status = $2,
                            last_error = NULL
                     WHERE id = $1 AND delivered_at IS NULL AND dead_at IS NULL",
                    &[&d.id, &status],
                )
                .await?
            }
            AttemptEnd::Retry { after, .. } => {
                tx.execute(
                    "UPDATE webhook_deliveries
                        SET next_attempt_at = now() + make_interval(secs => $4),
                            last_status = $2, last_error = $3
                     WHERE id = $1 AND delivered_at IS NULL AND dead_at IS NULL",
                    &[&d.id, &status, &error, &after.as_secs_f64()],
                )
                .await?
            }
            AttemptEnd::Dead { .. } => {
                tx.execute(
                    "UPDATE webhook_deliveries SET dead_at = now(), last_status = $2,
                            last_error = $3
                     WHERE id = $1 AND delivered_at IS NULL AND dead_at IS NULL",
                    &[&d.id, &status, &error],
                )
                .await?
            }
        };
        tx.commit().await?;
        Ok(())
    }

    /// Deliveries newest first: the dead ones (`dead`), or those still being tried.
    pub async fn webhook_deliveries(
        &self,
        dead: bool,
        limit: i64,
    ) -> Result<Vec<DeliveryView>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let found = keys(
            &tx,
            "SELECT id, tenant_id FROM revenue_os.webhook_delivery_keys($1, $2)",
            &[&dead, &limit],
        )
        .await?;
        let mut out = Vec::new();
        for (tenant, ids) in by_tenant(&found) {
            scope(&tx, tenant).await?;
            let rows = tx
                .query(
                    "SELECT d.id, d.tenant_id, d.event, n.subject, d.webhook, d.url, d.attempts,
                            d.created_at, d.next_attempt_at, d.dead_at, d.last_status,
                            d.last_error
                     FROM webhook_deliveries d JOIN notifications n ON n.id = d.notification_id
                     WHERE d.id = ANY($1)",
                    &[&ids],
                )
                .await?;
            for r in &rows {
                out.push(DeliveryView {
                    id: r.try_get(0)?,
                    tenant_id: r.try_get(1)?,
                    event: r.try_get(2)?,
                    subject: r.try_get(3)?,
                    webhook: r.try_get(4)?,
                    url: r.try_get(5)?,
                    attempts: r.try_get(6)?,
                    created_at: r.try_get(7)?,
                    next_attempt_at: r.try_get(8)?,
                    dead_at: r.try_get(9)?,
                    last_status: r.try_get(10)?,
                    last_error: r.try_get(11)?,
                });
            }
        }
        tx.commit().await?;
        out.sort_by(|a, b| {
            (b.dead_at.unwrap_or(b.created_at), b.id)
                .cmp(&(a.dead_at.unwrap_or(a.created_at), a.id))
        });
        Ok(out)
    }
}
