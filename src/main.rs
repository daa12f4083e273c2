//! The `hakeeper` command line. Every command lives in the library (`hakeeper::cmd`, one
//! module each, its flags next to what runs it); this file parses arguments, sets up logging,
//! applies `--flink-conf`, dispatches and maps errors to exit codes.

use clap::{Args, Parser, Subcommand};
use hakeeper::cmd::bench::BenchCommand;
use hakeeper::cmd::decode::DecodeArgs;
use hakeeper::cmd::demo::{DemoArgs, DemoJobmanagerArgs};
use hakeeper::cmd::dev::DevArgs;
use hakeeper::cmd::inspect::InspectArgs;
use hakeeper::cmd::sidecar::SidecarArgs;
use hakeeper::cmd::{self, CleanupArgs, GcArgs, OperatorArgs, ShutdownSignals};
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
    Operator(Box<OperatorArgs>),
    /// List a cluster's orphaned payloads (unreferenced, older than the grace period), and
    /// with --delete delete them.
    Gc(GcArgs),
    /// Remove a cluster that is gone for good: its payloads, then its HA ConfigMaps.
    Cleanup(CleanupArgs),
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
        return failed(e);
    }
    match runtime.block_on(run(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => failed(e),
    }
}

/// Print the error with its sources, each after `: `, and exit 1.
fn failed(error: hakeeper::Error) -> std::process::ExitCode {
    eprintln!("hakeeper: {:#}", anyhow::Error::from(error));
    std::process::ExitCode::FAILURE
}

async fn run(command: Command) -> hakeeper::Result<()> {
    match command {
        Command::Dev(args) => cmd::dev::run(args).await,
        Command::Sidecar(args) => cmd::sidecar::run(*args).await,
        Command::Demo(args) => cmd::demo::run(args).await,
        Command::Inspect(args) => cmd::inspect::run(args).await,
        Command::Decode(args) => cmd::decode::run(args),
        Command::Operator(args) => {
            let signals = ShutdownSignals::install()?;
            cmd::operator(*args, signals.received()).await
        }
        Command::Gc(args) => cmd::gc(args).await,
        Command::Cleanup(args) => cmd::cleanup(args).await,
        Command::Bench(command) => cmd::bench::run(command).await,
        Command::DemoJobmanager(args) => cmd::demo::run_jobmanager(args).await,
    }
}
