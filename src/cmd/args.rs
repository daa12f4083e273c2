//! Argument groups that commands flatten in: election timings (`sidecar`, `bench failover`)
//! and where payloads are stored (`sidecar`). S3 settings are [`crate::storage::S3Args`],
//! the Kubernetes connection [`crate::kubeconn::KubeArgs`].

use std::time::Duration;

use clap::Args;

use crate::Result;
use crate::duration::parse_duration;
use crate::layout::ClusterId;
use crate::lease::Timings;
use crate::sidecar::StoreSettings;
use crate::storage::{Location, S3Args};
use crate::stores::Payloads;

/// Election timings; lease > renew deadline > 1.2 × retry period.
#[derive(Debug, Args)]
pub struct TimingArgs {
    /// How long a lease lasts for others after its last renewal
    #[arg(long, env = "HAKEEPER_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// The leader steps down if no renewal succeeds for this long
    #[arg(long, env = "HAKEEPER_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub renew_deadline: Duration,
    /// How often the leader renews
    #[arg(long, env = "HAKEEPER_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub retry_period: Duration,
}

impl TimingArgs {
    /// The timings, checked.
    pub fn timings(&self) -> Result<Timings> {
        let t = Timings {
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        };
        t.validate().map_err(super::failure)?;
        Ok(t)
    }
}

/// Where payloads (job graphs, checkpoints, blobs) are stored, and the stores' policies.
#[derive(Debug, Args)]
pub struct StorageArgs {
    /// Flink's `high-availability.storageDir`: `s3://bucket/prefix` or `file:///dir`
    /// [default: none; the store endpoints then answer 503]
    #[arg(long, env = "HAKEEPER_STORAGE_DIR")]
    pub storage_dir: Option<String>,
    #[command(flatten)]
    pub s3: S3Args,
    /// Completed checkpoints to retain per job (Flink's `state.checkpoints.num-retained`)
    #[arg(long, env = "HAKEEPER_CHECKPOINTS_RETAINED", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub checkpoints_retained: u32,
    /// Fail recovery when the newest checkpoint is unreadable, instead of falling back to
    /// the newest good one
    #[arg(long, env = "HAKEEPER_STRICT_RECOVERY")]
    pub strict_recovery: bool,
    /// Largest payload accepted or read, in bytes
    #[arg(long, env = "HAKEEPER_MAX_PAYLOAD_BYTES", default_value_t = 64 << 20)]
    pub max_payload_bytes: u64,
}

impl StorageArgs {
    /// The stores' settings for `cluster`, with the storage opened; `None` without
    /// `--storage-dir`.
    pub async fn settings(&self, cluster: &ClusterId) -> Result<Option<StoreSettings>> {
        let Some(dir) = &self.storage_dir else {
            return Ok(None);
        };
        let dir = Location::parse(dir).map_err(super::other)?;
        let storage = crate::storage::open(&dir, &self.s3.options())
            .await
            .map_err(super::other)?;
        let mut payloads = Payloads::new(storage, &dir, cluster);
        payloads.max_payload_bytes = self.max_payload_bytes;
        Ok(Some(StoreSettings {
            payloads,
            checkpoints_retained: self.checkpoints_retained as usize,
            strict_recovery: self.strict_recovery,
        }))
    }
}
