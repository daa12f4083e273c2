//! Graceful shutdown on SIGINT and SIGTERM.

use crate::Result;

/// SIGINT and SIGTERM handlers, installed before anything is started so that a signal
/// arriving early is handled (released leases, exit 0) rather than killing the process.
pub struct ShutdownSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Install the handlers (in a Tokio runtime).
    pub fn install() -> Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(ShutdownSignals {
                term: signal(SignalKind::terminate())
                    .map_err(|e| super::context("installing the SIGTERM handler", e))?,
                int: signal(SignalKind::interrupt())
                    .map_err(|e| super::context("installing the SIGINT handler", e))?,
            })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignals {})
    }

    /// Wait for the first of them.
    pub async fn wait(mut self) -> Result<()> {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| super::context("waiting for Ctrl-C", e))?;
        Ok(())
    }

    /// A future that completes at the first signal, for a runner that takes its shutdown as
    /// a future.
    pub async fn received(self) {
        let _ = self.wait().await;
    }
}
