//! `hakeeper sidecar`: its flags, what leadership depends on (`liveness`), how
//! `--flink-conf` fills in what the flags left unset (`config`), and the run itself.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::args::{StorageArgs, TimingArgs};
use super::{LOG_TARGET, ShutdownSignals};
use crate::Result;
use crate::kubeconn::KubeArgs;
use crate::layout::{ClusterId, Component};
use crate::owner::OwnerSpec;
use crate::sidecar::listen::{Listen, check_exposure, parse_token};
use crate::sidecar::liveness::Liveness;
use crate::sidecar::serve;
use crate::sidecar::{Sidecar, SidecarConfig};

mod config;
mod liveness;
mod unix;

pub use liveness::LivenessArgs;

#[derive(Debug, Args)]
pub struct SidecarArgs {
    /// Flink cluster id (`kubernetes.cluster-id`); prefixes the HA ConfigMaps [required,
    /// here or in --flink-conf]
    #[arg(long, env = "HAKEEPER_CLUSTER_ID")]
    pub cluster_id: Option<ClusterId>,
    /// Flink's `flink-conf.yaml` or `config.yaml`: the cluster id, namespace, storage dir,
    /// election timings, retained checkpoints and S3 settings are taken from it unless given
    /// as flags or in the environment. Read as YAML if named `config.yaml` (Flink 1.19+),
    /// else line by line as Flink reads `flink-conf.yaml`
    #[arg(long, env = "HAKEEPER_FLINK_CONF")]
    pub flink_conf: Option<PathBuf>,
    /// Address of the local API: `HOST:PORT`, or `unix:/path` for a socket (created 0600)
    #[arg(long, env = "HAKEEPER_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: Listen,
    /// File holding a token that every `/v1` call must present as `Authorization: Bearer`
    /// (required to listen off loopback)
    #[arg(long, env = "HAKEEPER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Also serve only `/livez`, `/readyz` and `/metrics`, without a token, on this
    /// `HOST:PORT` (e.g. `0.0.0.0:9091`, for kubelet probes and Prometheus on the pod's IP)
    #[arg(long, env = "HAKEEPER_PROBE_LISTEN")]
    pub probe_listen: Option<SocketAddr>,
    /// Components to contend for from the start (also possible later through the API)
    #[arg(
        long,
        env = "HAKEEPER_CONTEND",
        value_delimiter = ',',
        requires = "address"
    )]
    pub contend: Vec<Component>,
    /// The address to publish as leader for the components of --contend
    #[arg(long, env = "HAKEEPER_ADDRESS")]
    pub address: Option<String>,
    #[command(flatten)]
    pub liveness: LivenessArgs,
    /// Holder identity in the lock [default: a fresh UUID per process]
    #[arg(long, env = "HAKEEPER_IDENTITY")]
    pub identity: Option<String>,
    #[command(flatten)]
    pub timings: TimingArgs,
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Owner of created HA ConfigMaps: `Kind/name` (e.g. `Deployment/my-flink`),
    /// `apiVersion/Kind/name`, or `apiVersion/Kind/name/uid`; it must exist (and its uid
    /// match) at start [default: none, so HA state survives deleting the Deployment]
    #[arg(long, env = "HAKEEPER_OWNER_REFERENCE")]
    pub owner_reference: Option<OwnerSpec>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// Run the sidecar until SIGINT or SIGTERM, then release its leases and stop.
pub async fn run(args: SidecarArgs) -> Result<()> {
    let signals = ShutdownSignals::install()?;
    let timings = args.timings.timings()?;
    let token = match &args.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                super::context(format!("reading the token file {}", path.display()), e)
            })?;
            Some(
                parse_token(&text)
                    .map_err(|e| super::failure(format!("{}: {e}", path.display())))?,
            )
        }
        None => None,
    };
    check_exposure(&args.listen, token.is_some()).map_err(super::failure)?;
    let liveness = args.liveness.liveness(!args.contend.is_empty(), &timings)?;
    let client_timeout = args.liveness.client_timeout(&timings)?;
    let (client, namespace) = args.kube.client().await?;
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let cluster_id = args.cluster_id.clone().ok_or_else(|| {
        super::failure("--cluster-id is required (as a flag, HAKEEPER_CLUSTER_ID, or kubernetes.cluster-id in --flink-conf)")
    })?;
    tracing::info!(target: LOG_TARGET, config = %args.describe(&namespace), "effective configuration");
    // Every permission it will use, asked for before anything is created.
    crate::access::require(
        &client,
        &namespace,
        &crate::access::SIDECAR,
        "hakeeper-sidecar",
    )
    .await?;
    let stores = args.storage.settings(&cluster_id).await?;
    let owner = match &args.owner_reference {
        Some(spec) => {
            let owner = crate::owner::resolve(&client, &namespace, spec).await?;
            tracing::info!(target: LOG_TARGET, kind = %owner.kind, name = %owner.name, uid = %owner.uid, "HA ConfigMaps are owned by it");
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
    let app = crate::sidecar::router_with_token(sidecar.clone(), token);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (bound, listener) = match &args.listen {
        Listen::Tcp(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| super::context(format!("binding {addr}"), e))?;
            let bound = Listen::Tcp(
                listener
                    .local_addr()
                    .map_err(|e| super::context("reading the bound address", e))?,
            );
            (bound, serve::Listener::Tcp(listener))
        }
        Listen::Unix(path) => (
            args.listen.clone(),
            serve::Listener::Unix(unix::bind(path)?),
        ),
    };
    let server = tokio::spawn(serve::serve(
        listener,
        app,
        serve::Limits::default(),
        stop_rx.clone(),
    ));
    let probes = match args.probe_listen {
        Some(addr) => Some(
            crate::sidecar::serve_probes(sidecar.clone(), addr, stop_rx.clone())
                .await
                .map_err(|e| super::context(format!("binding the probe listener {addr}"), e))?
                .1,
        ),
        None => None,
    };
    tracing::info!(target: LOG_TARGET, cluster_id = %cluster_id, namespace = %namespace, identity = %identity, listen = %bound, token = args.token_file.is_some(), "sidecar starting");
    let mut prober = None;
    if let Some(address) = &args.address {
        match liveness {
            // Contended once the JobManager first answers its probe, and while it does.
            Some(Liveness::Http(probe)) => {
                prober = Some(tokio::spawn(crate::sidecar::liveness::run(
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
                        .map_err(|e| super::failure(e.message))?;
                }
            }
        }
    }
    println!("hakeeper sidecar: local API on {bound}");
    signals.wait().await?;
    tracing::info!(target: LOG_TARGET, "shutting down: no new connections, releasing leases");
    let _ = stop_tx.send(true);
    if let Some(prober) = prober {
        let _ = prober.await;
    }
    sidecar.shutdown().await;
    // Open SSE streams would hold graceful shutdown; do not wait for them for long.
    let servers = async {
        if let Some(probes) = probes {
            probes
                .await
                .map_err(|e| super::context("probe server task", e))?;
        }
        server
            .await
            .map_err(|e| super::context("API server task", e))
    };
    match tokio::time::timeout(Duration::from_secs(2), servers).await {
        Ok(joined) => joined?,
        Err(_) => {
            tracing::warn!(target: LOG_TARGET, "API connections still open after 2 s; exiting anyway")
        }
    }
    tracing::info!(target: LOG_TARGET, "stopped");
    Ok(())
}
