//! Leader election on a ConfigMap's lease annotation, and the fencing primitive every
//! leader-only write goes through.
//!
//! One [`Elector`] task per contended component. It follows its ConfigMap with a watch and
//! keeps a [`LockObservation`]: the latest object and the local monotonic time at which the
//! lock record last changed. Expiry is judged from that time (client-go style), never from
//! the record's timestamps. A standby sends nothing while the leader renews; it wakes when
//! the watch shows a release, or when the observed lease runs out. The leader renews every
//! retry period by compare-and-swap on the resourceVersion it already holds; if no renew
//! succeeds within the renew deadline it steps down (the deadline is shorter than the lease,
//! so it stops before anyone else may start).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::watcher;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::layout::{ClusterId, Component, KEY_ADDRESS, KEY_SESSION_ID, OwnerRef};
use crate::lease::{LEADER_ANNOTATION, LeaderRecord, RecordError, Timings, Verdict, judge};

/// Where the current leader can be reached: the `address` and `sessionId` data keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Leader)]
pub struct LeaderInfo {
    pub address: String,
    /// As the leader's ConfigMap records it.
    pub session_id: String,
}

/// What is known about one lock ConfigMap: the newest object seen and when its lock record
/// last changed, in local monotonic time.
#[derive(Debug, Clone, Default)]
pub struct LockObservation {
    configmap: Option<ConfigMap>,
    raw: Option<String>,
    record: Option<Result<LeaderRecord, RecordError>>,
    observed_at: Option<Instant>,
}

fn resource_version(cm: &ConfigMap) -> Option<u64> {
    cm.metadata.resource_version.as_deref()?.parse().ok()
}

fn annotation(cm: &ConfigMap) -> Option<&str> {
    cm.metadata
        .annotations
        .as_ref()?
        .get(LEADER_ANNOTATION)
        .map(String::as_str)
}

impl LockObservation {
    /// Something was observed: the object, or that there is none.
    pub fn is_known(&self) -> bool {
        self.observed_at.is_some()
    }

    /// The same observation without the ConfigMap's data (the lock needs only its metadata
    /// and annotation), to be kept cheaply.
    pub fn without_data(&self) -> LockObservation {
        let mut kept = self.clone();
        if let Some(cm) = kept.configmap.as_mut() {
            cm.data = None;
            cm.binary_data = None;
        }
        kept
    }

    /// Take a newer state of the ConfigMap. Versions older than the one held are ignored
    /// (a watch event can arrive after the response to our own later write). Returns true
    /// when something was taken.
    pub fn observe(&mut self, cm: ConfigMap, now: Instant) -> bool {
        if let (Some(held), Some(new)) = (
            self.configmap.as_ref().and_then(resource_version),
            resource_version(&cm),
        ) && new <= held
        {
            return false;
        }
        let raw = annotation(&cm).map(str::to_string);
        if raw != self.raw || self.observed_at.is_none() {
            self.record = raw.as_deref().map(LeaderRecord::parse);
            self.raw = raw;
            self.observed_at = Some(now);
        }
        self.configmap = Some(cm);
        true
    }

    /// The ConfigMap was deleted. A deletion of another incarnation (other uid) is ignored.
    pub fn observe_deleted(&mut self, uid: Option<&str>, now: Instant) -> bool {
        let held_uid = self
            .configmap
            .as_ref()
            .and_then(|c| c.metadata.uid.as_deref());
        if uid.is_some() && held_uid.is_some() && uid != held_uid {
            return false;
        }
        let had = self.configmap.is_some();
        self.configmap = None;
        self.raw = None;
        self.record = None;
        self.observed_at = Some(now);
        had
    }

    pub fn configmap(&self) -> Option<&ConfigMap> {
        self.configmap.as_ref()
    }

    pub fn record(&self) -> Option<&Result<LeaderRecord, RecordError>> {
        self.record.as_ref()
    }

    /// Who holds the lock according to the record (None: no record, released, or malformed).
    pub fn holder(&self) -> Option<&str> {
        match &self.record {
            Some(Ok(r)) if !r.is_released() => Some(r.holder_identity.as_str()),
            _ => None,
        }
    }

    pub fn verdict(&self, now: Instant, me: &str, fallback_lease: Duration) -> Verdict {
        judge(
            self.record.as_ref(),
            self.observed_at.unwrap_or(now),
            now,
            me,
            fallback_lease,
        )
    }

    /// When the observed lease runs out for someone who watches it, if it is held.
    pub fn lease_expires_at(&self) -> Option<Instant> {
        match (&self.record, self.observed_at) {
            (Some(Ok(r)), Some(at)) if !r.is_released() => Some(at + r.lease_duration),
            _ => None,
        }
    }

    /// The current leader as a follower sees it: the lock is held, its observed lease has
    /// not run out, and the data names an address and a session.
    pub fn leader(&self, now: Instant) -> Option<LeaderInfo> {
        self.holder()?;
        if self.lease_expires_at().is_none_or(|t| now >= t) {
            return None;
        }
        let data = self.configmap.as_ref()?.data.as_ref()?;
        let address = data.get(KEY_ADDRESS).filter(|a| !a.is_empty())?;
        let session = data.get(KEY_SESSION_ID).filter(|s| !s.is_empty())?;
        Some(LeaderInfo {
            address: address.clone(),
            session_id: session.clone(),
        })
    }
}

/// The record this process writes to take the lock, given the one it replaces:
/// `leaderTransitions` goes up only when the holder changes.
pub fn acquisition_record(
    previous: Option<&Result<LeaderRecord, RecordError>>,
    me: &str,
    lease: Duration,
    now: jiff::Timestamp,
) -> LeaderRecord {
    let (transitions, acquire_time) = match previous {
        Some(Ok(p)) if p.holder_identity == me => (p.leader_transitions, p.acquire_time),
        Some(Ok(p)) => (p.leader_transitions.saturating_add(1), now),
        _ => (0, now),
    };
    LeaderRecord {
        holder_identity: me.to_string(),
        lease_duration: lease,
        acquire_time,
        renew_time: now,
        leader_transitions: transitions,
    }
}

/// Put `record` into the ConfigMap's lock annotation.
fn set_record(cm: &mut ConfigMap, record: &LeaderRecord) {
    cm.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(LEADER_ANNOTATION.to_string(), record.to_annotation());
}

/// The record a graceful release writes: no holder, a one-second lease.
pub fn release_record(previous: &LeaderRecord, now: jiff::Timestamp) -> LeaderRecord {
    LeaderRecord {
        holder_identity: String::new(),
        lease_duration: Duration::from_secs(1),
        acquire_time: now,
        renew_time: now,
        leader_transitions: previous.leader_transitions,
    }
}

/// Why a fenced write was refused.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error("not the leader of {component}")]
    NotLeader { component: String },
    #[error("session {presented} is not the current leadership session of {component}")]
    StaleSession {
        component: String,
        presented: String,
    },
    #[error("{component}: the ConfigMap kept changing; gave up after {attempts} attempts")]
    Contention { component: String, attempts: u32 },
    #[error("{0}")]
    Rejected(String),
    #[error("kubernetes API: {0}")]
    Api(#[from] kube::Error),
    #[error("kubernetes API did not answer within {0:?}")]
    Timeout(Duration),
    /// A write was sent but its outcome is unknown. It was conditioned on
    /// `resource_version`: if the ConfigMap has moved past that version without the change,
    /// the write did not land and never will.
    #[error(
        "{component}: outcome of the write on resourceVersion {resource_version} is unknown: {cause}"
    )]
    Indeterminate {
        component: String,
        resource_version: String,
        cause: String,
    },
}

