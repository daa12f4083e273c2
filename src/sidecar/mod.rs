//! The sidecar's local HTTP/JSON API: contend for components, follow leadership, release.
//!
//! `PUT /v1/leadership/{component}` starts contending, `GET` reports (or streams, with
//! `?watch=1`, as Server-Sent Events), `DELETE` stops and releases. `GET /livez` and
//! `GET /readyz` (ready once every contender's watch has synced). Errors are JSON
//! `{"error": kind, "message": ...}`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::election::{ElectionConfig, Elector, LeaderInfo, LeadershipState};
use crate::layout::{ClusterId, Component, OwnerRef};
use crate::lease::Timings;
use crate::retrieval::{Retrieved, Retriever, follow_changes};
use crate::stores::Payloads;

pub mod listen;
pub mod openapi;
pub mod serve;
mod store_api;

/// At most this many components are followed without contending (one retriever each).
const MAX_FOLLOWED: usize = 256;

/// What the sidecar needs to contend.
#[derive(Clone)]
pub struct SidecarConfig {
    pub client: kube::Client,
    pub namespace: String,
    pub cluster_id: ClusterId,
    pub identity: String,
    pub timings: Timings,
    pub owner: Option<OwnerRef>,
    /// Where payloads go; without it the store endpoints answer 503 `StorageNotConfigured`.
    pub stores: Option<StoreSettings>,
}

/// The HA stores' settings.
#[derive(Clone)]
pub struct StoreSettings {
    pub payloads: Payloads,
    /// Completed checkpoints kept (Flink's `state.checkpoints.num-retained`).
    pub checkpoints_retained: usize,
    /// Fail recovery on a bad newest checkpoint instead of falling back to an older one.
    pub strict_recovery: bool,
}

struct Contender {
    address: String,
    elector: Elector,
    changes: JoinHandle<()>,
}

struct Follower {
    retriever: Retriever,
    changes: JoinHandle<()>,
}

/// The sidecar's state: contenders and followers by component.
#[derive(Clone)]
pub struct Sidecar {
    inner: Arc<Inner>,
}

struct Inner {
    config: SidecarConfig,
    contenders: Mutex<HashMap<Component, Contender>>,
    followers: Mutex<HashMap<Component, Follower>>,
    shutting_down: AtomicBool,
    /// Bumped whenever a component starts or stops being contended, so that open streams
    /// switch to the component's new source.
    registry: watch::Sender<u64>,
}

/// An API error as JSON.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        tracing::debug!(status = %self.status, kind = self.kind, message = %self.message, "local API error");
        (
            self.status,
            axum::Json(json!({"error": self.kind, "message": self.message})),
        )
            .into_response()
    }
}

fn shutting_down() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ShuttingDown",
        "the sidecar is shutting down",
    )
}

/// Log every leader change of `component` (a task owned by the contender or follower).
fn log_changes<T: Send + Sync + 'static>(
    component: &Component,
    state: watch::Receiver<T>,
    leader_of: fn(&T) -> Option<LeaderInfo>,
) -> JoinHandle<()> {
    let name = component.to_string();
    tokio::spawn(async move { follow_changes(&name, state, leader_of, |_| {}).await })
}

/// The source of a component's state: our own contender, or a retriever.
enum Source {
    Contender(watch::Receiver<LeadershipState>),
    Follower(watch::Receiver<Retrieved>),
}

impl Source {
    fn view(&mut self, component: &Component) -> Value {
        let now = Instant::now();
        let remaining =
            |at: Option<Instant>| at.map(|t| t.saturating_duration_since(now).as_millis() as u64);
        let leader = |l: Option<LeaderInfo>| {
            l.map(|l| json!({"address": l.address, "sessionId": l.session_id}))
        };
        // A follower never leads and has no session of ours.
        let (contending, is_leader, session, s) = match self {
            Source::Contender(rx) => {
                let s = rx.borrow_and_update().clone();
                let retrieved = Retrieved {
                    leader: s.leader,
                    holder_identity: s.holder_identity,
                    lease_expires_at: s.lease_expires_at,
                    synced: s.synced,
                };
                (
                    true,
                    s.is_leader,
                    s.session_id.map(|u| u.to_string()),
                    retrieved,
                )
            }
            Source::Follower(rx) => (false, false, None, rx.borrow_and_update().clone()),
        };
        json!({
            "component": component.to_string(),
            "contending": contending,
            "isLeader": is_leader,
            "sessionId": session,
            "holderIdentity": s.holder_identity,
            "leader": leader(s.leader),
            "leaseRemainingMs": remaining(s.lease_expires_at),
            "synced": s.synced,
        })
    }

