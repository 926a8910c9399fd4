//! `migrate`: the schema, as its owner; optionally the worker role's GRANTs.

use super::{Output, json, runtime};
use crate::config::Settings;
use crate::error::Error;
use crate::store;

#[derive(clap::Args)]
pub struct Args {
    /// Also give this role the worker's privileges (creating it when it is missing and
    /// this role may create roles).
    #[arg(long, env = "REVENUE_OS_GRANT_TO")]
    grant_to: Option<String>,
}

pub fn run(args: Args) -> Result<Output, Error> {
    let settings = Settings::load()?;
    runtime(async move {
        let store = crate::app::store(&settings, true).await?;
        let applied = store.migrate().await?;
        match &args.grant_to {
            Some(role) => store.grant_worker(role).await?,
            None => eprint!(
                "migrate: give the worker's role its privileges by running this as the \
                 schema owner (or `revenue-os migrate --grant-to ROLE`):\n{}",
                store::worker_grants_sql(store::WORKER_ROLE)?
            ),
        }
        json(&serde_json::json!({
            "migrated": true, "applied": applied, "granted_to": args.grant_to,
        }))
    })
}