/// What a fenced read-modify-write decided about the current data.
#[derive(Debug)]
pub enum Edit<T> {
    /// The data was changed: write it.
    Write(T),
    /// Nothing to change: send nothing.
    Keep(T),
}

/// The result of [`Fence::apply`].
#[derive(Debug)]
pub struct Applied<T> {
    pub value: T,
    /// The ConfigMap as written (or as read, when nothing was written).
    pub configmap: ConfigMap,
    pub wrote: bool,
}

/// A leadership grant: its session and until when this process may act on it.
#[derive(Debug, Clone, Copy)]
struct Grant {
    session: Uuid,
    valid_until: Instant,
}

/// State shared by the elector task and the fenced writers of one component.
struct LockState {
    observation: LockObservation,
    grant: Option<Grant>,
}

/// The fencing primitive: a read-modify-write of the component's ConfigMap data with a
/// resourceVersion precondition, allowed only while the lock names this process and its
/// lease is live. Conflicts are retried with jittered backoff up to a bound.
#[derive(Clone)]
pub struct Fence {
    api: Api<ConfigMap>,
    name: String,
    component: Component,
    identity: String,
    state: Arc<Mutex<LockState>>,
    call_timeout: Duration,
}

const FENCE_ATTEMPTS: u32 = 8;

impl Fence {
    fn lock(&self) -> std::sync::MutexGuard<'_, LockState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the elector last observed of its lock; after a release, the record it wrote.
    pub fn observation(&self) -> LockObservation {
        self.lock().observation.clone()
    }

    fn not_leader(&self) -> FenceError {
        FenceError::NotLeader {
            component: self.component.to_string(),
        }
    }

    /// The session of the current grant, if this process leads now.
    pub fn current_session(&self) -> Option<Uuid> {
        let st = self.lock();
        st.grant
            .filter(|g| Instant::now() < g.valid_until)
            .map(|g| g.session)
    }

    /// Check the grant (and the presented session) and return the newest known ConfigMap.
    fn precheck(&self, session: Option<Uuid>) -> Result<(Uuid, Option<ConfigMap>), FenceError> {
        let st = self.lock();
        let grant = st
            .grant
            .filter(|g| Instant::now() < g.valid_until)
            .ok_or_else(|| self.not_leader())?;
        if let Some(presented) = session
            && presented != grant.session
        {
            return Err(FenceError::StaleSession {
                component: self.component.to_string(),
                presented: presented.to_string(),
            });
        }
        Ok((grant.session, st.observation.configmap().cloned()))
    }

    fn remember(&self, cm: ConfigMap) {
        self.lock().observation.observe(cm, Instant::now());
    }

    /// Apply `modify` to the ConfigMap's data and write it, fenced. `session` (when given)
    /// must be the current grant's. `modify` runs on fresh data at every attempt and may
    /// refuse with [`FenceError::Rejected`]. Returns the written ConfigMap.
    pub async fn update<F>(
        &self,
        session: Option<Uuid>,
        mut modify: F,
    ) -> Result<ConfigMap, FenceError>
    where
        F: FnMut(&mut BTreeMap<String, String>) -> Result<(), FenceError>,
    {
        let applied = self
            .apply(session, |data| modify(data).map(|()| Edit::Write(())))
            .await?;
        Ok(applied.configmap)
    }

    /// The general fenced read-modify-write. `decide` sees the current data at every attempt
    /// and either changes it ([`Edit::Write`]), finds nothing to do ([`Edit::Keep`], no
    /// request is sent), or refuses with its own error. A write whose outcome cannot be
    /// known (the request may have reached the API server) ends in
    /// [`FenceError::Indeterminate`], naming the resourceVersion it was conditioned on.
    pub async fn apply<T, E, F>(
        &self,
        session: Option<Uuid>,
        mut decide: F,
    ) -> Result<Applied<T>, E>
    where
        F: FnMut(&mut BTreeMap<String, String>) -> Result<Edit<T>, E>,
        E: From<FenceError>,
    {
        let mut backoff = Duration::from_millis(5);
        let mut read_fresh = false;
        for _ in 0..FENCE_ATTEMPTS {
            let (_, cached) = self.precheck(session)?;
            // A decision to write is checked by the server (the resourceVersion precondition);
            // a decision to send nothing is not, so it is only taken on freshly read data.
            let (current, fresh) = match cached.filter(|_| !read_fresh) {
                Some(cm) => (cm, false),
                None => match self.get().await? {
                    Some(cm) => {
                        self.remember(cm.clone());
                        (cm, true)
                    }
                    None => return Err(self.not_leader().into()),
                },
            };
            let holder = annotation(&current).and_then(|a| LeaderRecord::parse(a).ok());
            if holder.is_none_or(|r| r.holder_identity != self.identity) {
                return Err(self.not_leader().into());
            }
            let mut next = current.clone();
            let mut data = next.data.take().unwrap_or_default();
            let value = match decide(&mut data)? {
                Edit::Keep(_) if !fresh => {
                    read_fresh = true;
                    continue;
                }
                Edit::Keep(value) => {
                    return Ok(Applied {
                        value,
                        configmap: current,
                        wrote: false,
                    });
                }
                Edit::Write(value) => value,
            };
            next.data = Some(data);
            // Time has passed: the grant must still be live when the write is sent.
            self.precheck(session)?;
            let conditioned_on = current
                .metadata
                .resource_version
                .clone()
                .unwrap_or_default();
            let sent = tokio::time::timeout(
                self.call_timeout,
                self.api.replace(&self.name, &PostParams::default(), &next),
            )
            .await;
            match &sent {
                Ok(Ok(written)) => crate::metrics::set_configmap_bytes(
                    &self.name,
                    written
                        .data
                        .as_ref()
                        .map_or(0, crate::stores::plan::data_size),
                ),
                Ok(Err(e)) => crate::metrics::api_error(e),
                Err(_) => crate::metrics::api_error_kind("timeout"),
            }
            match sent {
                Ok(Ok(written)) => {
                    self.remember(written.clone());
                    return Ok(Applied {
                        value,
                        configmap: written,
                        wrote: true,
                    });
                }
                Ok(Err(kube::Error::Api(s))) if s.code == 409 => {
                    let jitter =
                        Duration::from_micros(fastrand::u64(0..=backoff.as_micros() as u64));
                    tokio::time::sleep(backoff / 2 + jitter).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                    if let Some(fresh) = self.get().await? {
                        self.remember(fresh);
                    }
                }
                Ok(Err(kube::Error::Api(s))) if s.code == 404 => {
                    return Err(self.not_leader().into());
                }
                // The server answered: nothing was written.
                Ok(Err(kube::Error::Api(s))) if s.code < 500 => {
                    return Err(FenceError::Api(kube::Error::Api(s)).into());
                }
                // A 5xx (an etcd timeout may still commit), a broken connection, or no answer
                // in time: the write may or may not have landed.
                Ok(Err(e)) => return Err(self.indeterminate(conditioned_on, e.to_string()).into()),
                Err(_) => {
                    let cause = format!("no answer within {:?}", self.call_timeout);
                    return Err(self.indeterminate(conditioned_on, cause).into());
                }
            }
        }
        Err(FenceError::Contention {
            component: self.component.to_string(),
            attempts: FENCE_ATTEMPTS,
        }
        .into())
    }

    fn indeterminate(&self, resource_version: String, cause: String) -> FenceError {
        FenceError::Indeterminate {
            component: self.component.to_string(),
            resource_version,
            cause,
        }
    }

    /// Check that this process leads now (and, when given, that `session` is the current
    /// grant's) without writing anything. For leader-only work that is not a ConfigMap write.
    pub fn check(&self, session: Option<Uuid>) -> Result<Uuid, FenceError> {
        self.precheck(session).map(|(s, _)| s)
    }