    async fn changed(&mut self) -> bool {
        match self {
            Source::Contender(rx) => rx.changed().await.is_ok(),
            Source::Follower(rx) => rx.changed().await.is_ok(),
        }
    }
}

impl Sidecar {
    pub fn new(config: SidecarConfig) -> Sidecar {
        Sidecar {
            inner: Arc::new(Inner {
                config,
                contenders: Mutex::new(HashMap::new()),
                followers: Mutex::new(HashMap::new()),
                shutting_down: AtomicBool::new(false),
                registry: watch::channel(0).0,
            }),
        }
    }

    pub fn identity(&self) -> &str {
        &self.inner.config.identity
    }

    fn contenders(&self) -> std::sync::MutexGuard<'_, HashMap<Component, Contender>> {
        self.inner
            .contenders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn followers(&self) -> std::sync::MutexGuard<'_, HashMap<Component, Follower>> {
        self.inner
            .followers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Start contending for `component` with `address`. Idempotent for the same address.
    pub fn contend(&self, component: Component, address: String) -> Result<(), ApiError> {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            return Err(shutting_down());
        }
        if address.trim().is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "address must not be empty",
            ));
        }
        let mut contenders = self.contenders();
        if let Some(existing) = contenders.get(&component) {
            if existing.address == address {
                return Ok(());
            }
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!(
                    "already contending for {component} with address {:?}; DELETE it first",
                    existing.address
                ),
            ));
        }
        // A follower of this component has been watching its lock: start from what it saw.
        let followed = self.followers().remove(&component);
        let observed = match followed {
            Some(f) => {
                f.changes.abort();
                f.retriever.observation()
            }
            None => Default::default(),
        };
        let c = &self.inner.config;
        let elector = Elector::spawn_from(
            c.client.clone(),
            &c.namespace,
            ElectionConfig {
                cluster_id: c.cluster_id.clone(),
                component: component.clone(),
                identity: c.identity.clone(),
                address: address.clone(),
                timings: c.timings,
                owner: c.owner.clone(),
            },
            observed,
        );
        let changes = log_changes(&component, elector.state(), |s| s.leader.clone());
        tracing::info!(component = %component, address = %address, "contending");
        contenders.insert(
            component,
            Contender {
                address,
                elector,
                changes,
            },
        );
        drop(contenders);
        self.bump_registry();
        Ok(())
    }

    /// Stop contending for `component`, releasing the lock if held. False if not contending.
    pub async fn stop(&self, component: &Component) -> bool {
        let contender = self.contenders().remove(component);
        match contender {
            Some(c) => {
                c.changes.abort();
                c.elector.release().await;
                self.bump_registry();
                true
            }
            None => false,
        }
    }

    fn bump_registry(&self) {
        self.inner.registry.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn source(&self, component: &Component) -> Result<Source, ApiError> {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            return Err(shutting_down());
        }
        if let Some(c) = self.contenders().get(component) {
            return Ok(Source::Contender(c.elector.state()));
        }
        let mut followers = self.followers();
        if let Some(f) = followers.get(component) {
            return Ok(Source::Follower(f.retriever.state()));
        }
        if followers.len() >= MAX_FOLLOWED {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "TooManyFollowed",
                format!("already following {MAX_FOLLOWED} components"),
            ));
        }
        let c = &self.inner.config;
        let retriever = Retriever::spawn(
            c.client.clone(),
            &c.namespace,
            &component.configmap_name(&c.cluster_id),
        );
        let changes = log_changes(component, retriever.state(), |s| s.leader.clone());
        let state = retriever.state();
        followers.insert(component.clone(), Follower { retriever, changes });
        Ok(Source::Follower(state))
    }

    /// The fencing primitive of a contended component.
    pub fn fence(&self, component: &Component) -> Option<crate::election::Fence> {
        self.contenders()
            .get(component)
            .map(|c| c.elector.fence().clone())
    }

    /// Ready once every contender's watch has delivered its initial list.
    pub fn ready(&self) -> bool {
        self.contenders()
            .values()
            .all(|c| c.elector.state().borrow().synced)
    }

    /// Stop accepting contenders and release every lease (concurrently).
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let contenders: Vec<Contender> = self.contenders().drain().map(|(_, c)| c).collect();
        let releases = contenders.into_iter().map(|c| async move {
            c.changes.abort();
            c.elector.release().await;
        });
        futures::future::join_all(releases).await;
        for (_, f) in self.followers().drain() {
            f.changes.abort();
            drop(f.retriever);
        }
    }
}

/// The local API, with every `/v1` call requiring `Authorization: Bearer <token>` when a
/// token is given.
pub fn router_with_token(sidecar: Sidecar, token: Option<String>) -> Router {
    let router = router(sidecar);
    match token {
        Some(t) => {
            let t: Arc<str> = t.into();
            router.layer(axum::middleware::from_fn(move |req, next| {
                listen::require_token(t.clone(), req, next)
            }))
        }
        None => router,
    }
}

