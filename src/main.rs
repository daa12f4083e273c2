//! The `hakeeper` command line. Everything of substance lives in the library; this file
//! parses arguments, sets up logging and maps errors to exit codes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use hakeeper::apiserver::{DevServer, DevServerConfig};
use hakeeper::duration::parse_duration;
use hakeeper::kubeconn::KubeArgs;
use hakeeper::layout::{ClusterId, Component};
use hakeeper::lease::Timings;
use hakeeper::owner::OwnerSpec;
use hakeeper::sidecar::listen::{Listen, check_exposure, parse_token};
use hakeeper::sidecar::liveness::{Liveness, Probe};
use hakeeper::sidecar::serve;
use hakeeper::sidecar::{Sidecar, SidecarConfig, StoreSettings};
use hakeeper::storage::{Location, S3Args};
use hakeeper::stores::Payloads;
use hakeeper::telemetry::{self, LogFormat};

/// Kubernetes-native high availability for Apache Flink JobManagers.
#[derive(Debug, Parser)]
#[command(name = "hakeeper", version, about)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct GlobalArgs {
    /// Log filter, e.g. `info` or `hakeeper=debug,kube=warn`
    #[arg(long, global = true, env = "HAKEEPER_LOG", default_value = "info")]
    log: String,
    /// Log line format
    #[arg(
        long,
        global = true,
        env = "HAKEEPER_LOG_FORMAT",
        value_enum,
        default_value = "plain"
    )]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// See the whole system work on this machine: an embedded API server, three sidecars
    /// with simulated JobManagers, a crash and a graceful failover, checked end to end.
    Demo(DemoArgs),
    /// Serve an embedded Kubernetes API server (ConfigMaps and Events) on loopback and
    /// write a kubeconfig for it, so hakeeper and kubectl run without a cluster.
    Dev(DevArgs),
    /// Run next to a JobManager: contend for leadership of its components and serve the
    /// local HA API on loopback.
    Sidecar(Box<SidecarArgs>),
    /// Show a cluster's HA state, read-only: leaders and their leases, jobs with their graph,
    /// checkpoints and counter, and how full each HA ConfigMap is.
    Inspect(InspectArgs),
    /// Watch every HA ConfigMap (hakeeper's and stock Flink's): alert on leader changes, lost
    /// leaders, stalled checkpoints and dangling handles; collect orphaned payloads.
    Operator(Box<hakeeper::operator::cmd::OperatorArgs>),
    /// List a cluster's orphaned payloads (unreferenced, older than the grace period), and
    /// with --delete delete them.
    Gc(hakeeper::operator::cmd::GcArgs),
    /// Remove a cluster that is gone for good: its payloads, then its HA ConfigMaps.
    Cleanup(hakeeper::operator::cmd::CleanupArgs),
    /// Decode a store entry's value (base64 of a Java-serialized Flink state handle) and
    /// print it as JSON.
    Decode(DecodeArgs),
    /// Measure the system (figures for docs/BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The demo's simulated JobManager as a process of its own (its events as JSON lines)
    #[command(hide = true)]
    DemoJobmanager(DemoJobmanagerArgs),
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// How long a lease lasts (short for the demo; production default 15s)
    #[arg(long, env = "HAKEEPER_LEASE_DURATION", default_value = "3s", value_parser = parse_duration)]
    lease_duration: Duration,
    /// The leader steps down if no renewal succeeds for this long (production default 10s)
    #[arg(long, env = "HAKEEPER_RENEW_DEADLINE", default_value = "2s", value_parser = parse_duration)]
    renew_deadline: Duration,
    /// How often the leader renews (production default 2s)
    #[arg(long, env = "HAKEEPER_RETRY_PERIOD", default_value = "500ms", value_parser = parse_duration)]
    retry_period: Duration,
    /// Time between the simulated JobManager's checkpoints
    #[arg(long, env = "HAKEEPER_CHECKPOINT_INTERVAL", default_value = "200ms", value_parser = parse_duration)]
    checkpoint_interval: Duration,
    /// Storage for payloads, e.g. an `s3://` URL [default: a temporary `file://` directory]
    #[arg(long, env = "HAKEEPER_STORAGE_DIR")]
    storage_dir: Option<String>,
    #[command(flatten)]
    s3: S3Args,
    /// Leave everything running at the end and print how to look at it
    #[arg(long, env = "HAKEEPER_KEEP_RUNNING")]
    keep_running: bool,
    /// Run against the cluster of this kubeconfig instead of the embedded API server (in a
    /// fresh namespace, deleted at the end unless --keep-running)
    #[arg(long, env = "HAKEEPER_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// With --kubeconfig: the context to use
    #[arg(long, env = "HAKEEPER_CONTEXT", requires = "kubeconfig")]
    context: Option<String>,
    /// With --kubeconfig: an existing namespace to run in, instead of a fresh one
    #[arg(long, short = 'n', env = "HAKEEPER_NAMESPACE", requires = "kubeconfig")]
    namespace: Option<String>,
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// Flink cluster id (`kubernetes.cluster-id`)
    #[arg(long, env = "HAKEEPER_CLUSTER_ID")]
    cluster_id: ClusterId,
    /// Output format
    #[arg(
        long,
        short = 'o',
        env = "HAKEEPER_OUTPUT",
        value_enum,
        default_value = "table"
    )]
    output: InspectOutput,
    /// Check that every handle's payload exists with the size it records (needs
    /// --storage-dir); exit 1 if one is missing or of another size, or cannot be checked
    #[arg(long, env = "HAKEEPER_VERIFY", requires = "storage_dir")]
    verify: bool,
    /// Flink's `high-availability.storageDir` (`s3://bucket/prefix` or `file:///dir`): the
    /// store --verify reads from
    #[arg(long, env = "HAKEEPER_STORAGE_DIR")]
    storage_dir: Option<String>,
    #[command(flatten)]
    s3: S3Args,
    #[command(flatten)]
    kube: KubeArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum InspectOutput {
    /// Aligned sections, as `kubectl describe` prints
    Table,
    /// The whole report as JSON (camelCase keys)
    Json,
}