    /// Read the ConfigMap from the API server now (bounded by the call timeout), whoever
    /// leads. Used to settle an [`FenceError::Indeterminate`] write.
    pub async fn fetch(&self) -> Result<Option<ConfigMap>, FenceError> {
        let cm = self.get().await?;
        if let Some(cm) = &cm {
            self.remember(cm.clone());
        }
        Ok(cm)
    }

    /// The ConfigMap's name.
    pub fn configmap_name(&self) -> &str {
        &self.name
    }

    /// The component this fence guards.
    pub fn component(&self) -> &Component {
        &self.component
    }

    async fn get(&self) -> Result<Option<ConfigMap>, FenceError> {
        match tokio::time::timeout(self.call_timeout, self.api.get_opt(&self.name)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(FenceError::Timeout(self.call_timeout)),
        }
    }
}

/// What one contender publishes about its component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadershipState {
    pub component: Component,
    /// This process leads, and its leadership is confirmed (address and session written).
    pub is_leader: bool,
    /// Our session while we lead.
    pub session_id: Option<Uuid>,
    /// The holder named by the lock record, if any.
    pub holder_identity: Option<String>,
    /// The leader as any follower would see it.
    pub leader: Option<LeaderInfo>,
    /// When the observed lease runs out (local monotonic time).
    pub lease_expires_at: Option<Instant>,
    /// The initial list of the ConfigMap has been seen.
    pub synced: bool,
    /// When this contender last lost a leadership it held (not counting releases).
    pub last_lost: Option<Instant>,
    /// The lock watch's error while it keeps failing (`/readyz` says it).
    pub watch_error: Option<String>,
}

/// How to contend for one component.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    pub cluster_id: ClusterId,
    pub component: Component,
    pub identity: String,
    pub address: String,
    pub timings: Timings,
    pub owner: Option<OwnerRef>,
}

enum Command {
    Release(ReleaseReason, oneshot::Sender<()>),
}

/// Why a contender gave up (or lost) its leadership: the label of
/// `hakeeper_leadership_releases_total`, in log lines and in the sidecar's reported state.
/// `client_gone`: the client's last event stream closed. `client_timeout`: the client sent
/// nothing with its id within the client timeout. `liveness_failed`: the `--liveness-url`
/// probe failed `--liveness-failures` times in a row (`--contend` only). `api_delete`:
/// `DELETE /v1/leadership/{component}` or `DELETE /v1/clients/{clientId}`. `shutdown`: the
/// sidecar stopped. `lost`: not given up but taken away (renew deadline passed, lock deleted or
/// taken).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    /// The client that contended closed its last event stream (its process died).
    ClientGone,
    /// The client showed no life for longer than the client timeout.
    ClientTimeout,
    /// The JobManager's liveness probe (`--liveness-url`) failed too often in a row.
    LivenessFailed,
    /// `DELETE /v1/leadership/{component}` or `DELETE /v1/clients/{id}`.
    ApiDelete,
    /// The sidecar is stopping.
    Shutdown,
    /// Not given up: taken away (renew deadline passed, lock deleted or taken).
    Lost,
}

impl ReleaseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseReason::ClientGone => "client_gone",
            ReleaseReason::ClientTimeout => "client_timeout",
            ReleaseReason::LivenessFailed => "liveness_failed",
            ReleaseReason::ApiDelete => "api_delete",
            ReleaseReason::Shutdown => "shutdown",
            ReleaseReason::Lost => "lost",
        }
    }
}

impl std::fmt::Display for ReleaseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A running contender. Drop or [`Elector::abort`] stops it without releasing (as a crash
/// would); [`Elector::release`] stops leader work, releases the lock and waits.
pub struct Elector {
    state: watch::Receiver<LeadershipState>,
    commands: mpsc::Sender<Command>,
    task: Option<JoinHandle<()>>,
    /// Records the elector's Events; ends when the elector task does.
    recorder: Option<JoinHandle<()>>,
    fence: Fence,
}

impl Elector {
    pub fn spawn(client: kube::Client, namespace: &str, config: ElectionConfig) -> Elector {
        Self::spawn_from(client, namespace, config, LockObservation::default())
    }

    /// Like [`Elector::spawn`], starting from what this process has already observed of the
    /// lock (e.g. by a [`crate::retrieval::Retriever`]). A lease whose record has not changed
    /// since it was first observed then expires when it really does, rather than a whole
    /// lease duration after the elector starts.
    pub fn spawn_from(
        client: kube::Client,
        namespace: &str,
        config: ElectionConfig,
        observed: LockObservation,
    ) -> Elector {
        let client_for_events = client.clone();
        let config_retry_period = config.timings.retry_period;
        let api: Api<ConfigMap> = Api::namespaced(client, namespace);
        let name = config.component.configmap_name(&config.cluster_id);
        let shared = Arc::new(Mutex::new(LockState {
            observation: observed,
            grant: None,
        }));
        let fence = Fence {
            api: api.clone(),
            name: name.clone(),
            component: config.component.clone(),
            identity: config.identity.clone(),
            state: shared.clone(),
            call_timeout: config.timings.renew_deadline,
        };
        let initial = LeadershipState {
            component: config.component.clone(),
            is_leader: false,
            session_id: None,
            holder_identity: None,
            leader: None,
            lease_expires_at: None,
            synced: false,
            last_lost: None,
            watch_error: None,
        };
        let (state_tx, state) = watch::channel(initial);
        let (commands, command_rx) = mpsc::channel(4);
        let (events_tx, events_rx) = mpsc::channel(16);
        let recorder = tokio::spawn(record_events(
            client_for_events,
            config.identity.clone(),
            events_rx,
        ));
        let task = ElectorTask {
            api,
            name,
            config,
            shared,
            fence: fence.clone(),
            state: state_tx,
            synced: false,
            next_renew: None,
            retry_at: None,
            seen_in_listing: false,
            last_lost: None,
            watch_error: None,
            deletions: DeletionBackoff::new(config_retry_period),
            deletion_pending: false,
            last_reference: Mutex::new(None),
            write_errors: RepeatedError::default(),
            acquire_backoff: WatchBackoff::starting_at(config_retry_period),
            events: events_tx,
        };
        let task = tokio::spawn(task.run(command_rx));
        Elector {
            state,
            commands,
            task: Some(task),
            recorder: Some(recorder),
            fence,
        }
    }

    /// Follow the published state.
    pub fn state(&self) -> watch::Receiver<LeadershipState> {
        self.state.clone()
    }

    /// The fencing primitive for this component's leader-only writes.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Stop leader work, release the lock if held, and wait for the task to end.
    pub async fn release(mut self, reason: ReleaseReason) {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Release(reason, tx))
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        // Let the last Event ("stopped leading") out, within bounds.
        if let Some(mut recorder) = self.recorder.take()
            && tokio::time::timeout(Duration::from_secs(2), &mut recorder)
                .await
                .is_err()
        {
            recorder.abort();
        }
    }

    /// Stop at once without releasing: the lock stays until its lease runs out.
    pub fn abort(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(recorder) = self.recorder.take() {
            recorder.abort();
        }
    }
}

impl Drop for Elector {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(recorder) = self.recorder.take() {
            recorder.abort();
        }
        // No longer contending: no series that could read as "still leading", and none
        // piling up for components (jobs) long gone.
        crate::metrics::forget_component(&self.fence.component.to_string());
    }
}

