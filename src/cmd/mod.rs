//! The subcommands of the `hakeeper` binary, one module each: a command's flags (a clap
//! `Args` struct) sit next to the function that runs it. Argument groups several commands
//! flatten in are in [`args`] (and [`crate::storage::S3Args`], [`crate::kubeconn::KubeArgs`]).
//! The binary (`src/main.rs`) only parses, sets up logging, dispatches and maps errors to
//! exit codes.
//!
//! `operator`, `gc` and `cleanup` live with the operator, in [`crate::operator::cmd`]; they
//! are re-exported here so that every command is reached the same way.

use std::fmt::Display;

use crate::Error;

pub mod args;
pub mod bench;
pub mod decode;
pub mod demo;
pub mod dev;
pub mod inspect;
pub mod sidecar;
pub mod signals;

pub use crate::operator::cmd::{CleanupArgs, GcArgs, OperatorArgs, cleanup, gc, operator};
pub use signals::ShutdownSignals;

/// The target of the commands' own log lines: the binary's, as when they were in
/// `src/main.rs`, so that log filters and queries that name it still match.
const LOG_TARGET: &str = "hakeeper";

/// A failure the command describes in its own words. The binary prints an error with its
/// sources, each after `: `; [`Error::Command`] has none, so the message is printed as is.
pub(crate) fn failure(message: impl Into<String>) -> Error {
    Error::Command(message.into())
}

/// `error` with what was being done in front: `context: error: its sources...`, the text
/// the binary prints for it.
pub(crate) fn context(context: impl Display, error: impl std::error::Error) -> Error {
    failure(format!("{context}: {}", chain(&error)))
}

/// An error of another type than [`Error`], printed as the binary prints errors.
pub(crate) fn other(error: impl std::error::Error) -> Error {
    failure(chain(&error))
}

/// `error` and each of its sources, joined by `: ` (as `anyhow` prints with `{:#}`).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn context_and_sources_are_printed_as_the_binary_prints_them() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        assert_eq!(context("reading x", io()).to_string(), "reading x: gone");
        assert_eq!(other(Outer(io())).to_string(), "outer: gone: gone");
        assert_eq!(
            context("writing y", Outer(io())).to_string(),
            "writing y: outer: gone: gone"
        );
        assert_eq!(failure("as is").to_string(), "as is");
    }
}
