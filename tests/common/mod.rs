//! Test harness: an API server for each test. By default the embedded one, in process;
//! with `HAKEEPER_TEST_KUBECONFIG` set, the cluster of that kubeconfig, in a fresh
//! namespace that is deleted afterwards. Tests that need fault injection skip themselves
//! against a real cluster and say why.

#![allow(dead_code)]

pub mod client;
pub mod faults;
pub mod ha;
pub mod operator;
pub mod process;
pub mod s3;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;

use hakeeper::apiserver::{DevServer, DevServerConfig};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, PostParams};

pub const REAL_CLUSTER_ENV: &str = "HAKEEPER_TEST_KUBECONFIG";
/// A file to which each test skipped on a real cluster appends a line: test, and why.
pub const SKIP_LOG_ENV: &str = "HAKEEPER_TEST_SKIP_LOG";

/// Record a skip where CI can count it (the test harness hides a passing test's output).
pub fn note_skip(why: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os(SKIP_LOG_ENV) else {
        return;
    };
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_string();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        // One write per line, so that concurrent tests' lines do not interleave.
        let _ = f.write_all(format!("{test}: {why}\n").as_bytes());
    }
}

pub struct TestCluster {
    /// The embedded server, when the test runs against it.
    pub server: Option<DevServer>,
    pub client: kube::Client,
    pub namespace: String,
    /// A kubeconfig for kubectl and child processes.
    pub kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
    /// `cleanup` ran.
    cleaned: bool,
}

impl TestCluster {
    pub async fn start() -> TestCluster {
        Self::start_with(DevServerConfig::default()).await
    }

