//! `revenue-os audit [--tenant UUID] [--since DATE] [--format csv|json]`: the audit trail on
//! stdout as it streams from the database (bounded memory however many rows).

use clap::Args;
use revenue_os::app;
use revenue_os::config::Settings;
use revenue_os::console::audit::{CSV_HEADER, csv_line, json_line};
use revenue_os::error::Error;
use std::io::Write;

#[derive(Args)]
pub struct AuditArgs {
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

pub async fn run(args: AuditArgs) -> Result<u64, Error> {
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
