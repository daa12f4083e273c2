//! What the sidecar's leaderships depend on: `--client-timeout`, and for `--contend` a
//! probe of the JobManager (or nothing).

use std::time::Duration;

use clap::Args;

use crate::Result;
use crate::cmd::failure;
use crate::duration::parse_duration;
use crate::lease::Timings;
use crate::sidecar::liveness::{Liveness, Probe};

/// What leadership depends on: API clients showing life, and for --contend, a probe.
#[derive(Debug, Args)]
pub struct LivenessArgs {
    /// An API client (JobManager) that sends nothing for this long has every leadership it
    /// holds released [default: the renew deadline]
    #[arg(long, env = "HAKEEPER_CLIENT_TIMEOUT", value_parser = parse_duration)]
    pub client_timeout: Option<Duration>,
    /// For --contend: the JobManager's HTTP endpoint to probe every retry period (e.g. its
    /// REST port, `http://127.0.0.1:8081/config`); the leaderships are released after
    /// --liveness-failures failures in a row, and contended again once it answers
    #[arg(long, env = "HAKEEPER_LIVENESS_URL", conflicts_with = "liveness")]
    pub liveness_url: Option<String>,
    /// For --contend: `none` leads for as long as the sidecar lives, whatever becomes of the
    /// JobManager (only for demos and tests)
    #[arg(long, env = "HAKEEPER_LIVENESS", value_parser = ["none"])]
    pub liveness: Option<String>,
    /// Failed probes in a row that release the --contend leaderships
    #[arg(long, env = "HAKEEPER_LIVENESS_FAILURES", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub liveness_failures: u32,
    /// How long one probe may take
    #[arg(long, env = "HAKEEPER_LIVENESS_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub liveness_timeout: Duration,
}

impl LivenessArgs {
    /// What --contend leadership depends on; a start-up error when --contend names neither.
    pub fn liveness(&self, contending: bool, timings: &Timings) -> Result<Option<Liveness>> {
        match (&self.liveness_url, &self.liveness) {
            (Some(url), _) => Ok(Some(Liveness::Http(Probe {
                url: crate::sidecar::liveness::parse_url(url).map_err(failure)?,
                timeout: self.liveness_timeout,
                failures: self.liveness_failures,
                period: timings.retry_period,
            }))),
            (None, Some(_)) => Ok(Some(Liveness::None)),
            (None, None) if contending => Err(failure(
                "--contend needs to know what its leadership depends on: --liveness-url URL (the JobManager's HTTP endpoint, e.g. http://127.0.0.1:8081/config; released after --liveness-failures failed probes) or --liveness none (lead for as long as the sidecar lives: only for demos and tests)",
            )),
            (None, None) => Ok(None),
        }
    }

    /// How long an API client may stay silent: --client-timeout, else the renew deadline;
    /// between 100ms and 24h.
    pub fn client_timeout(&self, timings: &Timings) -> Result<Duration> {
        let timeout = self.client_timeout.unwrap_or(timings.renew_deadline);
        if timeout < Duration::from_millis(100) {
            return Err(failure(format!(
                "--client-timeout {timeout:?} is too short: at least 100ms"
            )));
        }
        if timeout > Duration::from_secs(24 * 3600) {
            return Err(failure(format!(
                "--client-timeout {timeout:?} is too long: at most 24h (a hung JobManager would lead that long)"
            )));
        }
        Ok(timeout)
    }
}
