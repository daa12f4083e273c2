//! The `operator`, `gc` and `cleanup` commands: their flags and what runs them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::access::Permission;
use crate::duration::parse_duration;
use crate::kubeconn::KubeArgs;
use crate::layout::ClusterId;
use crate::lease::Timings;
use crate::storage::S3Args;
use crate::{Error, Result};

use super::deliver::ChannelSettings;
use super::payloads::{self, Stores};
use super::track::Settings;
use super::watch::Namespaces;
use super::{OperatorConfig, parse_storage_dir};

/// `--kubeconfig` and `--context` (the operator takes its namespaces separately).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnectionArgs {
    /// Kubeconfig file to use [default: $KUBECONFIG, else the in-cluster service account,
    /// else ~/.kube/config]
    #[arg(long, env = "HAKEEPER_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use [default: the current context]
    #[arg(long, env = "HAKEEPER_CONTEXT")]
    pub context: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct OperatorArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// A namespace to watch (repeatable, or comma-separated) [default: the operator's own]
    #[arg(long, short = 'n', env = "HAKEEPER_NAMESPACES", value_delimiter = ',')]
    pub namespace: Vec<String>,
    /// Watch every namespace (needs a ClusterRole)
    #[arg(
        long,
        short = 'A',
        env = "HAKEEPER_ALL_NAMESPACES",
        conflicts_with = "namespace"
    )]
    pub all_namespaces: bool,
    /// An extra label selector for the HA ConfigMaps, e.g. `team=streaming`
    #[arg(long, env = "HAKEEPER_CLUSTER_SELECTOR")]
    pub cluster_selector: Option<String>,
    /// Where the operator's lock and state ConfigMaps live [default: the pod's namespace,
    /// else the kubeconfig context's, else "default"]
    #[arg(long, env = "HAKEEPER_OPERATOR_NAMESPACE")]
    pub operator_namespace: Option<String>,
    /// This replica's identity in the operator's lock [default: $POD_NAME, else a UUID]
    #[arg(long, env = "HAKEEPER_IDENTITY")]
    pub identity: Option<String>,
    /// Address of the admin server (`/livez`, `/readyz`, `/metrics`)
    #[arg(long, env = "HAKEEPER_ADMIN_LISTEN", default_value = "0.0.0.0:9090")]
    pub admin_listen: SocketAddr,
    /// Warn when a component has had no live leader for this long [default: twice the lease
    /// duration its lock records]
    #[arg(long, env = "HAKEEPER_LEADERLESS_AFTER", value_parser = parse_duration)]
    pub leaderless_after: Option<Duration>,
    /// Warn when a RUNNING job has had no new checkpoint for this long [default: off]
    #[arg(long, env = "HAKEEPER_CHECKPOINT_STALL_AFTER", value_parser = parse_duration)]
    pub checkpoint_stall_after: Option<Duration>,
    /// POST every alert as JSON to this URL (repeatable)
    #[arg(long, env = "HAKEEPER_ALERT_WEBHOOK", value_delimiter = ',')]
    pub alert_webhook: Vec<String>,
    /// A file holding a bearer token for the webhooks (read at each delivery)
    #[arg(long, env = "HAKEEPER_ALERT_WEBHOOK_TOKEN_FILE")]
    pub alert_webhook_token_file: Option<PathBuf>,
    /// Alertmanager's base URL; alerts go to its `/api/v2/alerts`
    #[arg(long, env = "HAKEEPER_ALERTMANAGER_URL")]
    pub alertmanager_url: Option<String>,
    /// Timeout of one webhook or Alertmanager request
    #[arg(long, env = "HAKEEPER_ALERT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub alert_timeout: Duration,
    /// Attempts per alert and receiver (jittered exponential backoff between them)
    #[arg(long, env = "HAKEEPER_ALERT_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub alert_attempts: u32,
    /// Alerts queued per channel; beyond, they are dropped and counted
    #[arg(long, env = "HAKEEPER_ALERT_QUEUE", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub alert_queue: u32,
    /// Do not record Kubernetes Events
    #[arg(long, env = "HAKEEPER_NO_EVENTS")]
    pub no_events: bool,
    /// Do not check handles against payloads or look for orphans (no storage access)
    #[arg(long, env = "HAKEEPER_NO_VERIFY")]
    pub no_verify: bool,
    /// How often every handle is checked again and orphans are looked for
    #[arg(long, env = "HAKEEPER_VERIFY_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub verify_interval: Duration,
    /// At most this many storage requests per second
    #[arg(
        long,
        env = "HAKEEPER_MAX_STORAGE_OPS_PER_SECOND",
        default_value_t = 20.0
    )]
    pub max_storage_ops_per_second: f64,
    /// An unreferenced payload is an orphan once it is this old
    #[arg(long, env = "HAKEEPER_ORPHAN_GRACE", default_value = "1h", value_parser = parse_duration)]
    pub orphan_grace: Duration,
    /// Delete orphans (otherwise they are only reported)
    #[arg(long, env = "HAKEEPER_GC")]
    pub gc: bool,
    #[command(flatten)]
    pub s3: S3Args,
    /// The operator lock's lease duration
    #[arg(long, env = "HAKEEPER_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// The operator lock's renew deadline
    #[arg(long, env = "HAKEEPER_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub renew_deadline: Duration,
    /// The operator lock's retry period
    #[arg(long, env = "HAKEEPER_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub retry_period: Duration,
}