#[derive(Debug, Args)]
struct DecodeArgs {
    /// The value, or `-` (the default) to read it from standard input
    #[arg(default_value = "-")]
    value: String,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
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

#[derive(Debug, Args)]
struct OperatorBenchArgs {
    /// Flink clusters, each with 3 component locks and 2 job locks
    #[arg(long, env = "HAKEEPER_CLUSTERS", default_value_t = 1000)]
    clusters: usize,
    /// Leader changes injected per second
    #[arg(long, env = "HAKEEPER_RATE", default_value_t = 20.0)]
    rate: f64,
    /// Leader changes injected in all
    #[arg(long, env = "HAKEEPER_CHANGES", default_value_t = 600)]
    changes: usize,
    /// How long to measure CPU at rest
    #[arg(long, env = "HAKEEPER_REST", default_value = "20s", value_parser = parse_duration)]
    rest: Duration,
}

#[derive(Debug, Args)]
struct CheckpointBenchArgs {
    /// Storage to measure [default: a temporary `file://` directory]
    #[arg(long, env = "HAKEEPER_STORAGE_DIR")]
    storage_dir: Option<String>,
    #[command(flatten)]
    s3: S3Args,
    /// Checkpoints added per way
    #[arg(long, env = "HAKEEPER_COUNT", default_value_t = 300)]
    count: usize,
    /// Size of each checkpoint's payload
    #[arg(long, env = "HAKEEPER_PAYLOAD_BYTES", default_value_t = 64 << 10)]
    payload_bytes: usize,
}

#[derive(Debug, Args)]
struct FailoverArgs {
    /// Rounds; each has one crash and one graceful failover
    #[arg(long, env = "HAKEEPER_ROUNDS", default_value_t = 5)]
    rounds: usize,
    /// Contenders
    #[arg(long, env = "HAKEEPER_CONTENDERS", default_value_t = 3)]
    contenders: usize,
    /// How long to count requests with a stable leader
    #[arg(long, env = "HAKEEPER_REST", default_value = "60s", value_parser = parse_duration)]
    rest: Duration,
    /// Rounds in which the leader's JobManager crashes (its sidecar lives)
    #[arg(long, env = "HAKEEPER_CLIENT_ROUNDS", default_value_t = 50)]
    client_rounds: usize,
    /// Rounds in which the leader's JobManager hangs (each takes the client timeout)
    #[arg(long, env = "HAKEEPER_HANG_ROUNDS", default_value_t = 5)]
    hang_rounds: usize,
    /// The sidecars' client timeout [default: the renew deadline]
    #[arg(long, env = "HAKEEPER_CLIENT_TIMEOUT", value_parser = parse_duration)]
    client_timeout: Option<Duration>,
    #[command(flatten)]
    timings: TimingArgs,
    #[command(flatten)]
    kube: KubeArgs,
}

#[derive(Debug, Args)]
struct DemoJobmanagerArgs {
    /// The sidecar's local API, `http://HOST:PORT`
    #[arg(long)]
    sidecar: String,
    #[arg(long)]
    name: String,
    #[arg(long)]
    job_id: String,
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    checkpoint_interval: Duration,
}

#[derive(Debug, Args)]
struct SidecarArgs {
    /// Flink cluster id (`kubernetes.cluster-id`); prefixes the HA ConfigMaps [required,
    /// here or in --flink-conf]
    #[arg(long, env = "HAKEEPER_CLUSTER_ID")]
    cluster_id: Option<ClusterId>,
    /// Flink's `flink-conf.yaml` or `config.yaml`: the cluster id, namespace, storage dir,
    /// election timings, retained checkpoints and S3 settings are taken from it unless given
    /// as flags or in the environment. Read as YAML if named `config.yaml` (Flink 1.19+),
    /// else line by line as Flink reads `flink-conf.yaml`
    #[arg(long, env = "HAKEEPER_FLINK_CONF")]
    flink_conf: Option<PathBuf>,
    /// Address of the local API: `HOST:PORT`, or `unix:/path` for a socket (created 0600)
    #[arg(long, env = "HAKEEPER_LISTEN", default_value = "127.0.0.1:7070")]
    listen: Listen,
    /// File holding a token that every `/v1` call must present as `Authorization: Bearer`
    /// (required to listen off loopback)
    #[arg(long, env = "HAKEEPER_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Also serve only `/livez`, `/readyz` and `/metrics`, without a token, on this
    /// `HOST:PORT` (e.g. `0.0.0.0:9091`, for kubelet probes and Prometheus on the pod's IP)
    #[arg(long, env = "HAKEEPER_PROBE_LISTEN")]
    probe_listen: Option<SocketAddr>,
    /// Components to contend for from the start (also possible later through the API)
    #[arg(
        long,
        env = "HAKEEPER_CONTEND",
        value_delimiter = ',',
        requires = "address"
    )]
    contend: Vec<Component>,
    /// The address to publish as leader for the components of --contend
    #[arg(long, env = "HAKEEPER_ADDRESS")]
    address: Option<String>,
    #[command(flatten)]
    liveness: LivenessArgs,
    /// Holder identity in the lock [default: a fresh UUID per process]
    #[arg(long, env = "HAKEEPER_IDENTITY")]
    identity: Option<String>,
    #[command(flatten)]
    timings: TimingArgs,
    #[command(flatten)]
    storage: StorageArgs,
    /// Owner of created HA ConfigMaps: `Kind/name` (e.g. `Deployment/my-flink`),
    /// `apiVersion/Kind/name`, or `apiVersion/Kind/name/uid`; it must exist (and its uid
    /// match) at start [default: none, so HA state survives deleting the Deployment]
    #[arg(long, env = "HAKEEPER_OWNER_REFERENCE")]
    owner_reference: Option<OwnerSpec>,
    #[command(flatten)]
    kube: KubeArgs,
}

