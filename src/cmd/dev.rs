//! `hakeeper dev`: the embedded Kubernetes API server on its own, with a kubeconfig for it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{LOG_TARGET, ShutdownSignals};
use crate::Result;
use crate::apiserver::{DevServer, DevServerConfig};
use crate::duration::parse_duration;

// The doc comments are the flags' help: `<data-dir>` there is a placeholder, not HTML.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, env = "HAKEEPER_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Where to write the kubeconfig [default: <data-dir>/kubeconfig, else a file in the
    /// temporary directory named after the port]
    #[arg(long, env = "HAKEEPER_KUBECONFIG_OUT")]
    pub kubeconfig_out: Option<PathBuf>,
    /// Persist the objects here so that a restart keeps them [default: memory only]
    #[arg(long, env = "HAKEEPER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Require this bearer token on every API call (required off loopback)
    #[arg(long, env = "HAKEEPER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Namespace of the kubeconfig's context
    #[arg(long, env = "HAKEEPER_DEV_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Changes retained for watches; older resourceVersions get 410 Expired
    #[arg(long, env = "HAKEEPER_HISTORY", default_value_t = 10_000)]
    pub history: usize,
    /// Interval of watch bookmarks
    #[arg(long, env = "HAKEEPER_BOOKMARK_INTERVAL", default_value = "15s", value_parser = parse_duration)]
    pub bookmark_interval: Duration,
}

/// Serve until SIGINT or SIGTERM; a kubeconfig written to a temporary file is removed then.
pub async fn run(args: DevArgs) -> Result<()> {
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
        .map_err(|e| super::context(format!("writing {}", kubeconfig.display()), e))?;
    println!(
        "hakeeper dev: Kubernetes API server listening on {}",
        server.url()
    );
    println!("kubeconfig: {}", kubeconfig.display());
    println!(
        "try: kubectl --kubeconfig {} get configmaps",
        kubeconfig.display()
    );
    tracing::info!(target: LOG_TARGET, address = %server.addr(), kubeconfig = %kubeconfig.display(), "serving");
    signals.wait().await?;
    tracing::info!(target: LOG_TARGET, "shutting down");
    server.shutdown().await?;
    if temporary {
        let _ = std::fs::remove_file(&kubeconfig);
    }
    Ok(())
}