    /// `config` applies to the embedded server only.
    pub async fn start_with(config: DevServerConfig) -> TestCluster {
        let dir = tempfile::tempdir().expect("temporary directory");
        let namespace = format!(
            "hk-test-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        match std::env::var_os(REAL_CLUSTER_ENV) {
            Some(path) => {
                let kubeconfig = PathBuf::from(path);
                let args = hakeeper::kubeconn::KubeArgs {
                    kubeconfig: Some(kubeconfig.clone()),
                    ..Default::default()
                };
                let (client, _) = args.client().await.expect("client for the real cluster");
                let ns: Namespace = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": namespace, "labels": {"app.kubernetes.io/created-by": "hakeeper-tests"}}
                }))
                .unwrap();
                Api::<Namespace>::all(client.clone())
                    .create(&PostParams::default(), &ns)
                    .await
                    .expect("creating the test namespace");
                TestCluster {
                    server: None,
                    client,
                    namespace,
                    kubeconfig,
                    dir,
                    cleaned: false,
                }
            }
            None => {
                let server = DevServer::start(config).await.expect("embedded API server");
                let kubeconfig = dir.path().join("kubeconfig");
                server.write_kubeconfig(&kubeconfig).expect("kubeconfig");
                let client = server.client().await.expect("client");
                TestCluster {
                    server: Some(server),
                    client,
                    namespace,
                    kubeconfig,
                    dir,
                    cleaned: false,
                }
            }
        }
    }

    /// The embedded server, or `None` (after saying why) against a real cluster.
    pub fn embedded(&self, why: &str) -> Option<&DevServer> {
        if self.server.is_none() {
            eprintln!("skipped against a real cluster: {why} needs the embedded API server");
            note_skip(why);
        }
        self.server.as_ref()
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// A client of its own (its own connections), as a separate process would have.
    pub async fn fresh_client(&self) -> kube::Client {
        match &self.server {
            Some(server) => server.client().await.expect("client"),
            None => {
                let args = hakeeper::kubeconn::KubeArgs {
                    kubeconfig: Some(self.kubeconfig.clone()),
                    ..Default::default()
                };
                args.client().await.expect("client for the real cluster").0
            }
        }
    }

    /// The cluster's current resourceVersion (from a list of the test namespace's ConfigMaps).
    pub async fn current_version(&self) -> String {
        self.api::<k8s_openapi::api::core::v1::ConfigMap>()
            .list(&kube::api::ListParams::default().limit(1))
            .await
            .expect("list")
            .metadata
            .resource_version
            .expect("a list has a resourceVersion")
    }

    /// A kubeconfig for the restricted user `name` (`sidecar`: exactly the sidecar's
    /// permissions; `reader`: get and list ConfigMaps only). On the embedded server, with
    /// that user's token, when [`restricted_users`] were configured; on a real cluster,
    /// `<name>.kubeconfig` beside the admin one, as `tests/realk8s/start.sh` writes them.
    /// `None` (after noting why) when there is none.
    pub fn restricted_kubeconfig(&self, name: &str) -> Option<PathBuf> {
        match &self.server {
            Some(server) => {
                let token = server.restricted_token(name)?;
                let text = server.kubeconfig_yaml();
                let path = self.path(&format!("{name}.kubeconfig"));
                std::fs::write(&path, with_token(&text, &token)).expect("kubeconfig");
                Some(path)
            }
            None => {
                let path = self.kubeconfig.with_file_name(format!("{name}.kubeconfig"));
                if path.exists() {
                    Some(path)
                } else {
                    note_skip(&format!(
                        "a restricted identity {name:?} (tests/realk8s/start.sh writes one)"
                    ));
                    None
                }
            }
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Delete the test namespace on a real cluster; stop the embedded server.
    pub async fn cleanup(mut self) {
        match self.server.take() {
            Some(server) => server.shutdown().await.expect("clean shutdown"),
            None => {
                let _ = Api::<Namespace>::all(self.client.clone())
                    .delete(&self.namespace, &DeleteParams::default())
                    .await;
            }
        }
        self.cleaned = true;
    }
}

/// A test that panicked (or forgot `cleanup`) on a real cluster leaves no namespace behind:
/// kubectl deletes it, without waiting, since a drop cannot await.
impl Drop for TestCluster {
    fn drop(&mut self) {
        if self.cleaned || self.server.is_some() {
            return;
        }
        let _ = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["delete", "namespace", &self.namespace, "--wait=false"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A ConfigMap from JSON, for brevity in tests.
pub fn configmap(value: serde_json::Value) -> k8s_openapi::api::core::v1::ConfigMap {
    serde_json::from_value(value).expect("a ConfigMap")
}

/// A client whose every request (and response) can be held, as for a process that stalls:
/// while the gate is closed nothing goes out; a request issued before a stall is sent when
/// it ends, even if its caller has given up waiting (as a frozen process's write would be).
pub async fn gated_client(
    server: &DevServer,
    closed: tokio::sync::watch::Receiver<bool>,
) -> kube::Client {
    let config = server.kube_config().await.expect("config");
    held_client(config, Closed(closed))
}

/// When a [`held_client`] sends a request on, and hands its response back.
pub trait Hold: Send + Sync + 'static {
    /// Resolves when `req` may go out (an error fails it). Called as the request is made.
    fn before(
        &self,
        req: &http::Request<kube::client::Body>,
    ) -> BoxFuture<'static, Result<(), tower::BoxError>>;

    /// Resolves when the response may be handed back.
    fn after(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// A client whose requests `hold` holds; a held request is sent when `hold` lets it, even if
/// its caller has given up waiting.
pub fn held_client(config: kube::Config, hold: impl Hold) -> kube::Client {
    let hold: Arc<dyn Hold> = Arc::new(hold);
    let layer = tower::layer::layer_fn(move |service| Gate {
        inner: tower::buffer::Buffer::new(service, 1024),
        hold: hold.clone(),
    });
    kube::client::ClientBuilder::try_from(config)
        .expect("client builder")
        .with_layer(&layer)
        .build()
}

#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    hold: Arc<dyn Hold>,
}

/// A gate, closed while the value is `true`: requests and responses wait for it to open.
struct Closed(tokio::sync::watch::Receiver<bool>);

impl Hold for Closed {
    fn before(
        &self,
        _: &http::Request<kube::client::Body>,
    ) -> BoxFuture<'static, Result<(), tower::BoxError>> {
        let open = self.after();
        Box::pin(async move {
            open.await;
            Ok(())
        })
    }

    fn after(&self) -> BoxFuture<'static, ()> {
        let mut closed = self.0.clone();
        Box::pin(async move { wait_open(&mut closed).await })
    }
}

async fn wait_open(closed: &mut tokio::sync::watch::Receiver<bool>) {
    while *closed.borrow_and_update() {
        if closed.changed().await.is_err() {
            return;
        }
    }
}

impl<S, B> tower::Service<http::Request<kube::client::Body>> for Gate<S>
where
    S: tower::Service<http::Request<kube::client::Body>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError> + Send,
    B: Send + 'static,
{
    type Response = http::Response<B>;
    type Error = tower::BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, tower::BoxError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<kube::client::Body>) -> Self::Future {
        use tower::ServiceExt;
        let inner = self.inner.clone();
        let hold = self.hold.clone();
        let before = hold.before(&req);
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let result = match before.await {
                Ok(()) => inner.oneshot(req).await.map_err(Into::into),
                Err(e) => Err(e),
            };
            hold.after().await;
            let _ = tx.send(result);
        });
        Box::pin(async move {
            rx.await
                .map_err(|_| tower::BoxError::from("gate task ended"))?
        })
    }
}