/// What leadership depends on: API clients showing life, and for --contend, a probe.
#[derive(Debug, Args)]
struct LivenessArgs {
    /// An API client (JobManager) that sends nothing for this long has every leadership it
    /// holds released [default: the renew deadline]
    #[arg(long, env = "HAKEEPER_CLIENT_TIMEOUT", value_parser = parse_duration)]
    client_timeout: Option<Duration>,
    /// For --contend: the JobManager's HTTP endpoint to probe every retry period (e.g. its
    /// REST port, `http://127.0.0.1:8081/config`); the leaderships are released after
    /// --liveness-failures failures in a row, and contended again once it answers
    #[arg(long, env = "HAKEEPER_LIVENESS_URL", conflicts_with = "liveness")]
    liveness_url: Option<String>,
    /// For --contend: `none` leads for as long as the sidecar lives, whatever becomes of the
    /// JobManager (only for demos and tests)
    #[arg(long, env = "HAKEEPER_LIVENESS", value_parser = ["none"])]
    liveness: Option<String>,
    /// Failed probes in a row that release the --contend leaderships
    #[arg(long, env = "HAKEEPER_LIVENESS_FAILURES", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    liveness_failures: u32,
    /// How long one probe may take
    #[arg(long, env = "HAKEEPER_LIVENESS_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    liveness_timeout: Duration,
}

