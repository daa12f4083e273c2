//! The HA stores over the components' ConfigMaps: job graphs, the running-jobs registry,
//! completed checkpoints, the checkpoint counter, and blobs.
//!
//! Entries are state handles (see [`crate::handle`]) pointing at payloads in object
//! storage. The order of operations keeps one invariant through any crash: **no handle
//! ever points at a payload that is not there**. Adding writes the payload first, then
//! inserts the handle by compare-and-swap; removing takes the handle out first, then
//! deletes the payload. A crash in between leaves an orphan payload, which a collector may
//! delete (see [`plan::orphans`]), never a dangling handle.
//!
//! Every write goes through the owning component's [`Fence`], so only the current leader
//! (and only within its current session) changes anything. Reads need no leadership.

pub mod plan;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use serde::Serialize;
use uuid::Uuid;

use crate::election::{Edit, Fence, FenceError};
use crate::handle::{self, HandleError, StateHandle};
use crate::layout::{ClusterId, JobId};
use crate::storage::{Location, ObjectStore, StorageError};
use plan::{ConfigMapFull, JobStatus, Settled};

/// How often a write whose outcome is unknown is re-examined before giving up.
const SETTLE_ATTEMPTS: u32 = 3;
/// How many fresh payload names are tried when a name is already taken.
const NAME_ATTEMPTS: u32 = 3;

/// Why a store operation failed. Each variant says whether anything was left behind.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Fence(FenceError),
    #[error("{key} already exists in {configmap}")]
    AlreadyExists { configmap: String, key: String },
    #[error("{key} not found in {configmap}")]
    NotFound { configmap: String, key: String },
    #[error(transparent)]
    Full(#[from] ConfigMapFull),
    #[error("payload of {size} bytes is more than the {limit} bytes allowed")]
    PayloadTooLarge { size: u64, limit: u64 },
    /// Object storage could not be reached; nothing was written to the ConfigMap.
    #[error("storage unavailable: {0}")]
    StorageUnavailable(StorageError),
    #[error("storage: {0}")]
    Storage(StorageError),
    /// A ConfigMap entry that should be a handle is not one.
    #[error("{configmap}/{key}: not a valid state handle: {source}")]
    CorruptHandle {
        configmap: String,
        key: String,
        source: Box<HandleError>,
    },
    /// A handle whose payload is missing or does not match it.
    #[error("{key}: payload {location} {problem}")]
    BadPayload {
        key: String,
        location: String,
        problem: String,
    },
    /// A ConfigMap entry holds a value that makes no sense for its key.
    #[error("{configmap}/{key}: {message}")]
    BadValue {
        configmap: String,
        key: String,
        message: String,
    },
    /// The ConfigMap write may or may not have landed and could not be settled; the
    /// payload (if any) was kept so that a handle, if the write did land, is not dangling.
    #[error("{key}: outcome unknown ({cause}); payload {kept:?} kept")]
    OutcomeUnknown {
        key: String,
        cause: String,
        kept: Option<String>,
    },
    #[error("checkpoint {id} is not newer than the latest retained checkpoint {latest}")]
    OutOfOrder { id: u64, latest: u64 },
    #[error("no retained checkpoint could be recovered: {0}")]
    NoRecoverableCheckpoint(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("kubernetes API: {0}")]
    Api(kube::Error),
    #[error("kubernetes API did not answer within {0:?}")]
    ApiTimeout(Duration),
}

impl From<FenceError> for StoreError {
    fn from(e: FenceError) -> Self {
        StoreError::Fence(e)
    }
}

impl StoreError {
    fn storage(e: StorageError) -> Self {
        let kind = match &e {
            StorageError::NotFound { .. } => "not_found",
            StorageError::AlreadyExists { .. } => "already_exists",
            StorageError::TooLarge { .. } => "too_large",
            StorageError::Unavailable { .. } => "unavailable",
            StorageError::Rejected { .. } => "rejected",
            StorageError::InvalidLocation { .. } | StorageError::WrongStore { .. } => "invalid",
        };
        crate::metrics::storage_error(kind);
        match e {
            StorageError::Unavailable { .. } => StoreError::StorageUnavailable(e),
            other => StoreError::Storage(other),
        }
    }

