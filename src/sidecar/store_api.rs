//! The stores in the sidecar's local API. Payloads are raw request and response bodies.
//! Leader-only calls need `Hakeeper-Session: <sessionId>` matching the owning component's
//! current grant; reads need nothing.
//!
//! | Route | Owner |
//! |---|---|
//! | `PUT/GET/DELETE /v1/jobs/{job}/graph`, `GET /v1/jobs`, `PUT/GET /v1/jobs/{job}/status` | dispatcher |
//! | `POST/GET/DELETE /v1/jobs/{job}/checkpoints/{id}`, `GET …/checkpoints`, `GET …/checkpoints/latest` | `jobmanager/{job}` |
//! | `POST …/checkpoint-counter/increment`, `GET/PUT …/checkpoint-counter` | `jobmanager/{job}` |
//! | `PUT/GET/DELETE /v1/blobs/{key}` | dispatcher (writes) |

use super::path::Path;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::openapi::{
    AddRefused, BadBlobKey, BadCheckpoint, BadCounter, BadIncrement, BadJob, BadStatus,
    BadStoredCounter, BadStoredPayload, BadStoredStatus, BlobDeleteRefused, BlobGone, BlobPath,
    BlobRefused, BlobUnavailable, CheckpointNotRetained, CheckpointPath, ConfigMapFull,
    EntryRefused, EntryUnavailable, GraphGone, HandleRefused, JobPath, ListUnavailable, NoBlob,
    NoCheckpoint, NoGraph, NoRecoverableCheckpoint, NoStatus, Payload, ReadUnavailable,
    ReplacedGraphCorrupt, SessionHeader, StorageRefused, TooLarge, WriteUnavailable,
};
use super::{ApiError, ErrorKind, Sidecar, StoreSettings};
use crate::election::Fence;
use crate::layout::{Component, JobId};
use crate::stores::plan::{JobStatus, MAX_CHECKPOINT_ID};
use crate::stores::{Blobs, Checkpoints, ConfigMapReader, JobGraphs, StoreError};

mod bodies;

use bodies::{
    BlobDeleted, BlobStored, CheckpointAdded, CheckpointList, CheckpointRemoved, CounterBody,
    GraphRemoved, GraphStored, JobList, JobStatusRecord,
};

pub const SESSION_HEADER: &str = "hakeeper-session";
pub const CHECKPOINT_ID_HEADER: &str = "hakeeper-checkpoint-id";
pub const SKIPPED_HEADER: &str = "hakeeper-skipped-checkpoints";

pub(super) fn routes(body_limit: usize) -> OpenApiRouter<Sidecar> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(put_graph, get_graph, delete_graph))
        .routes(routes!(put_status, get_status))
        .routes(routes!(list_checkpoints))
        .routes(routes!(latest_checkpoint))
        .routes(routes!(add_checkpoint, get_checkpoint, delete_checkpoint))
        .routes(routes!(get_counter, set_counter))
        .routes(routes!(increment_counter))
        .routes(routes!(put_blob, get_blob, delete_blob))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::map_response(json_payload_too_large))
}

/// The body limit's rejection is plain text; answer it in the API's error format.
async fn json_payload_too_large(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE || is_json {
        return response;
    }
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::PayloadTooLarge,
        "the request body is larger than --max-payload-bytes allows",
    )
    .into_response()
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::Fence(f) => match f {
                crate::election::FenceError::Indeterminate { .. }
                | crate::election::FenceError::Api(_)
                | crate::election::FenceError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::CONFLICT,
            },
            StoreError::AlreadyExists { .. } | StoreError::OutOfOrder { .. } => {
                StatusCode::CONFLICT
            }
            StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            StoreError::Storage(crate::storage::StorageError::NotFound { .. }) => {
                StatusCode::NOT_FOUND
            }
            StoreError::Full(_) => StatusCode::INSUFFICIENT_STORAGE,
            StoreError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            StoreError::StorageUnavailable(_)
            | StoreError::OutcomeUnknown { .. }
            | StoreError::Api(_)
            | StoreError::ApiTimeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::Storage(_) => StatusCode::BAD_GATEWAY,
            StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
            StoreError::CorruptHandle { .. }
            | StoreError::BadPayload { .. }
            | StoreError::BadValue { .. }
            | StoreError::NoRecoverableCheckpoint(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, ErrorKind::of_store(&e), e.to_string())
    }
}