/// Record the elector's `LeaderElection` Events (events.k8s.io/v1, through kube's
/// `Recorder`, which turns a repeat into a series count) until the elector ends. A failure
/// (no permission for Events, say) is logged once per distinct error; leadership never waits
/// on it.
async fn record_events(
    client: kube::Client,
    identity: String,
    mut events: mpsc::Receiver<(ObjectReference, &'static str, String)>,
) {
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: "hakeeper".into(),
            instance: Some(identity),
        },
    );
    let mut failing: Option<String> = None;
    while let Some((reference, action, note)) = events.recv().await {
        let event = Event {
            type_: EventType::Normal,
            reason: "LeaderElection".into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            recorder.publish(&event, &reference),
        )
        .await;
        match result {
            Ok(Ok(())) => {
                if failing.take().is_some() {
                    tracing::info!("recording leader election Events works again");
                }
            }
            Ok(Err(e)) => {
                let e = e.to_string();
                if failing.as_deref() != Some(&e) {
                    tracing::warn!(error = %e, "could not record a leader election Event (the Role needs create and patch on events.k8s.io events)");
                    failing = Some(e);
                }
            }
            Err(_) => {
                let e = "no answer within 10 s".to_string();
                if failing.as_deref() != Some(&e) {
                    tracing::warn!(error = %e, "could not record a leader election Event");
                    failing = Some(e);
                }
            }
        }
    }
}

/// What a re-read after a conflict found.
enum Refreshed {
    Found,
    Gone,
    /// The read failed or timed out.
    Unknown,
}

struct ElectorTask {
    api: Api<ConfigMap>,
    name: String,
    config: ElectionConfig,
    shared: Arc<Mutex<LockState>>,
    fence: Fence,
    state: watch::Sender<LeadershipState>,
    synced: bool,
    /// When the leader renews next.
    next_renew: Option<Instant>,
    /// When a standby retries after a failed attempt.
    retry_at: Option<Instant>,
    seen_in_listing: bool,
    last_lost: Option<Instant>,
    watch_error: Option<String>,
    /// Deletions of the lock: how long to wait before recreating it.
    deletions: DeletionBackoff,
    /// `retry_at` is a deletion's backoff (kept across relists until an acquisition).
    deletion_pending: bool,
    /// The lock ConfigMap as an Event's subject, kept for Events after it is gone.
    last_reference: Mutex<Option<ObjectReference>>,
    /// Failing lock writes, logged once per change.
    write_errors: RepeatedError,
    /// Failing acquisitions: retried from the retry period, doubling (to 30 s once failing
    /// for 30 s); reset by a success.
    acquire_backoff: WatchBackoff,
    /// To the events task: Events to record on the lock.
    events: mpsc::Sender<(ObjectReference, &'static str, String)>,
}

impl ElectorTask {
    fn lock(&self) -> std::sync::MutexGuard<'_, LockState> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn me(&self) -> &str {
        &self.config.identity
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let watch_config =
            watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        let mut pacer = WatchPacer::new(self.config.timings.retry_period);
        let mut events = watcher(self.api.clone(), watch_config).boxed();
        loop {
            let wake = self.next_wake();
            let paused = pacer.paused_until();
            tokio::select! {
                command = commands.recv() => {
                    let (reason, reply) = match command {
                        Some(Command::Release(reason, reply)) => (reason, Some(reply)),
                        // Every handle is gone: as a shutdown.
                        None => (ReleaseReason::Shutdown, None),
                    };
                    self.release(reason).await;
                    if let Some(reply) = reply {
                        let _ = reply.send(());
                    }
                    return;
                }
                event = events.next(), if paused.is_none() => match event {
                    Some(Ok(event)) => {
                        if pacer.progressed(&event) {
                            tracing::info!(component = %self.config.component, "lock watch works again");
                            self.watch_error = None;
                        }
                        self.on_event(event).await
                    }
                    Some(Err(e)) => {
                        if let Some(new) = pacer.failed(&e) {
                            tracing::warn!(component = %self.config.component, error = %new, "lock watch failed; retrying with backoff (logged again when the error changes)");
                        }
                        self.watch_error = Some(e.to_string());
                        self.publish();
                    }
                    None => {
                        tracing::error!(component = %self.config.component, "lock watch ended");
                        return;
                    }
                },
                _ = sleep_until(paused), if paused.is_some() => {
                    // Trying again: failing only if this attempt fails too (a re-watch that
                    // succeeds may bring no event at all).
                    pacer.resume();
                    self.watch_error = None;
                    self.publish();
                }
                _ = sleep_until(wake) => self.on_timer().await,
            }
        }
    }

    /// The earliest moment something must be done without a watch event.
    fn next_wake(&self) -> Option<Instant> {
        if !self.synced {
            return None;
        }
        let st = self.lock();
        if let Some(grant) = st.grant {
            return [Some(grant.valid_until), self.next_renew]
                .into_iter()
                .flatten()
                .min();
        }
        let acquire_at = match st.observation.verdict(
            Instant::now(),
            self.me(),
            self.config.timings.lease_duration,
        ) {
            Verdict::HeldByOther { expires_at, .. } => expires_at,
            Verdict::Acquirable | Verdict::HeldByUs => Instant::now(),
        };
        Some(match self.retry_at {
            Some(retry) => retry.max(acquire_at),
            None => acquire_at,
        })
    }

    async fn on_event(&mut self, event: watcher::Event<ConfigMap>) {
        let now = Instant::now();
        match event {
            watcher::Event::Init => self.seen_in_listing = false,
            watcher::Event::InitApply(cm) | watcher::Event::Apply(cm) => {
                self.seen_in_listing = true;
                self.lock().observation.observe(cm, now);
                self.check_still_ours();
            }
            watcher::Event::Delete(cm) => {
                let deleted = self
                    .lock()
                    .observation
                    .observe_deleted(cm.metadata.uid.as_deref(), now);
                if deleted {
                    self.on_deleted(Some(&cm));
                }
            }
            watcher::Event::InitDone => {
                self.synced = true;
                // A relist does not cut short the wait before recreating a deleted lock.
                if !self.deletion_pending {
                    self.retry_at = None;
                }
                let gone = self.lock().observation.configmap().cloned();
                if let Some(gone) = gone.filter(|_| !self.seen_in_listing) {
                    // Gone while the watch was down: the relist does not list it.
                    self.lock().observation.observe_deleted(None, now);
                    self.on_deleted(Some(&gone));
                }
            }
        }
        self.publish();
    }

    /// The lock no longer names us while we hold a grant: someone took it.
    fn check_still_ours(&mut self) {
        let taken = {
            let st = self.lock();
            st.grant.is_some()
                && matches!(st.observation.record(), Some(Ok(r)) if r.holder_identity != self.config.identity)
        };
        if taken {
            tracing::warn!(component = %self.config.component, "lock taken by another holder; stepping down");
            self.lose("lock taken by another holder");
        }
    }

    /// The lock ConfigMap is gone. Whoever deleted it may do so again (the garbage collector
    /// does, for as long as an owner is missing), so it is recreated only after a backoff that
    /// grows with each deletion; and what was lost with it is said, loudly.
    fn on_deleted(&mut self, gone: Option<&ConfigMap>) {
        let now = Instant::now();
        let was_leader = self.lock().grant.is_some();
        let who = gone
            .map(deleted_by)
            .unwrap_or_else(|| "deleted while the watch was down".into());
        let lost = gone.map(ha_state_in).unwrap_or_default();
        crate::metrics::count_lock_deletion(&self.config.component.to_string(), !lost.is_empty());
        if !lost.is_empty() {
            tracing::error!(component = %self.config.component, configmap = %self.name, lost = %lost, cause = %who, "HA state lost: the ConfigMap that held it was deleted; recreating the lock does not bring it back (restore the job from a savepoint or retained checkpoint)");
        }
        let delay = self.deletions.delay_after(now);
        if let Some(gone) = gone {
            use kube::Resource;
            *self
                .last_reference
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(gone.object_ref(&()));
        }
        if was_leader {
            tracing::error!(component = %self.config.component, configmap = %self.name, cause = %who, recreate_in = ?delay, "lock ConfigMap deleted while leading; leadership revoked");
            self.lose("lock deleted");
        } else {
            tracing::warn!(component = %self.config.component, configmap = %self.name, cause = %who, recreate_in = ?delay, "lock ConfigMap deleted");
        }
        self.retry_at = Some(now + delay);
        self.deletion_pending = true;
    }

