//! `revenue-os`: parse the command line, run one subcommand (`revenue_os::cli`, a file per
//! command), print its output and exit with the code from `Error::exit_code`, the one table.

use clap::Parser;
use revenue_os::cli::{self, Output};
use revenue_os::error::{EXIT_OK, Error};
use std::io::Write;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "revenue-os",
    version,
    about = "Revenue OS: the revenue decision kernel as a queue-driven worker"
)]
struct Cli {
    #[command(subcommand)]
    command: cli::Command,
}

fn main() -> ExitCode {
    revenue_os::memory::one_malloc_arena();
    match Cli::try_parse() {
        Ok(c) => report(cli::run(c.command)),
        // --help and --version are not errors.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            ExitCode::from(EXIT_OK)
        }
        // A usage error is the operator's: exit 1, keeping 2 for contract outcomes.
        Err(e) => report(Err(Error::Usage(e.render().to_string()))),
    }
}

/// Prints the result: output on stdout; a contract outcome as data on stdout, anything else
/// as one line on stderr.
fn report(result: Result<Output, Error>) -> ExitCode {
    let printed = match result {
        Ok(Output::Json(s) | Output::Line(s)) => writeln!(std::io::stdout().lock(), "{s}"),
        Ok(Output::Nothing) => Ok(()),
        Err(e) => {
            match e.data() {
                Some(data) => {
                    let _ = writeln!(std::io::stdout().lock(), "{data}");
                }
                None => eprintln!("revenue-os: {e}"),
            }
            return ExitCode::from(e.exit_code());
        }
    };
    match printed {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => report(Err(Error::Io(e))),
    }
}