/// Run one store operation, recording its latency and, if it fails, its error kind.
async fn timed<T>(
    operation: &'static str,
    work: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = std::time::Instant::now();
    let result = work.await;
    crate::metrics::observe_store(
        operation,
        started,
        result.as_ref().err().map(StoreError::kind),
    );
    result
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorKind::BadRequest, message)
}

fn not_found(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorKind::NotFound, message)
}

fn parse_job(raw: &str) -> Result<JobId, ApiError> {
    raw.parse().map_err(bad_request)
}

fn parse_checkpoint_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .ok()
        .filter(|id| *id <= MAX_CHECKPOINT_ID)
        .ok_or_else(|| {
            bad_request(format!(
                "checkpoint id {raw:?} is not an integer from 0 to {MAX_CHECKPOINT_ID}"
            ))
        })
}

impl Sidecar {
    fn store_settings(&self) -> Result<&StoreSettings, ApiError> {
        self.inner.config.stores.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::StorageNotConfigured,
                "this sidecar was started without --storage-dir",
            )
        })
    }

    fn reader(&self, component: &Component) -> ConfigMapReader {
        let c = &self.inner.config;
        let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), &c.namespace);
        ConfigMapReader::new(api, component.configmap_name(&c.cluster_id))
    }

    fn job_graphs(&self) -> Result<JobGraphs, ApiError> {
        let s = self.store_settings()?;
        Ok(JobGraphs::new(
            self.reader(&Component::Dispatcher),
            s.payloads.clone(),
        ))
    }

    fn checkpoints(&self, job: &JobId) -> Result<Checkpoints, ApiError> {
        let s = self.store_settings()?;
        let component = Component::JobManager(job.clone());
        Ok(Checkpoints::new(
            self.reader(&component),
            s.payloads.clone(),
            s.checkpoints_retained,
        ))
    }

    fn blobs(&self) -> Result<Blobs, ApiError> {
        Ok(Blobs::new(self.store_settings()?.payloads.clone()))
    }

    /// The owning component's fence and the caller's session, or the 409 that says why the
    /// caller may not write.
    fn leader_fence(
        &self,
        owner: &Component,
        headers: &HeaderMap,
    ) -> Result<(Fence, Uuid), ApiError> {
        let not_leader = || {
            ApiError::new(
                StatusCode::CONFLICT,
                ErrorKind::NotLeader,
                format!("this sidecar does not lead {owner}"),
            )
        };
        let fence = self.fence(owner).ok_or_else(not_leader)?;
        fence
            .check(None)
            .map_err(|e| ApiError::from(StoreError::from(e)))?;
        let stale = |why: String| ApiError::new(StatusCode::CONFLICT, ErrorKind::StaleSession, why);
        let raw = headers.get(SESSION_HEADER).ok_or_else(|| {
            stale(format!(
                "a write to {owner} needs the Hakeeper-Session header"
            ))
        })?;
        let session = raw
            .to_str()
            .ok()
            .and_then(|s| Uuid::parse_str(s.trim()).ok())
            .ok_or_else(|| stale("the Hakeeper-Session header is not a UUID".to_string()))?;
        fence
            .check(Some(session))
            .map_err(|e| ApiError::from(StoreError::from(e)))?;
        Ok((fence, session))
    }
}

/// A leader-only call on a job's checkpoints: the store, the fence of `jobmanager/{job}` and
/// the caller's session.
struct CheckpointWriter {
    store: Checkpoints,
    fence: Fence,
    session: Option<Uuid>,
}