    /// A short machine-readable kind, used as the sidecar API's error kind.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Fence(FenceError::NotLeader { .. }) => "NotLeader",
            StoreError::Fence(FenceError::StaleSession { .. }) => "StaleSession",
            StoreError::Fence(FenceError::Contention { .. }) => "Contention",
            StoreError::Fence(FenceError::Rejected(_)) => "Rejected",
            StoreError::Fence(FenceError::Indeterminate { .. }) => "OutcomeUnknown",
            StoreError::Fence(FenceError::Api(_) | FenceError::Timeout(_)) => "ApiUnavailable",
            StoreError::AlreadyExists { .. } => "AlreadyExists",
            StoreError::NotFound { .. } => "NotFound",
            StoreError::Full(_) => "ConfigMapFull",
            StoreError::PayloadTooLarge { .. } => "PayloadTooLarge",
            StoreError::StorageUnavailable(_) => "StorageUnavailable",
            StoreError::Storage(StorageError::NotFound { .. }) => "NotFound",
            StoreError::Storage(_) => "StorageError",
            StoreError::CorruptHandle { .. } => "CorruptHandle",
            StoreError::BadPayload { .. } => "BadPayload",
            StoreError::BadValue { .. } => "BadValue",
            StoreError::OutcomeUnknown { .. } => "OutcomeUnknown",
            StoreError::OutOfOrder { .. } => "OutOfOrder",
            StoreError::NoRecoverableCheckpoint(_) => "NoRecoverableCheckpoint",
            StoreError::Invalid(_) => "Invalid",
            StoreError::Api(_) | StoreError::ApiTimeout(_) => "ApiUnavailable",
        }
    }
}

/// Where payloads go and how big they may be; shared by all stores of one cluster.
#[derive(Clone)]
pub struct Payloads {
    pub storage: Arc<dyn ObjectStore>,
    /// `<storage-dir>/<cluster-id>`.
    pub cluster_dir: Location,
    pub max_payload_bytes: u64,
}

impl Payloads {
    pub fn new(storage: Arc<dyn ObjectStore>, storage_dir: &Location, cluster: &ClusterId) -> Self {
        Payloads {
            storage,
            cluster_dir: storage_dir.join(cluster.as_str()),
            max_payload_bytes: 64 << 20,
        }
    }

    fn check_size(&self, len: usize) -> Result<(), StoreError> {
        if len as u64 > self.max_payload_bytes {
            return Err(StoreError::PayloadTooLarge {
                size: len as u64,
                limit: self.max_payload_bytes,
            });
        }
        Ok(())
    }

    /// Write a payload under a fresh name (never over an existing object).
    async fn write_new(&self, prefix: &str, body: Bytes) -> Result<StateHandle, StoreError> {
        self.check_size(body.len())?;
        let mut last = None;
        for _ in 0..NAME_ATTEMPTS {
            let location = self.cluster_dir.join(&plan::payload_name(prefix));
            match self.storage.put_new(&location, body.clone()).await {
                Ok(()) => {
                    crate::metrics::payload_written(body.len());
                    return Ok(StateHandle::new(location.to_string(), body.len() as i64));
                }
                Err(e @ StorageError::AlreadyExists { .. }) => last = Some(e),
                Err(e) => return Err(StoreError::storage(e)),
            }
        }
        Err(StoreError::storage(last.expect("at least one attempt")))
    }

    /// Read the payload a handle points at and check it is whole.
    /// The location of a handle's payload, which must be under this cluster's directory: a
    /// handle (anyone who can write the ConfigMap can write one) never makes the sidecar read
    /// or delete anything else.
    fn own(&self, path: &str) -> Result<Location, String> {
        let location = Location::parse(path).map_err(|e| e.to_string())?;
        if !location.is_under(&self.cluster_dir) {
            return Err(format!("is outside {}", self.cluster_dir));
        }
        Ok(location)
    }

    pub async fn read(&self, key: &str, handle: &StateHandle) -> Result<Bytes, StoreError> {
        let location = self
            .own(&handle.path)
            .map_err(|problem| StoreError::BadPayload {
                key: key.to_string(),
                location: handle.path.clone(),
                problem,
            })?;
        let body = match self.storage.get(&location, self.max_payload_bytes).await {
            Ok(b) => b,
            Err(StorageError::NotFound { .. }) => {
                return Err(StoreError::BadPayload {
                    key: key.to_string(),
                    location: handle.path.clone(),
                    problem: "is missing".into(),
                });
            }
            Err(e) => return Err(StoreError::storage(e)),
        };
        if body.len() as i64 != handle.state_size {
            return Err(StoreError::BadPayload {
                key: key.to_string(),
                location: handle.path.clone(),
                problem: format!(
                    "has {} bytes where the handle records {}",
                    body.len(),
                    handle.state_size
                ),
            });
        }
        Ok(body)
    }

    /// Delete a payload that no handle references any more. A failure only leaves an
    /// orphan: it is logged and reported, not raised.
    async fn discard(&self, path: &str) -> Option<String> {
        let location = match self.own(path) {
            Ok(l) => l,
            Err(problem) => {
                tracing::warn!(payload = %path, problem = %problem, "not deleting a payload outside this cluster's directory");
                return Some(path.to_string());
            }
        };
        match self.storage.delete(&location).await {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(payload = %path, error = %e, "could not delete payload; left as an orphan");
                Some(path.to_string())
            }
        }
    }
}

/// Reads one ConfigMap, whoever leads.
#[derive(Clone)]
pub struct ConfigMapReader {
    api: Api<ConfigMap>,
    name: String,
    timeout: Duration,
}