/// What the operator does in its own namespace: its lock (the sidecar's verbs, and the
/// election's `LeaderElection` Events on it, optional) and its state (created, then
/// merge-patched).
pub const OWN: [Permission; 8] = [
    p("get", "", "configmaps"),
    p("list", "", "configmaps"),
    p("watch", "", "configmaps"),
    p("create", "", "configmaps"),
    p("update", "", "configmaps"),
    p("patch", "", "configmaps"),
    p("create", "events.k8s.io", "events"),
    p("patch", "events.k8s.io", "events"),
];

/// What it does in every watched namespace: watch the HA ConfigMaps, read them again before
/// deleting an orphan, and record Events on them (optional; a new leader lists them to see
/// whether an alert it sends again was recorded already).
pub const WATCHED: [Permission; 6] = [
    p("get", "", "configmaps"),
    p("list", "", "configmaps"),
    p("watch", "", "configmaps"),
    p("create", "events.k8s.io", "events"),
    p("patch", "events.k8s.io", "events"),
    p("list", "events.k8s.io", "events"),
];

const fn p(verb: &'static str, group: &'static str, resource: &'static str) -> Permission {
    Permission {
        verb,
        group,
        resource,
    }
}

fn kube_args(c: &ConnectionArgs, namespace: Option<String>) -> KubeArgs {
    KubeArgs {
        kubeconfig: c.kubeconfig.clone(),
        context: c.context.clone(),
        namespace,
    }
}

impl OperatorArgs {
    pub fn timings(&self) -> Result<Timings> {
        let t = Timings {
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        };
        t.validate().map_err(Error::Config)?;
        Ok(t)
    }