impl Sidecar {
    fn checkpoint_writer(
        &self,
        job: &JobId,
        headers: &HeaderMap,
    ) -> Result<CheckpointWriter, ApiError> {
        let owner = Component::JobManager(job.clone());
        let (fence, session) = self.leader_fence(&owner, headers)?;
        Ok(CheckpointWriter {
            store: self.checkpoints(job)?,
            fence,
            session: Some(session),
        })
    }
}

fn payload_response(body: Bytes, extra: &[(&'static str, String)]) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    for (name, value) in extra {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(*name, v);
        }
    }
    response
}

/// List the jobs with a stored graph
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    operation_id = "listJobs",
    responses(
        (status = 200, description = "Job ids; `skipped` names entries that do not decode.", body = JobList),
        (status = 503, response = inline(ListUnavailable)),
    ),
)]
async fn list_jobs(State(sidecar): State<Sidecar>) -> Result<Response, ApiError> {
    let (ids, skipped) = timed("jobs_list", sidecar.job_graphs()?.job_ids()).await?;
    let jobs: Vec<String> = ids.iter().map(ToString::to_string).collect();
    Ok(axum::Json(JobList { jobs, skipped }).into_response())
}

/// Store a job's graph (leader-only: dispatcher)
///
/// Writes the payload, then inserts its handle by compare-and-swap. If the job has a graph
/// already, the handle is swapped for the new one and the old payload deleted.
#[utoipa::path(
    put,
    path = "/v1/jobs/{jobId}/graph",
    tag = "jobs",
    operation_id = "putJobGraph",
    params(JobPath, SessionHeader),
    request_body(content = Payload, description = "The job graph, as Flink serializes it.",
        content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Stored; the new handle.", body = GraphStored),
        (status = 400, response = inline(BadJob)),
        (status = 404, response = inline(GraphGone)),
        (status = 409, response = inline(HandleRefused)),
        (status = 413, response = inline(TooLarge)),
        (status = 500, response = inline(ReplacedGraphCorrupt)),
        (status = 502, response = inline(StorageRefused)),
        (status = 503, response = inline(WriteUnavailable)),
        (status = 507, response = inline(ConfigMapFull)),
    ),
)]
async fn put_graph(
    State(sidecar): State<Sidecar>,
    Path(job): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let (fence, session) = sidecar.leader_fence(&Component::Dispatcher, &headers)?;
    let handle = timed(
        "graph_put",
        sidecar.job_graphs()?.put(&fence, Some(session), &job, body),
    )
    .await?;
    Ok(axum::Json(GraphStored {
        job_id: job.to_string(),
        handle,
    })
    .into_response())
}

/// Read a job's graph
#[utoipa::path(
    get,
    path = "/v1/jobs/{jobId}/graph",
    tag = "jobs",
    operation_id = "getJobGraph",
    params(JobPath),
    responses(
        (status = 200, description = "The stored graph.", body = Payload,
            content_type = "application/octet-stream"),
        (status = 400, response = inline(BadJob)),
        (status = 404, response = inline(NoGraph)),
        (status = 500, response = inline(BadStoredPayload)),
        (status = 502, response = inline(StorageRefused)),
        (status = 503, response = inline(ReadUnavailable)),
    ),
)]
async fn get_graph(
    State(sidecar): State<Sidecar>,
    Path(job): Path<String>,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    match timed("graph_get", sidecar.job_graphs()?.get(&job)).await? {
        Some((_, body)) => Ok(payload_response(body, &[])),
        None => Err(not_found(format!("no job graph stored for job {job}"))),
    }
}

