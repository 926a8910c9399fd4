//! `revenue-os webhook add|list|remove|deliveries`: a tenant's own webhooks (the global ones
//! are settings, `notify.webhooks`), and the deliveries still being tried or dead.
//! docs/notifications.md.

use crate::app;
use crate::config::Settings;
use crate::contract::NotifyEvent;
use crate::error::Error;
use crate::store::TenantWebhook;
use clap::Subcommand;
use uuid::Uuid;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: WebhookAction,
}

#[derive(Subcommand)]
enum WebhookAction {
    /// Add (or replace, by name) a tenant's webhook.
    Add {
        #[arg(long)]
        tenant: Uuid,
        /// Lower-case letters, digits, `_.-`; names it in deliveries (`tenant:<name>`).
        #[arg(long)]
        name: String,
        /// `https://…` (or `http://…`).
        #[arg(long)]
        url: String,
        /// Comma-separated event names (docs/notifications.md), or `*` for all.
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// The environment variable holding the signing secret (16 characters at least);
        /// read now and stored, so it never appears on a command line.
        #[arg(long)]
        secret_env: String,
    },
    /// A tenant's webhooks (never their secrets).
    List {
        #[arg(long)]
        tenant: Uuid,
    },
    Remove {
        #[arg(long)]
        tenant: Uuid,
        #[arg(long)]
        name: String,
    },
    /// Deliveries not yet delivered, newest first; `--dead`: those that gave up.
    Deliveries {
        #[arg(long)]
        dead: bool,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

fn check_events(events: &[String]) -> Result<Vec<String>, Error> {
    let events: Vec<String> = events.iter().map(|e| e.trim().to_owned()).collect();
    for e in &events {
        if e != "*" && NotifyEvent::parse(e).is_none() {
            let known: Vec<&str> = NotifyEvent::ALL.iter().map(|e| e.as_str()).collect();
            return Err(Error::Usage(format!(
                "'{e}' is not an event; use * or some of: {}",
                known.join(", ")
            )));
        }
    }
    Ok(events)
}

async fn execute(args: Args) -> Result<serde_json::Value, Error> {
    let settings = Settings::load()?;
    let store = app::store(&settings, false).await?;
    let json = |v: Result<serde_json::Value, serde_json::Error>| v.map_err(|e| Error::Io(e.into()));
    match args.action {
        WebhookAction::Add {
            tenant,
            name,
            url,
            events,
            secret_env,
        } => {
            let events = check_events(&events)?;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(Error::Usage(format!(
                    "url '{url}': use https:// or http://"
                )));
            }
            let ok_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
            if !ok_name {
                return Err(Error::Usage(format!(
                    "name '{name}': lower-case letters, digits and _.- (at most 64)"
                )));
            }
            let secret = std::env::var(&secret_env).unwrap_or_default();
            if secret.len() < 16 {
                return Err(Error::Usage(format!(
                    "{secret_env} must hold the signing secret, 16 characters at least"
                )));
            }
            let w = TenantWebhook {
                tenant_id: tenant,
                name,
                url,
                events,
                secret,
                created_at: chrono::Utc::now(),
            };
            if !store.add_webhook(&w).await? {
                return Err(Error::Usage(format!("no tenant {tenant}")));
            }
            json(serde_json::to_value(&w))
        }
        WebhookAction::List { tenant } => json(serde_json::to_value(store.webhooks(tenant).await?)),
        WebhookAction::Remove { tenant, name } => {
            if !store.remove_webhook(tenant, &name).await? {
                return Err(Error::Usage(format!(
                    "tenant {tenant} has no webhook '{name}'"
                )));
            }
            Ok(serde_json::json!({ "removed": name, "tenant_id": tenant }))
        }
        WebhookAction::Deliveries { dead, limit } => json(serde_json::to_value(
            store.webhook_deliveries(dead, limit.clamp(1, 1000)).await?,
        )),
    }
}

pub fn run(args: Args) -> Result<super::Output, Error> {
    super::runtime(async move { super::json(&execute(args).await?) })
}
