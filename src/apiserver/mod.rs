//! The embedded Kubernetes API server (`hakeeper dev`, and in-process for tests).
//!
//! It serves ConfigMaps and Events the way kube-apiserver does (discovery, optimistic
//! concurrency, merge patches, preconditions, label and field selectors, paging, watches
//! with bookmarks and 410 after compaction, `Status` errors), over plain HTTP on loopback.
//! For tests and benchmarks it counts requests and injects faults.
//!
//! - [`store`]: objects, resourceVersions, history (pure, synchronous)
//! - [`routes`]: HTTP mapping, discovery, watch streams
//! - [`faults`]: request counters and fault injection
//! - [`selector`], [`validate`], [`patch`], [`status`]: kube-apiserver's rules as plain functions

pub mod faults;
mod openapi;
pub mod patch;
pub mod proto;
mod routes;
pub mod selector;
mod serve;
pub mod status;
pub mod store;
mod table;
pub mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use faults::{Faults, PermissionCounts, RequestCounts};
use store::Store;

use crate::{Error, Result};

/// How to run the embedded API server.
#[derive(Debug, Clone)]
pub struct DevServerConfig {
    /// Address to bind; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Bearer token required on every API call (health endpoints stay open).
    pub token: Option<String>,
    /// Directory to persist state in, so that a restart keeps the objects.
    pub data_dir: Option<PathBuf>,
    /// Changes retained for watches; a watch from an older resourceVersion gets 410 Expired.
    pub history_limit: usize,
    /// How often a watch that asked for bookmarks gets one.
    pub bookmark_interval: Duration,
    /// Namespace of the written kubeconfig's context.
    pub namespace: String,
    /// Further bearer tokens, each for a user allowed only what its rules say (the admin
    /// `token`, or no token at all, may do everything). Requests beyond the rules get 403,
    /// and `SelfSubjectAccessReview`s answer from the same rules.
    pub restricted: Vec<RestrictedUser>,
}

/// A user of the embedded server with a bearer token and a set of allowed requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestrictedUser {
    pub name: String,
    pub token: String,
    /// (verb, API group, resource) triples, e.g. `("get", "", "configmaps")`.
    pub allowed: Vec<(String, String, String)>,
}

impl RestrictedUser {
    pub fn allows(&self, verb: &str, group: &str, resource: &str) -> bool {
        self.allowed
            .iter()
            .any(|(v, g, r)| v == verb && g == group && r == resource)
    }
}

impl Default for DevServerConfig {
    fn default() -> Self {
        DevServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            data_dir: None,
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(15),
            namespace: "default".into(),
            restricted: Vec::new(),
        }
    }
}

/// State shared by the request handlers.
pub(crate) struct Shared {
    pub store: Store,
    pub faults: Faults,
    pub token: Option<String>,
    pub restricted: Vec<RestrictedUser>,
    pub bookmark_interval: Duration,
    /// Bumped to ask the persister to write a snapshot.
    pub dirty: watch::Sender<u64>,
}