impl ConfigMapReader {
    pub fn new(api: Api<ConfigMap>, name: impl Into<String>) -> Self {
        ConfigMapReader {
            api,
            name: name.into(),
            timeout: Duration::from_secs(10),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ConfigMap's data now (empty if it does not exist).
    pub async fn data(&self) -> Result<BTreeMap<String, String>, StoreError> {
        match tokio::time::timeout(self.timeout, self.api.get_opt(&self.name)).await {
            Ok(Ok(cm)) => Ok(cm.and_then(|c| c.data).unwrap_or_default()),
            Ok(Err(e)) => Err(StoreError::Api(e)),
            Err(_) => Err(StoreError::ApiTimeout(self.timeout)),
        }
    }
}

/// An entry that could not be decoded, reported instead of failing a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Skipped {
    pub key: String,
    pub reason: String,
}

/// The outcome of a removal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// The key was there (and is gone now).
    pub existed: bool,
    /// A payload that could not be deleted and is now an orphan.
    pub orphaned: Option<String>,
}

/// The generic state-handle store: handles under keys of one ConfigMap, payloads in
/// object storage. Writes need the ConfigMap's [`Fence`].
#[derive(Clone)]
pub struct HandleStore {
    reader: ConfigMapReader,
    payloads: Payloads,
    payload_prefix: &'static str,
}

/// What a fenced write means to leave under its key.
#[derive(Clone, Copy)]
enum Target<'a> {
    Insert(&'a str),
    Replace { old: &'a str, new: &'a str },
    Remove(&'a str),
}

impl Target<'_> {
    fn wanted(&self) -> Option<&str> {
        match self {
            Target::Insert(v) | Target::Replace { new: v, .. } => Some(v),
            Target::Remove(_) => None,
        }
    }
}

impl HandleStore {
    pub fn new(reader: ConfigMapReader, payloads: Payloads, payload_prefix: &'static str) -> Self {
        HandleStore {
            reader,
            payloads,
            payload_prefix,
        }
    }

    pub fn configmap(&self) -> &str {
        self.reader.name()
    }

    pub fn payloads(&self) -> &Payloads {
        &self.payloads
    }

    fn corrupt(&self, key: &str, source: HandleError) -> StoreError {
        StoreError::CorruptHandle {
            configmap: self.configmap().to_string(),
            key: key.to_string(),
            source: Box::new(source),
        }
    }

    fn not_found(&self, key: &str) -> StoreError {
        StoreError::NotFound {
            configmap: self.configmap().to_string(),
            key: key.to_string(),
        }
    }

    /// Write the payload, then insert its handle under `key` (which must be free).
    pub async fn add(
        &self,
        fence: &Fence,
        session: Option<Uuid>,
        key: &str,
        payload: Bytes,
    ) -> Result<StateHandle, StoreError> {
        fence.check(session)?;
        let handle = self
            .payloads
            .write_new(self.payload_prefix, payload)
            .await?;
        let value = handle::encode_base64(&handle);
        match self
            .write(fence, session, key, Target::Insert(&value))
            .await
        {
            Ok(()) => Ok(handle),
            Err(e) => Err(self.after_failed_write(e, &handle.path).await),
        }
    }

    /// Write the new payload, swap the handle under `key` (which must exist), then delete
    /// the old payload.
    pub async fn replace(
        &self,
        fence: &Fence,
        session: Option<Uuid>,
        key: &str,
        payload: Bytes,
    ) -> Result<StateHandle, StoreError> {
        fence.check(session)?;
        let data = self.reader.data().await?;
        let old = data.get(key).cloned().ok_or_else(|| self.not_found(key))?;
        let old_handle = handle::decode_base64(&old).map_err(|e| self.corrupt(key, e))?;
        let handle = self
            .payloads
            .write_new(self.payload_prefix, payload)
            .await?;
        let value = handle::encode_base64(&handle);
        let target = Target::Replace {
            old: &old,
            new: &value,
        };
        match self.write(fence, session, key, target).await {
            Ok(()) => {
                self.payloads.discard(&old_handle.path).await;
                Ok(handle)
            }
            Err(e) => Err(self.after_failed_write(e, &handle.path).await),
        }
    }

    /// Add, or replace if `key` is there.
    pub async fn put(
        &self,
        fence: &Fence,
        session: Option<Uuid>,
        key: &str,
        payload: Bytes,
    ) -> Result<StateHandle, StoreError> {
        match self.add(fence, session, key, payload.clone()).await {
            Err(StoreError::AlreadyExists { .. }) => {
                self.replace(fence, session, key, payload).await
            }
            other => other,
        }
    }