    /// A lock write (acquire, renew) failed: logged when the error is new, not per attempt
    /// (the attempts are paced by the retry period and the grant).
    fn write_failed(&mut self, error: String) {
        if self.write_errors.failed(&error) {
            tracing::warn!(component = %self.config.component, error = %error, "lock write failed; retrying (logged again when the error changes)");
        }
    }

    /// Leadership taken away (not given up): counted and reported as `lost`, and recorded as
    /// an Event on the lock.
    fn lose(&mut self, why: &str) {
        if self.lock().grant.is_some() {
            crate::metrics::count_release(ReleaseReason::Lost);
            self.last_lost = Some(Instant::now());
            self.record(
                "Lost",
                format!("{} stopped leading: lost ({why})", self.config.identity),
            );
        }
        self.step_down();
    }

    /// A `LeaderElection` Event on the lock ConfigMap, as client-go's elector records one;
    /// sent by the elector's events task, never holding up the election. Dropped if that task
    /// is behind. `action` (`Acquired`, `Released`, `Lost`) tells transitions apart: kube's
    /// recorder counts a repeat of the same action on the same lock as a series.
    fn record(&self, action: &'static str, note: String) {
        let current = self.lock().observation.configmap().map(|cm| {
            use kube::Resource;
            cm.object_ref(&())
        });
        let mut last = self
            .last_reference
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if current.is_some() {
            *last = current;
        }
        if let Some(reference) = last.clone() {
            let _ = self.events.try_send((reference, action, note));
        }
    }

    fn step_down(&mut self) {
        self.lock().grant = None;
        self.next_renew = None;
        self.publish();
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
        let grant = self.lock().grant;
        match grant {
            Some(g) if now >= g.valid_until => {
                tracing::warn!(component = %self.config.component, "no renew succeeded within the renew deadline; stepping down");
                self.lose("renew deadline passed");
            }
            Some(_) => {
                if self.next_renew.is_some_and(|t| now >= t) {
                    self.renew().await;
                }
            }
            None => self.try_acquire().await,
        }
        self.publish();
    }

    /// Write `next` (its resourceVersion is the precondition), bounded by `timeout`.
    async fn replace(
        &self,
        next: &ConfigMap,
        timeout: Duration,
    ) -> Result<kube::Result<ConfigMap>, tokio::time::error::Elapsed> {
        tokio::time::timeout(
            timeout,
            self.api.replace(&self.name, &PostParams::default(), next),
        )
        .await
    }

    /// Read the ConfigMap again (after a conflict) and take what is found into the observation.
    async fn refresh(&self, timeout: Duration) -> Refreshed {
        match tokio::time::timeout(timeout, self.api.get_opt(&self.name)).await {
            Ok(Ok(Some(fresh))) => {
                self.lock().observation.observe(fresh, Instant::now());
                Refreshed::Found
            }
            Ok(Ok(None)) => Refreshed::Gone,
            _ => Refreshed::Unknown,
        }
    }

    /// Bound an API call: for a leader, by its grant (so it can step down on time).
    fn call_timeout(&self) -> Duration {
        let base = self.config.timings.retry_period;
        match self.lock().grant {
            Some(g) => g
                .valid_until
                .saturating_duration_since(Instant::now())
                .min(base)
                .max(Duration::from_millis(1)),
            None => base,
        }
    }

    async fn try_acquire(&mut self) {
        let now = Instant::now();
        let (verdict, current) = {
            let st = self.lock();
            (
                st.observation
                    .verdict(now, self.me(), self.config.timings.lease_duration),
                st.observation.configmap().cloned(),
            )
        };
        if let Verdict::HeldByOther { .. } = verdict {
            return;
        }
        let timeout = self.call_timeout();
        let sent_at = Instant::now();
        let result = match current {
            None => {
                let record = acquisition_record(
                    None,
                    self.me(),
                    self.config.timings.lease_duration,
                    jiff::Timestamp::now(),
                );
                let cm = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        labels: Some(self.config.component.lock_labels(&self.config.cluster_id)),
                        annotations: Some(BTreeMap::from([(
                            LEADER_ANNOTATION.to_string(),
                            record.to_annotation(),
                        )])),
                        owner_references: self.config.owner.as_ref().map(|o| vec![o.to_k8s()]),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                tokio::time::timeout(timeout, self.api.create(&PostParams::default(), &cm)).await
            }
            Some(cm) => {
                let previous = self.lock().observation.record().cloned();
                let record = acquisition_record(
                    previous.as_ref(),
                    self.me(),
                    self.config.timings.lease_duration,
                    jiff::Timestamp::now(),
                );
                let mut next = cm;
                set_record(&mut next, &record);
                // The previous leader's address and session are stale from now on.
                if let Some(data) = next.data.as_mut() {
                    data.remove(KEY_ADDRESS);
                    data.remove(KEY_SESSION_ID);
                }
                self.replace(&next, timeout).await
            }
        };
        match &result {
            Ok(Err(e)) => crate::metrics::api_error(e),
            Err(_) => crate::metrics::api_error_kind("timeout"),
            Ok(Ok(_)) => {}
        }
        match result {
            Ok(Ok(written)) => {
                self.lock().observation.observe(written, Instant::now());
                kube::runtime::utils::Backoff::reset(&mut self.acquire_backoff);
                if self.write_errors.succeeded() {
                    tracing::info!(component = %self.config.component, "lock writes work again");
                }
                self.deletion_pending = false;
                self.on_acquired(sent_at).await;
            }
            Ok(Err(kube::Error::Api(s))) if s.code == 409 => {
                // Someone else moved first, or our copy is stale (the watch may be down):
                // read the current version rather than wait for the watch.
                tracing::debug!(component = %self.config.component, "lost the race to acquire");
                self.retry_at = Some(Instant::now() + self.config.timings.retry_period);
                self.refresh(self.call_timeout()).await;
            }
            Ok(Err(e)) => {
                self.write_failed(format!("acquire failed: {e}"));
                self.retry_at =
                    Some(Instant::now() + self.acquire_backoff.delay_at(Instant::now()));
            }
            Err(_) => {
                self.write_failed("acquire timed out".into());
                self.retry_at =
                    Some(Instant::now() + self.acquire_backoff.delay_at(Instant::now()));
            }
        }
    }

    async fn on_acquired(&mut self, sent_at: Instant) {
        let session = Uuid::new_v4();
        let t = self.config.timings;
        self.lock().grant = Some(Grant {
            session,
            valid_until: sent_at + t.renew_deadline,
        });
        self.next_renew = Some(sent_at + t.retry_period);
        self.retry_at = None;
        // Confirm: the address and session, through the fence like every leader write.
        let address = self.config.address.clone();
        let confirmed = self
            .fence
            .update(Some(session), |data| {
                data.insert(KEY_ADDRESS.to_string(), address.clone());
                data.insert(KEY_SESSION_ID.to_string(), session.to_string());
                Ok(())
            })
            .await;
        match confirmed {
            Ok(_) => {
                tracing::info!(component = %self.config.component, identity = %self.config.identity, session = %session, address = %self.config.address, "leadership acquired and confirmed");
                self.record(
                    "Acquired",
                    format!("{} became leader", self.config.identity),
                );
            }
            Err(e) => {
                tracing::warn!(component = %self.config.component, error = %e, "could not confirm leadership; stepping down");
                self.lose("could not confirm leadership");
                self.retry_at = Some(Instant::now() + t.retry_period);
            }
        }
    }

