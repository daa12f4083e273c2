//! The sidecar's local HTTP/JSON API: contend for components, follow leadership, release.
//!
//! A JobManager registers as a client (`POST /v1/clients`), keeps an event stream open and
//! shows life within the client timeout; `PUT /v1/leadership/{component}` with its
//! `Hakeeper-Client` id starts contending on its behalf, `GET` reports (or streams, with
//! `?watch=1`, as Server-Sent Events), `DELETE` stops and releases. A client that is gone
//! (stream closed) or silent (timeout) has every component it contended for released.
//! `GET /livez` and `GET /readyz` (ready once every contender's watch has synced), also served
//! with `GET /metrics` alone, without a token, on the probe listener ([`serve_probes`]).
//! Errors are JSON `{"error": kind, "message": ...}`.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::election::{
    ElectionConfig, Elector, LeaderInfo, LeadershipState, LockObservation, ReleaseReason,
};
use crate::layout::{ClusterId, Component, OwnerRef};
use crate::lease::Timings;
use crate::retrieval::{Retrieved, Retriever, follow_changes};
use crate::stores::Payloads;

mod client_api;
pub mod clients;
mod leadership_api;
pub mod listen;
pub mod liveness;
pub mod openapi;
mod path;
pub mod serve;
mod store_api;

/// The header naming the client a call is made for (`POST /v1/clients` gives the id).
pub const CLIENT_HEADER: &str = "hakeeper-client";

/// At most this many components are followed without contending (one retriever each).
const MAX_FOLLOWED: usize = 256;
/// Released locks remembered for the follower a stream starts next (see `Inner::released`).
const RELEASED_KEPT: usize = 64;

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
    /// A client that sends nothing for this long has its leaderships released.
    pub client_timeout: Duration,
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
    /// The client this contention is for; `None` for `--contend` (tied to `--liveness-url`).
    client: Option<Uuid>,
    elector: Elector,
    changes: JoinHandle<()>,
}

/// The last time the sidecar gave up a component, and why.
#[derive(Debug, Clone, Copy)]
struct LastRelease {
    reason: ReleaseReason,
    at: Instant,
    client: Option<Uuid>,
}

/// Releases under way, awaited by the reaper task.
type PendingRelease = Pin<Box<dyn Future<Output = ()> + Send>>;
/// A contender being released: its elector's state, and the client it contended for.
type Releasing = (watch::Receiver<LeadershipState>, Option<Uuid>);

/// Components whose last release is remembered, at most.
const LAST_RELEASES_KEPT: usize = 1024;

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
    /// The clients contentions are held for. Lock order: `clients` before `contenders`.
    clients: Mutex<clients::Registry>,
    last_release: Mutex<HashMap<Component, LastRelease>>,
    /// Contenders being released, by their elector's state until the release is done: a
    /// stream follows the release to its end instead of starting a follower that would list
    /// the lock in the middle of it (and report the lock as held, then released). Lock order:
    /// `contenders` before `releasing`.
    releasing: Mutex<HashMap<Component, Releasing>>,
    /// What a released contender last saw of its lock (the released record, without data),
    /// for the follower or contender started next for the component; taken by it.
    released: Mutex<HashMap<Component, LockObservation>>,
    /// To the reaper: releases to await.
    releases: mpsc::UnboundedSender<PendingRelease>,
    /// Wakes the reaper when a client registers (its deadline may be the earliest).
    reaper_wake: Arc<Notify>,
    reaper_stop: watch::Sender<bool>,
    reaper: Mutex<Option<JoinHandle<()>>>,
}

/// An API error as JSON.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: ErrorKind,
    pub message: String,
}

