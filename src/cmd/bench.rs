//! `hakeeper bench failover|checkpoints|operator`: the figures of docs/BENCHMARKS.md.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::args::TimingArgs;
use crate::Result;
use crate::apiserver::{DevServer, DevServerConfig};
use crate::bench::FailoverParams;
use crate::bench::checkpoints::CheckpointParams;
use crate::bench::clients::ClientFailoverParams;
use crate::bench::operator::OperatorBenchParams;
use crate::duration::parse_duration;
use crate::kubeconn::KubeArgs;
use crate::storage::{Location, S3Args};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Rounds of crash and graceful failover among in-process contenders; prints p50/max
    /// takeover times and the API requests per minute of the leader and each standby at
    /// rest. Runs against the embedded API server unless --kubeconfig or --context is given.
    Failover(FailoverArgs),
    /// Latency (p50/p99) and throughput of adding checkpoints: a raw storage put, the
    /// library, and the sidecar's API, over the given storage and the embedded API server.
    Checkpoints(CheckpointBenchArgs),
    /// Change-to-alert latency (webhook and Event), missed and duplicate alerts, memory and
    /// CPU of a `hakeeper operator` process watching N clusters on the embedded API server.
    Operator(OperatorBenchArgs),
}

/// Run the benchmark and print its report.
pub async fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Failover(args) => failover(args).await,
        BenchCommand::Checkpoints(args) => checkpoints(args).await,
        BenchCommand::Operator(args) => operator(args).await,
    }
}

#[derive(Debug, Args)]
pub struct FailoverArgs {
    /// Rounds; each has one crash and one graceful failover
    #[arg(long, env = "HAKEEPER_ROUNDS", default_value_t = 5)]
    pub rounds: usize,
    /// Contenders
    #[arg(long, env = "HAKEEPER_CONTENDERS", default_value_t = 3)]
    pub contenders: usize,
    /// How long to count requests with a stable leader
    #[arg(long, env = "HAKEEPER_REST", default_value = "60s", value_parser = parse_duration)]
    pub rest: Duration,
    /// Rounds in which the leader's JobManager crashes (its sidecar lives)
    #[arg(long, env = "HAKEEPER_CLIENT_ROUNDS", default_value_t = 50)]
    pub client_rounds: usize,
    /// Rounds in which the leader's JobManager hangs (each takes the client timeout)
    #[arg(long, env = "HAKEEPER_HANG_ROUNDS", default_value_t = 5)]
    pub hang_rounds: usize,
    /// The sidecars' client timeout [default: the renew deadline]
    #[arg(long, env = "HAKEEPER_CLIENT_TIMEOUT", value_parser = parse_duration)]
    pub client_timeout: Option<Duration>,
    #[command(flatten)]
    pub timings: TimingArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `bench failover`: election takeovers, then a JobManager's crash and hang.
pub async fn failover(args: FailoverArgs) -> Result<()> {
    let params = FailoverParams {
        rounds: args.rounds,
        contenders: args.contenders,
        timings: args.timings.timings()?,
        rest: args.rest,
    };
    let embedded = args.kube.kubeconfig.is_none() && args.kube.context.is_none();
    let (server, config) = if embedded {
        let server = DevServer::start(DevServerConfig::default()).await?;
        let config = server.kube_config().await?;
        (Some(server), config)
    } else {
        (None, args.kube.config().await?)
    };
    let namespace = config.default_namespace.clone();
    println!(
        "bench failover: {} rounds, {} contenders, lease {:?}, renew deadline {:?}, retry period {:?}, against {}",
        params.rounds,
        params.contenders,
        params.timings.lease_duration,
        params.timings.renew_deadline,
        params.timings.retry_period,
        if embedded {
            "the embedded API server".to_string()
        } else {
            config.cluster_url.to_string()
        },
    );
    let clients = ClientFailoverParams {
        crash_rounds: args.client_rounds,
        hang_rounds: args.hang_rounds,
        timings: params.timings,
        client_timeout: args.client_timeout.unwrap_or(params.timings.renew_deadline),
        rest: args.rest,
    };
    let report = crate::bench::failover(config.clone(), &namespace, &params).await?;
    print!("{}", report.render());
    let report = crate::bench::clients::client_failover(config, &namespace, &clients).await?;
    print!("{}", report.render());
    if let Some(server) = server {
        server.shutdown().await?;
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct CheckpointBenchArgs {
    /// Storage to measure [default: a temporary `file://` directory]
    #[arg(long, env = "HAKEEPER_STORAGE_DIR")]
    pub storage_dir: Option<String>,
    #[command(flatten)]
    pub s3: S3Args,
    /// Checkpoints added per way
    #[arg(long, env = "HAKEEPER_COUNT", default_value_t = 300)]
    pub count: usize,
    /// Size of each checkpoint's payload
    #[arg(long, env = "HAKEEPER_PAYLOAD_BYTES", default_value_t = 64 << 10)]
    pub payload_bytes: usize,
}

/// `bench checkpoints`: adding checkpoints three ways.
pub async fn checkpoints(args: CheckpointBenchArgs) -> Result<()> {
    let temporary = match &args.storage_dir {
        Some(_) => None,
        None => Some(temporary_dir()?),
    };
    let dir = match (&args.storage_dir, &temporary) {
        (Some(url), _) => Location::parse(url),
        (None, Some(path)) => Location::file(path),
        (None, None) => unreachable!("a temporary directory when none is given"),
    }
    .map_err(super::other)?;
    let storage = crate::storage::open(&dir, &args.s3.options())
        .await
        .map_err(super::other)?;
    let params = CheckpointParams {
        storage,
        storage_dir: dir,
        count: args.count,
        payload_bytes: args.payload_bytes,
    };
    let report = crate::bench::checkpoints::checkpoints(&params).await;
    if let Some(path) = temporary {
        let _ = std::fs::remove_dir_all(path);
    }
    print!("{}", report?.render());
    Ok(())
}

/// A fresh directory under the system's temporary directory.
fn temporary_dir() -> Result<PathBuf> {
    let path =
        std::env::temp_dir().join(format!("hakeeper-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&path)
        .map_err(|e| super::context(format!("creating {}", path.display()), e))?;
    Ok(path)
}

#[derive(Debug, Args)]
pub struct OperatorBenchArgs {
    /// Flink clusters, each with 3 component locks and 2 job locks
    #[arg(long, env = "HAKEEPER_CLUSTERS", default_value_t = 1000)]
    pub clusters: usize,
    /// Leader changes injected per second
    #[arg(long, env = "HAKEEPER_RATE", default_value_t = 20.0)]
    pub rate: f64,
    /// Leader changes injected in all
    #[arg(long, env = "HAKEEPER_CHANGES", default_value_t = 600)]
    pub changes: usize,
    /// How long to measure CPU at rest
    #[arg(long, env = "HAKEEPER_REST", default_value = "20s", value_parser = parse_duration)]
    pub rest: Duration,
}

/// `bench operator`: a `hakeeper operator` child process watching many clusters.
pub async fn operator(args: OperatorBenchArgs) -> Result<()> {
    let params = OperatorBenchParams {
        exe: std::env::current_exe()
            .map_err(|e| super::context("locating the hakeeper binary", e))?,
        clusters: args.clusters.max(1),
        rate: args.rate,
        changes: args.changes,
        rest: args.rest,
    };
    let report = crate::bench::operator::run(params.clone()).await?;
    print!("{}", crate::bench::operator::render(&params, &report));
    Ok(())
}