    async fn renew(&mut self) {
        let t = self.config.timings;
        loop {
            let Some(current) = self.lock().observation.configmap().cloned() else {
                self.lose("lock gone");
                return;
            };
            let previous = self.lock().observation.record().cloned();
            let ours =
                matches!(&previous, Some(Ok(r)) if r.holder_identity == self.config.identity);
            if !ours {
                tracing::warn!(component = %self.config.component, "lock no longer names us; stepping down");
                self.lose("lock taken by another holder");
                return;
            }
            let record = acquisition_record(
                previous.as_ref(),
                self.me(),
                t.lease_duration,
                jiff::Timestamp::now(),
            );
            let mut next = current;
            set_record(&mut next, &record);
            let timeout = self.call_timeout();
            let sent_at = Instant::now();
            let result = self.replace(&next, timeout).await;
            crate::metrics::observe_renew(&self.config.component.to_string(), sent_at);
            match &result {
                Ok(Err(e)) => crate::metrics::api_error(e),
                Err(_) => crate::metrics::api_error_kind("timeout"),
                Ok(Ok(_)) => {
                    if self.write_errors.succeeded() {
                        tracing::info!(component = %self.config.component, "lock writes work again");
                    }
                }
            }
            match result {
                Ok(Ok(written)) => {
                    let mut st = self.lock();
                    st.observation.observe(written, Instant::now());
                    if let Some(g) = st.grant.as_mut() {
                        g.valid_until = sent_at + t.renew_deadline;
                    }
                    drop(st);
                    self.next_renew = Some(sent_at + t.retry_period);
                    return;
                }
                Ok(Err(kube::Error::Api(s))) if s.code == 409 => {
                    // Our version is stale (a watch event or a write of ours is on its way):
                    // read the current one and try again while the grant lasts.
                    match self.refresh(self.call_timeout()).await {
                        Refreshed::Found => {}
                        Refreshed::Gone => {
                            let gone = self.lock().observation.configmap().cloned();
                            self.lock()
                                .observation
                                .observe_deleted(None, Instant::now());
                            self.on_deleted(gone.as_ref());
                            return;
                        }
                        Refreshed::Unknown => {
                            self.next_renew = Some(Instant::now() + t.retry_period / 4);
                            return;
                        }
                    }
                }
                Ok(Err(kube::Error::Api(s))) if s.code == 404 => {
                    let gone = self.lock().observation.configmap().cloned();
                    self.lock()
                        .observation
                        .observe_deleted(None, Instant::now());
                    self.on_deleted(gone.as_ref());
                    return;
                }
                Ok(Err(e)) => {
                    self.write_failed(format!("renew failed: {e}"));
                    self.next_renew = Some(Instant::now() + t.retry_period / 4);
                    return;
                }
                Err(_) => {
                    self.write_failed("renew timed out".into());
                    self.next_renew = Some(Instant::now() + t.retry_period / 4);
                    return;
                }
            }
            if self
                .lock()
                .grant
                .is_none_or(|g| Instant::now() >= g.valid_until)
            {
                self.lose("renew deadline passed");
                return;
            }
        }
    }

    /// Graceful shutdown: leader work stops first, then one compare-and-swap frees the lock.
    async fn release(&mut self, reason: ReleaseReason) {
        let was_leader = self.lock().grant.is_some();
        self.step_down();
        if !was_leader {
            return;
        }
        crate::metrics::count_release(reason);
        tracing::info!(component = %self.config.component, reason = %reason, "releasing leadership");
        self.record(
            "Released",
            format!(
                "{} stopped leading: released ({reason})",
                self.config.identity
            ),
        );
        for _ in 0..3 {
            let (current, previous) = {
                let st = self.lock();
                (
                    st.observation.configmap().cloned(),
                    st.observation.record().cloned(),
                )
            };
            let (Some(current), Some(Ok(previous))) = (current, previous) else {
                return;
            };
            if previous.holder_identity != self.config.identity {
                return;
            }
            let mut next = current;
            set_record(
                &mut next,
                &release_record(&previous, jiff::Timestamp::now()),
            );
            let timeout = self.config.timings.retry_period;
            match self.replace(&next, timeout).await {
                Ok(Ok(written)) => {
                    self.lock().observation.observe(written, Instant::now());
                    tracing::info!(component = %self.config.component, "leadership released");
                    return;
                }
                Ok(Err(kube::Error::Api(s))) if s.code == 409 => {
                    self.refresh(timeout).await;
                }
                Ok(Err(e)) => {
                    tracing::warn!(component = %self.config.component, error = %e, "release failed; the lease will run out instead");
                    return;
                }
                Err(_) => {
                    tracing::warn!(component = %self.config.component, "release timed out; the lease will run out instead");
                    return;
                }
            }
        }
    }

    fn publish(&self) {
        let now = Instant::now();
        let next = {
            let st = self.lock();
            let grant = st.grant.filter(|g| now < g.valid_until);
            let leader = st.observation.leader(now);
            // Leading means: a live grant, and the data names our session (confirmed).
            let confirmed = grant.filter(|g| {
                leader
                    .as_ref()
                    .is_some_and(|l| l.session_id == g.session.to_string())
            });
            LeadershipState {
                component: self.config.component.clone(),
                is_leader: confirmed.is_some(),
                session_id: confirmed.map(|g| g.session),
                holder_identity: st.observation.holder().map(str::to_string),
                leader,
                lease_expires_at: st.observation.lease_expires_at(),
                synced: self.synced,
                last_lost: self.last_lost,
                watch_error: self.watch_error.clone(),
            }
        };
        let component = self.config.component.to_string();
        crate::metrics::set_leader(&component, next.is_leader);
        if let Some(Ok(record)) = self.lock().observation.record() {
            crate::metrics::set_transitions(&component, record.leader_transitions);
        }
        self.state.send_if_modified(|current| {
            // The expiry moves on every renew; publish it without waking followers
            // unless something they care about changed.
            let changed = current.is_leader != next.is_leader
                || current.session_id != next.session_id
                || current.holder_identity != next.holder_identity
                || current.leader != next.leader
                || current.synced != next.synced
                || current.last_lost != next.last_lost;
            *current = next;
            changed
        });
    }
}

/// Backoff between failed lock watches: from 100 ms, doubling with jitter, up to twice the
/// retry period, so a watch is back soon after an API server returns (kube-rs's default
/// goes up to 30 s, longer than a lease).
pub(crate) struct WatchBackoff {
    next: Duration,
    min: Duration,
    /// The bound while the failures are young: an outage, after which the watch should be
    /// back soon.
    max: Duration,
    /// Since when every attempt failed.
    failing_since: Option<Instant>,
}

/// Failing this long without a success is no passing outage (a missing permission, a deleted
/// namespace, a misconfigured client): the backoff may grow to [`PERSISTENT_MAX`].
pub(crate) const PERSISTENT_AFTER: Duration = Duration::from_secs(30);
pub(crate) const PERSISTENT_MAX: Duration = Duration::from_secs(30);

impl WatchBackoff {
    /// From `min`, doubling up to twice that while young.
    pub(crate) fn starting_at(min: Duration) -> Self {
        WatchBackoff {
            next: min,
            min,
            max: min * 2,
            failing_since: None,
        }
    }