    /// Take the handle out of the ConfigMap, then delete its payload.
    pub async fn remove(
        &self,
        fence: &Fence,
        session: Option<Uuid>,
        key: &str,
    ) -> Result<Removed, StoreError> {
        fence.check(session)?;
        let data = self.reader.data().await?;
        let Some(old) = data.get(key).cloned() else {
            return Ok(Removed::default());
        };
        self.write(fence, session, key, Target::Remove(&old))
            .await?;
        let orphaned = match handle::decode_base64(&old) {
            Ok(h) => self.payloads.discard(&h.path).await,
            Err(e) => {
                tracing::warn!(key, error = %e, "removed an entry that was not a valid handle");
                None
            }
        };
        Ok(Removed {
            existed: true,
            orphaned,
        })
    }

    /// The handle under `key`, if any.
    pub async fn handle(&self, key: &str) -> Result<Option<StateHandle>, StoreError> {
        let data = self.reader.data().await?;
        data.get(key)
            .map(|v| handle::decode_base64(v).map_err(|e| self.corrupt(key, e)))
            .transpose()
    }

    /// The handle under `key` and its payload.
    pub async fn get(&self, key: &str) -> Result<Option<(StateHandle, Bytes)>, StoreError> {
        let Some(handle) = self.handle(key).await? else {
            return Ok(None);
        };
        let body = self.payloads.read(key, &handle).await?;
        Ok(Some((handle, body)))
    }

    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.reader.data().await?.contains_key(key))
    }

    /// Every handle under keys starting with `prefix`, in key order; entries that cannot be
    /// decoded are skipped and reported.
    pub async fn entries(
        &self,
        prefix: &str,
    ) -> Result<(Vec<(String, StateHandle)>, Vec<Skipped>), StoreError> {
        let data = self.reader.data().await?;
        Ok(decode_entries(&data, prefix))
    }

    /// The fenced compare-and-swap of one key, settling an unknown outcome by reading back.
    async fn write(
        &self,
        fence: &Fence,
        session: Option<Uuid>,
        key: &str,
        target: Target<'_>,
    ) -> Result<(), StoreError> {
        let configmap = self.configmap().to_string();
        // The newest write that may still land: the resourceVersion it was conditioned on
        // and why its outcome is unknown. Older ones were conditioned on versions the
        // ConfigMap had already left when the newer one was sent, so they cannot land.
        let mut open: Option<(String, String)> = None;
        for attempt in 1..=SETTLE_ATTEMPTS {
            match fence
                .apply(session, |data| decide(&configmap, data, key, target))
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Fence(FenceError::Indeterminate {
                    resource_version,
                    cause,
                    ..
                })) => open = Some((resource_version, cause)),
                // Nothing is in flight: the refusal is the answer.
                Err(e) if open.is_none() => return Err(e),
                // A retry was refused (we may have lost leadership meanwhile), but an
                // earlier write is still in flight: only a read can tell.
                Err(e) => {
                    tracing::info!(key, error = %e, "retry refused; settling by reading back")
                }
            }
            let (sent_on, cause) = open.clone().expect("set above");
            tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            let settled = fence.fetch().await.ok().map(|cm| {
                let version = cm
                    .as_ref()
                    .and_then(|c| c.metadata.resource_version.as_deref());
                let now = cm
                    .as_ref()
                    .and_then(|c| c.data.as_ref())
                    .and_then(|d| d.get(key));
                plan::settle(
                    now.map(String::as_str),
                    target.wanted(),
                    version != Some(&sent_on),
                )
            });
            tracing::info!(
                key,
                ?settled,
                attempt,
                "settling a ConfigMap write of unknown outcome"
            );
            match settled {
                Some(Settled::Landed) => return Ok(()),
                Some(Settled::Failed) => {
                    return Err(StoreError::Fence(FenceError::Rejected(format!(
                        "the write of {key} did not land: {cause}"
                    ))));
                }
                // Still open: writing again on the same terms makes it definite, since
                // only one of two writes can succeed on one resourceVersion.
                Some(Settled::Unknown) | None => {}
            }
        }
        let (_, cause) = open.expect("the loop only ends here with a write in flight");
        Err(StoreError::OutcomeUnknown {
            key: key.to_string(),
            cause,
            kept: None,
        })
    }

    /// After a ConfigMap write failed: delete the new payload if the write definitely did
    /// not land, keep it (an orphan at worst) if that is unknown.
    async fn after_failed_write(&self, e: StoreError, payload: &str) -> StoreError {
        match e {
            StoreError::OutcomeUnknown { key, cause, .. } => StoreError::OutcomeUnknown {
                key,
                cause,
                kept: Some(payload.to_string()),
            },
            other => {
                self.payloads.discard(payload).await;
                other
            }
        }
    }
}