/// Remove a job's graph (leader-only: dispatcher)
///
/// Removes the handle, then the payload. The job's status stays.
#[utoipa::path(
    delete,
    path = "/v1/jobs/{jobId}/graph",
    tag = "jobs",
    operation_id = "deleteJobGraph",
    params(JobPath, SessionHeader),
    responses(
        (status = 200, description = "Removed; `orphaned` names a payload that could not be \
            deleted.", body = GraphRemoved),
        (status = 400, response = inline(BadJob)),
        (status = 404, response = inline(NoGraph)),
        (status = 409, response = inline(HandleRefused)),
        (status = 503, response = inline(EntryUnavailable)),
    ),
)]
async fn delete_graph(
    State(sidecar): State<Sidecar>,
    Path(job): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let (fence, session) = sidecar.leader_fence(&Component::Dispatcher, &headers)?;
    let removed = timed(
        "graph_delete",
        sidecar.job_graphs()?.remove(&fence, Some(session), &job),
    )
    .await?;
    if !removed.existed {
        return Err(not_found(format!("no job graph stored for job {job}")));
    }
    Ok(axum::Json(GraphRemoved {
        job_id: job.to_string(),
        removed: true,
        orphaned: removed.orphaned,
    })
    .into_response())
}

/// `RUNNING` / `DONE`, as plain text or as a JSON string or `{"status": ...}`.
fn parse_status(body: &[u8]) -> Result<JobStatus, ApiError> {
    #[derive(Deserialize)]
    struct Wrapped {
        status: JobStatus,
    }
    if let Ok(w) = serde_json::from_slice::<Wrapped>(body) {
        return Ok(w.status);
    }
    if let Ok(s) = serde_json::from_slice::<JobStatus>(body) {
        return Ok(s);
    }
    std::str::from_utf8(body)
        .map_err(|_| bad_request("status must be RUNNING or DONE"))?
        .parse()
        .map_err(bad_request)
}

/// `{"status": ...}`, one of the forms `PUT .../status` takes.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct StatusObject {
    status: JobStatus,
}

/// A status, as JSON: a string or an object.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum StatusJson {
    Plain(JobStatus),
    Wrapped(StatusObject),
}

/// Set a job's running-jobs registry status (leader-only: dispatcher)
#[utoipa::path(
    put,
    path = "/v1/jobs/{jobId}/status",
    tag = "jobs",
    operation_id = "setJobStatus",
    params(JobPath, SessionHeader),
    request_body(
        description = "`RUNNING` or `DONE`: as plain text (surrounding whitespace ignored), a \
            JSON string, or `{\"status\": ...}`; whatever the Content-Type.",
        content((JobStatus = "text/plain"), (inline(StatusJson) = "application/json")),
    ),
    responses(
        (status = 200, description = "Set.", body = JobStatusRecord),
        (status = 400, response = inline(BadStatus)),
        (status = 409, response = inline(EntryRefused)),
        (status = 413, response = inline(TooLarge)),
        (status = 503, response = inline(EntryUnavailable)),
        (status = 507, response = inline(ConfigMapFull)),
    ),
)]
async fn put_status(
    State(sidecar): State<Sidecar>,
    Path(job): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let status = parse_status(&body)?;
    let (fence, session) = sidecar.leader_fence(&Component::Dispatcher, &headers)?;
    timed(
        "status_put",
        sidecar
            .job_graphs()?
            .set_status(&fence, Some(session), &job, status),
    )
    .await?;
    Ok(axum::Json(JobStatusRecord {
        job_id: job.to_string(),
        status,
    })
    .into_response())
}

/// Read a job's running-jobs registry status
#[utoipa::path(
    get,
    path = "/v1/jobs/{jobId}/status",
    tag = "jobs",
    operation_id = "getJobStatus",
    params(JobPath),
    responses(
        (status = 200, description = "The status.", body = JobStatusRecord),
        (status = 400, response = inline(BadJob)),
        (status = 404, response = inline(NoStatus)),
        (status = 500, response = inline(BadStoredStatus)),
        (status = 503, response = inline(ListUnavailable)),
    ),
)]
async fn get_status(
    State(sidecar): State<Sidecar>,
    Path(job): Path<String>,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    match timed("status_get", sidecar.job_graphs()?.status(&job)).await? {
        Some(status) => Ok(axum::Json(JobStatusRecord {
            job_id: job.to_string(),
            status,
        })
        .into_response()),
        None => Err(not_found(format!("no status recorded for job {job}"))),
    }
}