    pub(crate) fn new(retry_period: Duration) -> Self {
        let min = Duration::from_millis(100);
        WatchBackoff {
            next: min,
            min,
            max: (retry_period * 2).max(min),
            failing_since: None,
        }
    }

    /// The delay before the next attempt after a failure at `now` (before jitter).
    fn delay_at(&mut self, now: Instant) -> Duration {
        let since = *self.failing_since.get_or_insert(now);
        let max = if now.saturating_duration_since(since) >= PERSISTENT_AFTER {
            PERSISTENT_MAX.max(self.max)
        } else {
            self.max
        };
        let current = self.next.min(max);
        self.next = (current * 2).min(max.max(current));
        current
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let current = self.delay_at(Instant::now());
        // Up to 25% jitter, so many watchers do not return in step.
        let jitter = current.as_micros() as u64 / 4;
        Some(current + Duration::from_micros(fastrand::u64(0..=jitter)))
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = self.min;
        self.failing_since = None;
    }
}

/// Paces a kube watcher after errors. kube's own `backoff` combinator resets on every item,
/// and the watcher yields `Init` before each relist, so a list that always fails would be
/// retried at the shortest delay forever; here only real progress (objects, or the end of
/// the initial list) resets the delay. The watcher is simply not polled while paused.
pub(crate) struct WatchPacer {
    backoff: WatchBackoff,
    paused_until: Option<Instant>,
    errors: RepeatedError,
}

impl WatchPacer {
    pub(crate) fn new(retry_period: Duration) -> Self {
        WatchPacer {
            backoff: WatchBackoff::new(retry_period),
            paused_until: None,
            errors: RepeatedError::default(),
        }
    }

    /// When to poll the watcher again, if it is paused.
    pub(crate) fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    pub(crate) fn resume(&mut self) {
        self.paused_until = None;
    }

    /// An event arrived. True when it ends a run of errors (then log the recovery).
    pub(crate) fn progressed<K>(&mut self, event: &watcher::Event<K>) -> bool {
        if matches!(event, watcher::Event::Init) {
            return false;
        }
        use kube::runtime::utils::Backoff;
        self.backoff.reset();
        self.errors.succeeded()
    }

    /// The watcher failed: pause it for the next delay. The error, when it is a new one
    /// (then log it).
    pub(crate) fn failed(&mut self, error: &watcher::Error) -> Option<String> {
        let delay = self.backoff.next().unwrap_or(PERSISTENT_MAX);
        self.paused_until = Some(Instant::now() + delay);
        let e = error.to_string();
        self.errors.failed(&e).then_some(e)
    }
}

/// How long to wait before recreating a deleted lock: the retry period after a first
/// deletion, doubling with each deletion that follows within a minute of the last, up to
/// [`PERSISTENT_MAX`], with jitter.
#[derive(Debug)]
pub(crate) struct DeletionBackoff {
    base: Duration,
    next: Duration,
    last: Option<Instant>,
}

impl DeletionBackoff {
    pub(crate) fn new(base: Duration) -> Self {
        DeletionBackoff {
            base,
            next: base,
            last: None,
        }
    }

    /// The delay before recreating after a deletion at `now` (before jitter is added by
    /// the caller's clock; here the bounded value).
    pub(crate) fn delay_after(&mut self, now: Instant) -> Duration {
        if self
            .last
            .is_none_or(|l| now.saturating_duration_since(l) > Duration::from_secs(60))
        {
            self.next = self.base;
        }
        self.last = Some(now);
        let current = self.next;
        self.next = (current * 2).min(PERSISTENT_MAX.max(self.base));
        let jitter = current.as_micros() as u64 / 4;
        current + Duration::from_micros(fastrand::u64(0..=jitter))
    }
}

/// Who deleted a ConfigMap, as far as its last state tells.
fn deleted_by(cm: &ConfigMap) -> String {
    let owners: Vec<String> = cm
        .metadata
        .owner_references
        .iter()
        .flatten()
        .map(|o| format!("{}/{} (uid {})", o.kind, o.name, o.uid))
        .collect();
    let when = cm
        .metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| format!(" at {}", t.0))
        .unwrap_or_default();
    if owners.is_empty() {
        format!("deleted{when} by a client (kubectl delete, an operator, a script)")
    } else {
        format!(
            "deleted{when}; it has owner references ({}): the garbage collector deletes it when an owner is gone",
            owners.join(", ")
        )
    }
}

/// The HA state a ConfigMap held, in words ("2 job graphs, 3 checkpoints, a counter"), or
/// empty if none.
pub fn ha_state_in(cm: &ConfigMap) -> String {
    let keys: Vec<&String> = cm.data.iter().flat_map(|d| d.keys()).collect();
    let count = |prefix: &str| keys.iter().filter(|k| k.starts_with(prefix)).count();
    let mut parts = Vec::new();
    for (n, what) in [
        (count("jobGraph-"), "job graph"),
        (count("checkpointID-"), "checkpoint"),
        (count("runningJobsRegistry-"), "job status"),
    ] {
        match n {
            0 => {}
            1 => parts.push(format!("1 {what}")),
            n => parts.push(format!(
                "{n} {what}{}",
                if what.ends_with('s') { "es" } else { "s" }
            )),
        }
    }
    if keys.iter().any(|k| k.as_str() == "counter") {
        parts.push("a checkpoint counter".into());
    }
    parts.join(", ")
}

/// A repeating error, logged once per change rather than once per attempt.
#[derive(Debug, Default)]
pub(crate) struct RepeatedError {
    last: Option<String>,
}

impl RepeatedError {
    /// An attempt failed with `error`: true when it is new (then log it).
    pub(crate) fn failed(&mut self, error: &str) -> bool {
        if self.last.as_deref() == Some(error) {
            return false;
        }
        self.last = Some(error.to_string());
        true
    }

    /// An attempt succeeded: true when it had been failing (then log the recovery).
    pub(crate) fn succeeded(&mut self) -> bool {
        self.last.take().is_some()
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: &str, transitions: u32) -> LeaderRecord {
        LeaderRecord {
            holder_identity: holder.into(),
            lease_duration: Duration::from_secs(15),
            acquire_time: "2022-05-19T15:09:39.272Z".parse().unwrap(),
            renew_time: "2022-05-19T15:10:02.104Z".parse().unwrap(),
            leader_transitions: transitions,
        }
    }