/// The pure decision of one fenced write: refuse, do nothing, or change `data`.
fn decide(
    configmap: &str,
    data: &mut BTreeMap<String, String>,
    key: &str,
    target: Target<'_>,
) -> Result<Edit<()>, StoreError> {
    let current = data.get(key).map(String::as_str);
    if current == target.wanted() {
        return Ok(Edit::Keep(()));
    }
    let before = data.clone();
    match target {
        Target::Insert(value) => {
            if current.is_some() {
                return Err(StoreError::AlreadyExists {
                    configmap: configmap.to_string(),
                    key: key.to_string(),
                });
            }
            data.insert(key.to_string(), value.to_string());
        }
        Target::Replace { old, new } => {
            if current != Some(old) {
                return Err(StoreError::Fence(FenceError::Rejected(format!(
                    "{key} changed while it was being replaced"
                ))));
            }
            data.insert(key.to_string(), new.to_string());
        }
        Target::Remove(old) => {
            if current != Some(old) {
                return Err(StoreError::Fence(FenceError::Rejected(format!(
                    "{key} changed while it was being removed"
                ))));
            }
            data.remove(key);
        }
    }
    plan::check_budget(configmap, key, &before, data)?;
    Ok(Edit::Write(()))
}

fn decode_entries(
    data: &BTreeMap<String, String>,
    prefix: &str,
) -> (Vec<(String, StateHandle)>, Vec<Skipped>) {
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    for (key, value) in data.range(prefix.to_string()..) {
        if !key.starts_with(prefix) {
            break;
        }
        match handle::decode_base64(value) {
            Ok(h) => entries.push((key.clone(), h)),
            Err(e) => skipped.push(Skipped {
                key: key.clone(),
                reason: e.to_string(),
            }),
        }
    }
    (entries, skipped)
}

/// Job graphs (`jobGraph-<job-id>`) and the running-jobs registry
/// (`runningJobsRegistry-<job-id>`) in `<cluster-id>-dispatcher-leader`.
#[derive(Clone)]
pub struct JobGraphs {
    store: HandleStore,
}

impl JobGraphs {
    pub fn new(reader: ConfigMapReader, payloads: Payloads) -> Self {
        JobGraphs {
            store: HandleStore::new(reader, payloads, plan::JOB_GRAPH_PAYLOAD_PREFIX),
        }
    }

    pub fn handles(&self) -> &HandleStore {
        &self.store
    }

    pub async fn put(
        &self,
        fence: &Fence,
        session: Option<Uuid>,
        job: &JobId,
        graph: Bytes,
    ) -> Result<StateHandle, StoreError> {
        self.store
            .put(fence, session, &plan::job_graph_key(job), graph)
            .await
    }

    pub async fn get(&self, job: &JobId) -> Result<Option<(StateHandle, Bytes)>, StoreError> {
        self.store.get(&plan::job_graph_key(job)).await
    }

    pub async fn remove(
        &self,
        fence: &Fence,
        session: Option<Uuid>,
        job: &JobId,
    ) -> Result<Removed, StoreError> {
        self.store
            .remove(fence, session, &plan::job_graph_key(job))
            .await
    }

    /// Ids of the jobs with a stored graph; undecodable entries are skipped and reported.
    pub async fn job_ids(&self) -> Result<(Vec<JobId>, Vec<Skipped>), StoreError> {
        let (entries, skipped) = self.store.entries(plan::JOB_GRAPH_KEY_PREFIX).await?;
        let ids = entries
            .iter()
            .filter_map(|(k, _)| plan::parse_job_graph_key(k))
            .collect();
        Ok((ids, skipped))
    }

    pub async fn set_status(
        &self,
        fence: &Fence,
        session: Option<Uuid>,
        job: &JobId,
        status: JobStatus,
    ) -> Result<(), StoreError> {
        let key = plan::running_jobs_key(job);
        let value = status.to_string();
        fence
            .apply(session, |data| {
                if data.get(&key) == Some(&value) {
                    return Ok(Edit::Keep(()));
                }
                let before = data.clone();
                data.insert(key.clone(), value.clone());
                plan::check_budget(self.store.configmap(), &key, &before, data)?;
                Ok::<_, StoreError>(Edit::Write(()))
            })
            .await?;
        Ok(())
    }

    pub async fn status(&self, job: &JobId) -> Result<Option<JobStatus>, StoreError> {
        let key = plan::running_jobs_key(job);
        let data = self.store.reader.data().await?;
        data.get(&key)
            .map(|v| {
                v.parse().map_err(|message| StoreError::BadValue {
                    configmap: self.store.configmap().to_string(),
                    key: key.clone(),
                    message,
                })
            })
            .transpose()
    }
}

/// One retained checkpoint, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointMeta {
    pub id: u64,
    /// The ConfigMap key, `checkpointID-<id as 19 digits>`.
    #[schema(example = "checkpointID-0000000000000000003")]
    pub key: String,
    /// The payload's URI.
    pub path: String,
    pub state_size: i64,
}

/// The result of adding a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointAdded {
    pub handle: StateHandle,
    /// Older checkpoints dropped after this one was committed.
    pub subsumed: Vec<u64>,
    /// Payloads of subsumed checkpoints that could not be deleted.
    pub orphaned: Vec<String>,
}