/// Add a completed checkpoint (leader-only: jobmanager/{jobId})
///
/// The id must be greater than the newest retained one. Once the new checkpoint is committed,
/// all but the newest `--checkpoints-retained` are dropped in one ConfigMap write
/// (`subsumed`), then their payloads deleted (`orphaned`: those that could not be). If
/// dropping fails, the new checkpoint stands and the next add drops them.
#[utoipa::path(
    post,
    path = "/v1/jobs/{jobId}/checkpoints/{checkpointId}",
    tag = "checkpoints",
    operation_id = "addCheckpoint",
    params(CheckpointPath, SessionHeader),
    request_body(content = Payload, description = "The completed checkpoint, as Flink \
        serializes it.", content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Added.", body = CheckpointAdded),
        (status = 400, response = inline(BadCheckpoint)),
        (status = 409, response = inline(AddRefused)),
        (status = 413, response = inline(TooLarge)),
        (status = 502, response = inline(StorageRefused)),
        (status = 503, response = inline(WriteUnavailable)),
        (status = 507, response = inline(ConfigMapFull)),
    ),
)]
async fn add_checkpoint(
    State(sidecar): State<Sidecar>,
    Path((job, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let id = parse_checkpoint_id(&id)?;
    let w = sidecar.checkpoint_writer(&job, &headers)?;
    let added = timed("checkpoint_add", w.store.add(&w.fence, w.session, id, body)).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CheckpointAdded {
            checkpoint_id: id,
            handle: added.handle,
            subsumed: added.subsumed,
            orphaned: added.orphaned,
        }),
    )
        .into_response())
}

/// List a job's retained checkpoints
#[utoipa::path(
    get,
    path = "/v1/jobs/{jobId}/checkpoints",
    tag = "checkpoints",
    operation_id = "listCheckpoints",
    params(JobPath),
    responses(
        (status = 200, description = "The retained checkpoints by ascending id; `skipped` names \
            entries that do not decode.", body = CheckpointList),
        (status = 400, response = inline(BadJob)),
        (status = 503, response = inline(ListUnavailable)),
    ),
)]
async fn list_checkpoints(
    State(sidecar): State<Sidecar>,
    Path(job): Path<String>,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let store = sidecar.checkpoints(&job)?;
    let (checkpoints, skipped) = timed("checkpoint_list", store.list()).await?;
    Ok(axum::Json(CheckpointList {
        job_id: job.to_string(),
        checkpoints,
        skipped,
    })
    .into_response())
}

/// Recover: the newest retained checkpoint that is whole
///
/// Newer checkpoints whose payload is missing, truncated or unreadable, and entries that do not
/// decode, are passed over and named in `Hakeeper-Skipped-Checkpoints`; with
/// `--strict-recovery` any such one fails recovery instead. Unreachable storage is a 503, never
/// a reason to skip. This path takes only GET (`latest` is not a checkpoint id): POST or DELETE
/// answers 405.
#[utoipa::path(
    get,
    path = "/v1/jobs/{jobId}/checkpoints/latest",
    tag = "checkpoints",
    operation_id = "recoverLatestCheckpoint",
    params(JobPath),
    responses(
        (status = 200, description = "The checkpoint's payload.", body = Payload,
            content_type = "application/octet-stream", headers(
                ("Hakeeper-Checkpoint-Id" = u64,
                    description = "The id of the checkpoint whose payload this is."),
                ("Hakeeper-Skipped-Checkpoints" = String,
                    description = "Only when recovery passed over entries (newer checkpoints \
                        whose payload is not whole, entries that do not decode): their \
                        ConfigMap keys, comma-separated."),
            )),
        (status = 400, response = inline(BadJob)),
        (status = 404, response = inline(NoCheckpoint)),
        (status = 500, response = inline(NoRecoverableCheckpoint)),
        (status = 503, response = inline(ReadUnavailable)),
    ),
)]
async fn latest_checkpoint(
    State(sidecar): State<Sidecar>,
    Path(job): Path<String>,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let strict = sidecar.store_settings()?.strict_recovery;
    let recovered = timed(
        "checkpoint_recover",
        sidecar.checkpoints(&job)?.recover(strict),
    )
    .await?;
    let skipped: Vec<String> = recovered.skipped.iter().map(|s| s.key.clone()).collect();
    match recovered.checkpoint {
        Some((meta, body)) => {
            let mut extra = vec![(CHECKPOINT_ID_HEADER, meta.id.to_string())];
            if !skipped.is_empty() {
                extra.push((SKIPPED_HEADER, skipped.join(",")));
            }
            Ok(payload_response(body, &extra))
        }
        None if skipped.is_empty() => {
            Err(not_found(format!("no checkpoint retained for job {job}")))
        }
        None => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::NoRecoverableCheckpoint,
            format!(
                "no retained checkpoint of job {job} could be read; skipped: {}",
                skipped.join(", ")
            ),
        )),
    }
}