impl Shared {
    pub fn mark_dirty(&self) {
        self.dirty.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A running embedded API server. Dropping it without [`DevServer::shutdown`] aborts it.
pub struct DevServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    namespace: String,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
    persister: Option<JoinHandle<()>>,
}

impl DevServer {
    /// Bind, restore persisted state if any, and start serving.
    pub async fn start(config: DevServerConfig) -> Result<DevServer> {
        if !config.listen.ip().is_loopback() && config.token.is_none() {
            return Err(Error::Config(format!(
                "refusing to serve the API on non-loopback address {} without --token",
                config.listen
            )));
        }
        let store = Store::new(config.history_limit);
        let snapshot_path = config.data_dir.as_ref().map(|d| d.join("state.json"));
        if let Some(dir) = &config.data_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        if let Some(path) = &snapshot_path
            && path.exists()
        {
            let raw = std::fs::read(path)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            let snapshot: serde_json::Value =
                serde_json::from_slice(&raw).map_err(|source| Error::Json {
                    context: format!("parsing {}", path.display()),
                    source,
                })?;
            let count = store.restore(&snapshot).map_err(|e| {
                Error::Config(format!(
                    "{} is not a hakeeper snapshot: {e}",
                    path.display()
                ))
            })?;
            tracing::info!(objects = count, path = %path.display(), "restored state");
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| Error::io(format!("binding {}", config.listen), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))?;
        let (dirty, dirty_rx) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            store,
            faults: Faults::new(),
            token: config.token.clone(),
            restricted: config.restricted.clone(),
            bookmark_interval: config.bookmark_interval,
            dirty,
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let app = routes::router(shared.clone()).layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            count_permission,
        ));
        let server = tokio::spawn(serve::serve(
            listener,
            app,
            shared.clone(),
            shutdown_rx.clone(),
        ));
        let persister = snapshot_path
            .map(|path| tokio::spawn(persist_loop(shared.clone(), path, dirty_rx, shutdown_rx)));
        Ok(DevServer {
            addr,
            shared,
            namespace: config.namespace,
            shutdown,
            server: Some(server),
            persister,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig (YAML) that points at this server.
    pub fn kubeconfig_yaml(&self) -> String {
        let user = match &self.shared.token {
            Some(t) => format!("    token: {t}\n"),
            None => "    {}\n".to_string(),
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: hakeeper-dev\n  cluster:\n    server: {url}\ncontexts:\n- name: hakeeper-dev\n  context:\n    cluster: hakeeper-dev\n    user: hakeeper-dev\n    namespace: {ns}\ncurrent-context: hakeeper-dev\nusers:\n- name: hakeeper-dev\n  user:\n{user}",
            url = self.url(),
            ns = self.namespace,
        )
    }

    /// Write [`Self::kubeconfig_yaml`] to `path` (mode 0600: it may hold the token).
    /// The token of the restricted user `name`, if there is one.
    pub fn restricted_token(&self, name: &str) -> Option<String> {
        self.shared
            .restricted
            .iter()
            .find(|u| u.name == name)
            .map(|u| u.token.clone())
    }

    pub fn write_kubeconfig(&self, path: &Path) -> Result<()> {
        write_private(path, self.kubeconfig_yaml().as_bytes())
    }

    /// A kube-rs client configuration for this server, built from its kubeconfig.
    pub async fn kube_config(&self) -> Result<kube::Config> {
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml())
            .map_err(|e| Error::KubeConfig(e.to_string()))?;
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(|e| Error::KubeConfig(e.to_string()))
    }

    /// A kube-rs client for this server.
    pub async fn client(&self) -> Result<kube::Client> {
        Ok(kube::Client::try_from(self.kube_config().await?)?)
    }

    /// Fault injection and request counters.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Request counts by verb and resource since start (or the last reset).
    pub fn request_counts(&self) -> RequestCounts {
        self.shared.faults.counts()
    }

    /// Resource requests by `(verb, API group, resource)` since start (or the last reset).
    pub fn permission_counts(&self) -> PermissionCounts {
        self.shared.faults.permission_counts()
    }

    /// Drop the retained change history (an etcd compaction): older watches get 410.
    pub fn compact(&self) {
        self.shared.store.compact();
    }

    /// The store's current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.resource_version()
    }

    /// Stop serving, close every connection, write the last snapshot, and wait for it all.
    pub async fn shutdown(mut self) -> Result<()> {
        let _ = self.shutdown.send(true);
        if let Some(server) = self.server.take() {
            server
                .await
                .map_err(|e| Error::Config(format!("server task failed: {e}")))?;
        }
        if let Some(persister) = self.persister.take() {
            persister
                .await
                .map_err(|e| Error::Config(format!("persister task failed: {e}")))?;
        }
        Ok(())
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for task in [self.server.take(), self.persister.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
    }
}

/// Count every resource request that arrives (authenticated or not) by `(verb, API group,
/// resource)` too, as RBAC names what it needs (the counters of `routes` know no group).
/// `SelfSubjectAccessReview`s and discovery are no resource requests.
async fn count_permission(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(target) = routes::classify(req.uri().path())
        && let Ok(axum::extract::Query(query)) = axum::extract::Query::<
            std::collections::HashMap<String, String>,
        >::try_from_uri(req.uri())
    {
        let verb = routes::verb(req.method(), &target, &query);
        let group = target
            .view
            .group_version()
            .rsplit_once('/')
            .map_or("", |(group, _)| group);
        shared
            .faults
            .count_permission(verb, group, target.view.resource().plural());
    }
    next.run(req).await
}

/// Write snapshots whenever the store changed, coalescing bursts, and once more at shutdown.
async fn persist_loop(
    shared: Arc<Shared>,
    path: PathBuf,
    mut dirty: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stop = tokio::select! {
            changed = dirty.changed() => changed.is_err(),
            _ = shutdown.changed() => true,
        };
        dirty.borrow_and_update();
        let bytes = shared.store.snapshot().to_string();
        let path2 = path.clone();
        let written =
            tokio::task::spawn_blocking(move || write_private(&path2, bytes.as_bytes())).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "could not persist state"),
            Err(e) => tracing::error!(error = %e, "persist task failed"),
        }
        if stop {
            return;
        }
    }
}

/// Write through a temporary file, fsync and rename, with mode 0600.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("writing {}", path.display()), e)
    })
}