/// What recovery found: the newest good checkpoint and what it had to skip.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub checkpoint: Option<(CheckpointMeta, Bytes)>,
    pub skipped: Vec<Skipped>,
}

/// Completed checkpoints (`checkpointID-<19 digits>`) and the checkpoint counter
/// (`counter`) in `<cluster-id>-<job-id>-jobmanager-leader`.
#[derive(Clone)]
pub struct Checkpoints {
    store: HandleStore,
    retained: usize,
}

impl Checkpoints {
    pub fn new(reader: ConfigMapReader, payloads: Payloads, retained: usize) -> Self {
        Checkpoints {
            store: HandleStore::new(reader, payloads, plan::CHECKPOINT_PAYLOAD_PREFIX),
            retained: retained.max(1),
        }
    }

    pub fn handles(&self) -> &HandleStore {
        &self.store
    }

    /// Add a completed checkpoint; once it is committed, drop all but the newest
    /// `retained` (their handles first, then their payloads).
    pub async fn add(
        &self,
        fence: &Fence,
        session: Option<Uuid>,
        id: u64,
        payload: Bytes,
    ) -> Result<CheckpointAdded, StoreError> {
        if id > plan::MAX_CHECKPOINT_ID {
            return Err(StoreError::Invalid(format!(
                "checkpoint id {id} is above {}",
                plan::MAX_CHECKPOINT_ID
            )));
        }
        let data = self.store.reader.data().await?;
        if let Some(&latest) = plan::checkpoint_ids(&data).last()
            && id <= latest
        {
            return Err(StoreError::OutOfOrder { id, latest });
        }
        let handle = self
            .store
            .add(fence, session, &plan::checkpoint_key(id), payload)
            .await?;
        let (subsumed, orphaned) = self.subsume(fence, session).await?;
        Ok(CheckpointAdded {
            handle,
            subsumed,
            orphaned,
        })
    }

    /// Drop the checkpoints beyond the retained count, in one ConfigMap write, then delete
    /// their payloads.
    async fn subsume(
        &self,
        fence: &Fence,
        session: Option<Uuid>,
    ) -> Result<(Vec<u64>, Vec<String>), StoreError> {
        let retained = self.retained;
        let applied = fence
            .apply(session, |data| {
                let drop = plan::subsumed(&plan::checkpoint_ids(data), retained);
                let values: Vec<String> = drop
                    .iter()
                    .filter_map(|id| data.remove(&plan::checkpoint_key(*id)))
                    .collect();
                let edit = if drop.is_empty() {
                    Edit::Keep
                } else {
                    Edit::Write
                };
                Ok::<_, StoreError>(edit((drop, values)))
            })
            .await;
        let (dropped, values) = match applied {
            Ok(a) => a.value,
            // The new checkpoint is committed; older ones linger until the next add.
            Err(e) => {
                tracing::warn!(error = %e, "could not subsume older checkpoints; retrying at the next add");
                return Ok((Vec::new(), Vec::new()));
            }
        };
        let mut orphaned = Vec::new();
        for value in values {
            if let Ok(h) = handle::decode_base64(&value)
                && let Some(o) = self.store.payloads.discard(&h.path).await
            {
                orphaned.push(o);
            }
        }
        Ok((dropped, orphaned))
    }

    /// The retained checkpoints in id order, and entries that could not be decoded.
    pub async fn list(&self) -> Result<(Vec<CheckpointMeta>, Vec<Skipped>), StoreError> {
        let (entries, mut skipped) = self.store.entries(plan::CHECKPOINT_KEY_PREFIX).await?;
        let mut metas = Vec::new();
        for (key, h) in entries {
            match plan::parse_checkpoint_key(&key) {
                Some(id) => metas.push(CheckpointMeta {
                    id,
                    key,
                    path: h.path,
                    state_size: h.state_size,
                }),
                None => skipped.push(Skipped {
                    reason: "not a checkpoint key (expected 19 digits)".into(),
                    key,
                }),
            }
        }
        Ok((metas, skipped))
    }

    /// One checkpoint and its payload.
    pub async fn get(&self, id: u64) -> Result<Option<(CheckpointMeta, Bytes)>, StoreError> {
        let key = plan::checkpoint_key(id);
        Ok(self.store.get(&key).await?.map(|(h, body)| {
            let meta = CheckpointMeta {
                id,
                key,
                path: h.path,
                state_size: h.state_size,
            };
            (meta, body)
        }))
    }