/// Read one retained checkpoint
#[utoipa::path(
    get,
    path = "/v1/jobs/{jobId}/checkpoints/{checkpointId}",
    tag = "checkpoints",
    operation_id = "getCheckpoint",
    params(CheckpointPath),
    responses(
        (status = 200, description = "The checkpoint's payload.", body = Payload,
            content_type = "application/octet-stream", headers(
                ("Hakeeper-Checkpoint-Id" = u64,
                    description = "The id of the checkpoint whose payload this is."),
            )),
        (status = 400, response = inline(BadCheckpoint)),
        (status = 404, response = inline(CheckpointNotRetained)),
        (status = 500, response = inline(BadStoredPayload)),
        (status = 502, response = inline(StorageRefused)),
        (status = 503, response = inline(ReadUnavailable)),
    ),
)]
async fn get_checkpoint(
    State(sidecar): State<Sidecar>,
    Path((job, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let id = parse_checkpoint_id(&id)?;
    match timed("checkpoint_get", sidecar.checkpoints(&job)?.get(id)).await? {
        Some((meta, body)) => Ok(payload_response(
            body,
            &[(CHECKPOINT_ID_HEADER, meta.id.to_string())],
        )),
        None => Err(not_found(format!(
            "checkpoint {id} of job {job} is not retained"
        ))),
    }
}

/// Remove a retained checkpoint (leader-only: jobmanager/{jobId})
///
/// Removes the handle, then the payload.
#[utoipa::path(
    delete,
    path = "/v1/jobs/{jobId}/checkpoints/{checkpointId}",
    tag = "checkpoints",
    operation_id = "deleteCheckpoint",
    params(CheckpointPath, SessionHeader),
    responses(
        (status = 200, description = "Removed; `orphaned` names a payload that could not be \
            deleted.", body = CheckpointRemoved),
        (status = 400, response = inline(BadCheckpoint)),
        (status = 404, response = inline(CheckpointNotRetained)),
        (status = 409, response = inline(HandleRefused)),
        (status = 503, response = inline(EntryUnavailable)),
    ),
)]
async fn delete_checkpoint(
    State(sidecar): State<Sidecar>,
    Path((job, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let id = parse_checkpoint_id(&id)?;
    let w = sidecar.checkpoint_writer(&job, &headers)?;
    let removed = timed("checkpoint_delete", w.store.remove(&w.fence, w.session, id)).await?;
    if !removed.existed {
        return Err(not_found(format!(
            "checkpoint {id} of job {job} is not retained"
        )));
    }
    Ok(axum::Json(CheckpointRemoved {
        checkpoint_id: id,
        removed: true,
        orphaned: removed.orphaned,
    })
    .into_response())
}

/// Read the checkpoint counter
///
/// The counter is the next checkpoint id; 1 while none was taken.
#[utoipa::path(
    get,
    path = "/v1/jobs/{jobId}/checkpoint-counter",
    tag = "checkpoints",
    operation_id = "getCheckpointCounter",
    params(JobPath),
    responses(
        (status = 200, description = "The counter.", body = CounterBody),
        (status = 400, response = inline(BadJob)),
        (status = 500, response = inline(BadStoredCounter)),
        (status = 503, response = inline(ListUnavailable)),
    ),
)]
async fn get_counter(
    State(sidecar): State<Sidecar>,
    Path(job): Path<String>,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let value = timed("counter_get", sidecar.checkpoints(&job)?.counter()).await?;
    Ok(axum::Json(CounterBody { value }).into_response())
}