    fn check(&self) -> Result<()> {
        for url in self
            .alert_webhook
            .iter()
            .chain(self.alertmanager_url.iter())
        {
            let ok = url
                .parse::<axum::http::Uri>()
                .ok()
                .filter(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
            if ok.is_none() {
                return Err(Error::Config(format!(
                    "{url:?} is not an http:// or https:// URL (--alert-webhook, --alertmanager-url)"
                )));
            }
        }
        if !(self.max_storage_ops_per_second.is_finite() && self.max_storage_ops_per_second > 0.0) {
            return Err(Error::Config(
                "--max-storage-ops-per-second must be a positive number".into(),
            ));
        }
        if let Some(path) = &self.alert_webhook_token_file {
            std::fs::read_to_string(path).map_err(|e| {
                Error::Config(format!(
                    "--alert-webhook-token-file {}: {e}",
                    path.display()
                ))
            })?;
        }
        Ok(())
    }
}

/// Run the operator until `shutdown` completes.
pub async fn operator(
    args: OperatorArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    args.check()?;
    let timings = args.timings()?;
    let (client, default_ns) = kube_args(&args.connection, args.operator_namespace.clone())
        .client()
        .await?;
    let own_namespace = default_ns;
    let namespaces = if args.all_namespaces {
        Namespaces::All
    } else if args.namespace.is_empty() {
        Namespaces::Only(vec![own_namespace.clone()])
    } else {
        let mut list = args.namespace.clone();
        list.sort();
        list.dedup();
        Namespaces::Only(list)
    };
    crate::access::require(&client, &own_namespace, &OWN, "hakeeper-operator").await?;
    match &namespaces {
        Namespaces::All => {
            crate::access::require(&client, "", &WATCHED, "hakeeper-operator-watch").await?
        }
        Namespaces::Only(list) => {
            for ns in list {
                crate::access::require(&client, ns, &WATCHED, "hakeeper-operator-watch").await?;
            }
        }
    }
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("POD_NAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let admin = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .map_err(|e| {
            Error::io(
                format!("binding the admin address {}", args.admin_listen),
                e,
            )
        })?;
    let bound = admin
        .local_addr()
        .map_err(|e| Error::io("reading the admin address", e))?;
    tracing::info!(admin = %bound, "admin server listening (/livez, /readyz, /metrics)");
    // The first line on standard output says where (tests and scripts read it).
    println!("hakeeper operator: admin on http://{bound}");
    let config = OperatorConfig {
        namespaces,
        cluster_selector: args.cluster_selector.clone(),
        own_namespace,
        identity,
        timings,
        settings: Settings {
            leaderless_after: args.leaderless_after,
            fallback_lease: Duration::from_secs(15),
            checkpoint_stall_after: args.checkpoint_stall_after,
        },
        channels: ChannelSettings {
            http: super::deliver::http_client(args.alert_timeout).map_err(Error::Config)?,
            webhooks: args.alert_webhook.clone(),
            webhook_token_file: args.alert_webhook_token_file.clone(),
            alertmanager: args.alertmanager_url.clone(),
            attempts: args.alert_attempts,
            queue: args.alert_queue as usize,
            alertmanager_resend: Duration::from_secs(60),
            generator_url: None,
            events: !args.no_events,
        },
        verify_interval: args.verify_interval,
        storage_ops_per_second: args.max_storage_ops_per_second,
        orphan_grace: args.orphan_grace,
        gc: args.gc,
        verify: !args.no_verify,
        s3: args.s3.options(),
        drain: Duration::from_secs(5),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let run = super::run(client, config, admin, stop_rx);
    let mut run = std::pin::pin!(run);
    tokio::select! {
        r = &mut run => return r,
        _ = shutdown => {}
    }
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    run.await
}

#[derive(Debug, Clone, clap::Args)]
pub struct GcArgs {
    /// Flink cluster id (`kubernetes.cluster-id`)
    #[arg(long, env = "HAKEEPER_CLUSTER_ID")]
    pub cluster_id: ClusterId,
    /// Delete the orphans (otherwise only list them)
    #[arg(long, env = "HAKEEPER_DELETE")]
    pub delete: bool,
    /// An unreferenced payload is an orphan once it is this old
    #[arg(long, env = "HAKEEPER_ORPHAN_GRACE", default_value = "1h", value_parser = parse_duration)]
    pub orphan_grace: Duration,
    /// Flink's `high-availability.storageDir` [default: told from the handles]
    #[arg(long, env = "HAKEEPER_STORAGE_DIR")]
    pub storage_dir: Option<String>,
    /// Print the report as JSON
    #[arg(long, env = "HAKEEPER_JSON")]
    pub json: bool,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `hakeeper gc`: the operator's orphan collection, once.
pub async fn gc(args: GcArgs) -> Result<()> {
    let (client, namespace) = args.kube.client().await?;
    let dir = parse_storage_dir(args.storage_dir.as_deref())?;
    let stores = Stores::new(args.s3.options());
    let report = payloads::collect_garbage(
        client,
        &namespace,
        &args.cluster_id,
        dir.as_ref(),
        &stores,
        args.orphan_grace,
        args.delete,
    )
    .await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report serializes")
        );
        return Ok(());
    }
    print!("{}", render_gc(&report, args.delete));
    Ok(())
}