impl LivenessArgs {
    /// What --contend leadership depends on; a start-up error when --contend names neither.
    fn liveness(&self, contending: bool, timings: &Timings) -> anyhow::Result<Option<Liveness>> {
        match (&self.liveness_url, &self.liveness) {
            (Some(url), _) => Ok(Some(Liveness::Http(Probe {
                url: hakeeper::sidecar::liveness::parse_url(url).map_err(anyhow::Error::msg)?,
                timeout: self.liveness_timeout,
                failures: self.liveness_failures,
                period: timings.retry_period,
            }))),
            (None, Some(_)) => Ok(Some(Liveness::None)),
            (None, None) if contending => anyhow::bail!(
                "--contend needs to know what its leadership depends on: --liveness-url URL (the JobManager's HTTP endpoint, e.g. http://127.0.0.1:8081/config; released after --liveness-failures failed probes) or --liveness none (lead for as long as the sidecar lives: only for demos and tests)"
            ),
            (None, None) => Ok(None),
        }
    }

    fn client_timeout(&self, timings: &Timings) -> anyhow::Result<Duration> {
        let timeout = self.client_timeout.unwrap_or(timings.renew_deadline);
        anyhow::ensure!(
            timeout >= Duration::from_millis(100),
            "--client-timeout {timeout:?} is too short: at least 100ms"
        );
        anyhow::ensure!(
            timeout <= Duration::from_secs(24 * 3600),
            "--client-timeout {timeout:?} is too long: at most 24h (a hung JobManager would lead that long)"
        );
        Ok(timeout)
    }
}

/// Where payloads (job graphs, checkpoints, blobs) are stored, and the stores' policies.
#[derive(Debug, Args)]
struct StorageArgs {
    /// Flink's `high-availability.storageDir`: `s3://bucket/prefix` or `file:///dir`
    /// [default: none; the store endpoints then answer 503]
    #[arg(long, env = "HAKEEPER_STORAGE_DIR")]
    storage_dir: Option<String>,
    #[command(flatten)]
    s3: S3Args,
    /// Completed checkpoints to retain per job (Flink's `state.checkpoints.num-retained`)
    #[arg(long, env = "HAKEEPER_CHECKPOINTS_RETAINED", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    checkpoints_retained: u32,
    /// Fail recovery when the newest checkpoint is unreadable, instead of falling back to
    /// the newest good one
    #[arg(long, env = "HAKEEPER_STRICT_RECOVERY")]
    strict_recovery: bool,
    /// Largest payload accepted or read, in bytes
    #[arg(long, env = "HAKEEPER_MAX_PAYLOAD_BYTES", default_value_t = 64 << 20)]
    max_payload_bytes: u64,
}

impl SidecarArgs {
    /// Fill in, from `--flink-conf`, every setting that was left at its default (neither a
    /// flag nor an environment variable gave it). Precedence: flag, environment, the Flink
    /// file, defaults.
    fn apply_flink_conf(&mut self, matches: &clap::ArgMatches) -> anyhow::Result<()> {
        let Some(path) = &self.flink_conf else {
            return Ok(());
        };
        let conf = hakeeper::flinkconf::FlinkConf::load(path)?;
        let defaulted = |id: &str| {
            matches!(
                matches.value_source(id),
                None | Some(clap::parser::ValueSource::DefaultValue)
            )
        };
        let bad = |key: &str, e: String| anyhow::anyhow!("{}: {key}: {e}", path.display());
        if self.cluster_id.is_none()
            && let Some(id) = &conf.cluster_id
        {
            self.cluster_id = Some(
                id.parse()
                    .map_err(|e: String| bad("kubernetes.cluster-id", e))?,
            );
        }
        if self.kube.namespace.is_none() {
            self.kube.namespace = conf.namespace.clone();
        }
        if self.storage.storage_dir.is_none() {
            self.storage.storage_dir = conf.storage_dir.clone();
        }
        let t = &mut self.timings;
        if defaulted("lease_duration")
            && let Some(d) = conf.lease_duration
        {
            t.lease_duration = d;
        }
        if defaulted("renew_deadline")
            && let Some(d) = conf.renew_deadline
        {
            t.renew_deadline = d;
        }
        if defaulted("retry_period")
            && let Some(d) = conf.retry_period
        {
            t.retry_period = d;
        }
        if defaulted("checkpoints_retained")
            && let Some(n) = conf.checkpoints_retained
        {
            self.storage.checkpoints_retained = n;
        }
        let s3 = &mut self.storage.s3;
        if s3.s3_endpoint.is_none() {
            s3.s3_endpoint = conf.s3_endpoint.clone();
        }
        if defaulted("s3_path_style")
            && let Some(p) = conf.s3_path_style
        {
            s3.s3_path_style = p;
        }
        if s3.s3_access_key.is_none() && s3.s3_secret_key.is_none() {
            s3.s3_access_key = conf.s3_access_key.clone();
            s3.s3_secret_key = conf.s3_secret_key.clone();
        }
        Ok(())
    }