/// The body of `PUT .../checkpoint-counter`, read as JSON reads it: `7` and `7.0` are the same
/// number (JSON Schema's `integer` takes both).
#[derive(Deserialize)]
struct CounterInput {
    value: serde_json::Number,
}

/// A JSON number that is a non-negative integer.
fn integral(n: &serde_json::Number) -> Option<u64> {
    n.as_u64().or_else(|| {
        let f = n.as_f64()?;
        // Below 2^63 (checked by the caller against MAX_CHECKPOINT_ID), exactly representable.
        (f >= 0.0 && f.fract() == 0.0 && f < 9.3e18).then_some(f as u64)
    })
}

/// Set the checkpoint counter (leader-only: jobmanager/{jobId})
///
/// E.g. after restoring from a savepoint.
#[utoipa::path(
    put,
    path = "/v1/jobs/{jobId}/checkpoint-counter",
    tag = "checkpoints",
    operation_id = "setCheckpointCounter",
    params(JobPath, SessionHeader),
    request_body(content = CounterBody, description = "Parsed as JSON whatever the \
        Content-Type.", content_type = "application/json"),
    responses(
        (status = 200, description = "Set; the value now stored.", body = CounterBody),
        (status = 400, response = inline(BadCounter)),
        (status = 409, response = inline(EntryRefused)),
        (status = 413, response = inline(TooLarge)),
        (status = 500, response = inline(BadStoredCounter)),
        (status = 503, response = inline(EntryUnavailable)),
        (status = 507, response = inline(ConfigMapFull)),
    ),
)]
async fn set_counter(
    State(sidecar): State<Sidecar>,
    Path(job): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let body: CounterBody = serde_json::from_slice::<CounterInput>(&body)
        .ok()
        .and_then(|b| integral(&b.value))
        .filter(|value| *value <= MAX_CHECKPOINT_ID)
        .map(|value| CounterBody { value })
        .ok_or_else(|| {
            bad_request(format!(
                "expected a JSON body {{\"value\": <integer from 0 to {MAX_CHECKPOINT_ID}>}}"
            ))
        })?;
    let w = sidecar.checkpoint_writer(&job, &headers)?;
    timed(
        "counter_set",
        w.store.set_counter(&w.fence, w.session, body.value),
    )
    .await?;
    Ok(axum::Json(CounterBody { value: body.value }).into_response())
}

/// Take a checkpoint id (leader-only: jobmanager/{jobId})
///
/// Takes the counter's value and stores the next by compare-and-swap. Any request body is
/// ignored.
#[utoipa::path(
    post,
    path = "/v1/jobs/{jobId}/checkpoint-counter/increment",
    tag = "checkpoints",
    operation_id = "incrementCheckpointCounter",
    params(JobPath, SessionHeader),
    responses(
        (status = 200, description = "The value taken (the counter now holds it plus one).",
            body = CounterBody),
        (status = 400, response = inline(BadIncrement)),
        (status = 409, response = inline(EntryRefused)),
        (status = 500, response = inline(BadStoredCounter)),
        (status = 503, response = inline(EntryUnavailable)),
        (status = 507, response = inline(ConfigMapFull)),
    ),
)]
async fn increment_counter(
    State(sidecar): State<Sidecar>,
    Path(job): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let w = sidecar.checkpoint_writer(&job, &headers)?;
    let previous = timed("counter_increment", w.store.increment(&w.fence, w.session)).await?;
    Ok(axum::Json(CounterBody { value: previous }).into_response())
}