/// Every `error` kind the API answers: docs/API.md's table. Each response of the OpenAPI
/// document names the kinds it can carry.
///
/// The `error` of the body: machine-readable kind. Each response lists the kinds it can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ErrorKind {
    BadRequest,
    ClientRequired,
    Invalid,
    Unauthorized,
    NotFound,
    UnknownClient,
    ClientReleased,
    MethodNotAllowed,
    RequestTimeout,
    Conflict,
    NotLeader,
    StaleSession,
    AlreadyExists,
    OutOfOrder,
    Contention,
    Rejected,
    PayloadTooLarge,
    CorruptHandle,
    BadPayload,
    BadValue,
    NoRecoverableCheckpoint,
    StorageError,
    ShuttingDown,
    NotReady,
    TooManyFollowed,
    TooManyClients,
    StorageUnavailable,
    ApiUnavailable,
    OutcomeUnknown,
    StorageNotConfigured,
    ConfigMapFull,
}

impl ErrorKind {
    /// The kind of a store's error: [`StoreError::kind`](crate::stores::StoreError::kind) is
    /// the name (also the label of the store metrics), this the API's kind of that name.
    fn of_store(e: &crate::stores::StoreError) -> ErrorKind {
        use serde::de::IntoDeserializer;
        let name: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
            e.kind().into_deserializer();
        ErrorKind::deserialize(name).unwrap_or_else(|_| {
            tracing::error!(kind = e.kind(), "a store error kind the API does not name");
            ErrorKind::StorageError
        })
    }
}

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorBody {
    #[schema(inline)]
    error: ErrorKind,
    /// What went wrong, for people.
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        tracing::debug!(status = %self.status, kind = ?self.kind, message = %self.message, "local API error");
        let body = ErrorBody {
            error: self.kind,
            message: self.message,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

fn shutting_down() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::ShuttingDown,
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

/// The source of a component's state: our own contender (and the client it is for), or a
/// retriever.
enum Source {
    Contender(watch::Receiver<LeadershipState>, Option<Uuid>),
    Follower(watch::Receiver<Retrieved>),
}

/// A component's leadership as this sidecar reports it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = LeadershipState)]
struct LeadershipView {
    #[schema(value_type = openapi::ComponentName)]
    component: String,
    /// This sidecar contends for the component.
    contending: bool,
    /// The client the contention is for; null when not contending, or when contending by
    /// `--contend`.
    #[schema(format = Uuid)]
    #[schema(required = true)]
    client_id: Option<String>,
    /// This process leads and its leadership is confirmed (the ConfigMap's address and session
    /// name it). Always false when not contending.
    is_leader: bool,
    /// This process's session while it holds a grant (a new UUID for every grant): the
    /// `Hakeeper-Session` of leader-only calls. Null when not contending.
    #[schema(format = Uuid)]
    #[schema(required = true)]
    session_id: Option<String>,
    /// The holder the lock record names, if any.
    #[schema(required = true)]
    holder_identity: Option<String>,
    /// The leader as any follower sees it; null with no leader, an expired lease, or a
    /// released lock.
    #[schema(required = true)]
    leader: Option<LeaderInfo>,
    /// Until the observed lease runs out for others, judged from the local monotonic clock at
    /// which the lock last changed; null when unknown.
    #[schema(required = true)]
    lease_remaining_ms: Option<u64>,
    /// The watch on the component's ConfigMap has delivered its initial list.
    synced: bool,
    /// The newest time this sidecar gave up or lost the component; null if it never did (or
    /// forgot).
    #[schema(required = true)]
    last_release: Option<LastReleaseView>,
}

/// A release of a component by this sidecar.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = LastRelease)]
struct LastReleaseView {
    reason: ReleaseReason,
    /// How long ago, by the local monotonic clock.
    ago_ms: u64,
    /// The client the contention was for; null for `--contend`.
    #[schema(format = Uuid)]
    #[schema(required = true)]
    client_id: Option<String>,
}

impl Source {
    /// The state as the API reports it; `last` is the sidecar's last release of the component.
    fn view(&mut self, component: &Component, last: Option<LastRelease>) -> LeadershipView {
        let now = Instant::now();
        let remaining =
            |at: Option<Instant>| at.map(|t| t.saturating_duration_since(now).as_millis() as u64);
        // A follower never leads and has no session of ours.
        let (contending, is_leader, session, client, lost, s) = match self {
            Source::Contender(rx, client) => {
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
                    *client,
                    s.last_lost,
                    retrieved,
                )
            }
            Source::Follower(rx) => (
                false,
                false,
                None,
                None,
                None,
                rx.borrow_and_update().clone(),
            ),
        };
        // The newest of the sidecar's releases and the contender's losses.
        let lost = lost.map(|at| LastRelease {
            reason: ReleaseReason::Lost,
            at,
            client,
        });
        let last = match (last, lost) {
            (Some(a), Some(b)) => Some(if b.at > a.at { b } else { a }),
            (a, b) => a.or(b),
        };
        LeadershipView {
            component: component.to_string(),
            contending,
            client_id: client.map(|c| c.to_string()),
            is_leader,
            session_id: session,
            holder_identity: s.holder_identity,
            leader: s.leader,
            lease_remaining_ms: remaining(s.lease_expires_at),
            synced: s.synced,
            last_release: last.map(|l| LastReleaseView {
                reason: l.reason,
                ago_ms: now.saturating_duration_since(l.at).as_millis() as u64,
                client_id: l.client.map(|c| c.to_string()),
            }),
        }
    }

    /// The task behind it has ended: no change will ever come.
    fn is_closed(&self) -> bool {
        match self {
            Source::Contender(rx, _) => rx.has_changed().is_err(),
            Source::Follower(rx) => rx.has_changed().is_err(),
        }
    }

    async fn changed(&mut self) -> bool {
        match self {
            Source::Contender(rx, _) => rx.changed().await.is_ok(),
            Source::Follower(rx) => rx.changed().await.is_ok(),
        }
    }
}

/// Two views that differ at most in `leaseRemainingMs` (which moves with the clock) and
/// `lastRelease.agoMs`: a client is told of a change, not of time passing.
fn same_state(a: &LeadershipView, b: &LeadershipView) -> bool {
    let strip = |v: &LeadershipView| {
        let mut v = v.clone();
        v.lease_remaining_ms = None;
        if let Some(l) = &mut v.last_release {
            l.ago_ms = 0;
        }
        v
    };
    strip(a) == strip(b)
}

impl Sidecar {
    pub fn new(config: SidecarConfig) -> Sidecar {
        let (releases, pending) = mpsc::unbounded_channel();
        let reaper_wake = Arc::new(Notify::new());
        let (reaper_stop, stop) = watch::channel(false);
        let sidecar = Sidecar {
            inner: Arc::new(Inner {
                contenders: Mutex::new(HashMap::new()),
                followers: Mutex::new(HashMap::new()),
                shutting_down: AtomicBool::new(false),
                registry: watch::channel(0).0,
                clients: Mutex::new(clients::Registry::new(config.client_timeout)),
                last_release: Mutex::new(HashMap::new()),
                releasing: Mutex::new(HashMap::new()),
                released: Mutex::new(HashMap::new()),
                releases,
                reaper_wake: reaper_wake.clone(),
                reaper_stop,
                reaper: Mutex::new(None),
                config,
            }),
        };
        let task = tokio::spawn(reap(
            Arc::downgrade(&sidecar.inner),
            pending,
            reaper_wake,
            stop,
        ));
        *lock(&sidecar.inner.reaper) = Some(task);
        sidecar
    }

    pub fn identity(&self) -> &str {
        &self.inner.config.identity
    }

    pub fn client_timeout(&self) -> Duration {
        self.inner.config.client_timeout
    }

    fn contenders(&self) -> std::sync::MutexGuard<'_, HashMap<Component, Contender>> {
        lock(&self.inner.contenders)
    }

    fn releasing(&self) -> std::sync::MutexGuard<'_, HashMap<Component, Releasing>> {
        lock(&self.inner.releasing)
    }

    fn released(&self) -> std::sync::MutexGuard<'_, HashMap<Component, LockObservation>> {
        lock(&self.inner.released)
    }

    /// Take `component`'s contender out of `contenders` (no leader-only write passes from
    /// here on) and mark it releasing in the same step, so that no stream starts a follower
    /// before [`Sidecar::release_contender`] is done with it.
    fn take_contender(
        &self,
        contenders: &mut HashMap<Component, Contender>,
        component: &Component,
    ) -> Option<Contender> {
        let c = contenders.remove(component)?;
        self.releasing()
            .insert(component.clone(), (c.elector.state(), c.client));
        Some(c)
    }

    /// Release `c`, the contender of `component` taken out by [`Sidecar::take_contender`]:
    /// streams keep following its elector until the lock is released, then a follower started
    /// from the record the release wrote (and the registry moves again).
    fn release_contender(
        &self,
        component: Component,
        c: Contender,
        reason: ReleaseReason,
    ) -> PendingRelease {
        let fence = c.elector.fence().clone();
        let inner = Arc::downgrade(&self.inner);
        Box::pin(async move {
            c.changes.abort();
            c.elector.release(reason).await;
            if let Some(inner) = inner.upgrade() {
                let sidecar = Sidecar { inner };
                {
                    let mut released = sidecar.released();
                    if released.len() >= RELEASED_KEPT
                        && let Some(any) = released.keys().next().cloned()
                    {
                        released.remove(&any);
                    }
                    released.insert(component.clone(), fence.observation().without_data());
                }
                sidecar.releasing().remove(&component);
                sidecar.bump_registry();
            }
        })
    }

    fn followers(&self) -> std::sync::MutexGuard<'_, HashMap<Component, Follower>> {
        lock(&self.inner.followers)
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, clients::Registry> {
        lock(&self.inner.clients)
    }

    fn last_release(&self, component: &Component) -> Option<LastRelease> {
        lock(&self.inner.last_release).get(component).copied()
    }

    fn remember_release(&self, component: &Component, reason: ReleaseReason, client: Option<Uuid>) {
        let mut last = lock(&self.inner.last_release);
        if last.len() >= LAST_RELEASES_KEPT && !last.contains_key(component) {
            // Forget the oldest.
            if let Some(oldest) = last
                .iter()
                .min_by_key(|(_, l)| l.at)
                .map(|(c, _)| c.clone())
            {
                last.remove(&oldest);
            }
        }
        last.insert(
            component.clone(),
            LastRelease {
                reason,
                at: Instant::now(),
                client,
            },
        );
    }

    /// Start contending for `component` with `address` for no client: for as long as the
    /// sidecar (or its `--liveness-url` probe) says. Idempotent for the same address.
    pub fn contend_unowned(&self, component: Component, address: String) -> Result<(), ApiError> {
        self.contend(component, address, None)
    }

    /// Start contending for `component` with `address`, on behalf of `client` (bound to it
    /// by [`Sidecar::contend_for_client`], the only caller with a client). Idempotent for the
    /// same address and client.
    fn contend(
        &self,
        component: Component,
        address: String,
        client: Option<Uuid>,
    ) -> Result<(), ApiError> {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            return Err(shutting_down());
        }
        if address.trim().is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorKind::BadRequest,
                "address must not be empty",
            ));
        }
        let mut contenders = self.contenders();
        if let Some(existing) = contenders.get(&component) {
            if existing.client != client {
                let whose = match existing.client {
                    Some(c) => format!("client {c}"),
                    None => "--contend".to_string(),
                };
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorKind::Conflict,
                    format!(
                        "{component} is contended on behalf of {whose}; it is released when that client is gone (or on DELETE)"
                    ),
                ));
            }
            if existing.address == address {
                return Ok(());
            }
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorKind::Conflict,
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
            None => self.released().remove(&component).unwrap_or_default(),
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
        tracing::info!(component = %component, address = %address, client = ?client, "contending");
        contenders.insert(
            component,
            Contender {
                address,
                client,
                elector,
                changes,
            },
        );
        drop(contenders);
        self.bump_registry();
        Ok(())
    }

    /// Contend for `component` on behalf of the live client `client` (a `PUT` with its
    /// `Hakeeper-Client`). The client is checked and bound atomically with the contention,
    /// so a client released meanwhile never leaves a contention behind.
    pub fn contend_for_client(
        &self,
        component: Component,
        address: String,
        client: Uuid,
    ) -> Result<(), ApiError> {
        let mut clients = self.clients();
        clients
            .touch(&client, Instant::now())
            .map_err(|e| client_api::not_live(&client, e))?;
        self.contend(component.clone(), address, Some(client))?;
        // Live a moment ago under the same lock: binding cannot fail.
        let _ = clients.bind(&client, component);
        Ok(())
    }

    /// Stop contending for `component`, releasing the lock if held (before this returns,
    /// even if the caller is dropped meanwhile). False if not contending.
    pub async fn stop(&self, component: &Component, reason: ReleaseReason) -> bool {
        let contender = {
            // Lock order: clients, then contenders; unbound from its own client only, so a
            // PUT racing this DELETE keeps what it bound.
            let mut clients = self.clients();
            let contender = self.take_contender(&mut self.contenders(), component);
            if let Some(client) = contender.as_ref().and_then(|c| c.client) {
                clients.unbind(&client, component);
            }
            contender
        };
        match contender {
            Some(c) => {
                self.remember_release(component, reason, c.client);
                let release = self.release_contender(component.clone(), c, reason);
                self.bump_registry();
                self.owned(release).await;
                true
            }
            None => false,
        }
    }

    /// Run a release in the reaper, which shutdown joins, and wait for it: a request handler
    /// that is dropped (its client hung up) cannot cancel a release half done.
    async fn owned(&self, release: PendingRelease) {
        let (done, finished) = tokio::sync::oneshot::channel();
        let tracked: PendingRelease = Box::pin(async move {
            release.await;
            let _ = done.send(());
        });
        if let Err(mpsc::error::SendError(tracked)) = self.inner.releases.send(tracked) {
            // No reaper any more (after shutdown): run it here.
            tracked.await;
            return;
        }
        let _ = finished.await;
    }

    /// Take the contenders `pick` selects out of the map (no more leader-only writes pass
    /// from here on) and return their releases, to be awaited.
    fn take_contenders(
        &self,
        reason: ReleaseReason,
        pick: impl Fn(&Component, &Contender) -> bool,
    ) -> Option<PendingRelease> {
        let taken: Vec<(Component, Contender)> = {
            let mut contenders = self.contenders();
            let keys: Vec<Component> = contenders
                .iter()
                .filter(|(k, c)| pick(k, c))
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter()
                .filter_map(|k| self.take_contender(&mut contenders, &k).map(|c| (k, c)))
                .collect()
        };
        if taken.is_empty() {
            return None;
        }
        for (component, c) in &taken {
            self.remember_release(component, reason, c.client);
        }
        let releases: Vec<PendingRelease> = taken
            .into_iter()
            .map(|(component, c)| self.release_contender(component, c, reason))
            .collect();
        self.bump_registry();
        Some(Box::pin(async move {
            futures::future::join_all(releases).await;
        }))
    }

    /// End `client`: its streams are told, and every component it contended for is released
    /// (leader work stops at once; the lock releases are awaited by the reaper, or by the
    /// caller when returned). `None` if the client was not live.
    fn end_client(
        &self,
        client: Uuid,
        reason: ReleaseReason,
    ) -> Option<(Vec<Component>, PendingRelease)> {
        let ended = {
            let mut clients = self.clients();
            let ended = clients.release(&client, reason, Instant::now())?;
            crate::metrics::set_clients(clients.len());
            ended
        };
        Some(self.finish_end(client, ended))
    }

    /// What follows a client's end in the registry: its contenders leave the map (chosen by
    /// the client they are for, whatever the registry's bookkeeping says), then its streams
    /// are told, so that their last states say so.
    fn finish_end(&self, client: Uuid, ended: clients::Ended) -> (Vec<Component>, PendingRelease) {
        let reason = ended.released.reason;
        let pending = self
            .take_contenders(reason, |_, c| c.client == Some(client))
            .unwrap_or_else(|| Box::pin(async {}));
        let components: Vec<Component> = ended.components.iter().cloned().collect();
        let name = ended.name.clone();
        ended.announce();
        let listed: Vec<String> = components.iter().map(ToString::to_string).collect();
        match reason {
            ReleaseReason::ApiDelete | ReleaseReason::Shutdown => {
                tracing::info!(client = %client, name = ?name, reason = %reason, components = ?listed, "client released")
            }
            _ => {
                tracing::warn!(client = %client, name = ?name, reason = %reason, components = ?listed, "client released: its leaderships are given up")
            }
        }
        (components, pending)
    }

    /// End `client` now and leave the lock releases to the reaper.
    fn end_client_in_background(&self, client: Uuid, reason: ReleaseReason) {
        if let Some((_, pending)) = self.end_client(client, reason) {
            // After shutdown the reaper is gone; so are the contenders.
            let _ = self.inner.releases.send(pending);
        }
    }

    /// Release the contentions made with `--contend` (not for an API client).
    pub async fn release_unowned(&self, reason: ReleaseReason) -> bool {
        match self.take_contenders(reason, |_, c| c.client.is_none()) {
            Some(pending) => {
                pending.await;
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
            return Ok(Source::Contender(c.elector.state(), c.client));
        }
        if let Some((state, client)) = self.releasing().get(component) {
            return Ok(Source::Contender(state.clone(), *client));
        }
        let mut followers = self.followers();
        if let Some(f) = followers.get(component) {
            return Ok(Source::Follower(f.retriever.state()));
        }
        if followers.len() >= MAX_FOLLOWED {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::TooManyFollowed,
                format!("already following {MAX_FOLLOWED} components"),
            ));
        }
        let c = &self.inner.config;
        let seed = self.released().remove(component).unwrap_or_default();
        let retriever = Retriever::spawn_from(
            c.client.clone(),
            &c.namespace,
            &component.configmap_name(&c.cluster_id),
            seed,
        );
        let changes = log_changes(component, retriever.state(), |s| s.leader.clone());
        let state = retriever.state();
        followers.insert(component.clone(), Follower { retriever, changes });
        Ok(Source::Follower(state))
    }

    /// The state of `component` as the API reports it.
    fn view(&self, source: &mut Source, component: &Component) -> LeadershipView {
        source.view(component, self.last_release(component))
    }

    /// The last state a client's stream shows of a component it no longer contends for:
    /// not contending, not leading, and nothing observed (`synced: false`), whoever else may
    /// contend for it now; with the release that ended it.
    fn not_contending_view(&self, component: &Component) -> LeadershipView {
        let (_, nothing) = watch::channel(Retrieved::default());
        let mut view = Source::Follower(nothing).view(component, self.last_release(component));
        view.synced = false;
        view
    }

    /// The state of a contended component, as its elector publishes it.
    pub fn leadership(&self, component: &Component) -> Option<watch::Receiver<LeadershipState>> {
        self.contenders().get(component).map(|c| c.elector.state())
    }

    /// The fencing primitive of a contended component.
    pub fn fence(&self, component: &Component) -> Option<crate::election::Fence> {
        self.contenders()
            .get(component)
            .map(|c| c.elector.fence().clone())
    }

    /// Ready once every contender's watch has delivered its initial list and is not failing;
    /// else why not.
    pub fn ready(&self) -> Result<(), String> {
        let waiting: Vec<String> = self
            .contenders()
            .iter()
            .filter_map(|(component, c)| {
                let state = c.elector.state();
                let s = state.borrow();
                match (&s.watch_error, s.synced) {
                    (Some(e), _) => Some(format!("{component}: {e}")),
                    (None, false) => Some(format!("{component}: no answer yet")),
                    (None, true) => None,
                }
            })
            .collect();
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(waiting.join("; "))
        }
    }

    /// Stop accepting contenders and release every lease (concurrently).
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let ended = {
            let mut clients = self.clients();
            let ended = clients.release_all(ReleaseReason::Shutdown, Instant::now());
            crate::metrics::set_clients(0);
            ended
        };
        let pending = self.take_contenders(ReleaseReason::Shutdown, |_, _| true);
        drop(ended);
        if let Some(pending) = pending {
            pending.await;
        }
        let _ = self.inner.reaper_stop.send(true);
        let reaper = lock(&self.inner.reaper).take();
        if let Some(reaper) = reaper {
            let _ = reaper.await;
        }
        for (_, f) in self.followers().drain() {
            f.changes.abort();
            drop(f.retriever);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The reaper: ends clients whose time ran out, at their deadline, and awaits the lock
/// releases of ended clients. One task per sidecar, joined by [`Sidecar::shutdown`]; it holds
/// the sidecar only weakly, so dropping every handle ends it too.
async fn reap(
    inner: Weak<Inner>,
    mut pending: mpsc::UnboundedReceiver<PendingRelease>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    use futures::StreamExt;
    let mut running = futures::stream::FuturesUnordered::new();
    loop {
        let next = match inner.upgrade() {
            Some(inner) => lock(&inner.clients).next_deadline(),
            None => break,
        };
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {
                let Some(inner) = inner.upgrade() else { break };
                let sidecar = Sidecar { inner };
                let ended = {
                    let mut clients = sidecar.clients();
                    let ended = clients.release_expired(Instant::now());
                    crate::metrics::set_clients(clients.len());
                    ended
                };
                for (client, ended) in ended {
                    running.push(sidecar.finish_end(client, ended).1);
                }
            }
            Some(release) = pending.recv() => running.push(release),
            Some(()) = running.next(), if !running.is_empty() => {}
            _ = wake.notified() => {}
            _ = stop.changed() => break,
        }
    }
    // Finish what was started; nothing new comes after shutdown.
    while let Ok(release) = pending.try_recv() {
        running.push(release);
    }
    while running.next().await.is_some() {}
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
    Router::from(api(body_limit))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorKind::NotFound,
                "no such endpoint",
            )
        })
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            sidecar.clone(),
            client_api::touch,
        ))
        .with_state(sidecar)
}

