//! `tenant policy` / `tenant watchdog`: per-tenant settings.

use super::{Output, json, runtime, tenant_not_found};
use crate::config::Settings;
use crate::error::Error;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Print a tenant's approval policy; with flags, change it first.
    Policy {
        #[arg(long)]
        tenant: uuid::Uuid,
        /// Hold every action matching `<subsystem>:<type>` (`*` for any), e.g. `pricing:*`,
        /// `*:experiment`; repeat the flag for more.
        #[arg(long)]
        require: Vec<String>,
        /// Hold actions that may add more than this spend.
        #[arg(long)]
        max_added_spend: Option<f64>,
        /// Hold budget changes bigger than this percentage.
        #[arg(long)]
        max_budget_step_pct: Option<f64>,
        /// Hold everything during the tenant's first N days.
        #[arg(long)]
        first_days: Option<i32>,
        /// Back to the default: nothing is held.
        #[arg(long)]
        clear: bool,
    },
    /// Print a tenant's watchdog settings; with flags, change them first.
    Watchdog {
        #[arg(long)]
        tenant: uuid::Uuid,
        /// `shadow` records what the watchdog would revert and publishes nothing.
        #[arg(long, value_parser = ["enforce", "shadow"])]
        mode: Option<String>,
        /// Watch actions from `published` (for executors that never report `applied`).
        #[arg(long)]
        watch_published: Option<bool>,
    },
}

pub fn run(args: Args) -> Result<Output, Error> {
    let settings = Settings::load()?;
    match args.action {
        Action::Policy {
            tenant,
            require,
            max_added_spend,
            max_budget_step_pct,
            first_days,
            clear,
        } => {
            let edit = crate::app::PolicyEdit {
                require,
                max_added_spend,
                max_budget_step_pct,
                first_days,
                clear,
            };
            runtime(async move {
                let store = crate::app::store(&settings, false).await?;
                let policy = crate::app::edit_policy(&store, tenant, edit).await?;
                json(&serde_json::json!({ "tenant_id": tenant, "approval_policy": policy }))
            })
        }
        Action::Watchdog {
            tenant,
            mode,
            watch_published,
        } => runtime(async move {
            let store = crate::app::store(&settings, false).await?;
            let shadow = mode.map(|m| m == "shadow");
            let (shadow, published) = store
                .set_watchdog_settings(tenant, shadow, watch_published)
                .await?
                .ok_or_else(|| tenant_not_found(tenant))?;
            json(&serde_json::json!({
                "tenant_id": tenant,
                "watchdog": {
                    "mode": if shadow { "shadow" } else { "enforce" },
                    "watch_published": published,
                }
            }))
        }),
    }
}
