//! Logging set-up: `tracing` with a filter and a plain or JSON format.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Output format for log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Install the global subscriber. `filter` uses `tracing_subscriber`'s directive syntax
/// (`info`, `hakeeper=debug,kube=warn`, ...). Logs go to standard error so that standard
/// output stays free for command results.
pub fn init(filter: &str, format: LogFormat) -> crate::Result<()> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| crate::Error::Config(format!("--log {filter:?}: {e}")))?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Plain => registry
            .with(
                fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init(),
    };
    result.map_err(|e| crate::Error::Config(format!("logging already initialised: {e}")))
}