    /// The newest checkpoint whose payload is whole. Newer ones that are not (missing,
    /// truncated, too large, outside the cluster's directory, undecodable) are skipped and
    /// reported; a storage failure is an error, never a reason to skip. With `strict`, the
    /// first such one fails recovery instead, as Flink does.
    pub async fn recover(&self, strict: bool) -> Result<Recovered, StoreError> {
        let (metas, mut skipped) = self.list().await?;
        if strict && let Some(s) = skipped.first() {
            return Err(StoreError::NoRecoverableCheckpoint(format!(
                "{}: {}",
                s.key, s.reason
            )));
        }
        for meta in metas.into_iter().rev() {
            let handle = StateHandle::new(meta.path.clone(), meta.state_size);
            match self.store.payloads.read(&meta.key, &handle).await {
                Ok(body) => {
                    return Ok(Recovered {
                        checkpoint: Some((meta, body)),
                        skipped,
                    });
                }
                // Only what the checkpoint itself is to blame for is skipped; a refusal of
                // the storage (access denied, no such bucket) says nothing about it.
                Err(
                    e @ (StoreError::BadPayload { .. }
                    | StoreError::Storage(
                        StorageError::TooLarge { .. } | StorageError::InvalidLocation { .. },
                    )),
                ) => {
                    if strict {
                        return Err(StoreError::NoRecoverableCheckpoint(e.to_string()));
                    }
                    tracing::warn!(checkpoint = meta.id, error = %e, "skipping checkpoint in recovery");
                    skipped.push(Skipped {
                        key: meta.key,
                        reason: e.to_string(),
                    });
                }
                // Unavailable storage says nothing about this checkpoint: do not skip it.
                Err(e) => return Err(e),
            }
        }
        Ok(Recovered {
            checkpoint: None,
            skipped,
        })
    }

    pub async fn remove(
        &self,
        fence: &Fence,
        session: Option<Uuid>,
        id: u64,
    ) -> Result<Removed, StoreError> {
        self.store
            .remove(fence, session, &plan::checkpoint_key(id))
            .await
    }

    /// The counter's current value (the next checkpoint id); absent means 1.
    pub async fn counter(&self) -> Result<u64, StoreError> {
        let data = self.store.reader.data().await?;
        plan::parse_counter(data.get(plan::COUNTER_KEY).map(String::as_str)).map_err(|message| {
            StoreError::BadValue {
                configmap: self.store.configmap().to_string(),
                key: plan::COUNTER_KEY.to_string(),
                message,
            }
        })
    }

    /// Take the counter's value and store the next one, by compare-and-swap.
    pub async fn increment(&self, fence: &Fence, session: Option<Uuid>) -> Result<u64, StoreError> {
        self.counter_update(fence, session, |previous| {
            previous
                .checked_add(1)
                .filter(|next| *next <= plan::MAX_CHECKPOINT_ID)
                .map(|next| (previous, next))
                .ok_or_else(|| {
                    StoreError::Invalid("the checkpoint counter is at its maximum".into())
                })
        })
        .await
    }

    /// Set the counter (e.g. after restoring from a savepoint).
    pub async fn set_counter(
        &self,
        fence: &Fence,
        session: Option<Uuid>,
        value: u64,
    ) -> Result<(), StoreError> {
        if value > plan::MAX_CHECKPOINT_ID {
            return Err(StoreError::Invalid(format!(
                "counter value {value} is above {}",
                plan::MAX_CHECKPOINT_ID
            )));
        }
        self.counter_update(fence, session, |_| Ok((value, value)))
            .await
            .map(|_| ())
    }

    async fn counter_update(
        &self,
        fence: &Fence,
        session: Option<Uuid>,
        step: impl Fn(u64) -> Result<(u64, u64), StoreError>,
    ) -> Result<u64, StoreError> {
        let configmap = self.store.configmap().to_string();
        let applied = fence
            .apply(session, |data| {
                let current = plan::parse_counter(data.get(plan::COUNTER_KEY).map(String::as_str))
                    .map_err(|message| StoreError::BadValue {
                        configmap: configmap.clone(),
                        key: plan::COUNTER_KEY.to_string(),
                        message,
                    })?;
                let (answer, next) = step(current)?;
                let before = data.clone();
                data.insert(plan::COUNTER_KEY.to_string(), next.to_string());
                plan::check_budget(&configmap, plan::COUNTER_KEY, &before, data)?;
                Ok::<_, StoreError>(Edit::Write(answer))
            })
            .await?;
        Ok(applied.value)
    }
}

/// Blobs: payloads only, under `<storage-dir>/<cluster-id>/blob/<key>`; no handle.
#[derive(Clone)]
pub struct Blobs {
    payloads: Payloads,
}

/// Blob keys are relative paths of `[A-Za-z0-9._-]` segments.
pub fn validate_blob_key(key: &str) -> Result<(), StoreError> {
    let ok = !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "blob key {key:?}: expected up to 512 characters of [A-Za-z0-9._-] segments separated by '/'"
        )))
    }
}

impl Blobs {
    pub fn new(payloads: Payloads) -> Self {
        Blobs { payloads }
    }

    fn location(&self, key: &str) -> Result<Location, StoreError> {
        validate_blob_key(key)?;
        self.payloads
            .cluster_dir
            .try_join(&format!("{}/{key}", plan::BLOB_DIR))
            .map_err(|e| StoreError::Invalid(e.to_string()))
    }

