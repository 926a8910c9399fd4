//! `revenue-os audit [--tenant UUID] [--since DATE] [--format csv|json]`: the audit trail on
//! stdout as it streams from the database (bounded memory however many rows).

use crate::app;
use crate::config::Settings;
use crate::console::audit::{CSV_HEADER, csv_line, json_line};
use crate::error::Error;
use std::io::Write;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    tenant: Option<uuid::Uuid>,
    /// Only events on or after this day (UTC).
    #[arg(long)]
    since: Option<chrono::NaiveDate>,
    #[arg(long, default_value = "csv", value_parser = ["csv", "json"])]
    format: String,
}

/// Rows in flight between the database and stdout.
const IN_FLIGHT: usize = 1024;

async fn execute(args: Args) -> Result<u64, Error> {
    let settings = Settings::load()?;
    let store = app::store(&settings, false).await?;
    let since = args
        .since
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc());
    let (tx, mut rx) = tokio::sync::mpsc::channel(IN_FLIGHT);
    let producer = tokio::spawn(async move { store.audit(args.tenant, since, tx).await });
    let csv = args.format == "csv";
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if csv {
        out.write_all(CSV_HEADER.as_bytes())?;
    }
    while let Some(row) = rx.recv().await {
        let line = if csv { csv_line(&row) } else { json_line(&row) };
        out.write_all(line.as_bytes())?;
    }
    out.flush()?;
    Ok(producer.await??)
}

pub fn run(args: Args) -> Result<super::Output, Error> {
    super::runtime(async move {
        execute(args).await?;
        Ok(super::Output::Nothing)
    })
}