/// Log to the test output when `HAKEEPER_TEST_LOG` is set (a tracing filter, e.g. `hakeeper=debug`).
pub fn init_logs() {
    if let Ok(filter) = std::env::var("HAKEEPER_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// The users of an embedded server for tests that check permissions: `sidecar` with exactly
/// what the sidecar needs, `reader` with get and list of ConfigMaps only.
pub fn restricted_users() -> Vec<hakeeper::apiserver::RestrictedUser> {
    let sidecar = hakeeper::access::SIDECAR
        .iter()
        .map(|p| {
            (
                p.verb.to_string(),
                p.group.to_string(),
                p.resource.to_string(),
            )
        })
        .collect();
    let reader = ["get", "list"]
        .iter()
        .map(|v| (v.to_string(), String::new(), "configmaps".to_string()))
        .collect();
    vec![
        hakeeper::apiserver::RestrictedUser {
            name: "sidecar".into(),
            token: "sidecar-token".into(),
            allowed: sidecar,
        },
        hakeeper::apiserver::RestrictedUser {
            name: "reader".into(),
            token: "reader-token".into(),
            allowed: reader,
        },
    ]
}

/// `kubeconfig` (YAML text) with every `token:` replaced by `token`.
pub fn with_token(kubeconfig: &str, token: &str) -> String {
    let mut replaced = false;
    let mut out: Vec<String> = kubeconfig
        .lines()
        .map(|l| {
            let indent = &l[..l.len() - l.trim_start().len()];
            if l.trim_start().starts_with("token:") {
                replaced = true;
                format!("{indent}token: {token}")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(replaced, "the kubeconfig has a token to replace");
    out.push(String::new());
    out.join("\n")
}

/// Whether `namespace` is deleted or on its way out (`Terminating`), asked with kubectl.
pub fn namespace_is_going(kubeconfig: &Path, namespace: &str) -> Result<(), String> {
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "get",
            "namespace",
            namespace,
            "-o",
            "jsonpath={.status.phase}",
        ])
        .output()
        .map_err(|e| format!("kubectl: {e}"))?;
    let phase = String::from_utf8_lossy(&out.stdout).to_string();
    if String::from_utf8_lossy(&out.stderr).contains("NotFound") || phase == "Terminating" {
        Ok(())
    } else {
        Err(format!("namespace {namespace}: {phase:?}"))
    }
}

/// A `file://` store in a temporary directory (removed when `dir` is dropped).
pub struct FileStorage {
    pub dir: tempfile::TempDir,
    pub root: hakeeper::storage::Location,
    pub store: std::sync::Arc<dyn hakeeper::storage::ObjectStore>,
}

pub async fn file_storage() -> FileStorage {
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = hakeeper::storage::Location::file(dir.path()).expect("file location");
    let store = hakeeper::storage::open(&root, &Default::default())
        .await
        .expect("file store");
    FileStorage { dir, root, store }
}

/// Wait (at most 10 s) until `elector` leads; its session.
pub async fn wait_leader(elector: &hakeeper::election::Elector) -> uuid::Uuid {
    let mut state = elector.state();
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let s = state.borrow_and_update().clone();
            if let (true, Some(session)) = (s.is_leader, s.session_id) {
                return session;
            }
            state.changed().await.expect("elector running");
        }
    })
    .await
    .expect("leadership within 10 s")
}
