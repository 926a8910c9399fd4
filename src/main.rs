//! `revenue-os`: thin subcommands over the library.

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use revenue_os::catalog::Catalog;
use revenue_os::config::Settings;
use revenue_os::contract::schema;
use std::io::{Read, Write};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "revenue-os",
    version,
    about = "Revenue OS: the revenue decision kernel as a queue-driven worker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the kernel on one KernelInput; prints a KernelOutput (exit 0) or a KernelError (exit 2).
    Kernel {
        /// Input file, or `-` for stdin.
        #[arg(default_value = "-")]
        file: String,
        /// Fix the clock (RFC 3339) instead of reading it.
        #[arg(long)]
        now: Option<String>,
        /// Print the reasoning trace to stderr.
        #[arg(long)]
        explain: bool,
    },
    /// Print a JSON Schema: input, output, error, trigger or action-message.
    Schema {
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(
            schema::Document::ALL.map(|d| d.name())))]
        document: String,
    },
    /// Print the effective configuration, secrets redacted.
    Config,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Kernel { file, now, explain } => kernel(&file, now.as_deref(), explain),
        Command::Schema { document } => {
            let Some(doc) = schema::Document::parse(&document) else {
                return fail(format!("unknown schema {document}"));
            };
            print_json(&schema::schema(doc))
        }
        Command::Config => match Settings::load() {
            Ok(s) => print_json(&s.redacted()),
            Err(e) => fail(e),
        },
    }
}

fn kernel(file: &str, now: Option<&str>, explain: bool) -> ExitCode {
    let now: DateTime<Utc> = match now {
        None => Utc::now(),
        Some(s) => match revenue_os::contract::parse_timestamp(s) {
            Some(t) => t,
            None => return fail(format!("--now '{s}' is not an RFC 3339 timestamp")),
        },
    };
    let bytes = match read_input(file) {
        Ok(b) => b,
        Err(e) => return fail(format!("cannot read {file}: {e}")),
    };
    let catalog = match Catalog::embedded() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let cycle_id = uuid::Uuid::new_v4();
    let result = if explain {
        let (result, trace) = revenue_os::kernel::run_explained(&bytes, &catalog, now, cycle_id);
        eprint!("{trace}");
        result
    } else {
        revenue_os::kernel::run(&bytes, &catalog, now, cycle_id)
    };
    match result {
        Ok(out) => print_json(&out),
        Err(err) => {
            let _ = print_json(&err);
            ExitCode::from(2)
        }
    }
}

fn read_input(file: &str) -> std::io::Result<Vec<u8>> {
    if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(file)
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|_| writeln!(out));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Operator errors (bad flags, unreadable file) go to stderr with exit 1; a KernelError is data
/// and goes to stdout with exit 2.
fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("revenue-os: {e}");
    ExitCode::from(1)
}