/// Every route of the local API, each with its OpenAPI operation: a route is served only
/// through its `#[utoipa::path]`, so the document lists exactly what is served.
fn api(body_limit: usize) -> OpenApiRouter<Sidecar> {
    OpenApiRouter::with_openapi(<openapi::Frame as utoipa::OpenApi>::openapi())
        .merge(store_api::routes(body_limit))
        .merge(client_api::routes())
        .merge(leadership_api::routes())
        .merge(leadership_api::probe_routes())
        .merge(leadership_api::document_routes())
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::MethodNotAllowed,
        "this endpoint does not take that method",
    )
}

/// The probe listener's API (`--probe-listen`): only [`leadership_api::probe_routes`], with no token, for
/// kubelet probes and Prometheus on the pod's IP while the local API stays on loopback or a
/// Unix socket. Nothing on it changes state: no client is touched, no component followed.
pub fn probe_router(sidecar: Sidecar) -> Router {
    Router::from(leadership_api::probe_routes())
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorKind::NotFound,
                "the probe listener serves only /livez, /readyz and /metrics",
            )
        })
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(sidecar)
}

/// Bind `addr` and serve [`probe_router`] on it, with the local API's [`serve::Limits`],
/// until `shutdown` turns true (the task then ends once open connections have finished).
/// The bound address (port 0 picks a free one) is logged at info; it and the task are
/// returned.
pub async fn serve_probes(
    sidecar: Sidecar,
    addr: SocketAddr,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tracing::info!(probe_listen = %bound, "serving /livez, /readyz and /metrics without a token");
    let task = tokio::spawn(serve::serve(
        serve::Listener::Tcp(listener),
        probe_router(sidecar),
        serve::Limits::default(),
        shutdown,
    ));
    Ok((bound, task))
}
