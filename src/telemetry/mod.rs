//! Structured logs: JSON by default, a human format for terminals. Always to stderr, so the
//! commands that print a document on stdout stay machine-readable.

use crate::config::{LogFormat, LogSettings};
use tracing_subscriber::EnvFilter;

pub mod metrics;

/// Installs the global subscriber once; later calls (tests) are no-ops. `RUST_LOG` wins over
/// `log.level`.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal; files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
        LogFormat::Human => builder.try_init(),
    };
}