/// The local API.
pub fn router(sidecar: Sidecar) -> Router {
    let body_limit = sidecar
        .inner
        .config
        .stores
        .as_ref()
        .map_or(1 << 20, |s| s.payloads.max_payload_bytes as usize);
    Router::new()
        .merge(store_api::routes(body_limit))
        .route(
            "/v1/leadership/{*component}",
            get(get_leadership)
                .put(put_leadership)
                .delete(delete_leadership),
        )
        .route("/livez", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(openapi::document()) }),
        )
        .route("/readyz", get(readyz))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NotFound", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "this endpoint does not take that method",
            )
        })
        .with_state(sidecar)
}

/// A query string that does not parse, as a JSON 400 like every other error.
fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", e.body_text())
}

fn parse_component(raw: &str) -> Result<Component, ApiError> {
    raw.trim_matches('/')
        .parse()
        .map_err(|e: String| ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", e))
}

#[derive(Deserialize)]
struct ContendBody {
    address: String,
}

async fn put_leadership(
    State(sidecar): State<Sidecar>,
    Path(raw): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let component = parse_component(&raw)?;
    let body: ContendBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("expected a JSON body {{\"address\": \"...\"}}: {e}"),
        )
    })?;
    sidecar.contend(component.clone(), body.address)?;
    let mut source = sidecar.source(&component)?;
    Ok((StatusCode::ACCEPTED, axum::Json(source.view(&component))).into_response())
}

#[derive(Deserialize)]
struct WatchQuery {
    watch: Option<String>,
}

async fn get_leadership(
    State(sidecar): State<Sidecar>,
    Path(raw): Path<String>,
    q: Result<Query<WatchQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let component = parse_component(&raw)?;
    let Query(q) = q.map_err(bad_query)?;
    let mut source = sidecar.source(&component)?;
    if !matches!(q.watch.as_deref(), Some("1" | "true")) {
        return Ok(axum::Json(source.view(&component)).into_response());
    }
    // Server-Sent Events: the current state, then one event per change. The stream follows
    // the component across a PUT or DELETE (from follower to contender and back). A client
    // that stops reading only holds the latest state (a watch channel keeps one value).
    let registry = sidecar.inner.registry.subscribe();
    let state = SseState {
        sidecar,
        component,
        source,
        registry,
        first: true,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        if !st.first {
            let switch = tokio::select! {
                alive = st.source.changed() => !alive,
                changed = st.registry.changed() => changed.is_ok(),
            };
            if switch {
                st.source = st.sidecar.source(&st.component).ok()?;
            }
        }
        st.first = false;
        let event = Event::default()
            .event("leadership")
            .json_data(st.source.view(&st.component))
            .unwrap_or_else(|_| Event::default().comment("unserialisable state"));
        Some((Ok::<_, Infallible>(event), st))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

struct SseState {
    sidecar: Sidecar,
    component: Component,
    source: Source,
    registry: watch::Receiver<u64>,
    first: bool,
}

async fn delete_leadership(
    State(sidecar): State<Sidecar>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let component = parse_component(&raw)?;
    if sidecar.stop(&component).await {
        Ok(axum::Json(
            json!({"component": component.to_string(), "contending": false, "released": true}),
        )
        .into_response())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("not contending for {component}"),
        ))
    }
}

/// `GET /metrics`: Prometheus text format.
async fn metrics() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::get().encode(),
    )
        .into_response()
}

#[derive(Deserialize)]
struct ReadyQuery {
    leader: Option<String>,
}

/// `/readyz`: ready once every contender's watch has synced. `/readyz?leader=<component>`:
/// ready only while this sidecar leads that component (confirmed, grant live), so that a
/// readinessProbe routes a Service to the leader alone.
async fn readyz(
    State(sidecar): State<Sidecar>,
    q: Result<Query<ReadyQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return bad_query(e).into_response(),
    };
    if let Some(raw) = q.leader {
        let component = match parse_component(&raw) {
            Ok(c) => c,
            Err(e) => return e.into_response(),
        };
        let leads = sidecar
            .fence(&component)
            .is_some_and(|f| f.current_session().is_some())
            && sidecar
                .contenders()
                .get(&component)
                .is_some_and(|c| c.elector.state().borrow().is_leader);
        return if leads {
            "leader".into_response()
        } else {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "NotLeader",
                format!("this sidecar does not lead {component}"),
            )
            .into_response()
        };
    }
    if sidecar.ready() {
        "ok".into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "NotReady",
            "lock watches have not synced yet",
        )
        .into_response()
    }
}