    /// The effective configuration, for the log: secrets are never in it.
    fn describe(&self, namespace: &str) -> String {
        let s3 = &self.storage.s3;
        format!(
            "cluster-id={} namespace={namespace} listen={} probe-listen={} token={} storage-dir={} s3-endpoint={} s3-path-style={} s3-region={} s3-keys={} lease-duration={:?} renew-deadline={:?} retry-period={:?} client-timeout={} liveness={} checkpoints-retained={} strict-recovery={} max-payload-bytes={} flink-conf={}",
            self.cluster_id
                .as_ref()
                .map_or("-".to_string(), ToString::to_string),
            self.listen,
            self.probe_listen.map_or("-".to_string(), |a| a.to_string()),
            if self.token_file.is_some() {
                "<redacted>"
            } else {
                "none"
            },
            self.storage.storage_dir.as_deref().unwrap_or("-"),
            s3.s3_endpoint.as_deref().unwrap_or("-"),
            s3.s3_path_style,
            s3.s3_region.as_deref().unwrap_or("-"),
            if s3.s3_access_key.is_some() {
                "<redacted>"
            } else {
                "credential chain"
            },
            self.timings.lease_duration,
            self.timings.renew_deadline,
            self.timings.retry_period,
            self.liveness
                .client_timeout
                .map_or("renew-deadline".to_string(), |d| format!("{d:?}")),
            match (&self.liveness.liveness_url, &self.liveness.liveness) {
                (Some(url), _) => format!(
                    "{url} (failures {}, timeout {:?})",
                    self.liveness.liveness_failures, self.liveness.liveness_timeout
                ),
                (None, Some(mode)) => mode.clone(),
                (None, None) => "-".to_string(),
            },
            self.storage.checkpoints_retained,
            self.storage.strict_recovery,
            self.storage.max_payload_bytes,
            self.flink_conf
                .as_ref()
                .map_or("-".to_string(), |p| p.display().to_string()),
        )
    }
}

impl StorageArgs {
    async fn settings(&self, cluster: &ClusterId) -> anyhow::Result<Option<StoreSettings>> {
        let Some(dir) = &self.storage_dir else {
            return Ok(None);
        };
        let dir = Location::parse(dir)?;
        let storage = hakeeper::storage::open(&dir, &self.s3.options()).await?;
        let mut payloads = Payloads::new(storage, &dir, cluster);
        payloads.max_payload_bytes = self.max_payload_bytes;
        Ok(Some(StoreSettings {
            payloads,
            checkpoints_retained: self.checkpoints_retained as usize,
            strict_recovery: self.strict_recovery,
        }))
    }
}

/// Election timings; lease > renew deadline > 1.2 × retry period.
#[derive(Debug, Args)]
struct TimingArgs {
    /// How long a lease lasts for others after its last renewal
    #[arg(long, env = "HAKEEPER_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    lease_duration: Duration,
    /// The leader steps down if no renewal succeeds for this long
    #[arg(long, env = "HAKEEPER_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    renew_deadline: Duration,
    /// How often the leader renews
    #[arg(long, env = "HAKEEPER_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    retry_period: Duration,
}

impl TimingArgs {
    fn timings(&self) -> anyhow::Result<Timings> {
        let t = Timings {
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        };
        t.validate().map_err(anyhow::Error::msg)?;
        Ok(t)
    }
}

#[derive(Debug, Args)]
struct DevArgs {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, env = "HAKEEPER_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write the kubeconfig [default: <data-dir>/kubeconfig, else a file in the
    /// temporary directory named after the port]
    #[arg(long, env = "HAKEEPER_KUBECONFIG_OUT")]
    kubeconfig_out: Option<PathBuf>,
    /// Persist the objects here so that a restart keeps them [default: memory only]
    #[arg(long, env = "HAKEEPER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Require this bearer token on every API call (required off loopback)
    #[arg(long, env = "HAKEEPER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Namespace of the kubeconfig's context
    #[arg(long, env = "HAKEEPER_DEV_NAMESPACE", default_value = "default")]
    namespace: String,
    /// Changes retained for watches; older resourceVersions get 410 Expired
    #[arg(long, env = "HAKEEPER_HISTORY", default_value_t = 10_000)]
    history: usize,
    /// Interval of watch bookmarks
    #[arg(long, env = "HAKEEPER_BOOKMARK_INTERVAL", default_value = "15s", value_parser = parse_duration)]
    bookmark_interval: Duration,
}

