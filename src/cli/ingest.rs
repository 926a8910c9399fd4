//! `ingest`: one CSV or NDJSON file of many tenants' rows, in one transaction
//! (docs/ingest.md).

use super::{Output, json, load, runtime};
use crate::app::ingest::IngestOptions;
use crate::error::Error;
use crate::ingest::{Format, Kind, Limits};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(
        Kind::ALL.iter().map(|k| k.as_str())))]
    kind: String,
    /// The file, or `-` for stdin.
    file: String,
    /// Default: from the file's extension, else csv.
    #[arg(long, value_parser = ["csv", "ndjson"])]
    format: Option<String>,
    /// The load's id (a replayed id changes nothing); default: SHA-256 of kind and bytes.
    #[arg(long)]
    load_id: Option<String>,
    /// The file is the complete current set for each of its tenants (campaigns,
    /// opportunities): rows missing from it are marked removed.
    #[arg(long)]
    snapshot: bool,
    /// Load the valid rows; keep the invalid ones in ingest_rejects.
    #[arg(long)]
    quarantine: bool,
    /// Then decide: one scheduled trigger per loaded tenant, queued by the worker's load
    /// follow-up after deviation detection (a tenant with a deviation gets that cycle).
    #[arg(long)]
    trigger: bool,
}

pub fn run(a: Args) -> Result<Output, Error> {
    let kind =
        Kind::parse(&a.kind).ok_or_else(|| Error::Usage(format!("unknown kind {}", a.kind)))?;
    let format = a
        .format
        .as_deref()
        .and_then(Format::parse)
        .or_else(|| Format::from_path(&a.file))
        .unwrap_or(Format::Csv);
    let reader: Box<dyn std::io::BufRead + Send> = if a.file == "-" {
        Box::new(std::io::BufReader::with_capacity(1 << 16, std::io::stdin()))
    } else {
        let f = std::fs::File::open(&a.file)
            .map_err(|e| Error::Usage(format!("cannot read {}: {e}", a.file)))?;
        Box::new(std::io::BufReader::with_capacity(1 << 16, f))
    };
    let opts = IngestOptions {
        kind,
        format,
        source: a.file,
        load_id: a.load_id,
        snapshot: a.snapshot,
        quarantine: a.quarantine,
        trigger: a.trigger,
        limits: Limits::default(),
    };
    let (settings, catalog) = load()?;
    runtime(
        async move { json(&crate::app::ingest::ingest(&settings, &catalog, reader, &opts).await?) },
    )
}
