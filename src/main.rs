//! The `hakeeper` command line. Everything of substance lives in the library; this file
//! parses arguments, sets up logging and maps errors to exit codes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use hakeeper::apiserver::{DevServer, DevServerConfig};
use hakeeper::duration::parse_duration;
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
    /// Serve an embedded Kubernetes API server (ConfigMaps and Events) on loopback and
    /// write a kubeconfig for it, so hakeeper and kubectl run without a cluster.
    Dev(DevArgs),
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
    let cli = Cli::parse();
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
    }
}

async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let server = DevServer::start(DevServerConfig {
        listen: args.listen,
        token: args.token,
        data_dir: args.data_dir.clone(),
        history_limit: args.history,
        bookmark_interval: args.bookmark_interval,
        namespace: args.namespace,
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
    shutdown_signal().await?;
    tracing::info!("shutting down");
    server.shutdown().await?;
    if temporary {
        let _ = std::fs::remove_file(&kubeconfig);
    }
    Ok(())
}

/// Wait for SIGINT or SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