    /// Store a blob. Blobs are immutable: storing the same bytes again is fine, different
    /// bytes under an existing key are refused.
    pub async fn put(
        &self,
        fence: &Fence,
        session: Option<Uuid>,
        key: &str,
        body: Bytes,
    ) -> Result<(), StoreError> {
        let location = self.location(key)?;
        fence.check(session)?;
        self.payloads.check_size(body.len())?;
        match self.payloads.storage.put_new(&location, body.clone()).await {
            Ok(()) => {
                crate::metrics::payload_written(body.len());
                Ok(())
            }
            Err(StorageError::AlreadyExists { .. }) => {
                let existing = self
                    .payloads
                    .storage
                    .get(&location, self.payloads.max_payload_bytes)
                    .await
                    .map_err(StoreError::storage)?;
                if existing == body {
                    Ok(())
                } else {
                    Err(StoreError::AlreadyExists {
                        configmap: "blob store".into(),
                        key: key.to_string(),
                    })
                }
            }
            Err(e) => Err(StoreError::storage(e)),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let location = self.location(key)?;
        match self
            .payloads
            .storage
            .get(&location, self.payloads.max_payload_bytes)
            .await
        {
            Ok(b) => Ok(Some(b)),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(StoreError::storage(e)),
        }
    }

    pub async fn delete(
        &self,
        fence: &Fence,
        session: Option<Uuid>,
        key: &str,
    ) -> Result<(), StoreError> {
        let location = self.location(key)?;
        fence.check(session)?;
        self.payloads
            .storage
            .delete(&location)
            .await
            .map_err(StoreError::storage)
    }
}

#[cfg(test)]
mod tests {
    use super::plan::tests::data;
    use super::*;

    #[test]
    fn insert_refuses_a_taken_key_and_keeps_its_own_value() {
        let mut d = data(&[("k", "other")]);
        let err = decide("cm", &mut d, "k", Target::Insert("h")).unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
        let mut d = data(&[("k", "h")]);
        assert!(matches!(
            decide("cm", &mut d, "k", Target::Insert("h")),
            Ok(Edit::Keep(()))
        ));
        let mut d = data(&[]);
        assert!(matches!(
            decide("cm", &mut d, "k", Target::Insert("h")),
            Ok(Edit::Write(()))
        ));
        assert_eq!(d, data(&[("k", "h")]));
    }

    #[test]
    fn replace_and_remove_need_the_value_they_started_from() {
        let mut d = data(&[("k", "changed")]);
        assert!(
            decide(
                "cm",
                &mut d,
                "k",
                Target::Replace {
                    old: "old",
                    new: "new"
                }
            )
            .is_err()
        );
        assert!(decide("cm", &mut d, "k", Target::Remove("old")).is_err());
        let mut d = data(&[("k", "old")]);
        assert!(matches!(
            decide(
                "cm",
                &mut d,
                "k",
                Target::Replace {
                    old: "old",
                    new: "new"
                }
            ),
            Ok(Edit::Write(()))
        ));
        assert_eq!(d["k"], "new");
        assert!(matches!(
            decide("cm", &mut d, "k", Target::Remove("new")),
            Ok(Edit::Write(()))
        ));
        assert!(d.is_empty());
        // Already gone: nothing to write.
        assert!(matches!(
            decide("cm", &mut d, "k", Target::Remove("new")),
            Ok(Edit::Keep(()))
        ));
    }

    #[test]
    fn insert_past_the_budget_is_refused_before_writing() {
        let big = "x".repeat(plan::CONFIGMAP_DATA_LIMIT - plan::CONFIGMAP_HEADROOM);
        let mut d = data(&[("k0", &big)]);
        let err = decide("cm", &mut d, "k1", Target::Insert("h")).unwrap_err();
        assert!(matches!(err, StoreError::Full(_)), "{err}");
    }

    #[test]
    fn listing_skips_what_does_not_decode() {
        let good = handle::encode_base64(&StateHandle::new(
            "file:/ha/c/completedCheckpoint000000000001",
            3,
        ));
        let d = data(&[
            ("checkpointID-0000000000000000001", &good),
            ("checkpointID-0000000000000000002", "not base64!"),
            ("counter", "3"),
        ]);
        let (entries, skipped) = decode_entries(&d, plan::CHECKPOINT_KEY_PREFIX);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].1.state_size, 3);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].key, "checkpointID-0000000000000000002");
    }

    #[test]
    fn blob_keys() {
        for ok in ["a", "job-1/blob_p-abc.123", "x/y/z"] {
            assert!(validate_blob_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "../x",
            "a/./b",
            "a b",
            "é",
            &"a".repeat(513),
        ] {
            assert!(validate_blob_key(bad).is_err(), "{bad:?}");
        }
    }
}
