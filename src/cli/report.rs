//! `report`: the tenant view for a terminal.

use super::{Output, load, runtime, tenant_not_found};
use crate::error::Error;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    tenant: uuid::Uuid,
}

pub fn run(args: Args) -> Result<Output, Error> {
    let (settings, catalog) = load()?;
    runtime(async move {
        let store = crate::app::store(&settings, false).await?;
        let text = crate::console::report::report(&store, &catalog, args.tenant)
            .await?
            .ok_or_else(|| tenant_not_found(args.tenant))?;
        Ok(Output::Line(text.trim_end().to_owned()))
    })
}