/// Store a blob (leader-only: dispatcher)
///
/// Blobs are immutable: the same bytes again answer 200, different bytes 409 `AlreadyExists`.
#[utoipa::path(
    put,
    path = "/v1/blobs/{*key}",
    tag = "blobs",
    operation_id = "putBlob",
    params(BlobPath, SessionHeader),
    request_body(content = Payload, description = "The blob.",
        content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Stored.", body = BlobStored),
        (status = 400, response = inline(BadBlobKey)),
        (status = 404, response = inline(BlobGone)),
        (status = 409, response = inline(BlobRefused)),
        (status = 413, response = inline(TooLarge)),
        (status = 502, response = inline(StorageRefused)),
        (status = 503, response = inline(BlobUnavailable)),
    ),
)]
async fn put_blob(
    State(sidecar): State<Sidecar>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let blobs = sidecar.blobs()?;
    let (fence, session) = sidecar.leader_fence(&Component::Dispatcher, &headers)?;
    let size = body.len();
    timed("blob_put", blobs.put(&fence, Some(session), &key, body)).await?;
    Ok(axum::Json(BlobStored {
        key,
        size: size as u64,
    })
    .into_response())
}

/// Read a blob
#[utoipa::path(
    get,
    path = "/v1/blobs/{*key}",
    tag = "blobs",
    operation_id = "getBlob",
    params(BlobPath),
    responses(
        (status = 200, description = "The blob.", body = Payload,
            content_type = "application/octet-stream"),
        (status = 400, response = inline(BadBlobKey)),
        (status = 404, response = inline(NoBlob)),
        (status = 502, response = inline(StorageRefused)),
        (status = 503, response = inline(BlobUnavailable)),
    ),
)]
async fn get_blob(
    State(sidecar): State<Sidecar>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    match timed("blob_get", sidecar.blobs()?.get(&key)).await? {
        Some(body) => Ok(payload_response(body, &[])),
        None => Err(not_found(format!("no blob {key:?}"))),
    }
}

/// Delete a blob (leader-only: dispatcher)
///
/// Succeeds also when there was nothing to delete.
#[utoipa::path(
    delete,
    path = "/v1/blobs/{*key}",
    tag = "blobs",
    operation_id = "deleteBlob",
    params(BlobPath, SessionHeader),
    responses(
        (status = 200, description = "Deleted (or absent).", body = BlobDeleted),
        (status = 400, response = inline(BadBlobKey)),
        (status = 409, response = inline(BlobDeleteRefused)),
        (status = 502, response = inline(StorageRefused)),
        (status = 503, response = inline(BlobUnavailable)),
    ),
)]
async fn delete_blob(
    State(sidecar): State<Sidecar>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let blobs = sidecar.blobs()?;
    let (fence, session) = sidecar.leader_fence(&Component::Dispatcher, &headers)?;
    timed("blob_delete", blobs.delete(&fence, Some(session), &key)).await?;
    Ok(axum::Json(BlobDeleted { key, deleted: true }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_is_any_integral_json_number() {
        let value = |text: &str| {
            let n: serde_json::Number = serde_json::from_str(text).expect("a number");
            integral(&n)
        };
        assert_eq!(value("7"), Some(7));
        assert_eq!(value("7.0"), Some(7));
        assert_eq!(value("3312247.0"), Some(3_312_247));
        assert_eq!(value("9223372036854775807"), Some(MAX_CHECKPOINT_ID));
        assert_eq!(value("7.5"), None);
        assert_eq!(value("-1"), None);
        assert_eq!(value("-1.0"), None);
        assert_eq!(value("1e300"), None);
    }
}
