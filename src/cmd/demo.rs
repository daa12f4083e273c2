//! `hakeeper demo`, and the hidden `hakeeper demo-jobmanager` it starts.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::Result;
use crate::demo::{DemoParams, RealCluster};
use crate::duration::parse_duration;
use crate::lease::Timings;
use crate::storage::{Location, S3Args};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How long a lease lasts (short for the demo; production default 15s)
    #[arg(long, env = "HAKEEPER_LEASE_DURATION", default_value = "3s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// The leader steps down if no renewal succeeds for this long (production default 10s)
    #[arg(long, env = "HAKEEPER_RENEW_DEADLINE", default_value = "2s", value_parser = parse_duration)]
    pub renew_deadline: Duration,
    /// How often the leader renews (production default 2s)
    #[arg(long, env = "HAKEEPER_RETRY_PERIOD", default_value = "500ms", value_parser = parse_duration)]
    pub retry_period: Duration,
    /// Time between the simulated JobManager's checkpoints
    #[arg(long, env = "HAKEEPER_CHECKPOINT_INTERVAL", default_value = "200ms", value_parser = parse_duration)]
    pub checkpoint_interval: Duration,
    /// Storage for payloads, e.g. an `s3://` URL [default: a temporary `file://` directory]
    #[arg(long, env = "HAKEEPER_STORAGE_DIR")]
    pub storage_dir: Option<String>,
    #[command(flatten)]
    pub s3: S3Args,
    /// Leave everything running at the end and print how to look at it
    #[arg(long, env = "HAKEEPER_KEEP_RUNNING")]
    pub keep_running: bool,
    /// Run against the cluster of this kubeconfig instead of the embedded API server (in a
    /// fresh namespace, deleted at the end unless --keep-running)
    #[arg(long, env = "HAKEEPER_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// With --kubeconfig: the context to use
    #[arg(long, env = "HAKEEPER_CONTEXT", requires = "kubeconfig")]
    pub context: Option<String>,
    /// With --kubeconfig: an existing namespace to run in, instead of a fresh one
    #[arg(long, short = 'n', env = "HAKEEPER_NAMESPACE", requires = "kubeconfig")]
    pub namespace: Option<String>,
}

/// Run the demo; an error if any of its checks failed.
pub async fn run(args: DemoArgs) -> Result<()> {
    let timings = Timings {
        lease_duration: args.lease_duration,
        renew_deadline: args.renew_deadline,
        retry_period: args.retry_period,
    };
    timings.validate().map_err(super::failure)?;
    let params = DemoParams {
        exe: std::env::current_exe()
            .map_err(|e| super::context("locating the hakeeper binary", e))?,
        timings,
        storage_dir: args
            .storage_dir
            .as_deref()
            .map(Location::parse)
            .transpose()
            .map_err(super::other)?,
        s3: args.s3.options(),
        checkpoint_interval: args.checkpoint_interval,
        checkpoints_per_phase: 5,
        keep_running: args.keep_running,
        cluster: args.kubeconfig.map(|kubeconfig| RealCluster {
            kubeconfig,
            context: args.context,
            namespace: args.namespace,
        }),
    };
    let report = crate::demo::run(params).await?;
    if report.passed() {
        println!("\nhakeeper demo: every check held");
        Ok(())
    } else {
        Err(super::failure("some checks failed (see above)"))
    }
}

#[derive(Debug, Args)]
pub struct DemoJobmanagerArgs {
    /// The sidecar's local API, `http://HOST:PORT`
    #[arg(long)]
    pub sidecar: String,
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub job_id: String,
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub checkpoint_interval: Duration,
}

/// The demo's simulated JobManager, its events as JSON lines on standard output.
pub async fn run_jobmanager(args: DemoJobmanagerArgs) -> Result<()> {
    crate::demo::jobmanager_process(
        args.sidecar,
        args.name,
        args.job_id,
        args.checkpoint_interval,
    )
    .await
}