fn render_gc(r: &payloads::GcReport, delete: bool) -> String {
    let mut out = String::new();
    let Some(dir) = &r.dir else {
        out.push_str(&format!(
            "cluster {} in namespace {}: no handle names its HA directory; pass --storage-dir\n",
            r.cluster, r.namespace
        ));
        return out;
    };
    out.push_str(&format!(
        "HA directory {dir}: {} objects, {} referenced, {} younger than the grace period, {} not payloads (left alone)\n",
        r.objects, r.referenced, r.too_young, r.unknown
    ));
    for p in &r.outside {
        out.push_str(&format!(
            "handle outside the HA directory (left alone): {p}\n"
        ));
    }
    for e in &r.undecodable {
        out.push_str(&format!(
            "handle entry that cannot be decoded: {e} (no orphan is deleted while there is one)\n"
        ));
    }
    if r.orphans.is_empty() {
        out.push_str("no orphans\n");
        return out;
    }
    if delete {
        for p in &r.deleted {
            out.push_str(&format!("deleted {p}\n"));
        }
        for p in &r.kept {
            let why = if r.undecodable.is_empty() {
                "referenced again, or the delete failed"
            } else {
                "a handle entry cannot be decoded"
            };
            out.push_str(&format!("kept {p} ({why})\n"));
        }
        out.push_str(&format!(
            "deleted {} orphan(s), {} bytes\n",
            r.deleted.len(),
            r.deleted_bytes
        ));
    } else {
        for o in &r.orphans {
            out.push_str(&format!("would delete {} ({} bytes)\n", o.path, o.size));
        }
        out.push_str(&format!(
            "{} orphan(s), {} bytes; run again with --delete to delete them\n",
            r.orphans.len(),
            r.orphan_bytes
        ));
    }
    out
}

#[derive(Debug, Clone, clap::Args)]
pub struct CleanupArgs {
    /// Flink cluster id (`kubernetes.cluster-id`) of the cluster that is gone for good
    #[arg(long, env = "HAKEEPER_CLUSTER_ID")]
    pub cluster_id: ClusterId,
    /// Go on although a component has a live leader
    #[arg(long, env = "HAKEEPER_FORCE")]
    pub force: bool,
    /// Flink's `high-availability.storageDir` [default: told from the handles]
    #[arg(long, env = "HAKEEPER_STORAGE_DIR")]
    pub storage_dir: Option<String>,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `hakeeper cleanup`: remove a cluster's payloads, then its HA ConfigMaps.
pub async fn cleanup(args: CleanupArgs) -> Result<()> {
    let (client, namespace) = args.kube.client().await?;
    let dir = parse_storage_dir(args.storage_dir.as_deref())?;
    let stores = Stores::new(args.s3.options());
    let r = payloads::cleanup(
        client,
        &namespace,
        &args.cluster_id,
        dir.as_ref(),
        &stores,
        args.force,
    )
    .await?;
    match &r.dir {
        Some(d) => println!("HA directory {d}"),
        None => println!(
            "no handle names the HA directory and no --storage-dir was given: payloads not removed"
        ),
    }
    for p in &r.payloads_deleted {
        println!("deleted {p}");
    }
    for p in &r.outside {
        println!("left alone (outside the HA directory): {p}");
    }
    for c in &r.configmaps_deleted {
        println!("deleted configmap/{c}");
    }
    println!(
        "removed {} payload(s) ({} bytes) and {} ConfigMap(s) of cluster {} in namespace {namespace}",
        r.payloads_deleted.len(),
        r.payload_bytes,
        r.configmaps_deleted.len(),
        args.cluster_id
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_says_what_it_would_delete_and_how_to_delete() {
        let r = payloads::GcReport {
            cluster: "rta".into(),
            namespace: "ns".into(),
            dir: Some("s3://b/ha/rta".into()),
            objects: 3,
            referenced: 1,
            orphans: vec![payloads::Orphan {
                path: "s3://b/ha/rta/completedCheckpoint1".into(),
                size: 42,
            }],
            orphan_bytes: 42,
            ..Default::default()
        };
        let text = render_gc(&r, false);
        assert!(
            text.contains("would delete s3://b/ha/rta/completedCheckpoint1 (42 bytes)"),
            "{text}"
        );
        assert!(text.contains("--delete"), "{text}");
        let none = payloads::GcReport { dir: None, ..r };
        assert!(render_gc(&none, false).contains("--storage-dir"));
    }
}