fn main() -> std::process::ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Err(e) = telemetry::init(&cli.global.log, cli.global.log_format) {
        eprintln!("hakeeper: {e}");
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hakeeper: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Values from a Flink configuration file fill in what flags and environment left unset.
    if let (Command::Sidecar(args), Some(sub)) =
        (&mut cli.command, matches.subcommand_matches("sidecar"))
        && let Err(e) = args.apply_flink_conf(sub)
    {
        eprintln!("hakeeper: {e:#}");
        return std::process::ExitCode::FAILURE;
    }
    match runtime.block_on(run(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hakeeper: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Dev(args) => dev(args).await,
        Command::Sidecar(args) => sidecar(*args).await,
        Command::Demo(args) => demo(args).await,
        Command::Inspect(args) => inspect(args).await,
        Command::Decode(args) => decode(args),
        Command::Operator(args) => {
            let signals = ShutdownSignals::install()?;
            let shutdown = async move {
                let _ = signals.wait().await;
            };
            Ok(hakeeper::operator::cmd::operator(*args, shutdown).await?)
        }
        Command::Gc(args) => Ok(hakeeper::operator::cmd::gc(args).await?),
        Command::Cleanup(args) => Ok(hakeeper::operator::cmd::cleanup(args).await?),
        Command::Bench(BenchCommand::Failover(args)) => bench_failover(args).await,
        Command::Bench(BenchCommand::Checkpoints(args)) => bench_checkpoints(args).await,
        Command::Bench(BenchCommand::Operator(args)) => {
            let params = hakeeper::bench::operator::OperatorBenchParams {
                exe: std::env::current_exe().context("locating the hakeeper binary")?,
                clusters: args.clusters.max(1),
                rate: args.rate,
                changes: args.changes,
                rest: args.rest,
            };
            let report = hakeeper::bench::operator::run(params.clone()).await?;
            print!("{}", hakeeper::bench::operator::render(&params, &report));
            Ok(())
        }
        Command::DemoJobmanager(a) => Ok(hakeeper::demo::jobmanager_process(
            a.sidecar,
            a.name,
            a.job_id,
            a.checkpoint_interval,
        )
        .await?),
    }
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let timings = Timings {
        lease_duration: args.lease_duration,
        renew_deadline: args.renew_deadline,
        retry_period: args.retry_period,
    };
    timings.validate().map_err(anyhow::Error::msg)?;
    let params = hakeeper::demo::DemoParams {
        exe: std::env::current_exe().context("locating the hakeeper binary")?,
        timings,
        storage_dir: args
            .storage_dir
            .as_deref()
            .map(Location::parse)
            .transpose()?,
        s3: args.s3.options(),
        checkpoint_interval: args.checkpoint_interval,
        checkpoints_per_phase: 5,
        keep_running: args.keep_running,
        cluster: args
            .kubeconfig
            .map(|kubeconfig| hakeeper::demo::RealCluster {
                kubeconfig,
                context: args.context,
                namespace: args.namespace,
            }),
    };
    let report = hakeeper::demo::run(params).await?;
    if report.passed() {
        println!("\nhakeeper demo: every check held");
        Ok(())
    } else {
        anyhow::bail!("some checks failed (see above)")
    }
}

async fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    let (client, namespace) = args.kube.client().await?;
    let configmaps = hakeeper::inspect::collect(client, &namespace, &args.cluster_id).await?;
    let mut report =
        hakeeper::inspect::build(&args.cluster_id, &configmaps, jiff::Timestamp::now());
    report.namespace = Some(namespace);
    if args.verify {
        let dir = args
            .storage_dir
            .as_deref()
            .context("--verify needs --storage-dir")?;
        let dir = Location::parse(dir)?;
        let storage = hakeeper::storage::open(&dir, &args.s3.options()).await?;
        hakeeper::inspect::verify(&mut report, storage.as_ref()).await;
    }
    match args.output {
        InspectOutput::Table => print!("{}", hakeeper::inspect::render_table(&report)),
        InspectOutput::Json => println!("{}", hakeeper::inspect::render_json(&report)),
    }
    if let Some(summary) = &report.verification {
        if summary.dangling > 0 {
            anyhow::bail!(
                "{} dangling handle(s): payload missing or of another size than recorded",
                summary.dangling
            );
        }
        if summary.unchecked > 0 {
            anyhow::bail!(
                "{} handle(s) could not be checked against the storage",
                summary.unchecked
            );
        }
    }
    Ok(())
}

