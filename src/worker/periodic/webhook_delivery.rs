//! Webhook notifications out (docs/notifications.md): every `notify.interval_ms`, route new
//! notifications to the webhooks subscribed to their event (one delivery per notification
//! and webhook), then claim the deliveries that are due (`FOR UPDATE SKIP LOCKED`, so several
//! workers share them) and POST each, signed, with its idempotency key. A 2xx delivers it;
//! anything else waits by the backoff schedule, and after `notify.max_attempts` (or
//! `notify.max_age_secs`) the delivery is dead: kept, and listed by `revenue-os webhook
//! deliveries --dead`. At least once: a worker that
//! dies mid-attempt leaves the delivery due again when its claim runs out.

use super::{Next, Periodic};
use crate::config::{NotifySettings, WebhookSettings};
use crate::contract::notify::subscribed;
use crate::notify::{self, Backoff};
use crate::store::{
    AttemptEnd, ClaimedDelivery, NewDelivery, Router, Store, StoreError, TenantWebhook, bounded,
};
use crate::worker::webhook_http::WebhookHttp;
use futures_util::future::BoxFuture;
use std::time::Duration;

/// A global webhook with its secret read from the environment.
#[derive(Clone)]
pub struct GlobalHook {
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub secret: Vec<u8>,
}

impl GlobalHook {
    /// The settings' webhooks whose secret variable is set (at least 16 bytes); those
    /// without are left out, with a warning, rather than sent unsigned.
    pub fn from_settings(
        hooks: &[WebhookSettings],
        env: impl Fn(&str) -> Option<String>,
    ) -> Vec<GlobalHook> {
        hooks
            .iter()
            .filter_map(|w| match env(&w.secret_env) {
                Some(s) if s.len() >= 16 => Some(GlobalHook {
                    name: w.name.clone(),
                    url: w.url.clone(),
                    events: w.events.clone(),
                    secret: s.into_bytes(),
                }),
                _ => {
                    tracing::warn!(webhook = %w.name, variable = %w.secret_env,
                        "webhook left out: its secret variable is unset or shorter than 16 characters");
                    None
                }
            })
            .collect()
    }
}

/// Deliveries claimed per round.
const CLAIM: i64 = 32;
/// Notifications routed per round.
const ROUTE: i64 = 200;

pub struct WebhookDelivery {
    pub store: Store,
    pub globals: Vec<GlobalHook>,
    pub settings: NotifySettings,
    pub http: WebhookHttp,
    pub deadline: Duration,
}

struct Routes<'a> {
    globals: &'a [GlobalHook],
    console_url: &'a str,
}

impl Router for Routes<'_> {
    fn route(
        &self,
        n: &crate::contract::Notification,
        tenant_webhooks: &[TenantWebhook],
    ) -> Vec<NewDelivery> {
        let body = notify::render(n, self.console_url);
        let globals = self
            .globals
            .iter()
            .filter(|g| subscribed(&g.events, n.event))
            .map(|g| (format!("global:{}", g.name), g.url.clone()));
        let tenants = tenant_webhooks
            .iter()
            .filter(|w| subscribed(&w.events, n.event))
            .map(|w| (format!("tenant:{}", w.name), w.url.clone()));
        globals
            .chain(tenants)
            .map(|(webhook, url)| NewDelivery {
                webhook,
                url,
                body: body.clone(),
            })
            .collect()
    }
}

impl WebhookDelivery {
    fn backoff(&self) -> Backoff {
        let s = &self.settings;
        Backoff {
            initial: Duration::from_secs(s.backoff_initial_secs.max(1)),
            max: Duration::from_secs(s.backoff_max_secs.max(s.backoff_initial_secs.max(1))),
            max_attempts: s.max_attempts.max(1),
            max_age: Duration::from_secs(s.max_age_secs),
        }
    }

    fn secret<'a>(&'a self, d: &'a ClaimedDelivery) -> Option<&'a [u8]> {
        match d.webhook.strip_prefix("global:") {
            Some(name) => self
                .globals
                .iter()
                .find(|g| g.name == name)
                .map(|g| g.secret.as_slice()),
            None => d.tenant_secret.as_deref().map(str::as_bytes),
        }
    }

    /// One attempt: sign, POST, and what it means for the delivery.
    async fn attempt(&self, d: &ClaimedDelivery) -> AttemptEnd {
        let Some(secret) = self.secret(d) else {
            return AttemptEnd::Dead {
                status: None,
                error: format!("webhook {} is no longer configured", d.webhook),
            };
        };
        let now = chrono::Utc::now();
        let ts = now.timestamp();
        let id = d.id.to_string();
        let headers = [
            (notify::HEADER_ID, id.clone()),
            (notify::HEADER_IDEMPOTENCY, id),
            (notify::HEADER_TIMESTAMP, ts.to_string()),
            (notify::HEADER_SIGNATURE, notify::sign(secret, ts, &d.body)),
            (notify::HEADER_EVENT, d.event.clone()),
        ];
        let (status, error) = match self.http.post(&d.url, &headers, d.body.clone()).await {
            Ok(s) if (200..300).contains(&s) => return AttemptEnd::Delivered { status: s },
            Ok(s) => (Some(s), format!("HTTP {s}")),
            Err(e) => (None, e),
        };
        let age = (now - d.created_at).to_std().unwrap_or_default();
        let attempts = u32::try_from(d.attempts).unwrap_or(u32::MAX);
        match self.backoff().next(attempts, age) {
            Some(after) => AttemptEnd::Retry {
                status,
                error,
                after,
            },
            None => AttemptEnd::Dead { status, error },
        }
    }
}

impl Periodic for WebhookDelivery {
    fn name(&self) -> &'static str {
        "webhook_delivery"
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.settings.interval_ms.max(10))
    }

    fn run_once(&self) -> BoxFuture<'_, Result<Next, StoreError>> {
        Box::pin(async move {
            let routes = Routes {
                globals: &self.globals,
                console_url: &self.settings.console_url,
            };
            bounded(
                self.deadline,
                self.store.route_notifications(&routes, ROUTE),
            )
            .await?;
            // The claim outlasts an attempt, so no other worker takes it meanwhile.
            let lease = Duration::from_secs(self.settings.timeout_secs.max(1) * 2 + 5);
            let claimed = bounded(self.deadline, self.store.claim_deliveries(CLAIM, lease)).await?;
            let ends =
                futures_util::future::join_all(claimed.iter().map(|d| self.attempt(d))).await;
            for (d, end) in claimed.iter().zip(&ends) {
                match end {
                    AttemptEnd::Delivered { .. } => {}
                    AttemptEnd::Retry { error, .. } => tracing::info!(
                        delivery = d.id, webhook = %d.webhook, attempts = d.attempts, %error,
                        "webhook delivery failed; retrying later"),
                    AttemptEnd::Dead { error, .. } => tracing::warn!(
                        delivery = d.id, webhook = %d.webhook, attempts = d.attempts, %error,
                        "webhook delivery dead-lettered"),
                }
                bounded(self.deadline, self.store.finish_delivery(d, end)).await?;
            }
            Ok(if claimed.len() as i64 == CLAIM {
                Next::After(Duration::ZERO)
            } else {
                Next::Interval
            })
        })
    }
}