    fn cm(rv: u64, annotation: Option<String>, data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("c".into()),
                uid: Some("u1".into()),
                resource_version: Some(rv.to_string()),
                annotations: annotation
                    .map(|a| BTreeMap::from([(LEADER_ANNOTATION.to_string(), a)])),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn transitions_count_holder_changes_only() {
        let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let lease = Duration::from_secs(15);
        let fresh = acquisition_record(None, "me", lease, now);
        assert_eq!((fresh.leader_transitions, fresh.acquire_time), (0, now));
        let renewed = acquisition_record(Some(&Ok(record("me", 4))), "me", lease, now);
        assert_eq!(renewed.leader_transitions, 4);
        assert_eq!(renewed.acquire_time, record("me", 4).acquire_time);
        assert_eq!(renewed.renew_time, now);
        let taken = acquisition_record(Some(&Ok(record("other", 4))), "me", lease, now);
        assert_eq!((taken.leader_transitions, taken.acquire_time), (5, now));
        let released = release_record(&record("me", 4), now);
        assert!(released.is_released());
        assert_eq!(released.leader_transitions, 4);
        assert_eq!(released.lease_duration, Duration::from_secs(1));
        assert!(
            released
                .to_annotation()
                .contains("\"holderIdentity\":\"\",\"leaseDuration\":1.000000000")
        );
    }

    #[test]
    fn observation_ignores_older_versions_and_times_changes_locally() {
        let t0 = Instant::now();
        let mut o = LockObservation::default();
        assert!(o.observe(cm(5, Some(record("a", 0).to_annotation()), &[]), t0));
        // An older version (a late watch event) does not replace a newer one.
        assert!(!o.observe(cm(4, None, &[]), t0 + Duration::from_secs(1)));
        assert_eq!(o.holder(), Some("a"));
        // A newer version with the same record keeps the observation time.
        assert!(o.observe(
            cm(6, Some(record("a", 0).to_annotation()), &[("x", "y")]),
            t0 + Duration::from_secs(5)
        ));
        assert_eq!(o.lease_expires_at(), Some(t0 + Duration::from_secs(15)));
        // A changed record moves it.
        let mut renewed = record("a", 0);
        renewed.renew_time = "2022-05-19T15:10:04.104Z".parse().unwrap();
        o.observe(
            cm(7, Some(renewed.to_annotation()), &[]),
            t0 + Duration::from_secs(6),
        );
        assert_eq!(o.lease_expires_at(), Some(t0 + Duration::from_secs(21)));
    }

    #[test]
    fn follower_sees_a_leader_only_while_the_lease_is_held_and_data_is_set() {
        let t0 = Instant::now();
        let mut o = LockObservation::default();
        o.observe(cm(1, Some(record("a", 0).to_annotation()), &[]), t0);
        assert_eq!(o.leader(t0), None, "no address yet");
        o.observe(
            cm(
                2,
                Some(record("a", 0).to_annotation()),
                &[("address", "akka://a"), ("sessionId", "s1")],
            ),
            t0,
        );
        let info = o.leader(t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(
            (info.address.as_str(), info.session_id.as_str()),
            ("akka://a", "s1")
        );
        assert_eq!(
            o.leader(t0 + Duration::from_secs(15)),
            None,
            "lease ran out"
        );
        o.observe(
            cm(
                3,
                Some(release_record(&record("a", 0), jiff::Timestamp::now()).to_annotation()),
                &[("address", "akka://a"), ("sessionId", "s1")],
            ),
            t0,
        );
        assert_eq!(o.leader(t0), None, "released");
        o.observe(
            cm(
                4,
                Some("{not json".into()),
                &[("address", "x"), ("sessionId", "y")],
            ),
            t0,
        );
        assert_eq!(o.leader(t0), None, "malformed lock");
        assert_eq!(o.holder(), None);
    }

    #[test]
    fn deletion_of_another_incarnation_is_ignored() {
        let t0 = Instant::now();
        let mut o = LockObservation::default();
        o.observe(cm(3, None, &[]), t0);
        assert!(!o.observe_deleted(Some("other-uid"), t0));
        assert!(o.configmap().is_some());
        assert!(o.observe_deleted(Some("u1"), t0));
        assert!(o.configmap().is_none());
        // After a deletion any version is taken (the recreated object starts anew).
        assert!(o.observe(cm(9, None, &[]), t0));
    }

    #[test]
    fn watch_backoff_grows_to_30_s_only_for_errors_that_persist() {
        use kube::runtime::utils::Backoff;
        let t0 = Instant::now();
        let mut b = WatchBackoff::new(Duration::from_millis(400));
        // An outage: doubling up to twice the retry period, so the watch is back soon.
        let mut at = t0;
        let mut delays = Vec::new();
        while at < t0 + PERSISTENT_AFTER {
            let d = b.delay_at(at);
            delays.push(d);
            at += d;
        }
        assert_eq!(delays[0], Duration::from_millis(100));
        assert!(
            delays.iter().all(|d| *d <= Duration::from_millis(800)),
            "{delays:?}"
        );
        // Still failing after 30 s: it keeps doubling, up to 30 s.
        let mut later = Vec::new();
        for _ in 0..10 {
            let d = b.delay_at(at);
            later.push(d);
            at += d;
        }
        assert!(later.windows(2).all(|w| w[1] >= w[0]), "{later:?}");
        assert_eq!(*later.last().unwrap(), PERSISTENT_MAX, "{later:?}");
        // A success starts over.
        b.reset();
        assert_eq!(b.delay_at(at), Duration::from_millis(100));
    }

    #[test]
    fn deletions_back_off_and_start_over_after_a_quiet_minute() {
        let t0 = Instant::now();
        let mut d = DeletionBackoff::new(Duration::from_millis(500));
        let within = |got: Duration, base: u64| {
            got >= Duration::from_millis(base) && got <= Duration::from_millis(base + base / 4)
        };
        assert!(within(d.delay_after(t0), 500));
        assert!(within(d.delay_after(t0 + Duration::from_secs(1)), 1000));
        assert!(within(d.delay_after(t0 + Duration::from_secs(2)), 2000));
        let mut at = t0 + Duration::from_secs(3);
        let mut last = Duration::ZERO;
        for _ in 0..10 {
            last = d.delay_after(at);
            at += Duration::from_secs(1);
        }
        assert!(within(last, 30_000), "{last:?}");
        // A minute without deletions: back to the first delay.
        assert!(within(d.delay_after(at + Duration::from_secs(61)), 500));
    }

    #[test]
    fn what_a_deleted_configmap_held_and_who_deleted_it() {
        let mut cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c-dispatcher-leader", "deletionTimestamp": "2026-01-01T00:00:00Z",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "flink", "uid": "u1"}]},
            "data": {"jobGraph-a": "x", "jobGraph-b": "x", "runningJobsRegistry-a": "RUNNING",
                "checkpointID-0000000000000000001": "x", "counter": "2", "address": "a"}
        }))
        .unwrap();
        assert_eq!(
            ha_state_in(&cm),
            "2 job graphs, 1 checkpoint, 1 job status, a checkpoint counter"
        );
        let who = deleted_by(&cm);
        assert!(who.contains("Deployment/flink (uid u1)"), "{who}");
        assert!(who.contains("garbage collector"), "{who}");
        assert!(who.contains("2026-01-01"), "{who}");
        cm.metadata.owner_references = None;
        cm.data = None;
        assert_eq!(ha_state_in(&cm), "");
        assert!(deleted_by(&cm).contains("by a client"));
    }

    #[test]
    fn a_repeated_error_is_reported_once_per_change() {
        let mut r = RepeatedError::default();
        assert!(r.failed("403 Forbidden"));
        assert!(!r.failed("403 Forbidden"));
        assert!(r.failed("connection refused"));
        assert!(r.succeeded());
        assert!(!r.succeeded());
        assert!(r.failed("connection refused"));
    }

    #[test]
    fn watch_backoff_grows_to_a_bound_and_resets() {
        use kube::runtime::utils::Backoff;
        let mut b = WatchBackoff::new(Duration::from_millis(400));
        let delays: Vec<Duration> = (0..6).map(|_| b.next().unwrap()).collect();
        assert!(delays[0] >= Duration::from_millis(100) && delays[0] <= Duration::from_millis(125));
        assert!(
            delays[5] >= Duration::from_millis(800) && delays[5] <= Duration::from_millis(1000)
        );
        b.reset();
        assert!(b.next().unwrap() <= Duration::from_millis(125));
    }

    #[test]
    fn malformed_lock_is_never_ours() {
        let t0 = Instant::now();
        let mut o = LockObservation::default();
        o.observe(cm(1, Some("garbage".into()), &[]), t0);
        let lease = Duration::from_secs(15);
        assert!(matches!(
            o.verdict(t0, "me", lease),
            Verdict::HeldByOther { .. }
        ));
        assert_eq!(o.verdict(t0 + lease, "me", lease), Verdict::Acquirable);
    }
}