fn decode(args: DecodeArgs) -> anyhow::Result<()> {
    let value = if args.value == "-" {
        use std::io::Read;
        let mut buf = String::new();
        std::io::stdin()
            .take(hakeeper::handle::MAX_ENCODED_LEN as u64 * 2)
            .read_to_string(&mut buf)
            .context("reading standard input")?;
        buf
    } else {
        args.value
    };
    let handle = hakeeper::handle::decode_base64(&value)?;
    println!("{}", serde_json::to_string_pretty(&handle)?);
    Ok(())
}

async fn bench_failover(args: FailoverArgs) -> anyhow::Result<()> {
    let params = hakeeper::bench::FailoverParams {
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
    let clients = hakeeper::bench::clients::ClientFailoverParams {
        crash_rounds: args.client_rounds,
        hang_rounds: args.hang_rounds,
        timings: params.timings,
        client_timeout: args.client_timeout.unwrap_or(params.timings.renew_deadline),
        rest: args.rest,
    };
    let report = hakeeper::bench::failover(config.clone(), &namespace, &params).await?;
    print!("{}", report.render());
    let report = hakeeper::bench::clients::client_failover(config, &namespace, &clients).await?;
    print!("{}", report.render());
    if let Some(server) = server {
        server.shutdown().await?;
    }
    Ok(())
}

async fn bench_checkpoints(args: CheckpointBenchArgs) -> anyhow::Result<()> {
    let temporary = match &args.storage_dir {
        Some(_) => None,
        None => Some(tempfile_dir()?),
    };
    let dir = match (&args.storage_dir, &temporary) {
        (Some(url), _) => Location::parse(url)?,
        (None, Some(path)) => Location::file(path)?,
        (None, None) => unreachable!("a temporary directory when none is given"),
    };
    let storage = hakeeper::storage::open(&dir, &args.s3.options()).await?;
    let params = hakeeper::bench::checkpoints::CheckpointParams {
        storage,
        storage_dir: dir,
        count: args.count,
        payload_bytes: args.payload_bytes,
    };
    let report = hakeeper::bench::checkpoints::checkpoints(&params).await;
    if let Some(path) = temporary {
        let _ = std::fs::remove_dir_all(path);
    }
    print!("{}", report?.render());
    Ok(())
}

/// A fresh directory under the system's temporary directory.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let path =
        std::env::temp_dir().join(format!("hakeeper-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
    Ok(path)
}

async fn sidecar(args: SidecarArgs) -> anyhow::Result<()> {
    let signals = ShutdownSignals::install()?;
    let timings = args.timings.timings()?;
    let token = match &args.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the token file {}", path.display()))?;
            Some(parse_token(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    check_exposure(&args.listen, token.is_some()).map_err(anyhow::Error::msg)?;
    let liveness = args.liveness.liveness(!args.contend.is_empty(), &timings)?;
    let client_timeout = args.liveness.client_timeout(&timings)?;
    let (client, namespace) = args.kube.client().await?;
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let cluster_id = args
        .cluster_id
        .clone()
        .context("--cluster-id is required (as a flag, HAKEEPER_CLUSTER_ID, or kubernetes.cluster-id in --flink-conf)")?;
    tracing::info!(config = %args.describe(&namespace), "effective configuration");
    // Every permission it will use, asked for before anything is created.
    hakeeper::access::require(
        &client,
        &namespace,
        &hakeeper::access::SIDECAR,
        "hakeeper-sidecar",
    )
    .await?;
    let stores = args.storage.settings(&cluster_id).await?;
    let owner = match &args.owner_reference {
        Some(spec) => {
            let owner = hakeeper::owner::resolve(&client, &namespace, spec).await?;
            tracing::info!(kind = %owner.kind, name = %owner.name, uid = %owner.uid, "HA ConfigMaps are owned by it");
            Some(owner)
        }
        None => None,
    };
    let sidecar = Sidecar::new(SidecarConfig {
        client_timeout,
        stores,
        client,
        namespace: namespace.clone(),
        cluster_id: cluster_id.clone(),
        identity: identity.clone(),
        timings,
        owner,
    });
    let app = hakeeper::sidecar::router_with_token(sidecar.clone(), token);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (bound, listener) = match &args.listen {
        Listen::Tcp(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            let bound = Listen::Tcp(listener.local_addr().context("reading the bound address")?);
            (bound, serve::Listener::Tcp(listener))
        }
        Listen::Unix(path) => (args.listen.clone(), serve::Listener::Unix(bind_unix(path)?)),
    };
    let server = tokio::spawn(serve::serve(
        listener,
        app,
        serve::Limits::default(),
        stop_rx.clone(),
    ));
    let probes = match args.probe_listen {
        Some(addr) => Some(
            hakeeper::sidecar::serve_probes(sidecar.clone(), addr, stop_rx.clone())
                .await
                .with_context(|| format!("binding the probe listener {addr}"))?
                .1,
        ),
        None => None,
    };
    tracing::info!(cluster_id = %cluster_id, namespace = %namespace, identity = %identity, listen = %bound, token = args.token_file.is_some(), "sidecar starting");
    let mut prober = None;
    if let Some(address) = &args.address {
        match liveness {
            // Contended once the JobManager first answers its probe, and while it does.
            Some(Liveness::Http(probe)) => {
                prober = Some(tokio::spawn(hakeeper::sidecar::liveness::run(
                    sidecar.clone(),
                    probe,
                    args.contend.clone(),
                    address.clone(),
                    stop_rx.clone(),
                )));
            }
            _ => {
                for component in &args.contend {
                    sidecar
                        .contend_unowned(component.clone(), address.clone())
                        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
                }
            }
        }
    }
    println!("hakeeper sidecar: local API on {bound}");
    signals.wait().await?;
    tracing::info!("shutting down: no new connections, releasing leases");
    let _ = stop_tx.send(true);
    if let Some(prober) = prober {
        let _ = prober.await;
    }
    sidecar.shutdown().await;
    // Open SSE streams would hold graceful shutdown; do not wait for them for long.
    let servers = async {
        if let Some(probes) = probes {
            probes.await.context("probe server task")?;
        }
        server.await.context("API server task")
    };
    match tokio::time::timeout(Duration::from_secs(2), servers).await {
        Ok(joined) => joined?,
        Err(_) => tracing::warn!("API connections still open after 2 s; exiting anyway"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Bind a Unix socket readable and writable by this user only. A stale socket left by an
/// earlier run is replaced; any other file at the path is an error. The socket is bound in a
/// private (0700) directory beside the path, made 0600, then renamed into place, so it is
/// never reachable with looser permissions.
#[cfg(unix)]
fn bind_unix(path: &std::path::Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        anyhow::ensure!(
            meta.file_type().is_socket(),
            "{} exists and is not a socket",
            path.display()
        );
        anyhow::ensure!(
            std::os::unix::net::UnixStream::connect(path).is_err(),
            "{} is in use by another process",
            path.display()
        );
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("/"),
    };
    let private = parent.join(format!(".hk-{:08x}", fastrand::u32(..)));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .with_context(|| format!("creating {}", private.display()))?;
    let staged = private.join("s");
    let result = (|| {
        let listener = std::os::unix::net::UnixListener::bind(&staged)
            .with_context(|| format!("binding {}", path.display()))?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
        std::fs::rename(&staged, path)
            .with_context(|| format!("moving the socket to {}", path.display()))?;
        listener
            .set_nonblocking(true)
            .context("making the socket non-blocking")?;
        tokio::net::UnixListener::from_std(listener).context("registering the socket")
    })();
    let _ = std::fs::remove_dir_all(&private);
    result
}

async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let signals = ShutdownSignals::install()?;
    let server = DevServer::start(DevServerConfig {
        listen: args.listen,
        token: args.token,
        data_dir: args.data_dir.clone(),
        history_limit: args.history,
        bookmark_interval: args.bookmark_interval,
        namespace: args.namespace,
        restricted: Vec::new(),
    })
    .await?;
    let (kubeconfig, temporary) = match (&args.kubeconfig_out, &args.data_dir) {
        (Some(path), _) => (path.clone(), false),
        (None, Some(dir)) => (dir.join("kubeconfig"), false),
        (None, None) => (
            std::env::temp_dir().join(format!("hakeeper-dev-{}.kubeconfig", server.addr().port())),
            true,
        ),
    };
    server
        .write_kubeconfig(&kubeconfig)
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    println!(
        "hakeeper dev: Kubernetes API server listening on {}",
        server.url()
    );
    println!("kubeconfig: {}", kubeconfig.display());
    println!(
        "try: kubectl --kubeconfig {} get configmaps",
        kubeconfig.display()
    );
    tracing::info!(address = %server.addr(), kubeconfig = %kubeconfig.display(), "serving");
    signals.wait().await?;
    tracing::info!("shutting down");
    server.shutdown().await?;
    if temporary {
        let _ = std::fs::remove_file(&kubeconfig);
    }
    Ok(())
}

/// SIGINT and SIGTERM handlers, installed before anything is started so that a signal
/// arriving early is handled (released leases, exit 0) rather than killing the process.
struct ShutdownSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(ShutdownSignals {
                term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
                int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignals {})
    }

    async fn wait(mut self) -> anyhow::Result<()> {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        Ok(())
    }
}
